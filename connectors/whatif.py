"""The what-if: score-bucket counts of a fit range and a later range (the audit's own counting query), then metrics/policy/whatif.py.

Both ranges are counted by `fetch_group_counts`, the query every audit runs, so the what-if runs
unchanged on DuckDB, PostgreSQL and Spark, and only bucket counts leave the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from fairwatch.connectors.counts import fetch_group_counts
from fairwatch.connectors.source import OpenSource, opened
from fairwatch.connectors.window_counts import fetch_time_span
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.audit.outcomes import DataSummary, binarize
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.policy.whatif import (
    Objective,
    Tolerance,
    fit_thresholds,
    whatif_cells,
)
from fairwatch.metrics.policy.whatif_result import (
    WhatIfResult,
    split_ranges,
    whatif_result,
)

NO_SCORE = ("there is nothing to optimise: the what-if moves a threshold on the score, and this audit has no score "
            "column; map one ([columns] score) on the Data sources page")


def fetch_whatif_cells(src: OpenSource, spec: AuditSpec, features: Sequence[str], row_filter: RowFilter,
                       summary: DataSummary | None = None) -> tuple[pd.DataFrame, DataSummary | None]:
    """Bucket counts (group, features..., score, y_true, y_pred, n) of one range; empty when it has no labels."""
    counts = fetch_group_counts(src, spec, row_filter)
    if summary is None:
        summary = binarize(counts.cells, spec).summary
    if counts.scores is None or counts.scores.empty:
        return pd.DataFrame(columns=["group", *features, "score", "y_true", "y_pred", "n"]), summary
    # Today's decision is the engine's per-row decision (pred_raw), never re-derived from the bucketed score.
    cells = whatif_cells(counts.scores, features, summary.positive_label, summary.positive_prediction)
    return cells, summary


@dataclass(frozen=True)
class WhatIfRanges:
    """The bucket counts of the fit range and of the later range (None: no later range), and how they were split."""

    fit_cells: pd.DataFrame
    eval_cells: pd.DataFrame | None
    fit_filter: RowFilter
    eval_filter: RowFilter | None
    note: str


def fetch_whatif_ranges(spec: AuditSpec, features: Sequence[str], row_filter: RowFilter | None = None,
                        src: OpenSource | None = None, *, fit_filter: RowFilter | None = None,
                        eval_filter: RowFilter | None = None, grain: str | None = None) -> WhatIfRanges:
    """Count both ranges once; every constraint and objective is then fitted from these counts alone."""
    if spec.score is None:
        raise DataError(NO_SCORE)
    unknown = [f for f in features if f not in spec.sensitive]
    if not features or unknown:
        raise DataError(f"the what-if groups by sensitive features; {', '.join(unknown) or '(none)'} is not one of "
                        f"{', '.join(spec.sensitive)}")
    row_filter = row_filter or RowFilter()
    with opened(spec, src) as source:
        if fit_filter is not None:
            note = (f"fitted on {fit_filter.describe()}"
                    + (f", checked on {eval_filter.describe()}" if eval_filter is not None else ", not checked on later rows"))
        elif spec.time is None:
            fit_filter, eval_filter = row_filter, None
            note = "there is no time column: the thresholds are fitted on all rows and cannot be checked on later ones"
        else:
            span = fetch_time_span(source, spec, row_filter)
            fit_filter, eval_filter, _, note = split_ranges(span.first, span.last, row_filter, grain)
        fit_cells, summary = fetch_whatif_cells(source, spec, features, fit_filter)
        eval_cells = None
        if eval_filter is not None:
            try:
                eval_cells, _ = fetch_whatif_cells(source, spec, features, eval_filter, summary)
            except DataError:  # the later range has no labelled rows yet: said so, not an error
                eval_cells = fit_cells.iloc[0:0]
    return WhatIfRanges(fit_cells, eval_cells, fit_filter, eval_filter, note)


def whatif_from_ranges(ranges: WhatIfRanges, spec: AuditSpec, features: Sequence[str], constraint: str,
                       objective: Objective = Objective(), tolerance: Tolerance = Tolerance(),
                       randomise: bool = True) -> WhatIfResult:
    """Fit on the fit range's counts and evaluate on both ranges (pure: no query)."""
    fit = fit_thresholds(ranges.fit_cells, constraint, objective, tolerance, spec.policy.min_support, randomise)
    return whatif_result(fit, features, ranges.fit_cells, ranges.eval_cells, spec, ranges.fit_filter,
                         ranges.eval_filter, ranges.note)


def run_whatif(spec: AuditSpec, features: Sequence[str], constraint: str, objective: Objective = Objective(),
               tolerance: Tolerance = Tolerance(), row_filter: RowFilter | None = None, src: OpenSource | None = None,
               *, fit_filter: RowFilter | None = None, eval_filter: RowFilter | None = None, grain: str | None = None,
               randomise: bool = True) -> WhatIfResult:
    """Fit per-group thresholds on the fit range and evaluate them there and on the later range."""
    ranges = fetch_whatif_ranges(spec, features, row_filter, src, fit_filter=fit_filter, eval_filter=eval_filter,
                                 grain=grain)
    return whatif_from_ranges(ranges, spec, features, constraint, objective, tolerance, randomise)


def policy_bytes(result: WhatIfResult) -> bytes:
    """The policy file's bytes (the page's download and `fairwatch whatif --policy-out`)."""
    import json

    return (json.dumps(result.policy(), indent=1, sort_keys=False) + "\n").encode()


def write_policy(result: WhatIfResult, path: str) -> None:
    """Write the JSON policy file; a one-line error when the place cannot be written."""
    from pathlib import Path

    try:
        Path(path).write_bytes(policy_bytes(result))
    except OSError as exc:
        raise DataError(f"cannot write the policy file {path}: {exc.strerror or exc}") from None
