"""Slice search, the counting half: counts per conjunction of feature values, over every row.

How: one scan of the rows aggregates them to *cells*, the counts per combination of the values of
all search features; every slice of up to `max_depth` predicates is then a sum of cells, computed
with `GROUPING SETS` over the (much smaller) cell table, keeping only slices with
`n >= min_support`. Measured with bench/bench_slices.py (2 shared cores; 8 categorical features,
depth 3, 92 feature combinations, 13,211 slices): at 10M rows the whole search used ~6 CPU-s
(9-10 under heavy load) where counting alone used ~12 CPU-s (23-27) with level-wise
`GROUPING SETS` queries over the rows (one per depth, SliceLine's shape) and about the same with one
`GROUPING SETS` query holding all 92 combinations: hashing 10M rows once into one table beats
hashing them into 92 tables, and a Parquet source is read once. At 1M rows (about half as many
cells as rows) the three are within ~10% of each other. SliceLine's level-wise candidate pruning
buys nothing on top: support is anti-monotone, so `HAVING n >= min_support` on the derived slices
returns exactly the slices whose every parent survived.

When the cells would be many (more rows than CELL_BUDGET and a product of the features'
cardinalities above it), the features are split into overlapping subsets, each with at most
CELL_BUDGET cells, that together contain every combination of `max_depth` features (a greedy
covering); each combination is derived from the cells of one subset. Every feature has at most
`max_groups` values (strings with more are refused, numbers are binned), and the number of
slices returned is capped by MAX_SLICES, so memory stays bounded.

Why refuse a many-valued text feature rather than keep its top values and an "(other)": such a
column is almost surely an id, a free-text field or a zip code; an "(other)" slice of 49,000
values describes nobody, and silently searching a truncated feature would make the audit look
more thorough than it is. The groups table refuses the same columns (`check_cardinality`), so the
two stay consistent. The check uses DuckDB's HyperLogLog count (constant memory) before any
grouping. Numbers are cut into `bins` quantile bins (exact ranks, `quantile_edges`, so the bins are
reproducible on every engine), labelled by range, e.g. `loan_amount=[1000, 5000)`.

On PostgreSQL and Spark the same statements, transpiled by `connectors/engines.py`, run as one
query of common table expressions instead of temporary tables; the counts are identical (tests/
test_engines.py). Their distinct counts are exact (PostgreSQL) or HyperLogLog++ (Spark); these only
decide whether a number is binned and whether a feature is refused, so engines can differ only for
a column whose distinct count sits right at `bins` or `max_groups`.
"""

from __future__ import annotations

import itertools
import math

import duckdb
import pandas as pd

from fairwatch.connectors.cell_scan import CellScan, SharedCells
from fairwatch.connectors.counts import MISSING, group_expr, prediction_expr, run_query, used_params, where_sql
from fairwatch.connectors.task_slice_counts import task_signal_sql
from fairwatch.connectors.source import OpenSource, quote_ident, read_failure, resolve_spec_columns
from fairwatch.metrics.errors import DataError, SourceError
from fairwatch.metrics.audit.outcomes import normalise_value, positive_set
from fairwatch.metrics.discovery.slices import COUNT_COLUMNS, SliceCounts
from fairwatch.metrics.audit.spec import MEAN_LOSSES, AuditSpec, RowFilter

# Cells per aggregation subset: ~100 bytes each in the engine, so ~100 MB at most per subset.
CELL_BUDGET = 1_000_000
# More slices than this would make the statistics step slow and its table large: refuse instead.
MAX_SLICES = 250_000
# A binary label or decision has two values; more than this many is a wrong column, not a label.
_MAX_OUTCOME_VALUES = 20
# What each error signal is measured on, for messages.
_DENOMINATORS = {
    "misclassification": "labelled rows with a prediction",
    "false_negative": "labelled actual positives with a prediction",
    "false_positive": "labelled actual negatives with a prediction",
    "score_loss": "labelled rows with a score",
    "absolute_error": "rows whose label and prediction are finite numbers",
    "squared_error": "rows whose label and prediction are finite numbers",
}
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")


def _run_script(src: OpenSource, steps: list[tuple[str, str]], final: str, params: dict) -> pd.DataFrame:
    """Run named steps then a final SELECT: DuckDB temp tables on one cursor, elsewhere one WITH query.

    DuckDB: each step is a temporary table (measured 3-5x faster to derive from than a CTE, and
    private to the cursor). PostgreSQL and Spark: the same steps as common table expressions of one
    statement, which runs on their engine through `run_query` (no session state to clean up).
    """
    if src.runner is not None:
        ctes = ", ".join(f"{name} AS ({sql})" for name, sql in steps)
        return run_query(src, f"WITH {ctes} {final}", params)

    try:
        with src.cursor() as cur:
            for name, sql in steps:
                statement = f"CREATE TEMP TABLE {name} AS {sql}"
                cur.execute(statement, used_params(statement, params))
            return cur.execute(final, used_params(final, params)).df()
    except duckdb.Error as exc:
        raise read_failure(exc) from None


def _is_numeric(kind: str) -> bool:
    """True for DuckDB number types (BOOLEAN and dates are categories)."""
    kind = kind.upper()
    return kind.startswith(_NUMERIC)


def _fmt(x: float) -> str:
    """A bin edge as short text: whole numbers without a decimal point."""
    x = float(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def bin_labels(low: float, edges: tuple[float, ...], high: float) -> list[str]:
    """Range labels of the bins cut at `edges`: '[lo, e1)', ..., '[ek, hi]'."""
    bounds = [low, *edges, high]
    labels = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(bounds[:-2], bounds[1:-1])]
    labels.append(f"[{_fmt(bounds[-2])}, {_fmt(bounds[-1])}]")
    return labels


def quantile_edges(src: OpenSource, x: str, where: str, params: dict, valid: int,
                   bins: int) -> tuple[float, tuple[float, ...], float]:
    """(min, inner edges, max) of the number `x` (SQL over `src`) cut into `bins` quantile bins, in one query.

    `valid` is the count of values that are neither NULL nor NaN. Edge j is the value of rank
    ceil(j * valid / bins) (1-based, exact integers), which is what DuckDB's quantile_disc(x, j / bins)
    returns. It is found as the smallest value whose running count reaches the rank, over the
    distinct values: a GROUP BY and a window, which DuckDB spills to disk under a memory limit
    (quantile_disc holds every value in memory and failed on 100M rows in 2 GB), and integer ranks,
    which every engine compares exactly. Repeated values give repeated quantiles, and an edge at the
    minimum would be an empty bin: both are dropped.
    """
    ranks = [max(1, -(-(j * valid) // bins)) for j in range(1, bins)]
    picks = ", ".join(f"min(CASE WHEN fw_cum >= {r} THEN fw_v END) AS q{j}" for j, r in enumerate(ranks))
    got = run_query(
        src,
        f"SELECT {picks}, min(fw_v) AS lo, max(fw_v) AS hi FROM (SELECT fw_v, sum(fw_c) OVER (ORDER BY fw_v "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fw_cum FROM (SELECT {x} AS fw_v, count(*) AS "
        f"fw_c FROM src WHERE {where} AND {x} IS NOT NULL AND NOT isnan({x}) GROUP BY 1) AS fw_values) AS fw_run",
        params,
    ).iloc[0]
    if got["lo"] is None or pd.isna(got["lo"]):
        return math.nan, (), math.nan
    lo, hi = float(got["lo"]), float(got["hi"])
    return lo, tuple(sorted({float(got[f"q{j}"]) for j in range(len(ranks)) if float(got[f"q{j}"]) > lo})), hi


def plan_cells(cards: list[int], depth: int, rows: int, budget: int = CELL_BUDGET) -> list[tuple[int, ...]]:
    """Feature subsets, each with at most `budget` cells, containing every `depth`-combination."""
    n = len(cards)

    def size(subset) -> int:
        """Cells of a subset: the product of its cardinalities, never more than the rows."""
        return min(rows, math.prod(cards[i] for i in subset))

    if n == 0 or size(range(n)) <= budget:
        return [tuple(range(n))]
    uncovered = set(itertools.combinations(range(n), depth))
    subsets: list[tuple[int, ...]] = []
    while uncovered:
        chosen = set(min(uncovered))  # a combination larger than the budget stands alone
        while True:
            best, best_gain = None, 0
            for f in range(n):
                if f in chosen or size(chosen | {f}) > budget:
                    continue
                grown = chosen | {f}
                gain = sum(1 for c in uncovered if set(c) <= grown and not set(c) <= chosen)
                if gain > best_gain:
                    best, best_gain = f, gain
            if best is None:
                break
            chosen.add(best)
        subsets.append(tuple(sorted(chosen)))
        uncovered = {c for c in uncovered if not set(c) <= chosen}
    return subsets


def _positives(raw: list[str], positive: str | tuple[str, ...]) -> list[str]:
    """The raw spellings that `normalise_value` maps to a positive value ('1.0', 'True', ' 1' ...)."""
    wanted = positive_set(positive)
    return sorted(v for v in raw if normalise_value(v) in wanted)


def _in_params(expr: str, prefix: str, count: int) -> str:
    """`expr IN ($prefix0, ...)` over `count` text parameters; FALSE for none (`IN ()` is not SQL)."""
    if count == 0:
        return "FALSE"
    return f"({expr} IN (" + ", ".join(f"${prefix}{i}" for i in range(count)) + "))"


def _signal_sql(spec: AuditSpec, cols: dict[str, str], n_label: int, n_pred: int,
                texts: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """SQL for (has a label, is in the error signal's denominator, the error) of one row.

    The positive spellings are text parameters $pl0.. and $pp0.. (an IN list, not a list parameter,
    so that PostgreSQL and Spark take the same query). `texts`: SQL for the label's and the
    decision's text to use instead of the source's columns (a cell scan's outcome table).
    """
    label = f"CAST({quote_ident(cols['label'])} AS VARCHAR)" if texts is None else texts[0]
    labelled = f"({label} IS NOT NULL)"
    y = _in_params(label, "pl", n_label)
    if spec.slices.error == "score_loss":
        score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)"
        den = f"({labelled} AND {score} IS NOT NULL AND NOT isnan({score}))"
        # A product, not power(): every engine rounds x * x the same way (IEEE), pow() need not.
        diff = f"({score} - CASE WHEN {y} THEN CAST(1 AS DOUBLE) ELSE CAST(0 AS DOUBLE) END)"
        return labelled, den, f"{diff} * {diff}"
    pred = prediction_expr(spec, cols) if texts is None else texts[1]
    yhat = _in_params(pred, "pp", n_pred)
    both = f"({labelled} AND {pred} IS NOT NULL)"
    if spec.slices.error == "misclassification":
        return labelled, both, f"CAST({y} <> {yhat} AS INTEGER)"
    if spec.slices.error == "false_negative":
        return labelled, f"({both} AND {y})", f"CAST(NOT {yhat} AS INTEGER)"
    return labelled, f"({both} AND NOT {y})", f"CAST({yhat} AS INTEGER)"


def decision_sql(spec: AuditSpec, cols: dict[str, str], params: dict, pred: str | None = None) -> str:
    """SQL: the row's decision is positive (NULL without a decision), over the $pp0.. of `error_signal_sql`.

    `pred`: SQL for the decision's text instead of the source's (a cell scan's outcome table).
    """
    pred = prediction_expr(spec, cols) if pred is None else pred
    return f"CASE WHEN {pred} IS NULL THEN NULL WHEN {_in_params(pred, 'pp', sum(k.startswith('pp') for k in params))} THEN 1 ELSE 0 END"


def error_signal_sql(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str, params: dict,
                     positive_label: str, positive_prediction: str,
                     scan: CellScan | None = None) -> tuple[str, str, str, dict]:
    """SQL for (has a label, in the error signal's denominator, the error) of a row, and its parameters.

    The raw spellings (a handful) that normalise to the positive label and decision are parameters
    $pl0.. and $pp0..; with a score and threshold, $threshold too. The slice search and the quality
    counts (errors without the flagged rows) share it, so both count the same errors. With `scan`,
    the spellings are its label and decision texts (the same distinct texts of the same rows) and
    the SQL reads its outcome table's fw_l and fw_p instead of the source's columns.
    """
    if spec.task != "binary":
        # Regression and multiclass: their own error signal, the same search (connectors/task_slice_counts.py).
        return task_signal_sql(src, spec, cols, where, params)
    label_sql = f"CAST({quote_ident(cols['label'])} AS VARCHAR)"
    # The decision's spellings even for the score loss: the quality counts split unflagged rows by decision.
    pred_sql = prediction_expr(spec, cols)
    qp = {} if spec.prediction is not None else {"threshold": spec.threshold}
    if scan is not None:
        labels, decisions = list(scan.labels), list(scan.decisions)
    else:
        raw = run_query(src, f"SELECT DISTINCT {label_sql} AS l, {pred_sql} AS p FROM src WHERE {where}",
                        {**params, **qp} if "$threshold" in pred_sql else params)
        labels, decisions = [str(v) for v in raw["l"].dropna().unique()], [str(v) for v in raw["p"].dropna().unique()]
    pos_label = _positives(labels, positive_label)
    pos_pred = _positives(decisions, positive_prediction)
    qp.update({f"pl{i}": v for i, v in enumerate(pos_label)} | {f"pp{i}": v for i, v in enumerate(pos_pred)})
    labelled, den, err = _signal_sql(spec, cols, len(pos_label), len(pos_pred),
                                     None if scan is None else ("fw_l", "fw_p"))
    return labelled, den, err, qp


def _outcome_sums(src: OpenSource, scan: CellScan, labelled: str, den: str, err: str, params: dict) -> str:
    """SQL aggregates labelled, n, errors and errors_sq over a cell scan's (o, n) rows.

    Each is a function of the outcome code o: the signal's SQL is evaluated once per code on the scan's
    outcome table (a few rows), and the sums pick codes by generated integer lists (a join of every cell
    with the outcome table cost a fifth more). The errors are whole numbers (0/1 per row).
    """
    got = run_query(src, f"SELECT o, coalesce({labelled}, FALSE) AS l, coalesce({den}, FALSE) AS d, "
                         f"CAST({err} AS BIGINT) AS e FROM {scan.outcomes}", params)

    def rows(codes: list[int], times: str = "n") -> str:
        """The sum of n (or n times a whole number) over the cells whose outcome is one of `codes`."""
        return f"sum(CASE WHEN o IN ({', '.join(map(str, codes))}) THEN {times} ELSE 0 END)" if codes else "0"

    counted = got[got["d"]]
    weights = {int(e): [int(o) for o in counted.loc[counted["e"] == e, "o"]] for e in counted["e"].dropna().unique() if e}
    errors = " + ".join(rows(codes, f"n * {e}") for e, codes in weights.items()) or "0"
    errors_sq = " + ".join(rows(codes, f"n * {e * e}") for e, codes in weights.items()) or "0"
    return (f"{rows([int(o) for o in got.loc[got['l'], 'o']])} AS labelled, {rows([int(o) for o in counted['o']])} AS n, "
            f"{errors} AS errors, {errors_sq} AS errors_sq")


def _distinct_texts(src: OpenSource, scan: CellScan, feats: list[int], columns: list[str]) -> bool:
    """Whether each feature's value codes in the scan have distinct texts (NULL as '(missing)'), as the search groups them.

    Distinct values have distinct texts but for a text column holding the word '(missing)' as well as NULLs,
    which the search counts as one value: those codes would need merging, so the rows are searched instead.
    """
    checks = " UNION ALL ".join(
        f"SELECT {j} AS j, count(DISTINCT v) = {scan.cards[f]} AS ok FROM ({scan.texts_sql(f, src.column_type(col))} "
        f"UNION ALL SELECT '{MISSING}') AS fw_t" for j, (f, col) in enumerate(zip(feats, columns)))
    return not checks or bool(run_query(src, f"SELECT bool_and(ok) AS ok FROM ({checks}) AS fw_c").iloc[0]["ok"])


def fetch_slice_counts(src: OpenSource, spec: AuditSpec, positive_label: str, positive_prediction: str,
                       row_filter: RowFilter | None = None, cells: SharedCells | None = None) -> SliceCounts:
    """Counts (rows, labelled, n, errors) of every slice of up to max_depth predicates with n >= min_support.

    `cells`: where it may, the search first groups the rows once into a cell scan (connectors/cell_scan.py)
    kept there for the quality counts, and derives its cells from it instead of from the rows.
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    names = list(spec.sensitive) + list(spec.features)
    clash = sorted({f for f in names if f.lower() in COUNT_COLUMNS})
    if clash:
        raise DataError(f"feature column(s) {', '.join(clash)} share a name with a slice count column "
                        f"({', '.join(COUNT_COLUMNS)}); rename them in the source (or a view) before the slice search")
    columns = [cols[f"sensitive:{s}"] for s in spec.sensitive] + [cols[f"feature:{f}"] for f in spec.features]
    notes = []
    depth = spec.slices.max_depth
    if depth > len(names):
        notes.append(f"max_depth {depth} is more than the {len(names)} feature(s) searched "
                     f"({', '.join(names)}), so the search stops at depth {len(names)}.")
        depth = len(names)
    qp = dict(params)
    if spec.prediction is None:
        qp["threshold"] = spec.threshold

    # 1. Profile in one scan: the row count, each feature's and the outcomes' approximate distinct
    # counts, and for numbers the count of values a quantile ranks (neither NULL nor NaN).
    label_sql = f"CAST({quote_ident(cols['label'])} AS VARCHAR)"
    pred_sql = "CAST(NULL AS VARCHAR)" if spec.slices.error == "score_loss" else prediction_expr(spec, cols)
    if spec.task != "binary":  # numbers and classes are checked by the task's own counts: no text to count here
        label_sql = pred_sql = "CAST(NULL AS VARCHAR)"
    numeric = [_is_numeric(src.column_type(c)) for c in columns]
    prof = ", ".join(f"approx_count_distinct({quote_ident(c)}) AS d{i}" for i, c in enumerate(columns))
    prof += "".join(f", count(CASE WHEN NOT isnan(CAST({quote_ident(c)} AS DOUBLE)) THEN 1 END) AS m{i}"
                    for i, c in enumerate(columns) if numeric[i])
    profile = run_query(
        src,
        f"SELECT count(*) AS rows, approx_count_distinct({label_sql}) AS labels, "
        f"approx_count_distinct({pred_sql}) AS preds, {prof} FROM src WHERE {where}",
        qp,
    ).iloc[0]
    if int(profile["rows"]) == 0:
        raise DataError("no rows to search for slices (after the chosen filters); widen the time window or "
                        "choose another model version")
    for role, key, column in (("label", "labels", spec.label), ("prediction", "preds", spec.prediction or spec.score)):
        if spec.task == "binary" and int(profile[key]) > _MAX_OUTCOME_VALUES:
            raise DataError(f"the {role} column {column} has about {int(profile[key]):,} distinct values; a binary "
                            f"{role} has two: map it to two values before auditing")

    # 2. Each feature's key: its text (NULL as '(missing)'), or for many-valued numbers a quantile bin.
    keys, cards, bins = [], [], []
    for i, (name, col) in enumerate(zip(names, columns)):
        distinct = int(profile[f"d{i}"])
        valid = int(profile[f"m{i}"]) if numeric[i] else 0
        if numeric[i] and distinct > spec.slices.bins and valid > 0:
            x = f"CAST({quote_ident(col)} AS DOUBLE)"
            lo, edges, hi = quantile_edges(src, x, where, params, valid, spec.slices.bins)
            cases = " ".join(f"WHEN {x} < $e{i}_{j} THEN {j}" for j in range(len(edges)))
            keys.append(f"CASE WHEN {x} IS NULL OR isnan({x}) THEN -1 {cases} ELSE {len(edges)} END")
            qp.update({f"e{i}_{j}": e for j, e in enumerate(edges)})
            bins.append((name, lo, edges, hi))
            cards.append(len(edges) + 2)
        else:
            if distinct > spec.policy.max_groups:
                raise DataError(
                    f"feature {col} has about {distinct:,} distinct values, more than max_groups "
                    f"({spec.policy.max_groups}), too many to search slices over: drop it from [columns] "
                    f"features, map it to fewer categories, or raise [policy] max_groups"
                )
            keys.append(group_expr(col, src.column_type(col)))
            cards.append(distinct + 1)

    # 3. The error signal, with the label and decision mapped to 0/1 exactly as `binarize` does; on DuckDB,
    # every feature a category and the error a count, read from one scan shared with the quality counts.
    scan = None
    if cells is not None and not bins and spec.slices.error != "score_loss" and spec.task == "binary":
        try:
            scan = cells.build(spec, row_filter, cols, where, qp, f"CAST({quote_ident(cols['label'])} AS VARCHAR)",
                               prediction_expr(spec, cols))
        except SourceError:
            scan = None  # the scan is a shortcut: the row scans below count the same rows, or say what is wrong
        feats = [scan.index(c) for c in columns] if scan is not None else []
        if scan is not None and not _distinct_texts(src, scan, feats, columns):
            scan = None
    labelled, den, err, signal_params = error_signal_sql(src, spec, cols, where, params, positive_label,
                                                         positive_prediction, scan)
    qp.update(signal_params)
    qp["min_support"] = spec.policy.min_support

    # 4. One statement: the cells of each subset in one scan, then every slice as a sum of cells.
    k = [f"k{i}" for i in range(len(names))]
    subsets = plan_cells(cards, depth, int(profile["rows"]), CELL_BUDGET)
    combos = [c for d in range(1, depth + 1) for c in itertools.combinations(range(len(names)), d)]
    home = {c: next(j for j, s in enumerate(subsets) if set(c) <= set(s)) for c in combos}
    all_k = ", ".join(k)
    full = (1 << len(k)) - 1

    def gid(members) -> int:
        """GROUPING() of all keys: a bit (first key highest) for every key NOT grouped on."""
        return sum(1 << (len(k) - 1 - i) for i in range(len(k)) if i not in members)

    def grouping_bits(members) -> str:
        """SQL for the gid from one-argument GROUPING() calls (Spark has no GROUPING(a, b, ...))."""
        return " + ".join([str(gid(members))] + [f"(GROUPING({k[i]}) << {len(k) - 1 - i})" for i in members])

    sets = ", ".join("(" + ", ".join(k[i] for i in s) + ")" for s in subsets)
    binned = {b[0] for b in bins}
    base = ", ".join(f"{e} AS {kk}" for e, kk in zip(keys, k))
    base_sql = f"SELECT {base}, {labelled} AS labelled, {den} AS den, {err} AS err FROM src WHERE {where}"
    cell_sql = (
        f"SELECT {all_k}, ({grouping_bits(range(len(k)))}) AS gid, count(*) AS rows, "
        f"count(*) FILTER (WHERE labelled) AS labelled, count(*) FILTER (WHERE den) AS n, "
        f"sum(err) FILTER (WHERE den) AS errors, sum(err * err) FILTER (WHERE den) AS errors_sq "
        f"FROM base GROUP BY GROUPING SETS ({sets})"
    )
    # DuckDB: long strings hash and compare slowly, so the derivation groups on integer codes, from a
    # dictionary per text feature built on the (small) cell table, and turns them back into text.
    # Elsewhere the steps are CTEs that Spark would recompute per reference: group on the text.
    texts = [i for i, name in enumerate(names) if name not in binned] if src.runner is None else []
    null_key = ["CAST(NULL AS VARCHAR)" if names[i] not in binned and i not in texts else "CAST(NULL AS INTEGER)"
                for i in range(len(k))]
    if scan is not None:
        # From the cell scan: its value codes are the integer codes (each a distinct text, checked above).
        steps = [(f"fw_d{i}", f"SELECT {group_expr('v', src.column_type(columns[i]))} AS v, r AS c FROM "
                              f"{scan.dicts[feats[i]]} UNION ALL SELECT '{MISSING}', {scan.cards[feats[i]] - 1}")
                 for i in texts]
        coded = ", ".join(f"{scan.code_sql(feats[i])} AS {k[i]}" for i in range(len(k)))
        sums = _outcome_sums(src, scan, labelled, den, err, qp)
        steps.append(("fw_cells", (
            f"SELECT {all_k}, ({grouping_bits(range(len(k)))}) AS gid, sum(n) AS rows, {sums} "
            f"FROM (SELECT {coded}, o, n FROM {scan.cells}) AS base GROUP BY GROUPING SETS ({sets})")))
    else:
        if src.runner is None:
            steps = [("fw_cells0", f"WITH base AS ({base_sql}) {cell_sql}")]
        else:
            steps = [("base", base_sql), ("fw_cells0", cell_sql)]
        steps += [
            (f"fw_d{i}", f"SELECT v, CAST(row_number() OVER (ORDER BY v) AS INTEGER) AS c "
                         f"FROM (SELECT DISTINCT {k[i]} AS v FROM fw_cells0 WHERE {k[i]} IS NOT NULL) AS fw_v")
            for i in texts
        ]
        coded = ", ".join(f"fw_d{i}.c AS {k[i]}" if i in texts else f"fw_cells0.{k[i]}" for i in range(len(k)))
        joins = " ".join(f"LEFT JOIN fw_d{i} ON fw_cells0.{k[i]} = fw_d{i}.v" for i in texts)
        steps.append(("fw_cells", f"SELECT {coded}, gid, rows, labelled, n, errors, errors_sq FROM fw_cells0 {joins}"))
    parts = []
    for j, s in enumerate(subsets):
        mine = [c for c in combos if home[c] == j] + ([()] if j == 0 else [])
        if not mine:
            continue
        gsets = ", ".join("(" + ", ".join(k[i] for i in c) + ")" for c in mine)
        used = sorted({i for c in mine for i in c})
        # GROUPING() accepts only this part's grouping columns: the others are constant NULLs and
        # their bits of the slice's gid are constant ones. The support filter is a WHERE around the
        # grouping rather than a HAVING, which Spark cannot resolve GROUPING() in.
        select = ", ".join(k[i] if i in used else f"{null_key[i]} AS {k[i]}" for i in range(len(k)))
        parts.append(
            f"SELECT * FROM (SELECT {select}, CAST({grouping_bits(used)} AS BIGINT) AS slice_gid, "
            f"CAST(sum(rows) AS BIGINT) AS rows, CAST(sum(labelled) AS BIGINT) AS labelled, "
            f"CAST(sum(n) AS BIGINT) AS n, CAST(coalesce(sum(errors), 0) AS DOUBLE) AS errors, "
            f"CAST(coalesce(sum(errors_sq), 0) AS DOUBLE) AS errors_sq "
            f"FROM fw_cells WHERE gid = {gid(s)} GROUP BY GROUPING SETS ({gsets})) AS fw_p{j} "
            f"WHERE n >= $min_support OR slice_gid = {full}"
        )
    # The cap is a generated constant: a literal, since Spark takes no parameter in LIMIT.
    steps.append(("fw_slices", f"{' UNION ALL '.join(parts)} LIMIT {MAX_SLICES + 1}"))
    decoded = ", ".join(f"fw_d{i}.v AS {k[i]}" if i in texts else f"fw_slices.{k[i]}" for i in range(len(k)))
    back = " ".join(f"LEFT JOIN fw_d{i} ON fw_slices.{k[i]} = fw_d{i}.c" for i in texts)
    final = f"SELECT {decoded}, slice_gid, rows, labelled, n, errors, errors_sq FROM fw_slices {back}"
    out = _run_script(src, steps, final, qp)
    if len(out) > MAX_SLICES:
        raise DataError(
            f"the slice search would evaluate more than {MAX_SLICES:,} slices; lower [slices] max_depth, "
            f"raise [policy] min_support, or search fewer or coarser features"
        )

    # 5. Back to values: None where a feature is not in the slice, bin indexes to range labels.
    total = out[out["slice_gid"] == full].iloc[0]
    if int(total["n"]) == 0:
        raise DataError(
            f"no rows count toward the {spec.slices.error.replace('_', ' ')} signal "
            f"({_DENOMINATORS[spec.slices.error]}) among the {int(total['rows']):,} rows searched; "
            f"choose another error signal ([slices] error) or audit a period whose outcomes are known"
        )
    out = out[out["slice_gid"] != full].reset_index(drop=True)
    gids = out["slice_gid"].to_numpy()
    frame = pd.DataFrame(index=out.index)
    binned = {name: (lo, edges, hi) for name, lo, edges, hi in bins}
    for i, name in enumerate(names):
        present = (gids >> (len(k) - 1 - i)) & 1 == 0
        raw = out[k[i]]
        if name in binned:
            labels = bin_labels(*binned[name])
            mapped = [MISSING if v < 0 else labels[int(v)] for v in raw.fillna(-1).astype(int)]
        else:
            mapped = raw.astype(object).tolist()
        frame[name] = pd.Series([v if p else None for v, p in zip(mapped, present)], index=out.index, dtype=object)
    for c in COUNT_COLUMNS:
        frame[c] = out[c].to_numpy()
    if spec.slices.error not in MEAN_LOSSES:
        frame["errors"] = frame["errors"].round().astype("int64")
        frame["errors_sq"] = frame["errors"]
    # A deterministic order (the engine's is not): shallow slices first, then by values.
    frame["_depth"] = frame[names].notna().sum(axis=1)
    frame = frame.sort_values(["_depth", *names], na_position="first", kind="mergesort").drop(columns="_depth")
    return SliceCounts(
        frame=frame.reset_index(drop=True),
        features=tuple(names),
        error=spec.slices.error,
        total_rows=int(total["rows"]),
        total_labelled=int(total["labelled"]),
        total_n=int(total["n"]),
        total_errors=float(total["errors"]),
        total_errors_sq=float(total["errors_sq"]),
        min_support=spec.policy.min_support,
        max_depth=depth,
        bin_edges=tuple((name, edges) for name, _, edges, _ in bins),
        notes=tuple(notes),
        positive_label=positive_label,
        positive_prediction=positive_prediction,
    )
