"""The Slices page, the pure half: findings as tables, and one slice against the rest of the data.

A slice's analysis reuses the audit's own machinery, so a slice shows the same numbers wherever it
appears: its outcome counts against the rest become a two-group table (`compute_group_table`, the
rest as the reference group, so every rate has its Wilson interval and every gap its q-value over
this comparison); its error signal is tested exactly as the slice search tests it (`find_slices` on
its counts: exact test, Newcombe interval; Welch's test for a mean loss), with the ratio to the rest
and the verdict the search gives it; its data need comes from `diagnose` with the quality signals.
For a slice the search evaluated, the search's p- and q-value (Benjamini-Hochberg over every slice
tested), verdict and its finding's need replace the single test's, so the numbers on this page and
in a snapshot agree. Regression and multiclass audits share that half (`SliceSignal`, from the
task's error counts per side: `task_error_counts`); their metrics against the rest are
`connectors.task_drilldown`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.discovery.diagnosis import diagnose, metric_text
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.discovery.findings import Finding
from fairwatch.metrics.stats.groups import compute_group_table, confusion_by_group, slice_label
from fairwatch.metrics.stats.intervals import CONFIDENCE, mean_ratio_interval, ratio_interval, wilson_interval
from fairwatch.metrics.audit.outcomes import binarize, normalise_value, positive_set
from fairwatch.metrics.presentation.formats import HEADLINE_METRICS, fmt_pct, fmt_q
from fairwatch.metrics.policy.overview import NEED_LABELS, VERDICT_LABELS
from fairwatch.metrics.discovery.quality import QualityTable
from fairwatch.metrics.discovery.slices import COUNT_COLUMNS, SIGNAL_DESCRIPTIONS, SliceCounts, SliceTable, find_slices, material
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import MEAN_LOSSES, AuditSpec
from fairwatch.metrics.presentation.text import md_escape
from fairwatch.metrics.presentation.views import estimate_text, metric_label

Slice = tuple[tuple[str, str], ...]
SIDE = "rows"
SLICE_SIDE, REST_SIDE = "in the slice", "rest of the data"
# Drill-down sources: a slice the search evaluated, or one an analyst defines with the filter builder.
FOUND, BUILT = "A slice the search found", "A slice I define"
SHOWN_VALUES = 12


@dataclass(frozen=True)
class SliceSignal:
    """The searched error signal of one slice against the rest: the test, the search's verdict, the need, the signals.

    Shared by the binary drill-down (`SliceAnalysis`) and the regression and multiclass one
    (`connectors.task_drilldown.TaskSliceAnalysis`), which carry these fields under the same names.
    `error` holds the error signal's counts and test (n, errors, rate, ci_low, ci_high, complement_n,
    complement_rate, complement_ci_low, complement_ci_high, difference, diff_ci_low, diff_ci_high,
    ratio, ratio_ci_low, ratio_ci_high, p_value, q_value, finding, verdict: the slice search's word for
    it, see SEARCH_VERDICTS); `quality` the slice's data-quality signal rows.
    """

    origin: str  # finding | explained | inconclusive | hand
    origin_text: str
    metric: str  # the searched signal ('false_negative@high' for one class of a multiclass audit)
    error: dict[str, Any]
    test_note: str
    need: str | None
    additional_rows: int | None
    message: str
    quality: pd.DataFrame
    quality_note: str
    label_rule: str


@dataclass(frozen=True)
class SliceAnalysis:
    """One slice against the rest of the audited rows: what the drill-down draws.

    The fields of `SliceSignal` (error signal, test, need, quality signals), and: `side_rows` the
    two-group metric table (groups SLICE_SIDE and REST_SIDE, the rest the reference); `confusion` tn,
    fp, fn, tp per side; `values` rows per (feature, value, in_slice) of the other features.
    """

    slice: Slice
    label: str
    origin: str  # finding | explained | inconclusive | hand
    origin_text: str
    metric: str
    error: dict[str, Any]
    test_note: str
    need: str | None
    additional_rows: int | None
    message: str
    side_rows: pd.DataFrame
    confusion: pd.DataFrame
    rows: int
    rest_rows: int
    quality: pd.DataFrame
    quality_note: str
    label_rule: str
    values: pd.DataFrame


# The slice search's verdicts of one slice (`metrics.discovery.slices`), in words.
SEARCH_VERDICTS = {
    "finding": "a finding: significantly and materially worse than the rest",
    "explained": "significantly and materially worse than the rest, listed under a finding that describes it better",
    "small": "real but small: significantly worse than the rest, but inside the policy band",
    "inconclusive": "inconclusive: worse than the rest, but it could be chance",
    "not_worse": "not worse than the rest",
}


def canonical(slice_: Sequence[Sequence[str]], spec: AuditSpec) -> Slice:
    """A slice as the search writes it: the spec's spelling of each feature, in spec order (sensitive first)."""
    names = [*spec.sensitive, *spec.features]
    order = {name.lower(): i for i, name in enumerate(names)}
    pairs = [(names[order[str(f).lower()]] if str(f).lower() in order else str(f), str(v)) for f, v in slice_]
    return tuple(sorted(pairs, key=lambda p: order.get(p[0].lower(), len(order))))


def _side_spec(spec: AuditSpec, snapshot: AuditSnapshot) -> AuditSpec:
    """The spec of the two-group table: one 'feature' whose groups are the slice and the rest (the reference)."""
    data = snapshot.data
    return replace(spec, sensitive=(SIDE,), reference=((SIDE, REST_SIDE),), reference_shares=(),
                   positive_label=data.positive_label,
                   positive_prediction=data.positive_prediction if spec.prediction is not None else None)


def _error_counts(cells: pd.DataFrame, positive_label: str, positive_prediction: str, error: str) -> pd.DataFrame:
    """Per side (in_slice True/False): rows, labelled, n, errors, errors_sq of the search's error signal.

    The same definitions as the search's SQL (`connectors/slice_counts._signal_sql`), from the cells:
    y = label is positive, ŷ = decision is positive; the squared score loss (s - y)² and its square
    from the score's power sums s1..s4 of each cell (y is constant within a cell).
    """
    labelled = cells["label_raw"].notna()
    y = cells["label_raw"].map(normalise_value, na_action="ignore").isin(positive_set(positive_label)) & labelled
    yhat = cells["pred_raw"].map(normalise_value, na_action="ignore") == positive_prediction
    both = labelled & cells["pred_raw"].notna()
    n = cells["n"].astype(float)
    if error == "score_loss":
        m = cells["scored"].astype(float).where(labelled, 0.0)
        s1, s2, s3, s4 = (cells[f"s{k}"].astype(float).where(labelled, 0.0) for k in range(1, 5))
        yy = y.astype(float)
        den, err = m, s2 - 2 * yy * s1 + yy * m
        err_sq = s4 - 4 * yy * s3 + 6 * yy * s2 - 4 * yy * s1 + yy * m
    else:
        den_mask = {"misclassification": both, "false_negative": both & y, "false_positive": both & ~y}[error]
        wrong = {"misclassification": y != yhat, "false_negative": ~yhat, "false_positive": yhat}[error]
        den = n.where(den_mask, 0.0)
        err = n.where(den_mask & wrong, 0.0)
        err_sq = err
    frame = pd.DataFrame({"in_slice": cells["in_slice"].to_numpy(), "rows": n, "labelled": n.where(labelled, 0.0),
                          "n": den, "errors": err, "errors_sq": err_sq})
    return frame.groupby("in_slice").sum().reindex([True, False], fill_value=0.0)


def task_error_counts(cells: pd.DataFrame, spec: AuditSpec) -> pd.DataFrame:
    """Per side (in_slice True/False): rows, labelled, n, errors, errors_sq of a regression or multiclass signal.

    The same definitions as the search's SQL (`connectors/task_slice_counts.task_signal`), from the
    drill-down's own counts. Regression, from the per-side sums (`connectors.task_drilldown.regression_sides`,
    column SIDE): n rows with a finite label and prediction, errors the sum of |e| (absolute_error) or e²
    (squared_error) over them, errors_sq the sum of its square (e² or e⁴). Multiclass, from the
    (in_slice, label_raw, pred_raw, n) cells: label and prediction compared as classes (`normalise_value`:
    '1.0' is '1'); misclassification over labelled rows with a prediction, or the false negatives of
    [slices] class over those labelled that class.
    """
    if spec.task == "regression":
        absolute = spec.slices.error == "absolute_error"
        frame = pd.DataFrame({"in_slice": (cells[SIDE] == SLICE_SIDE).to_numpy(),
                              "rows": cells["all_rows"].astype(float),
                              "labelled": (cells["all_rows"] - cells["unlabelled"]).astype(float),
                              "n": cells["n"].astype(float),
                              "errors": cells["s_ae" if absolute else "s_e2"].astype(float),
                              "errors_sq": cells["s_e2" if absolute else "s_e4"].astype(float)})
    else:
        y = cells["label_raw"].map(lambda v: normalise_value(str(v)), na_action="ignore")
        yhat = cells["pred_raw"].map(lambda v: normalise_value(str(v)), na_action="ignore")
        both = y.notna() & yhat.notna()
        if spec.slices.error == "misclassification":
            den, wrong = both, y != yhat
        else:
            wanted = normalise_value(str(spec.slices.error_class))
            if wanted not in set(y.dropna()):
                shown = ", ".join(repr(c) for c in sorted(set(y.dropna()))[:20])
                raise DataError(f"[slices] class {spec.slices.error_class!r} never occurs as a label in column "
                                f"{spec.label} (classes: {shown}); choose one of them (--error-class)")
            den, wrong = both & (y == wanted), yhat != wanted
        n = cells["n"].astype(float)
        err = n.where(den & wrong, 0.0)
        frame = pd.DataFrame({"in_slice": cells["in_slice"].to_numpy(), "rows": n,
                              "labelled": n.where(y.notna(), 0.0), "n": n.where(den, 0.0), "errors": err,
                              "errors_sq": err})
    return frame.groupby("in_slice")[list(COUNT_COLUMNS)].sum().reindex([True, False], fill_value=0.0)


def slice_test(slice_: Slice, cells: pd.DataFrame, positive_label: str, positive_prediction: str,
               spec: AuditSpec) -> SliceTable:
    """The slice's error signal against the rest, tested as the search tests every slice (a family of one)."""
    return sides_test(slice_, _error_counts(cells, positive_label, positive_prediction, spec.slices.error), spec)


def sides_test(slice_: Slice, sides: pd.DataFrame, spec: AuditSpec) -> SliceTable:
    """The search's test of a slice (a family of one) from its error signal's counts per side.

    sides: indexed by in_slice (True, False), columns rows, labelled, n, errors, errors_sq (as
    `_error_counts` gives them, or `task_error_counts` for regression and multiclass).
    """
    own, total = sides.loc[True], sides.sum()
    frame = pd.DataFrame([{**dict(slice_), **{c: own[c] for c in COUNT_COLUMNS}}])
    for c in ("rows", "labelled", "n"):
        frame[c] = frame[c].round().astype(np.int64)
    counts = SliceCounts(frame=frame, features=tuple(f for f, _ in slice_), error=spec.slices.error,
                         total_rows=int(round(total["rows"])), total_labelled=int(round(total["labelled"])),
                         total_n=int(round(total["n"])), total_errors=float(total["errors"]),
                         total_errors_sq=float(total["errors_sq"]), min_support=spec.policy.min_support,
                         max_depth=len(slice_))
    if counts.total_n == 0:
        raise DataError(f"no rows count toward the {spec.slices.error.replace('_', ' ')} signal in the chosen view; "
                        f"no slice can be tested here")
    return find_slices(counts, spec)


def signal_metric(spec: AuditSpec) -> str:
    """The searched signal's name as the findings write it: 'false_negative@high' for one class of a multiclass audit."""
    error, cls = spec.slices.error, spec.slices.error_class
    return f"{error}@{cls}" if cls is not None else error


def _search_row(table: SliceTable | None, slice_: Slice) -> tuple[int | None, dict | None]:
    """The slice's rank (1 = best score) and row in the search's table, if the search evaluated it."""
    if table is None:
        return None, None
    hits = np.flatnonzero(table.rows["slice"].map(lambda s: tuple(s) == slice_).to_numpy())
    return (int(hits[0]) + 1, table.rows.iloc[hits[0]].to_dict()) if len(hits) else (None, None)


def _origin(rank: int | None, row: dict | None, table: SliceTable | None) -> tuple[str, str]:
    """Where the slice comes from, in a word and in a sentence."""
    if row is None:
        return "hand", "Defined by hand: the search did not evaluate this slice (deeper than its max_depth, or " \
                       "fewer rows than min_support), so its test below is a single one."
    where = f"Rank {rank:,} of the {table.evaluated:,} slices the search evaluated (by SliceLine score)"
    if row["verdict"] == "finding":
        return "finding", f"{where}: a finding."
    if row["verdict"] == "explained":
        return "explained", (f"{where}: significantly and materially worse than the rest, but listed under "
                             f"{slice_label(row['parent'])}: "
                             f"{RELATION_TEXT.get(row['relation'], '{p}').format(p=slice_label(row['parent']))}.")
    if row["verdict"] == "small":
        return "inconclusive", f"{where}: real but small (significantly worse, but inside the policy band)."
    return "inconclusive", f"{where}: not a finding (its gap is not significant at the audit's level, or not worse)."


def _mean_spread(total: float, total_sq: float, n: float) -> tuple[float, float]:
    """Mean and sample standard deviation of a loss from its sum, sum of squares and count (NaN where undefined)."""
    if n <= 0:
        return float("nan"), float("nan")
    mean = total / n
    if n <= 1:
        return mean, float("nan")
    return mean, float(np.sqrt(max((total_sq - n * mean**2) / (n - 1), 0.0)))


def _verdict(error: dict[str, Any], spec: AuditSpec) -> tuple[bool, str]:
    """Whether a slice the search did not evaluate would be a finding, and the search's verdict word for it."""
    worse = bool(error["difference"] > 0) and not pd.isna(error["p_value"])
    significant = worse and bool(error["p_value"] < spec.policy.fdr) and error["n"] >= spec.policy.min_support
    finding = significant and bool(material(error["rate"], error["complement_rate"], spec.policy))
    return finding, ("finding" if finding else "small" if significant else "inconclusive" if worse else "not_worse")


def _test(slice_: Slice, sides: pd.DataFrame, spec: AuditSpec, snapshot: AuditSnapshot | None,
          row: dict | None) -> tuple[dict[str, Any], str]:
    """The error signal's counts, test, ratio and verdict; the search's p, q and verdict when it evaluated the slice."""
    proportion = spec.slices.error not in MEAN_LOSSES
    table = sides_test(slice_, sides, spec)
    error = table.rows.iloc[0].to_dict()
    error["complement_errors"] = c_errors = table.total_errors - float(error["errors"])
    n, c_n = float(error["n"]), float(error["complement_n"])
    with np.errstate(divide="ignore", invalid="ignore"):
        error["ratio"] = error["rate"] / error["complement_rate"] if error["complement_rate"] > 0 else np.nan
        if proportion:
            error["complement_ci_low"], error["complement_ci_high"] = (x[0] for x in wilson_interval(c_errors, c_n))
            low, high = ratio_interval(error["errors"], n, c_errors, c_n)
        else:
            # The rest's t interval and both sides' spread (the power for means of `_need`), from the same sums.
            _, sd = _mean_spread(float(error["errors"]), float(error["errors_sq"]), n)
            c_mean, c_sd = _mean_spread(c_errors, float(sides["errors_sq"].sum()) - float(error["errors_sq"]), c_n)
            half = stats.t.ppf(0.5 + CONFIDENCE / 2, c_n - 1) * c_sd / np.sqrt(c_n) if c_n > 1 else np.nan
            error["complement_ci_low"], error["complement_ci_high"] = max(c_mean - half, 0.0), c_mean + half
            error["sd"], error["complement_sd"] = sd, c_sd
            low, high = mean_ratio_interval(error["rate"], sd / np.sqrt(n) if n > 0 else np.nan, c_mean,
                                            c_sd / np.sqrt(c_n) if c_n > 0 else np.nan)
    error["ratio_ci_low"], error["ratio_ci_high"] = float(low[0]), float(high[0])
    if row is not None:
        # The search's own p-value (its exact test may have replaced the score test where this lone one kept it).
        error.update(p_value=row["p_value"], q_value=row["q_value"], finding=bool(row["finding"]),
                     verdict=row["verdict"])
        return error, (f"q = {fmt_q(row['q_value'])}: tested against the rest, Benjamini-Hochberg over the "
                       f"{snapshot.slices.tested:,} slices the search tested with its "
                       f"{snapshot.slices.shown:,} findings shown as the discoveries")
    finding, verdict = _verdict(error, spec)
    error.update(q_value=np.nan, finding=finding, verdict=verdict)
    return error, (f"p = {fmt_q(error['p_value'])}: this slice alone tested against the rest, as the search tests "
                   f"each slice, but not adjusted for other slices you may have looked at; if you chose it after "
                   f"seeing the data, read a small p with care")


def _mean_verdict(error: dict[str, Any], sig: float, spec: AuditSpec) -> str:
    """A mean loss's verdict against the rest as the group table judges one (the rule of `derive_verdict` for rates)."""
    rate, rest, policy = error["rate"], error["complement_rate"], spec.policy
    if error["n"] < policy.min_support or pd.isna(rate) or pd.isna(rest):
        return "insufficient_data"
    if rest == 0:
        return "within" if rate == 0 else "insufficient_data"
    if policy.ratio_low <= rate / rest <= policy.ratio_high:
        return "within"
    return "outside" if sig < policy.fdr else "inconclusive"


def _need(slice_: Slice, error: dict[str, Any], spec: AuditSpec, snapshot: AuditSnapshot | None,
          quality: QualityTable, audit_quality: bool, metric: str) -> tuple[str | None, int | None, str]:
    """The slice's data need: its finding's, as the snapshot has it, else diagnosed from its counts and signals."""
    findings = snapshot.findings if snapshot is not None else None
    finding = next((f for f in (findings or ()) if tuple(f.slice) == slice_), None)
    if finding is not None and audit_quality:
        return finding.need, finding.additional_rows, finding.message
    proportion = spec.slices.error not in MEAN_LOSSES
    sig = error["p_value"] if pd.isna(error["q_value"]) else error["q_value"]
    means: dict[str, Any] = {}
    if proportion:
        verdict = "finding" if error["finding"] else None
    elif spec.task == "binary":  # the score loss: no spread is planned from (its need words stay as they were)
        verdict = "finding" if error["finding"] else "inconclusive"
    else:
        # A regression error: judged as the group table judges a mean, its rows to settle it from power for means.
        verdict = "finding" if error["finding"] else _mean_verdict(error, sig, spec)
        means = {"rate": error["rate"], "rest_rate": error["complement_rate"],
                 "spread": (error["sd"], error["complement_sd"], False)}
    # A slice the search tested is judged in the search's BH family: its rows to settle it at that family's level.
    family = None
    if not pd.isna(error["q_value"]) and snapshot is not None and snapshot.slices is not None:
        table = snapshot.slices.rows
        family = table["p_value"].to_numpy(float)[[tuple(s) != slice_ for s in table["slice"]]]
    d = diagnose(slice_, int(error["n"]), int(error["errors"]) if proportion else None, int(error["complement_n"]),
                 int(round(error["complement_errors"])) if proportion else None, spec, metric=metric,
                 verdict=verdict, q_value=None if pd.isna(sig) else float(sig), quality=quality,
                 family_pvalues=family, **means)
    message = d.message
    if finding is not None and finding.need != d.need:  # the audit checks the data of its top_k findings only
        message += (f" (The audit, which did not check this finding's data quality, says: "
                    f"{NEED_LABELS.get(finding.need, 'nothing')}.)")
    return d.need, d.additional_rows, message


def signal_analysis(slice_: Slice, sides: pd.DataFrame, spec: AuditSpec, snapshot: AuditSnapshot | None,
                    quality: QualityTable, quality_family: str) -> SliceSignal:
    """The slice's searched error signal against the rest: test, ratio, the search's verdict, need, quality signals.

    sides: the signal's counts per side (`sides_test`); snapshot: the audit (None: no search to compare
    with, every slice is tested alone); `quality_family` is 'audit' when `quality` is the audit's own
    table, 'on_demand' when it was counted for this slice alone.
    """
    table = snapshot.slices if snapshot is not None else None
    rank, row = _search_row(table, slice_)
    origin, origin_text = _origin(rank, row, table)
    error, test_note = _test(slice_, sides, spec, snapshot, row)
    metric = signal_metric(spec)
    need, extra, message = _need(slice_, error, spec, snapshot, quality, quality_family == "audit", metric)
    rule = quality.label_error_rule
    return SliceSignal(
        origin=origin, origin_text=origin_text, metric=metric, error=error, test_note=test_note, need=need,
        additional_rows=extra, message=message, quality=quality.for_slice(slice_).reset_index(drop=True),
        quality_note=("tested with every signal of the audit (Benjamini-Hochberg over all of them)"
                      if quality_family == "audit" else
                      "counted now for this slice: the audit did not check it; Benjamini-Hochberg over its signals "
                      "and those of the sensitive groups"),
        label_rule=(rule.describe() if rule is not None
                    else "; ".join(quality.notes) or "label-error signal not computed"),
    )


def signal_fields(signal: SliceSignal) -> dict[str, Any]:
    """A SliceSignal's fields by name, to build an analysis that carries them (`SliceAnalysis`, `TaskSliceAnalysis`)."""
    return {f.name: getattr(signal, f.name) for f in fields(signal)}


def analyse_slice(slice_: Slice, cells: pd.DataFrame, values: pd.DataFrame, spec: AuditSpec,
                  snapshot: AuditSnapshot, quality: QualityTable, quality_family: str) -> SliceAnalysis:
    """The drill-down of one slice (see the module docstring for where each number comes from).

    `quality_family` is 'audit' when `quality` is the audit's own table, 'on_demand' when it was counted
    for this slice alone.
    """
    sspec = _side_spec(spec, snapshot)
    frame = cells.assign(**{SIDE: np.where(cells["in_slice"], SLICE_SIDE, REST_SIDE)})
    outcomes = binarize(frame[[SIDE, "label_raw", "pred_raw", "n"]], sspec)
    rows = compute_group_table(outcomes.labelled, outcomes.population, None, sspec).rows
    rows["group"] = rows["slice"].map(lambda s: s[0][1])
    data = snapshot.data
    sides = _error_counts(cells, data.positive_label, data.positive_prediction, spec.slices.error)
    signal = signal_analysis(slice_, sides, spec, snapshot, quality, quality_family)
    return SliceAnalysis(
        slice=slice_, label=slice_label(slice_), side_rows=rows,
        confusion=confusion_by_group(outcomes.labelled, [SIDE]), rows=int(cells.loc[cells["in_slice"], "n"].sum()),
        rest_rows=int(cells.loc[~cells["in_slice"], "n"].sum()), values=values, **signal_fields(signal),
    )


# ----------------------------------------------------------------------------- findings and slice tables


def _value_text(value: float, metric: str) -> str:
    """A rate as a percentage, a mean loss as a decimal."""
    return f"{value:.4g}" if metric in MEAN_LOSSES else fmt_pct(value)


def interval_text(value: float, low: float, high: float, metric: str = "rate") -> str:
    """'39.1% (37.2–41.0%)' for a rate, '0.190 (0.183–0.197)' for a mean loss; '—' when undefined."""
    if metric in MEAN_LOSSES or pd.isna(value):
        return estimate_text(value, low, high, False, 0) if not pd.isna(value) else "—"
    if pd.isna(low) or pd.isna(high):
        return fmt_pct(value)
    return f"{fmt_pct(value)} ({100 * low:.1f}–{100 * high:.1f}%)"


def difference_text(value: float, low: float, high: float, metric: str = "rate") -> str:
    """'+11.0 pts (+9.1 to +12.9)' for a difference of rates, decimals for a mean loss."""
    if pd.isna(value):
        return "—"
    k, unit = (1, "") if metric in MEAN_LOSSES else (100, " pts")
    fmt = "+.4g" if metric in MEAN_LOSSES else "+.1f"
    if pd.isna(low) or pd.isna(high):
        return f"{k * value:{fmt}}{unit}"
    return f"{k * value:{fmt}}{unit} ({k * low:{fmt}} to {k * high:{fmt}})"


def finding_text(f: Finding) -> str:
    """One line for the Overview's board: the slice, its value with n against the rest, q, rows needed."""
    extra = f"; about {f.additional_rows:,} more labelled rows" if f.additional_rows else ""
    return (f"{slice_label(f.slice)}: {metric_text(f.metric)} {_value_text(f.value, f.metric)} (n={f.n:,}) vs "
            f"{_value_text(f.complement_value, f.metric)} for the rest, q={fmt_q(f.q_value)}{extra}")


def board_items(findings: Sequence[Finding] | None) -> list[dict] | None:
    """The findings as the board's items (need and one line each); None when the search has not run."""
    return None if findings is None else [{"need": f.need, "summary": finding_text(f)} for f in findings]


def signal_description(error: str, spec: AuditSpec) -> str:
    """The searched error signal in words; a multiclass false-negative search names its class."""
    if spec.task == "multiclass" and error == "false_negative":
        return (f"false-negative rate of class {spec.slices.error_class} (predicted another class) among labelled rows "
                f"of that class with a prediction")
    return SIGNAL_DESCRIPTIONS[error]


def search_caption(table: SliceTable, spec: AuditSpec, findings: int) -> str:
    """What the search did, in words."""
    test = "Welch's t-test" if table.error in MEAN_LOSSES else "Fisher's exact test wherever it can decide"
    return (f"The search counted every combination of up to {table.max_depth} feature values with at least "
            f"{spec.policy.min_support} rows ({table.evaluated:,} slices) and tested each one's "
            f"{signal_description(table.error, spec)} against the rest of the data (overall "
            f"{_value_text(table.overall_rate, table.error)} on {table.total_n:,} rows), {test}, at the level p < {table.threshold:.2g} (FDR {spec.policy.fdr:g} × {max(findings, 1):,} findings "
            f"shown / {table.tested:,} tests: Benjamini-Hochberg with the findings shown as the discoveries). "
            f"{table.findings:,} slices are significantly and materially worse; {findings:,} of them are findings, the "
            f"others are described better by one (a broader slice, a sharper one inside, or the same rows); "
            f"{table.small:,} are significantly but only slightly worse (real but small). Ranked by SliceLine score "
            f"(alpha {table.alpha:g}: how much worse, against how small); the score ranks, it never filters.")


def _gap_columns(rows: pd.DataFrame, metric: str) -> dict[str, list]:
    """The error, rest and difference columns of a slice table, each estimate with its interval and n."""
    return {
        "Error (95% interval)": [interval_text(v, lo, hi, metric) for v, lo, hi in
                                 zip(rows["rate"], rows["ci_low"], rows["ci_high"])],
        "n": rows["n"].astype(np.int64).to_numpy(),
        "Rest": [f"{_value_text(v, metric)} (n={int(n):,})"
                 for v, n in zip(rows["complement_rate"], rows["complement_n"])],
        "Difference (95% interval)": [difference_text(v, lo, hi, metric) for v, lo, hi in
                                      zip(rows["difference"], rows["diff_ci_low"], rows["diff_ci_high"])],
        "q-value": [fmt_q(q) for q in rows["q_value"]],
    }


def involves_sensitive(slice_: Slice, spec: AuditSpec) -> bool:
    """True when one of the slice's predicates is on a sensitive feature (a fairness question, not only accuracy)."""
    return any(feature in spec.sensitive for feature, _ in slice_)


def findings_table(snapshot: AuditSnapshot, needs: Sequence[str] | None = None,
                   plan_places: Mapping[str, str] | None = None, sensitive_only: bool = False) -> pd.DataFrame:
    """The findings ranked by SliceLine score: need, error with interval and n, the rest, q, rows to add, message.

    plan_places: each finding's place in the data plan by finding id (`metrics.discovery.plan.plan_places`), a column.
    sensitive_only: only the findings whose slice names a sensitive feature. The SliceLine score ranks
    large slices of ordinary features high; an analyst asking "whom does the model fail" wants these.
    """
    table, findings = snapshot.slices, snapshot.findings or ()
    ranks = {tuple(s): i + 1 for i, s in enumerate(table.rows["slice"])}
    chosen = sorted((f for f in findings if (needs is None or f.need in needs)
                     and (not sensitive_only or involves_sensitive(f.slice, snapshot.spec))),
                    key=lambda f: ranks[f.slice])
    rows = table.rows.iloc[[ranks[f.slice] - 1 for f in chosen]]
    places = {} if plan_places is None else {"Data plan": [plan_places.get(f.id, "—") for f in chosen]}
    return pd.DataFrame({
        "Rank": [ranks.get(f.slice) for f in chosen],
        "Slice": [slice_label(f.slice) for f in chosen],
        "Need": [NEED_LABELS.get(f.need, "—") for f in chosen],
        **_gap_columns(rows, table.error),
        "Additional rows": pd.array([f.additional_rows for f in chosen], dtype="Int64"),
        **places,
        "Explains": [len(f.children) for f in chosen],
        "What it needs": [f.message for f in chosen],
    })


def inconclusive_rows(table: SliceTable, limit: int = 100) -> pd.DataFrame:
    """The best-scoring slices that are worse than the rest but not significantly so (not findings)."""
    rows = table.rows
    return rows[rows["verdict"] == "inconclusive"].head(limit)


RELATION_TEXT = {"explained_by_parent": "no worse than the rest of {p}", "explained_by_child": "its excess is {p}",
                 "sharper_part": "a sharper part of {p}", "same_rows": "the same rows as {p}"}


def small_table(table: SliceTable, limit: int = 100) -> pd.DataFrame:
    """Real but small: significantly worse than the rest, but inside the policy band (or below min_difference)."""
    rows = table.rows[table.rows["verdict"] == "small"].head(limit)
    ranks = {tuple(s): i + 1 for i, s in enumerate(table.rows["slice"])}
    why = [("only its broader slice's small gap: " + RELATION_TEXT[r].format(p=slice_label(p))) if p else
           "significant, but inside the policy band" for p, r in zip(rows["parent"], rows["relation"])]
    return pd.DataFrame({"Rank": [ranks[tuple(s)] for s in rows["slice"]], "Slice": rows["group"].to_numpy(),
                         **_gap_columns(rows, table.error), "Why not a finding": why})


def inconclusive_table(table: SliceTable, fdr: float, limit: int = 100) -> pd.DataFrame:
    """Inconclusive slices with their numbers and why they are not findings."""
    rows = inconclusive_rows(table, limit)
    ranks = {tuple(s): i + 1 for i, s in enumerate(table.rows["slice"])}
    return pd.DataFrame({
        "Rank": [ranks[tuple(s)] for s in rows["slice"]],
        "Slice": rows["group"].to_numpy(),
        **_gap_columns(rows, table.error),
        "Why not a finding": [f"could be chance: q = {fmt_q(q)} is not below {fdr:g}" for q in rows["q_value"]],
    })


def drill_options(snapshot: AuditSnapshot, with_inconclusive: bool, limit: int = 100) -> list[Slice]:
    """Slices to drill into, best rank first: the findings, then (on request) inconclusive slices."""
    table = snapshot.slices
    found = {tuple(f.slice) for f in snapshot.findings or ()}
    order = [tuple(s) for s in table.rows["slice"] if tuple(s) in found]
    if with_inconclusive:
        order += [tuple(s) for s in inconclusive_rows(table, limit)["slice"]]
    return order


def option_texts(snapshot: AuditSnapshot, options: Sequence[Slice]) -> dict[Slice, str]:
    """'#786 region=south, channel=broker · Better data' for each slice of the drill-down's choice."""
    needs = {tuple(f.slice): f.need for f in snapshot.findings or ()}
    ranks = {tuple(s): i + 1 for i, s in enumerate(snapshot.slices.rows["slice"])}
    return {s: f"#{ranks.get(s, '?')} {slice_label(s)} · "
               f"{NEED_LABELS.get(needs.get(s), 'inconclusive' if s not in needs else 'no need')}" for s in options}


# ----------------------------------------------------------------------------- one slice: the drill-down's views


def verdict_text(a: SliceAnalysis) -> str:
    """The ratio of the slice's error signal to the rest's with its interval, and the slice search's verdict on it."""
    e = a.error
    ratio = "—" if pd.isna(e.get("ratio")) else f"{e['ratio']:.2f}"
    if not pd.isna(e.get("ratio_ci_low")) and not pd.isna(e.get("ratio_ci_high")):
        ratio += f" (95% interval {e['ratio_ci_low']:.2f} to {e['ratio_ci_high']:.2f})"
    who = "the slice search's verdict" if a.origin != "hand" else "the slice search would call it"
    return f"Ratio to the rest: {ratio}; {who}: {SEARCH_VERDICTS.get(e.get('verdict'), 'not tested')}."


def analysis_lines(a: SliceAnalysis) -> list[str]:
    """The drill-down's headline as Markdown lines: origin, the gap with its test, ratio and verdict, the need.

    `a` is a SliceAnalysis or any analysis carrying a SliceSignal's fields and rows, rest_rows
    (`connectors.task_drilldown.TaskSliceAnalysis`). Data text is escaped.
    """
    e = a.error
    need = NEED_LABELS.get(a.need, "nothing") if a.need else "nothing"
    return [
        md_escape(a.origin_text),
        md_escape(f"{a.rows:,} rows in the slice, {a.rest_rows:,} in the rest. Its {metric_text(a.metric)} is "
        f"{interval_text(e['rate'], e['ci_low'], e['ci_high'], a.metric)} on n = {int(e['n']):,} against "
        f"{interval_text(e['complement_rate'], e['complement_ci_low'], e['complement_ci_high'], a.metric)} on "
        f"n = {int(e['complement_n']):,} for the rest, a difference "
        f"of {difference_text(e['difference'], e['diff_ci_low'], e['diff_ci_high'], a.metric)}; {a.test_note}."),
        md_escape(verdict_text(a)),
        f"**Needs: {md_escape(need)}.** {md_escape(a.message)}",
    ]


def metric_versus_points(a: SliceAnalysis, colour: str, rest_colour: str,
                         metrics: Sequence[str] = HEADLINE_METRICS) -> pd.DataFrame:
    """Chart data of `versus_chart`: the error signal and the headline metrics, the slice's and the rest's."""
    records = []
    e = a.error
    if a.metric != "score_loss":
        name = metric_text(a.metric).capitalize() + " (searched)"
        for side, v, lo, hi, n in (("own", e["rate"], e["ci_low"], e["ci_high"], e["n"]),
                                   ("rest", e["complement_rate"], e["complement_ci_low"], e["complement_ci_high"],
                                    e["complement_n"])):
            records.append({"metric_label": name, "side": side, "value": v, "ci_low": lo, "ci_high": hi, "n": int(n),
                            "flag": bool(e["finding"]) and side == "own",
                            "flag_label": "significantly worse" if e["finding"] else "not significant"})
    records += side_versus_records(a.side_rows, metrics)
    return versus_frame(pd.DataFrame(records), a.label, colour, rest_colour)


def side_versus_records(side_rows: pd.DataFrame, metrics: Sequence[str]) -> list[dict]:
    """`versus_chart` records of a two-group table (SLICE_SIDE, REST_SIDE): each metric's value on both sides."""
    records = []
    rows = side_rows[side_rows["metric"].isin(list(metrics))]
    for m in metrics:
        own = rows[(rows["metric"] == m) & (rows["group"] == SLICE_SIDE)]
        rest = rows[(rows["metric"] == m) & (rows["group"] == REST_SIDE)]
        if own.empty or rest.empty:
            continue
        verdict = own["verdict"].iloc[0]
        for side, r in (("own", own.iloc[0]), ("rest", rest.iloc[0])):
            records.append({"metric_label": metric_label(m), "side": side, "value": r["value"], "ci_low": r["ci_low"],
                            "ci_high": r["ci_high"], "n": int(r["support"]),
                            "flag": verdict == "outside" and side == "own",
                            "flag_label": VERDICT_LABELS.get(verdict, verdict)})
    return records


def versus_frame(frame: pd.DataFrame, label: str | pd.Series, colour: str | pd.Series,
                 rest_colour: str) -> pd.DataFrame:
    """Finish `versus_chart` data: the y label, side words, interval text with n, and each mark's colour."""
    out = frame.copy()
    if out.empty:
        return pd.DataFrame(columns=["metric_label", "label", "side", "side_label", "value", "ci_low", "ci_high", "n",
                                     "shown", "colour", "flag", "flag_label"])
    out["label"] = label
    rest = out["side"] == "rest"
    out["side_label"] = np.where(rest, "all other rows", out["label"])
    out["colour"] = np.where(rest, rest_colour, colour)
    out["shown"] = [interval_text(v, lo, hi) for v, lo, hi in zip(out["value"], out["ci_low"], out["ci_high"])]
    return out.dropna(subset=["value"]).reset_index(drop=True)


def confusion_table(a: SliceAnalysis) -> pd.DataFrame:
    """The confusion matrix of the slice and of the rest: counts of the labelled rows with a decision."""
    conf = a.confusion.set_index(SIDE).reindex([SLICE_SIDE, REST_SIDE], fill_value=0)
    labelled = conf[["tn", "fp", "fn", "tp"]].sum(axis=1)
    return pd.DataFrame({
        "Rows": [a.label, "Rest of the data"],
        "True positives": conf["tp"].to_numpy(), "False positives": conf["fp"].to_numpy(),
        "False negatives": conf["fn"].to_numpy(), "True negatives": conf["tn"].to_numpy(),
        "n (labelled, with a decision)": labelled.to_numpy(),
    })


def distribution_points(values: pd.DataFrame, top: int = SHOWN_VALUES) -> pd.DataFrame:
    """Each other feature's values as shares of the slice's rows and of the rest's, with Wilson intervals.

    Features keep their order in `values` (spec order from `fetch_value_counts`); per feature the `top`
    values with the most rows are kept, most rows first.
    """
    cols = ["feature", "value", "side_label", "n", "total", "share", "ci_low", "ci_high", "shown", "order"]
    if values.empty:
        return pd.DataFrame(columns=cols)
    v = values.assign(side_label=np.where(values["in_slice"], SLICE_SIDE, REST_SIDE))
    totals = v.groupby(["feature", "side_label"])["n"].transform("sum")
    v = v.assign(total=totals.astype(np.int64), share=v["n"] / totals)
    size = v.groupby(["feature", "value"])["n"].transform("sum")
    v["order"] = size.groupby(v["feature"]).rank(method="dense", ascending=False)
    v = v[v["order"] <= top].copy()
    v["ci_low"], v["ci_high"] = wilson_interval(v["n"], v["total"])
    v["shown"] = [f"{interval_text(s, lo, hi)} of {t:,} rows" for s, lo, hi, t in
                  zip(v["share"], v["ci_low"], v["ci_high"], v["total"])]
    v["_f"] = v["feature"].map({f: i for i, f in enumerate(dict.fromkeys(values["feature"]))})
    return v.sort_values(["_f", "order", "side_label"])[cols].reset_index(drop=True)


# ----------------------------------------------------------------------------- the filter builder


def feature_choices(values: pd.DataFrame, spec: AuditSpec) -> dict[str, list[tuple[str, int]]]:
    """Each feature's values with their row counts (most rows first), features in spec order."""
    out: dict[str, list[tuple[str, int]]] = {}
    counts = values.groupby(["feature", "value"], as_index=False)["n"].sum()
    for name in [*spec.sensitive, *spec.features]:
        sel = counts[counts["feature"] == name].sort_values(["n", "value"], ascending=[False, True])
        if len(sel):
            out[name] = [(str(v), int(n)) for v, n in zip(sel["value"], sel["n"])]
    return out


def built_slice(chosen: Mapping[str, str | None], spec: AuditSpec) -> Slice:
    """The slice of the builder's choices (features without a value left out), in spec order."""
    pairs = [(f, v) for f, v in chosen.items() if v is not None]
    if not pairs:
        raise DataError("choose at least one feature and its value to define a slice")
    return canonical(pairs, spec)
