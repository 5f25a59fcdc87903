"""Per-group metrics, intervals and disparities, exactly as fairlearn computes them on the raw rows.

fairlearn's `MetricFrame` runs over the counts with `n` as the sample weight, which gives the same
numbers as the raw rows (DESIGN.md). It computes one metric, the weighted confusion matrix
(sklearn), once, on the finest intersection of the sensitive features; each coarser grouping sums
those cells, and every rate follows from the cells by its definition. Measured here, MetricFrame
costs about 4 ms per metric and group, so 15 metrics over 150 groups took seconds; this way an
audit's metric step takes milliseconds. The property tests hold every metric to fairlearn and
sklearn on the raw rows.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from sklearn.metrics import confusion_matrix

from metrics.errors import DataError
from metrics.intervals import (
    bh_qvalues,
    difference_interval,
    normal_interval,
    ratio_interval,
    two_proportion_pvalue,
    wilson_interval,
)
from metrics.scores import score_metrics_by_group
from metrics.spec import AuditSpec

# name: (numerator cells, denominator cells) over the confusion matrix cells tn, fp, fn, tp.
RATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "base_rate": (("fn", "tp"), ("tn", "fp", "fn", "tp")),
    "selection_rate": (("fp", "tp"), ("tn", "fp", "fn", "tp")),
    "accuracy": (("tn", "tp"), ("tn", "fp", "fn", "tp")),
    "true_positive_rate": (("tp",), ("fn", "tp")),
    "false_negative_rate": (("fn",), ("fn", "tp")),
    "false_positive_rate": (("fp",), ("tn", "fp")),
    "true_negative_rate": (("tn",), ("tn", "fp")),
    "precision": (("tp",), ("fp", "tp")),
    "false_discovery_rate": (("fp",), ("fp", "tp")),
    "negative_predictive_value": (("tn",), ("tn", "fn")),
    "false_omission_rate": (("fn",), ("tn", "fn")),
}
OTHER_METRICS = ("balanced_accuracy", "f1")
SCORE_METRICS = ("roc_auc", "brier_score", "expected_calibration_error")
# Metrics where a lower value is better for the group (so "worse" means higher).
LOWER_IS_BETTER = frozenset({"false_negative_rate", "false_positive_rate", "false_discovery_rate",
                             "false_omission_rate", "brier_score", "expected_calibration_error"})
# Metrics that describe the population, not the model: no verdict is passed on them.
DESCRIPTIVE = frozenset({"base_rate"})


def metric_names(with_score: bool) -> tuple[str, ...]:
    """Every metric an audit reports, in display order."""
    return tuple(RATES) + OTHER_METRICS + (SCORE_METRICS if with_score else ())


def confusion_counts(y_true, y_pred, sample_weight) -> np.ndarray:
    """Weighted confusion matrix cells [tn, fp, fn, tp] (sklearn)."""
    return confusion_matrix(y_true, y_pred, labels=[0, 1], sample_weight=sample_weight).ravel()


def groupings(sensitive: Sequence[str]) -> list[tuple[str, ...]]:
    """Each sensitive feature alone, then every intersection of two or more of them."""
    return [c for k in range(1, len(sensitive) + 1) for c in itertools.combinations(sensitive, k)]


def grouping_name(cols: Sequence[str]) -> str:
    """Display name of a grouping: 'race' or 'race × sex'."""
    return " × ".join(cols)


def slice_label(slice_: Sequence[tuple[str, str]]) -> str:
    """Display name of a group: 'race=Black, sex=female'."""
    return ", ".join(f"{k}={v}" for k, v in slice_)


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
    """tn, fp, fn, tp per finest intersection, through fairlearn's MetricFrame over the counts."""
    cols = list(sensitive)
    if labelled.empty:
        return pd.DataFrame(columns=[*cols, "tn", "fp", "fn", "tp"])
    mf = MetricFrame(
        metrics={"confusion": confusion_counts},
        y_true=labelled["y_true"].to_numpy(),
        y_pred=labelled["y_pred"].to_numpy(),
        sensitive_features=labelled[cols],
        sample_params={"confusion": {"sample_weight": labelled["n"].to_numpy()}},
    )
    series = mf.by_group["confusion"].dropna()
    out = series.index.to_frame(index=False)
    out[["tn", "fp", "fn", "tp"]] = np.vstack(series.to_numpy()).astype(np.int64)
    return out


def reference_slice(frame: pd.DataFrame, cols: tuple[str, ...], spec: AuditSpec,
                     refs: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    """The reference group of a grouping: the named or largest group per feature, else the largest cell."""
    wanted = tuple((c, refs[c]) for c in cols)
    mask = np.ones(len(frame), dtype=bool)
    for c, v in wanted:
        mask &= (frame[c] == v).to_numpy()
    if mask.any() and frame.loc[mask, "labelled_n"].iloc[0] >= spec.policy.min_support:
        return wanted
    if frame.empty:
        return None
    best = frame.sort_values(["labelled_n", "n"], ascending=False).iloc[0]
    return tuple((c, str(best[c])) for c in cols)


def reference_groups(population: pd.DataFrame, spec: AuditSpec) -> dict[str, str]:
    """The reference value of each sensitive feature: the one named in the spec, else the largest group."""
    refs = {}
    for feat in spec.sensitive:
        sizes = population.groupby(feat, observed=True)["n"].sum().sort_values(ascending=False, kind="stable")
        named = spec.reference_for(feat)
        if named is not None and named not in sizes.index:
            values = ", ".join(repr(str(v)) for v in sizes.index[:10])
            raise DataError(f"the reference group {feat}={named!r} does not occur in the data; its values are {values}: "
                            f"fix [reference] {feat}")
        refs[feat] = named if named is not None else (str(sizes.index[0]) if len(sizes) else "")
    return refs


def wide_table(finest: pd.DataFrame, population: pd.DataFrame, scores: pd.DataFrame | None,
                cols: tuple[str, ...], probabilities: bool) -> pd.DataFrame:
    """One row per group of a grouping: sizes, confusion cells (sums of the finest cells), score metrics."""
    pop = population.groupby(list(cols), as_index=False, observed=True)["n"].sum()
    conf = finest.groupby(list(cols), as_index=False, observed=True)[["tn", "fp", "fn", "tp"]].sum()
    wide = pop.merge(conf, on=list(cols), how="left")
    for c in ("tn", "fp", "fn", "tp"):
        wide[c] = wide[c].fillna(0).astype(np.int64)
    wide["labelled_n"] = wide[["tn", "fp", "fn", "tp"]].sum(axis=1)
    if scores is not None:
        sc = score_metrics_by_group(scores, list(cols), probabilities)
        wide = wide.merge(sc, on=list(cols), how="left")
    return wide


def metric_rows(wide: pd.DataFrame, cols: tuple[str, ...], spec: AuditSpec, with_score: bool,
                 probabilities: bool) -> pd.DataFrame:
    """Long rows (group × metric) with value, interval, support and masking."""
    min_support = spec.policy.min_support
    parts = []
    cells = {c: wide[c].to_numpy(dtype=float) for c in ("tn", "fp", "fn", "tp")}
    base = pd.DataFrame({
        "slice": [tuple((c, str(r[c])) for c in cols) for r in wide[list(cols)].to_dict("records")],
        "n": wide["n"].to_numpy(np.int64),
        "labelled_n": wide["labelled_n"].to_numpy(np.int64),
    })
    tpr_parts = {}
    for name, (num_cells, den_cells) in RATES.items():
        num = sum(cells[c] for c in num_cells)
        den = sum(cells[c] for c in den_cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        low, high = wilson_interval(num, den)
        tpr_parts[name] = (value, num, den)
        parts.append(base.assign(metric=name, value=value, ci_low=low, ci_high=high, support=den,
                                 successes=num, proportion=True))
    pos = cells["fn"] + cells["tp"]
    neg = cells["tn"] + cells["fp"]
    tpr, tnr = tpr_parts["true_positive_rate"][0], tpr_parts["true_negative_rate"][0]
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = (tpr + tnr) / 2
        # Variance of the mean of two independent proportions: the normal interval is honest here.
        se = np.sqrt(tpr * (1 - tpr) / pos + tnr * (1 - tnr) / neg) / 2
        f1_den = 2 * cells["tp"] + cells["fp"] + cells["fn"]
        f1 = np.where(f1_den > 0, 2 * cells["tp"] / np.where(f1_den > 0, f1_den, 1), np.nan)
    bl, bh = normal_interval(bal, se)
    parts.append(base.assign(metric="balanced_accuracy", value=bal, ci_low=np.clip(bl, 0, 1),
                             ci_high=np.clip(bh, 0, 1), support=np.minimum(pos, neg), successes=np.nan,
                             proportion=False))
    parts.append(base.assign(metric="f1", value=f1, ci_low=np.nan, ci_high=np.nan,
                             support=cells["tp"] + cells["fp"] + cells["fn"], successes=np.nan, proportion=False))
    if with_score:
        auc = wide["roc_auc"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
            # Hanley & McNeil (1982) standard error of the AUC.
            se_auc = np.sqrt((auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / (pos * neg))
        al, ah = normal_interval(auc, se_auc)
        parts.append(base.assign(metric="roc_auc", value=auc, ci_low=np.clip(al, 0, 1), ci_high=np.clip(ah, 0, 1),
                                 support=np.minimum(pos, neg), successes=np.nan, proportion=False))
        if probabilities:
            for name in ("brier_score", "expected_calibration_error"):
                parts.append(base.assign(metric=name, value=wide[name].to_numpy(dtype=float), ci_low=np.nan,
                                         ci_high=np.nan, support=base["labelled_n"].to_numpy(float),
                                         successes=np.nan, proportion=False))
    rows = pd.concat(parts, ignore_index=True)
    rows["support"] = rows["support"].fillna(0).astype(np.int64)
    rows["masked"] = rows["support"] < min_support
    rows.loc[rows["masked"], ["value", "ci_low", "ci_high"]] = np.nan
    rows["grouping"] = grouping_name(cols)
    rows["group"] = rows["slice"].map(slice_label)
    return rows


def _disparities(rows: pd.DataFrame, reference: tuple[tuple[str, str], ...] | None, spec: AuditSpec) -> pd.DataFrame:
    """Ratio and difference to the reference group, with intervals and a p-value for rates."""
    out = rows.copy()
    for col in ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high", "p_value"):
        out[col] = np.nan
    out["reference"] = [reference] * len(out)
    if reference is None:
        return out
    ref = out[out["slice"].map(lambda s: s == reference)].set_index("metric")
    if ref.empty:
        return out
    rv = out["metric"].map(ref["value"])
    out["ratio"] = np.where(rv > 0, out["value"] / rv.where(rv > 0, 1), np.nan)
    out["difference"] = out["value"] - rv
    prop = out["proportion"].astype(bool) & ~out["masked"] & out["metric"].map(ref["masked"]).eq(False)
    x1, n1 = out.loc[prop, "successes"], out.loc[prop, "support"]
    x2 = out.loc[prop, "metric"].map(ref["successes"])
    n2 = out.loc[prop, "metric"].map(ref["support"])
    out.loc[prop, "diff_ci_low"], out.loc[prop, "diff_ci_high"] = difference_interval(x1, n1, x2, n2)
    out.loc[prop, "ratio_ci_low"], out.loc[prop, "ratio_ci_high"] = ratio_interval(x1, n1, x2, n2)
    not_ref = prop & out["slice"].map(lambda s: s != reference)
    out.loc[not_ref, "p_value"] = two_proportion_pvalue(
        out.loc[not_ref, "successes"], out.loc[not_ref, "support"],
        out.loc[not_ref, "metric"].map(ref["successes"]), out.loc[not_ref, "metric"].map(ref["support"]),
    )
    return out


def verdicts(rows: pd.DataFrame, spec: AuditSpec) -> pd.Series:
    """Per row: 'reference', 'insufficient_data', 'within', 'outside' (significant) or 'inconclusive'."""
    low, high, fdr = spec.policy.ratio_low, spec.policy.ratio_high, spec.policy.fdr
    is_ref = rows.apply(lambda r: r["slice"] == r["reference"], axis=1)
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
    ok = rows[~rows["masked"] & rows["value"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["grouping", "metric", "difference", "ratio", "groups", "min_group", "max_group"])
    g = ok.groupby(["grouping", "metric"], sort=False)
    agg = g["value"].agg(["min", "max", "count"]).reset_index()
    idxmin, idxmax = g["value"].idxmin(), g["value"].idxmax()
    agg["min_group"] = ok.loc[idxmin.to_numpy(), "group"].to_numpy()
    agg["max_group"] = ok.loc[idxmax.to_numpy(), "group"].to_numpy()
    agg["difference"] = agg["max"] - agg["min"]
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["ratio"] = np.where(agg["max"] > 0, agg["min"] / agg["max"].where(agg["max"] > 0, 1), np.nan)
    return agg.rename(columns={"count": "groups"})[["grouping", "metric", "difference", "ratio", "groups",
                                                     "min_group", "max_group"]]


def compute_group_table(labelled: pd.DataFrame, population: pd.DataFrame, scores: pd.DataFrame | None,
                        spec: AuditSpec) -> GroupTable:
    """Metrics, intervals and disparities for every sensitive feature and every intersection."""
    with_score = scores is not None
    probabilities = bool(with_score and len(scores) and scores["score"].between(0, 1).all())
    refs = reference_groups(population, spec)
    finest = confusion_by_group(labelled, spec.sensitive)
    tables = []
    for cols in groupings(spec.sensitive):
        wide = wide_table(finest, population, scores, cols, probabilities)
        rows = metric_rows(wide, cols, spec, with_score, probabilities)
        reference = reference_slice(wide, cols, spec, refs)
        tables.append(_disparities(rows, reference, spec))
    rows = pd.concat(tables, ignore_index=True)
    # One family of tests per audit: every group-vs-reference comparison of every rate.
    rows["q_value"] = np.nan
    tested = ~rows["metric"].isin(DESCRIPTIVE)
    rows.loc[tested, "q_value"] = bh_qvalues(rows.loc[tested, "p_value"].to_numpy())
    rows["verdict"] = verdicts(rows, spec)
    rows.loc[rows["metric"].isin(DESCRIPTIVE) & (rows["verdict"] != "reference"), "verdict"] = "descriptive"
    rows = rows.drop(columns=["proportion"])
    return GroupTable(rows=rows, summary=_between_groups(rows))
