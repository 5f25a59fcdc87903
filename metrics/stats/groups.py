"""Per-group metrics, intervals and disparities, exactly as fairlearn computes them on the raw rows.

Every metric follows from the weighted confusion matrix (tn, fp, fn, tp) of its group, and the
counts give those cells exactly: per finest intersection of the sensitive features they are the
counts pivoted on `y_true*2 + y_pred`, and each coarser grouping sums the finest cells. fairlearn's
`MetricFrame` over the counts, with `n` as the sample weight, gives the same integers (DESIGN.md),
and it remains the oracle: tests/test_metrics_oracle.py holds every metric to fairlearn and sklearn
on the raw rows. The audit does not call it because of its cost: at 10M rows, one MetricFrame for
the confusion matrices took 485 ms, the pivot 17 ms (and per metric and group, MetricFrame costs
about 4 ms, so 15 metrics over 150 groups took seconds).

For the same reason the engine works on integer ids, not on text keys: every group of every
grouping gets an id, each finest cell knows its group in each grouping, and all metrics,
intervals and disparities of all groupings are computed in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.rates import RATES, grouping_name, groupings, slice_label
from fairwatch.metrics.stats.intervals import (
    bh_qvalues,
    difference_interval,
    normal_interval,
    ratio_interval,
    two_proportion_pvalue,
    wilson_interval,
)
from fairwatch.metrics.stats.scores import positives_negatives, score_cells, score_metrics, score_metrics_by_group
from fairwatch.metrics.audit.spec import AuditSpec

# name: (numerator cells, denominator cells) over the confusion matrix cells tn, fp, fn, tp.
OTHER_METRICS = ("balanced_accuracy", "f1")
SCORE_METRICS = ("roc_auc", "brier_score", "expected_calibration_error")
# Metrics where a lower value is better for the group (so "worse" means higher).
LOWER_IS_BETTER = frozenset({"false_negative_rate", "false_positive_rate", "false_discovery_rate",
                             "false_omission_rate", "brier_score", "expected_calibration_error"})
# Metrics that describe the population, not the model: no verdict is passed on them.
DESCRIPTIVE = frozenset({"base_rate"})
CELLS = ("tn", "fp", "fn", "tp")
_DISPARITY_COLUMNS = ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high", "p_value")


def metric_names(with_score: bool) -> tuple[str, ...]:
    """Every metric an audit reports, in display order."""
    return tuple(RATES) + OTHER_METRICS + (SCORE_METRICS if with_score else ())


@dataclass(frozen=True)
class GroupTable:
    """The result of the metric engine in long form: one row per (group, metric).

    Columns: grouping, slice (tuple of (feature, value) pairs), group, n, labelled_n, metric,
    value, ci_low, ci_high, support, masked, reference, ratio, ratio_ci_low, ratio_ci_high,
    difference, diff_ci_low, diff_ci_high, p_value, q_value, verdict.
    """

    rows: pd.DataFrame
    summary: pd.DataFrame  # per grouping and metric: fairlearn-style between-groups difference and ratio


def confusion_by_group(labelled: pd.DataFrame, sensitive: Sequence[str]) -> pd.DataFrame:
    """tn, fp, fn, tp per finest intersection: the counts pivoted on y_true*2 + y_pred (equal to MetricFrame's)."""
    cols = list(sensitive)
    if labelled.empty:
        return pd.DataFrame(columns=[*cols, *CELLS])
    code = labelled["y_true"].to_numpy() * 2 + labelled["y_pred"].to_numpy()
    frame = labelled[cols].copy()
    for i, name in enumerate(CELLS):
        frame[name] = np.where(code == i, labelled["n"].to_numpy(), 0).astype(np.int64)
    return frame.groupby(cols, as_index=False, sort=True, observed=True)[list(CELLS)].sum()


# --------------------------------------------------------------------------- integer group ids


def _tuple_ids(codes: np.ndarray) -> np.ndarray:
    """Dense ids of the rows of a code matrix (codes >= -1), numbered in the rows' lexicographic order."""
    key = np.zeros(len(codes), dtype=np.int64)
    for col in codes.T:
        col = col.astype(np.int64) + 1  # -1 (missing) becomes 0
        size = int(col.max()) + 1 if len(col) else 1
        if len(key) and int(key.max()) >= (2**62) // size:  # renumber first, so the key cannot overflow
            key = np.unique(key, return_inverse=True)[1].astype(np.int64)
        key = key * size + col
    return np.unique(key, return_inverse=True)[1] if len(key) else key


@dataclass(frozen=True)
class _Finest:
    """The finest intersections of the sensitive features: one row per cell, values as integer codes."""

    features: tuple[str, ...]
    values: tuple[pd.Index, ...]  # per feature, its distinct values in sorted order (codes index them)
    codes: np.ndarray  # (cells, features) int64, -1 where a value is missing
    n: np.ndarray  # rows per cell

    @classmethod
    def of(cls, population: pd.DataFrame, features: Sequence[str]) -> _Finest:
        """The cells of the population counts (rows with the same key values are merged)."""
        features = tuple(features)
        pairs = [pd.factorize(population[f], sort=True) for f in features]
        values = tuple(pd.Index(uniques) for _, uniques in pairs)
        codes = np.column_stack([c for c, _ in pairs]).astype(np.int64).reshape(len(population), len(features))
        ids = _tuple_ids(codes)
        size = int(ids.max()) + 1 if len(ids) else 0
        first = np.unique(ids, return_index=True)[1]
        n = np.zeros(size, dtype=np.int64)
        np.add.at(n, ids, population["n"].to_numpy(np.int64))
        return cls(features=features, values=values, codes=codes[first], n=n)

    def locate(self, frame: pd.DataFrame) -> np.ndarray:
        """The cell of each row of `frame` (matched on the features), -1 where the population has none.

        A row with a missing value matches no cell, as a groupby drops it (the audit's counts have
        none: NULL is the '(missing)' group).
        """
        theirs = np.column_stack([_codes_in(frame[f], v) for f, v in zip(self.features, self.values)])
        ids = _tuple_ids(np.vstack([self.codes, theirs.reshape(len(frame), len(self.features))]))
        cell_of_id = np.full(int(ids.max()) + 1 if len(ids) else 0, -1)
        cell_of_id[ids[:len(self.codes)]] = np.arange(len(self.codes))
        return np.where((theirs >= 0).all(axis=1), cell_of_id[ids[len(self.codes):]], -1)


def _codes_in(column: pd.Series, values: pd.Index) -> np.ndarray:
    """Positions of a column's values in `values` (-1 if absent or missing); cheap for categoricals."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        lookup = values.get_indexer(column.cat.categories)
        codes = column.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1)
    return values.get_indexer(column)


@dataclass(frozen=True)
class _Groups:
    """Every group of every grouping, numbered grouping by grouping, in the sorted order of their values."""

    groupings: tuple[tuple[str, ...], ...]
    start: np.ndarray  # first group id of each grouping, then the total
    slices: tuple[tuple[tuple[str, str], ...], ...]  # per group id
    keys: tuple[tuple, ...]  # per group id, the raw feature values
    member: np.ndarray  # (groupings, cells): group id of each finest cell, -1 where a value is missing

    @classmethod
    def of(cls, finest: _Finest, cols_list: Sequence[tuple[str, ...]]) -> _Groups:
        """Number the groups of each grouping from the finest cells."""
        member = np.full((len(cols_list), len(finest.codes)), -1, dtype=np.int64)
        start, slices, keys = [0], [], []
        values = [v.tolist() for v in finest.values]
        for k, cols in enumerate(cols_list):
            pos = [finest.features.index(c) for c in cols]
            sub = finest.codes[:, pos]
            ok = (sub >= 0).all(axis=1)
            local = _tuple_ids(sub[ok])
            member[k, ok] = local + start[-1]
            count = int(local.max()) + 1 if len(local) else 0
            for row in sub[ok][np.unique(local, return_index=True)[1]]:
                key = tuple(values[p][c] for p, c in zip(pos, row))
                keys.append(key)
                slices.append(tuple((c, str(v)) for c, v in zip(cols, key)))
            start.append(start[-1] + count)
        return cls(groupings=tuple(cols_list), start=np.asarray(start), slices=tuple(slices), keys=tuple(keys),
                   member=member)

    @property
    def size(self) -> int:
        """Number of groups over all groupings."""
        return int(self.start[-1])

    def grouping_of(self) -> np.ndarray:
        """Per group id, the index of its grouping."""
        return np.repeat(np.arange(len(self.groupings)), np.diff(self.start))


def _sum_to_groups(groups: _Groups, per_cell: np.ndarray) -> np.ndarray:
    """Per group id, the sum over its finest cells (int64, exact); per_cell is (cells,) or (cells, k)."""
    out = np.zeros((groups.size, *per_cell.shape[1:]), dtype=np.int64)
    for member in groups.member:
        ok = member >= 0
        np.add.at(out, member[ok], per_cell[ok])
    return out


# --------------------------------------------------------------------------- metric values


@dataclass(frozen=True)
class _Values:
    """Every metric of every group, before masking: arrays of shape (metrics, groups)."""

    names: tuple[str, ...]
    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    support: np.ndarray  # float; NaN counts as no support
    successes: np.ndarray  # the numerator of a proportion, NaN for other metrics
    proportion: np.ndarray  # per metric: a rate with a binomial numerator and denominator


def _metric_values(conf: np.ndarray, labelled_n: np.ndarray, score_values: dict[str, np.ndarray] | None,
                   probabilities: bool) -> _Values:
    """Value, interval, support and successes of every metric from the cells (groups, 4) and score metrics."""
    tn, fp, fn, tp = (conf[:, i].astype(float) for i in range(len(CELLS)))
    cells = {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    num = np.array([sum(cells[c] for c in n_cells) for n_cells, _ in RATES.values()]).reshape(len(RATES), -1)
    den = np.array([sum(cells[c] for c in d_cells) for _, d_cells in RATES.values()]).reshape(len(RATES), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    low, high = (a.reshape(den.shape) for a in wilson_interval(num.ravel(), den.ravel()))

    pos, neg = fn + tp, tn + fp
    tpr, tnr = value[list(RATES).index("true_positive_rate")], value[list(RATES).index("true_negative_rate")]
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = (tpr + tnr) / 2
        # Variance of the mean of two independent proportions: the normal interval is honest here.
        se = np.sqrt(tpr * (1 - tpr) / pos + tnr * (1 - tnr) / neg) / 2
        f1_den = 2 * tp + fp + fn
        f1 = np.where(f1_den > 0, 2 * tp / np.where(f1_den > 0, f1_den, 1), np.nan)
    bl, bh = normal_interval(bal, se)
    nan = np.full(len(labelled_n), np.nan)
    # The metrics that are not proportions: (name, value, ci_low, ci_high, support).
    others = [("balanced_accuracy", bal, np.clip(bl, 0, 1), np.clip(bh, 0, 1), np.minimum(pos, neg)),
              ("f1", f1, nan, nan, tp + fp + fn)]
    if score_values is not None:
        auc = score_values["roc_auc"]
        with np.errstate(invalid="ignore", divide="ignore"):
            q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
            # Hanley & McNeil (1982) standard error of the AUC.
            se_auc = np.sqrt((auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / (pos * neg))
        al, ah = normal_interval(auc, se_auc)
        others.append(("roc_auc", auc, np.clip(al, 0, 1), np.clip(ah, 0, 1), np.minimum(pos, neg)))
        if probabilities:
            others += [(name, score_values[name], nan, nan, labelled_n.astype(float))
                       for name in ("brier_score", "expected_calibration_error")]

    def stacked(rates: np.ndarray, i: int) -> np.ndarray:
        """The rates' rows, then column i of the other metrics."""
        return np.vstack([rates, *(o[i] for o in others)])

    return _Values(names=(*RATES, *(o[0] for o in others)), value=stacked(value, 1), ci_low=stacked(low, 2),
                   ci_high=stacked(high, 3), support=stacked(den, 4),
                   successes=np.vstack([num, *(nan for _ in others)]),
                   proportion=np.array([True] * len(RATES) + [False] * len(others)))


def _long_frame(vals: _Values, order: tuple[np.ndarray, np.ndarray], slices: np.ndarray, n: np.ndarray,
                labelled_n: np.ndarray, grouping: np.ndarray, min_support: int) -> pd.DataFrame:
    """Long rows for (metric, group) index pairs `order`, masked below min_support (metric_rows' columns)."""
    m, g = order
    support = np.nan_to_num(vals.support[m, g], nan=0).astype(np.int64)
    masked = support < min_support

    def masked_nan(a: np.ndarray) -> np.ndarray:
        """The values of the rows, NaN where masked."""
        return np.where(masked, np.nan, a[m, g])

    names = np.asarray(vals.names, dtype=object)
    labels = np.array([slice_label(s) for s in slices], dtype=object)
    return pd.DataFrame({
        "slice": slices[g],
        "n": n[g],
        "labelled_n": labelled_n[g],
        "metric": pd.array(names[m], dtype="str"),
        "value": masked_nan(vals.value),
        "ci_low": masked_nan(vals.ci_low),
        "ci_high": masked_nan(vals.ci_high),
        "support": support,
        "successes": vals.successes[m, g],
        "proportion": vals.proportion[m],
        "masked": masked,
        "grouping": pd.array(grouping[g], dtype="str"),
        "group": pd.array(labels[g], dtype="str"),
    })


def metric_rows(wide: pd.DataFrame, cols: tuple[str, ...], spec: AuditSpec, with_score: bool,
                 probabilities: bool) -> pd.DataFrame:
    """Long rows (group × metric) with value, interval, support and masking, from one grouping's wide table."""
    conf = wide[list(CELLS)].to_numpy(dtype=np.int64)
    labelled_n = wide["labelled_n"].to_numpy(np.int64)
    score_values = None
    if with_score:
        names = ("roc_auc",) + (("brier_score", "expected_calibration_error") if probabilities else ())
        score_values = {name: wide[name].to_numpy(dtype=float) for name in names}
    vals = _metric_values(conf, labelled_n, score_values, probabilities)
    slices = np.empty(len(wide), dtype=object)
    slices[:] = [tuple((c, str(r[c])) for c in cols) for r in wide[list(cols)].to_dict("records")]
    m, g = np.divmod(np.arange(len(vals.names) * len(wide)), max(len(wide), 1))
    grouping = np.full(len(wide), grouping_name(cols), dtype=object)
    return _long_frame(vals, (m, g), slices, wide["n"].to_numpy(np.int64), labelled_n, grouping,
                       spec.policy.min_support)


def wide_table(finest: pd.DataFrame, population: pd.DataFrame, scores: pd.DataFrame | None,
                cols: tuple[str, ...], probabilities: bool) -> pd.DataFrame:
    """One row per group of a grouping: sizes, confusion cells (sums of the finest cells), score metrics."""
    pop = population.groupby(list(cols), as_index=False, observed=True)["n"].sum()
    conf = finest.groupby(list(cols), as_index=False, observed=True)[list(CELLS)].sum()
    wide = pop.merge(conf, on=list(cols), how="left")
    for c in CELLS:
        wide[c] = wide[c].fillna(0).astype(np.int64)
    wide["labelled_n"] = wide[list(CELLS)].sum(axis=1)
    if scores is not None:
        sc = score_metrics_by_group(scores, list(cols), probabilities)
        wide = wide.merge(sc, on=list(cols), how="left")
    return wide


# --------------------------------------------------------------------------- references and disparities


def _reference_position(matches: np.ndarray, labelled_n: np.ndarray, n: np.ndarray, min_support: int) -> int | None:
    """Position of the reference among a grouping's groups: the wanted one if supported, else the largest."""
    hit = np.flatnonzero(matches)
    if len(hit) and labelled_n[hit[0]] >= min_support:
        return int(hit[0])
    if not len(labelled_n):
        return None
    # Most labelled rows, then most rows; ties go to the first group (a stable sort, as pandas sorts).
    return int(np.lexsort((-n, -labelled_n))[0])


def reference_slice(frame: pd.DataFrame, cols: tuple[str, ...], spec: AuditSpec,
                     refs: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    """The reference group of a grouping: the named or largest group per feature, else the largest cell."""
    wanted = tuple((c, refs[c]) for c in cols)
    mask = np.ones(len(frame), dtype=bool)
    for c, v in wanted:
        mask &= (frame[c] == v).to_numpy()
    at = _reference_position(mask, frame["labelled_n"].to_numpy(), frame["n"].to_numpy(), spec.policy.min_support)
    if at is None:
        return None
    if mask.any() and at == int(np.flatnonzero(mask)[0]):
        return wanted
    return tuple((c, str(frame[c].iloc[at])) for c in cols)


def reference_groups(population: pd.DataFrame, spec: AuditSpec) -> dict[str, str]:
    """The reference value of each sensitive feature: the one named in the spec, else the largest group."""
    refs = {}
    for feat in spec.sensitive:
        sizes = population.groupby(feat, observed=True)["n"].sum().sort_values(ascending=False, kind="stable")
        named = spec.reference_for(feat)
        if named is not None and named not in sizes.index:
            values = ", ".join(repr(str(v)) for v in sizes.index[:10])
            raise DataError(f"the reference group {feat}={named!r} does not occur in the data; its values are {values}: "
                            f"fix it with {{field}}", field="reference")
        refs[feat] = named if named is not None else (str(sizes.index[0]) if len(sizes) else "")
    return refs


def _disparities(rows: pd.DataFrame, group: np.ndarray, ref: np.ndarray, ref_row: np.ndarray) -> pd.DataFrame:
    """Ratio and difference to the reference group, with intervals and a p-value for rates.

    `group` and `ref` are each row's group id and its reference's (-1: the grouping has none);
    `ref_row` is the position of the reference's row for the same metric (-1: none).
    """
    out = {col: np.full(len(rows), np.nan) for col in _DISPARITY_COLUMNS}
    has = ref_row >= 0
    at = np.where(has, ref_row, 0)
    value, masked = rows["value"].to_numpy(), rows["masked"].to_numpy()
    successes, support = rows["successes"].to_numpy(), rows["support"].to_numpy()
    rv = np.where(has, value[at], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ratio"] = np.where(rv > 0, value / np.where(rv > 0, rv, 1), np.nan)
    out["difference"] = value - rv
    prop = rows["proportion"].to_numpy(bool) & ~masked & has & ~masked[at]
    x1, n1, x2, n2 = successes[prop], support[prop], successes[at][prop], support[at][prop]
    out["diff_ci_low"][prop], out["diff_ci_high"][prop] = difference_interval(x1, n1, x2, n2)
    out["ratio_ci_low"][prop], out["ratio_ci_high"][prop] = ratio_interval(x1, n1, x2, n2)
    not_ref = prop & (group != ref)
    out["p_value"][not_ref] = two_proportion_pvalue(successes[not_ref], support[not_ref], successes[at][not_ref],
                                                    support[at][not_ref])
    return rows.assign(**out)


def verdicts(rows: pd.DataFrame, spec: AuditSpec, is_ref: np.ndarray | None = None) -> pd.Series:
    """Per row: 'reference', 'insufficient_data', 'within', 'outside' (significant) or 'inconclusive'.

    `is_ref` (the row is its grouping's reference group) is compared from the slices when not given.
    """
    low, high, fdr = spec.policy.ratio_low, spec.policy.ratio_high, spec.policy.fdr
    if is_ref is None:
        is_ref = np.fromiter((s == r for s, r in zip(rows["slice"], rows["reference"])), dtype=bool, count=len(rows))
    outside = (rows["ratio"] < low) | (rows["ratio"] > high)
    significant = rows["q_value"] < fdr
    verdict = np.select(
        [is_ref, rows["masked"] | rows["ratio"].isna(), ~outside, outside & significant],
        ["reference", "insufficient_data", "within", "outside"],
        default="inconclusive",
    )
    return pd.Series(verdict, index=rows.index)


def _between_groups(rows: pd.DataFrame) -> pd.DataFrame:
    """fairlearn's between-groups difference (max − min) and ratio (min / max) over unmasked groups."""
    columns = ["grouping", "metric", "difference", "ratio", "groups", "min_group", "max_group"]
    ok = rows[~rows["masked"] & rows["value"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    # One block per (grouping, metric), numbered in order of first appearance.
    block, pairs = pd.MultiIndex.from_arrays([ok["grouping"], ok["metric"]]).factorize()
    value, group = ok["value"].to_numpy(), ok["group"].to_numpy()
    # Sorted by block, then value; a stable sort keeps the first of equal values first, as idxmin does.
    lo, hi = np.lexsort((value, block)), np.lexsort((-value, block))
    starts = np.flatnonzero(np.r_[True, np.diff(block[lo]) != 0])
    low, high = value[lo[starts]], value[hi[starts]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(high > 0, low / np.where(high > 0, high, 1), np.nan)
    return pd.DataFrame({
        "grouping": pairs.get_level_values(0), "metric": pairs.get_level_values(1), "difference": high - low,
        "ratio": ratio, "groups": np.bincount(block).astype(np.int64), "min_group": group[lo[starts]],
        "max_group": group[hi[starts]],
    })


# --------------------------------------------------------------------------- the group table


def _finest_confusion(finest: _Finest, labelled: pd.DataFrame) -> np.ndarray:
    """tn, fp, fn, tp per finest cell, (cells, 4) int64: the labelled counts pivoted on y_true*2 + y_pred."""
    conf = np.zeros((len(finest.codes), len(CELLS)), dtype=np.int64)
    if len(labelled):
        cell = finest.locate(labelled)
        ok = cell >= 0
        code = labelled["y_true"].to_numpy(np.int64) * 2 + labelled["y_pred"].to_numpy(np.int64)
        np.add.at(conf, (cell[ok], code[ok]), labelled["n"].to_numpy(np.int64)[ok])
    return conf


def _group_scores(finest: _Finest, groups: _Groups, scores: pd.DataFrame, probabilities: bool) -> dict[str, np.ndarray]:
    """Score metrics of every group of every grouping, from the bucket counts of the finest cells."""
    cell = finest.locate(scores) if len(scores) else np.zeros(0, dtype=np.int64)
    ok = cell >= 0
    score, y_true, n = (scores[c].to_numpy()[ok] for c in ("score", "y_true", "n"))
    # Each bucket row counts once per grouping, under its group there.
    cells = score_cells(groups.member[:, cell[ok]], score.astype(float), *positives_negatives(y_true, n))
    return score_metrics(cells, groups.size, probabilities)


def _reference_ids(groups: _Groups, refs: dict[str, str], labelled_n: np.ndarray, n: np.ndarray,
                   min_support: int) -> np.ndarray:
    """Per group id, the id of its grouping's reference group (-1 if the grouping has no groups)."""
    out = np.full(groups.size, -1)
    for k, cols in enumerate(groups.groupings):
        ids = np.arange(groups.start[k], groups.start[k + 1])
        wanted = np.array([all(groups.keys[i][j] == refs[c] for j, c in enumerate(cols)) for i in ids], dtype=bool)
        at = _reference_position(wanted, labelled_n[ids], n[ids], min_support)
        if at is not None:
            out[ids] = ids[at]
    return out


def _row_order(groups: _Groups, n_metrics: int) -> tuple[np.ndarray, np.ndarray]:
    """(metric, group id) of each row: grouping by grouping, then metric by metric, then group by group."""
    metric, group = [], []
    for k in range(len(groups.groupings)):
        ids = np.arange(groups.start[k], groups.start[k + 1])
        metric.append(np.repeat(np.arange(n_metrics), len(ids)))
        group.append(np.tile(ids, n_metrics))
    return np.concatenate(metric), np.concatenate(group)


def compute_group_table(labelled: pd.DataFrame, population: pd.DataFrame, scores: pd.DataFrame | None,
                        spec: AuditSpec) -> GroupTable:
    """Metrics, intervals and disparities for every sensitive feature and every intersection."""
    with_score = scores is not None
    probabilities = bool(with_score and len(scores) and scores["score"].between(0, 1).all())
    refs = reference_groups(population, spec)
    finest = _Finest.of(population, spec.sensitive)
    groups = _Groups.of(finest, groupings(spec.sensitive))
    conf = _sum_to_groups(groups, _finest_confusion(finest, labelled))
    n = _sum_to_groups(groups, finest.n)
    labelled_n = conf.sum(axis=1)
    score_values = _group_scores(finest, groups, scores, probabilities) if with_score else None
    vals = _metric_values(conf, labelled_n, score_values, probabilities)

    m, g = _row_order(groups, len(vals.names))
    slices = np.empty(groups.size, dtype=object)
    slices[:] = groups.slices
    grouping = np.array([grouping_name(c) for c in groups.groupings], dtype=object)[groups.grouping_of()]
    rows = _long_frame(vals, (m, g), slices, n, labelled_n, grouping, spec.policy.min_support)

    ref = _reference_ids(groups, refs, labelled_n, n, spec.policy.min_support)[g]
    # Position of the row of the same metric for the reference group.
    row_of = np.full((len(vals.names), groups.size), -1)
    row_of[m, g] = np.arange(len(rows))
    ref_row = np.where(ref >= 0, row_of[m, np.maximum(ref, 0)], -1)
    rows = _disparities(rows, g, ref, ref_row)
    rows["reference"] = np.where(ref >= 0, slices[np.maximum(ref, 0)], None)

    # One family of tests per audit: every group-vs-reference comparison of every rate.
    rows["q_value"] = np.nan
    tested = ~rows["metric"].isin(DESCRIPTIVE)
    rows.loc[tested, "q_value"] = bh_qvalues(rows.loc[tested, "p_value"].to_numpy())
    rows["verdict"] = verdicts(rows, spec, is_ref=(g == ref))
    rows.loc[rows["metric"].isin(DESCRIPTIVE) & (rows["verdict"] != "reference"), "verdict"] = "descriptive"
    rows = rows.drop(columns=["proportion"])
    return GroupTable(rows=rows, summary=_between_groups(rows))
