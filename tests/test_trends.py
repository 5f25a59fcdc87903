"""Windowed metrics: equal to fairlearn on each window's raw rows; gaps, coverage, grain and bad time columns."""

from __future__ import annotations

import copy
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
from fairwatch.connectors.source import open_frame
from fairwatch.connectors.window_counts import fetch_time_span, fetch_window_counts
from fairwatch.metrics.errors import DataError, SpecError
from fairwatch.metrics.stats.groups import groupings
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter, parse_spec
from fairwatch.metrics.monitoring.trends import (
    DAY_SPAN_MAX_DAYS,
    WEEK_SPAN_MAX_DAYS,
    WINDOW,
    choose_grain,
    parse_instant,
    trend_table,
    window_floor,
)
from tests.test_metrics_oracle import ORACLE

DEMO_ROWS = 150_000
T0 = pd.Timestamp("2025-03-01")


def write_demo_spec(folder: Path) -> AuditSpec:
    """Write the demo (150k rows) into `folder` and return its spec (shared by the monitoring tests)."""
    path = folder / "demo.duckdb"
    write_demo(path, rows=DEMO_ROWS)
    raw = copy.deepcopy(DEMO_CONFIG)
    raw["source"]["path"] = str(path)
    return parse_spec(raw)


@pytest.fixture(scope="module")
def demo_spec(tmp_path_factory: pytest.TempPathFactory) -> AuditSpec:
    """The demo (150k rows), written once for each module that uses it."""
    return write_demo_spec(tmp_path_factory.mktemp("demo"))


def frame_spec(sensitive: list[str], min_support: int = 1, time: str | None = "ts", reference: dict | None = None,
               **columns) -> AuditSpec:
    """A spec over an in-memory frame with columns y_true, y_pred and ts."""
    cols = {"label": "y_true", "prediction": "y_pred", "sensitive": sensitive, **columns}
    if time:
        cols["time"] = time
    return parse_spec({"source": {"path": "(frame)"}, "columns": cols, "policy": {"min_support": min_support},
                       "reference": reference or {}})


def trends_of(df: pd.DataFrame, spec: AuditSpec, grain: str | None = None):
    """Windowed counts through DuckDB, then the trend table."""
    counts = fetch_window_counts(open_frame(df), spec, grain)
    return counts, trend_table(counts.cells, spec, counts.grain)


def _group(cols, values) -> str:
    """The group label the tables use."""
    return ", ".join(f"{c}={v}" for c, v in zip(cols, values))


values = st.sampled_from(["a", "b", "Ω", "x y", None])


@st.composite
def timed_frames(draw):
    """Random logs: 1-2 sensitive features with NULLs, some unlabelled rows, times over 1-200 days."""
    n = draw(st.integers(1, 250))
    k = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frame = {}
    for i in range(k):
        alphabet = draw(st.lists(values, min_size=1, max_size=3, unique=True))
        frame[f"s{i}"] = rng.choice(np.array(alphabet, dtype=object), n)
    span_days = draw(st.integers(1, 200))
    # Few distinct instants make windows with a handful of rows (or one); few windows keep fairlearn quick.
    seconds = rng.integers(0, span_days * 86400, size=draw(st.integers(1, 8)))
    frame["ts"] = T0 + pd.to_timedelta(rng.choice(seconds, n), unit="s")
    y_true = (rng.random(n) < draw(st.floats(0, 1))).astype(float)
    y_true[rng.random(n) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = np.nan  # unlabelled rows
    frame["y_true"] = pd.array(y_true, dtype="Int64")
    frame["y_pred"] = (rng.random(n) < draw(st.floats(0, 1))).astype(int)
    grain = draw(st.sampled_from([None, "day", "week", "month"]))
    return pd.DataFrame(frame), [f"s{i}" for i in range(k)], grain


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timed_frames())
def test_each_window_equals_fairlearn_on_its_raw_rows(case):
    """Property: every rate of every group in every window equals fairlearn on that window's labelled rows."""
    df, sensitive, grain = case
    if df["y_true"].notna().sum() == 0:
        with pytest.raises(DataError, match="unlabelled"):
            trends_of(df, frame_spec(sensitive), grain)
        return
    counts, table = trends_of(df, frame_spec(sensitive), grain)
    oracle = df.copy()
    for c in sensitive:
        oracle[c] = oracle[c].fillna("(missing)")
    oracle["window"] = oracle["ts"].map(lambda t: window_floor(t, counts.grain))
    rows = table.rows.set_index(["window", "group", "metric"])
    assert len(rows) == len(table.rows), "one row per (window, group, metric)"
    lab = oracle[oracle["y_true"].notna()]
    yt, yp = lab["y_true"].to_numpy(int), lab["y_pred"].to_numpy(int)
    for cols in groupings(sensitive):
        keys = ["window", *cols]
        for key, grp in oracle.groupby(keys):
            assert rows.loc[(key[0], _group(cols, key[1:]), "accuracy"), "n"] == len(grp)
        # One MetricFrame per grouping with the window as one more feature: per window it was too slow.
        sf = lab[keys].astype({c: str for c in cols})
        mf = MetricFrame(metrics={m: fn for m, (fn, _) in ORACLE.items()}, y_true=yt, y_pred=yp, sensitive_features=sf)
        for key, expected in mf.by_group.iterrows():
            mask = np.logical_and.reduce([(sf[c] == v).to_numpy() for c, v in zip(keys, key)])
            if not mask.any():
                continue
            for m, (_, den) in ORACLE.items():
                got = rows.loc[(key[0], _group(cols, key[1:]), m), "value"]
                if den(yt[mask], yp[mask]) == 0:
                    assert np.isnan(got), (key, m, got)
                else:
                    assert got == pytest.approx(expected[m], abs=1e-12), (key, m)
    # Label coverage per window is labelled rows / all rows of the window.
    cov = table.coverage.set_index("window")
    expected_cov = oracle.groupby("window")["y_true"].apply(lambda s: s.notna().mean())
    pd.testing.assert_series_equal(cov["label_coverage"], expected_cov, check_names=False)


def test_every_window_group_pair_is_present_and_gaps_are_nan_not_zero():
    """A group absent from a window, or below min_support there, is NaN with its n, never 0."""
    df = pd.DataFrame({
        "g": ["a"] * 40 + ["b"] * 40 + ["a"] * 40,
        "ts": [T0] * 80 + [T0 + pd.Timedelta(days=1)] * 40,
        "y_true": [1, 0] * 60,
        "y_pred": [0, 0, 1, 1] * 30,
    })
    _, table = trends_of(df, frame_spec(["g"], min_support=30), "day")
    r = table.rows.set_index(["window", "group", "metric"])
    day2 = T0 + pd.Timedelta(days=1)
    assert r.loc[(day2, "g=b", "accuracy"), "n"] == 0
    assert np.isnan(r.loc[(day2, "g=b", "accuracy"), "value"])
    assert bool(r.loc[(day2, "g=b", "accuracy"), "masked"])
    # 20 positives < min_support 30: the FNR is a gap although accuracy (40 rows) is shown.
    assert np.isnan(r.loc[(T0, "g=a", "false_negative_rate"), "value"])
    assert r.loc[(T0, "g=a", "accuracy"), "value"] == pytest.approx(0.5)
    assert len(table.rows) == 2 * 2 * table.rows["metric"].nunique()


def test_window_with_zero_labelled_rows_is_a_gap_with_zero_coverage():
    """A window whose outcomes are not known yet: rows counted, coverage 0, every performance metric NaN."""
    df = pd.DataFrame({
        "g": ["a", "b"] * 50,
        "ts": [T0] * 50 + [T0 + pd.Timedelta(days=1)] * 50,
        "y_true": pd.array([1, 0] * 25 + [None] * 50, dtype="Int64"),
        "y_pred": [1, 0, 0, 1] * 25,
    })
    _, table = trends_of(df, frame_spec(["g"]), "day")
    day2 = T0 + pd.Timedelta(days=1)
    cov = table.coverage.set_index("window")
    assert cov.loc[day2, "rows"] == 50 and cov.loc[day2, "labelled_rows"] == 0
    assert cov.loc[day2, "label_coverage"] == 0.0 and cov.loc[T0, "label_coverage"] == 1.0
    late = table.rows[table.rows["window"] == day2]
    assert late["value"].isna().all() and (late["labelled_n"] == 0).all() and (late["n"] == 25).all()
    assert table.total_rows == len(df)  # the Trends page's caption: every timed row, labelled or not


def test_ratio_is_to_the_reference_group_in_the_same_window():
    """The per-window ratio divides by the reference group's value of that window."""
    df = pd.DataFrame({
        "g": ["big"] * 60 + ["small"] * 40,
        "ts": [T0] * 100,
        "y_true": [1] * 100,
        "y_pred": [1] * 45 + [0] * 15 + [1] * 20 + [0] * 20,
    })
    _, table = trends_of(df, frame_spec(["g"]), "day")
    r = table.rows.set_index(["group", "metric"])
    assert r.loc[("g=small", "false_negative_rate"), "ratio"] == pytest.approx(0.5 / 0.25)
    assert r.loc[("g=big", "false_negative_rate"), "ratio"] == pytest.approx(1.0)
    assert r.loc[("g=small", "false_negative_rate"), "reference"] == (("g", "big"),)


def test_one_version_of_the_windowed_counts():
    """trend_table(version=...) keeps only that model version's rows."""
    df = pd.DataFrame({"g": ["a"] * 20, "ts": [T0] * 20, "v": ["v1"] * 10 + ["v2"] * 10,
                       "y_true": [1] * 20, "y_pred": [1] * 10 + [0] * 10})
    spec = frame_spec(["g"], model_version="v")
    counts = fetch_window_counts(open_frame(df), spec, "day", by_version=True)
    fnr = {v: trend_table(counts.cells, spec, "day", version=v).rows.set_index("metric").loc["false_negative_rate", "value"]
           for v in ("v1", "v2")}
    assert fnr == {"v1": 0.0, "v2": 1.0}
    with pytest.raises(SpecError, match="by_version=True"):
        trend_table(fetch_window_counts(open_frame(df), spec, "day").cells, spec, "day", version="v1")


@pytest.mark.parametrize(("days", "grain"), [(0, "day"), (DAY_SPAN_MAX_DAYS, "day"), (DAY_SPAN_MAX_DAYS + 1, "week"),
                                             (365, "week"), (WEEK_SPAN_MAX_DAYS, "week"),
                                             (WEEK_SPAN_MAX_DAYS + 1, "month")])
def test_grain_follows_the_time_span(days, grain):
    """≤ 60 days by day, ≤ 400 days by week, longer by month."""
    assert choose_grain(T0, T0 + pd.Timedelta(days=days)) == grain


def test_grain_override_and_unknown_grain():
    """An explicit grain wins; an unknown one is a one-line SpecError listing the choices."""
    assert choose_grain(T0, T0 + pd.Timedelta(days=900), "day") == "day"
    with pytest.raises(SpecError, match="day, week, month"):
        choose_grain(T0, T0, "fortnight")


def test_engine_buckets_equal_date_trunc_and_window_floor():
    """The engine's date_trunc (and time_bucket) windows equal window_floor for day/week/month."""
    rng = np.random.default_rng(1)
    stamps = pd.Timestamp("1995-01-01") + pd.to_timedelta(rng.integers(0, 60 * 365 * 86400, 2000), unit="s")
    con = duckdb.connect()
    con.register("t", pd.DataFrame({"ts": stamps}))
    for grain in ("day", "week", "month"):
        got = con.execute(f"SELECT ts, time_bucket(INTERVAL '1 {grain}', ts), date_trunc('{grain}', ts) FROM t").fetchall()
        for ts, bucket, trunc in got:
            assert bucket == trunc == window_floor(pd.Timestamp(ts), grain).to_pydatetime(), (grain, ts)


def test_rows_without_time_are_counted_apart():
    """NULL times belong to no window; they are reported as untimed_rows, not dropped silently."""
    df = pd.DataFrame({"g": ["a"] * 4, "ts": [T0, None, T0, None], "y_true": [1] * 4, "y_pred": [1] * 4})
    counts = fetch_window_counts(open_frame(df), frame_spec(["g"]))
    assert counts.span.untimed_rows == 2 and int(counts.cells["n"].sum()) == 2


def test_text_times_are_parsed_and_aware_times_are_read_in_utc():
    """ISO text works; a zone-aware time lands in its UTC day."""
    text = pd.DataFrame({"g": ["a"] * 2, "ts": ["2025-03-01 10:00:00", "2025-03-02"], "y_true": [1, 0], "y_pred": [1, 1]})
    counts = fetch_window_counts(open_frame(text), frame_spec(["g"]), "day")
    assert sorted(counts.cells[WINDOW].unique()) == [T0, T0 + pd.Timedelta(days=1)]
    aware = pd.DataFrame({"g": ["a"], "ts": [pd.Timestamp("2025-03-01 23:30", tz="America/New_York")],
                          "y_true": [1], "y_pred": [1]})
    counts = fetch_window_counts(open_frame(aware), frame_spec(["g"]), "day")
    assert list(counts.cells[WINDOW]) == [pd.Timestamp("2025-03-02")]


def test_garbage_time_strings_are_a_data_error_naming_the_column():
    """Text that is not a time: DataError naming the column, how many and an example."""
    df = pd.DataFrame({"g": ["a"] * 3, "when": ["2025-03-01", "yesterday", "soon"], "y_true": [1] * 3, "y_pred": [1] * 3})
    with pytest.raises(DataError, match=r"time column when has 2 value\(s\).*'soon'") as info:
        fetch_window_counts(open_frame(df), frame_spec(["g"], time="when"))
    assert "\n" not in str(info.value)


def test_numeric_or_empty_time_columns_are_data_errors():
    """Epoch numbers are refused with a hint; an all-NULL time column says so."""
    df = pd.DataFrame({"g": ["a"] * 2, "ts": [1_700_000_000, 1_700_086_400], "y_true": [1, 0], "y_pred": [1, 1]})
    with pytest.raises(DataError, match="time column ts is BIGINT.*to_timestamp"):
        fetch_window_counts(open_frame(df), frame_spec(["g"]))
    empty = pd.DataFrame({"g": ["a"] * 2, "ts": pd.Series([None, None], dtype="datetime64[us]"),
                          "y_true": [1, 0], "y_pred": [1, 1]})
    with pytest.raises(DataError, match="time column ts is empty"):
        fetch_window_counts(open_frame(empty), frame_spec(["g"]))


def test_no_time_column_in_the_spec_is_a_spec_error():
    """Monitoring without a time column says which setting to add."""
    df = pd.DataFrame({"g": ["a"], "y_true": [1], "y_pred": [1]})
    with pytest.raises(SpecError, match=r"\[columns\] time"):
        fetch_window_counts(open_frame(df), frame_spec(["g"], time=None))


def test_time_bounds_filter_and_bad_bounds():
    """The filter's time bounds select windows; a bound that is not a time is a SpecError; an empty window a DataError."""
    df = pd.DataFrame({"g": ["a"] * 3, "ts": [T0, T0 + pd.Timedelta(days=5), T0 + pd.Timedelta(days=9)],
                       "y_true": [1] * 3, "y_pred": [1] * 3})
    src = open_frame(df)
    span = fetch_time_span(src, frame_spec(["g"]), RowFilter(time_from="2025-03-02", time_to="2025-03-08"))
    assert span.rows == 1 and span.first == T0 + pd.Timedelta(days=5)
    with pytest.raises(SpecError, match="time from 'last week' is not a date"):
        fetch_time_span(src, frame_spec(["g"]), RowFilter(time_from="last week"))
    with pytest.raises(DataError, match="no rows in the chosen time window"):
        fetch_time_span(src, frame_spec(["g"]), RowFilter(time_from="2026-01-01"))


def test_parse_instant():
    """Dates, datetimes and aware times (to UTC) are accepted; anything else is a SpecError."""
    assert parse_instant("2025-03-01", "now") == T0
    assert parse_instant(pd.Timestamp("2025-03-01 01:00", tz="Europe/Berlin"), "now") == T0
    with pytest.raises(SpecError, match="now 'tomorrow'"):
        parse_instant("tomorrow", "now")
