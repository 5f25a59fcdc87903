"""Tests for the slice search: agreement with `sliceline`, planted effects, control, bad inputs."""

from __future__ import annotations

import copy
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact, rankdata
from statsmodels.stats.proportion import proportion_confint

import fairwatch.connectors.slice_counts as slice_counts
from fairwatch.connectors.demo import DEMO_CONFIG, PLANTED, write_demo
from fairwatch.connectors.slice_counts import bin_labels, fetch_slice_counts, plan_cells
from fairwatch.connectors.source import open_frame, open_source
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.discovery.slices import SliceCounts, find_slices, sliceline_score, top_findings
from fairwatch.metrics.audit.spec import RowFilter, parse_spec

DEMO_ROWS = 200_000
FNR_SLICE = next(p for p in PLANTED if p.kind == "fnr_gap").slice
NOISY_SLICE = next(p for p in PLANTED if p.kind == "noisy_labels").slice


def frame_spec(features: list[str], **slices) -> dict:
    """A config over an in-memory frame with label y, prediction p and optional score s."""
    return {
        "source": {"path": "frame"},
        "columns": {"label": "y", "prediction": "p", "score": "s", "sensitive": features[:1],
                    "features": features[1:]},
        "policy": {"min_support": slices.pop("min_support", 30)},
        "slices": slices,
    }


def synthetic(seed: int, rows: int, cards=(2, 3, 4, 6), base_error: float = 0.2,
              planted: dict | None = None) -> pd.DataFrame:
    """Random categorical features f0.., a label, and a prediction wrong with a given probability."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"f{i}": rng.choice([f"v{j}" for j in range(c)], rows) for i, c in enumerate(cards)})
    p_err = np.full(rows, base_error)
    for cond, extra in (planted or {}).items():
        mask = np.ones(rows, dtype=bool)
        for f, v in cond:
            mask &= (df[f] == v).to_numpy()
        p_err = np.where(mask, p_err + extra, p_err)
    y = (rng.random(rows) < 0.4).astype(int)
    wrong = rng.random(rows) < p_err
    df["y"] = y
    df["p"] = np.where(wrong, 1 - y, y)
    df["s"] = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.15, rows), 0, 1)
    return df


def search(df: pd.DataFrame, features: list[str], **slices):
    """Counts and the slice table of a frame (positive label and prediction 1)."""
    spec = parse_spec(frame_spec(features, **slices))
    counts = fetch_slice_counts(open_frame(df), spec, "1", "1")
    return counts, find_slices(counts, spec)


def row_of(table, slice_) -> pd.Series:
    """The table row of one slice."""
    hit = table.rows[table.rows["slice"].map(lambda s: set(s) == set(slice_))]
    assert len(hit) == 1, f"{slice_} not evaluated"
    return hit.iloc[0]


# --- the demo: planted effects ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory):
    """One demo database for the module."""
    path = tmp_path_factory.mktemp("slices") / "demo.duckdb"
    write_demo(path, rows=DEMO_ROWS, seed=7)
    return path


def demo_table(path, error: str, row_filter: RowFilter | None):
    """The slice table of the demo for one error signal and filter."""
    cfg = copy.deepcopy(DEMO_CONFIG)
    cfg["source"]["path"] = str(path)
    cfg["slices"] = {"error": error}
    spec = parse_spec(cfg)
    src = open_source(spec.source)
    try:
        counts = fetch_slice_counts(src, spec, "true", "true", row_filter)
    finally:
        src.con.close()
    return spec, find_slices(counts, spec)


@pytest.fixture(scope="module")
def fnr_v2(demo_path):
    """False-negative slices of model v2, where the gap is planted."""
    return demo_table(demo_path, "false_negative", RowFilter(model_version="v2"))


def test_planted_fnr_gap_is_a_leading_non_redundant_finding(fnr_v2):
    """The planted slice is found, not collapsed, and leads the intersections of sensitive features."""
    spec, table = fnr_v2
    row = row_of(table, FNR_SLICE)
    assert row["finding"] and not row["redundant"] and row["q_value"] < 1e-6
    assert row["rate"] > 1.6 * row["complement_rate"]
    assert row["diff_ci_low"] > 0
    # Ranked by SliceLine score, the demo's large real error regions (no credit history,
    # unemployed) come first; the planted slice is within the reported top_k of non-redundant
    # findings, near the top of those on sensitive features, and first among their intersections.
    groups = top_findings(table)["group"].tolist()
    assert groups.index(row["group"]) < spec.slices.top_k
    sens = top_findings(table, sensitive_only=True)
    assert sens["group"].tolist().index(row["group"]) < 10
    both = sens[sens["slice"].map(lambda s: len(s) >= 2 and all(f in spec.sensitive for f, _ in s))]
    assert both.iloc[0]["group"] == row["group"]


def test_children_of_the_planted_slice_collapse_under_it(fnr_v2):
    """Most findings that are the planted slice plus a predicate are explained by the planted slice."""
    _, table = fnr_v2
    rows = table.rows
    children = rows[rows["finding"] & rows["slice"].map(lambda s: len(s) == 3 and set(FNR_SLICE) <= set(s))]
    assert len(children) >= 10
    # A few stay: crossed with a feature of its own excess (thin credit history) a child is sharper.
    assert children["redundant"].mean() >= 0.75
    assert (children["parent"] == FNR_SLICE).mean() >= 0.6


def test_planted_fnr_gap_absent_under_v1(demo_path):
    """Under model v1 the slice is like everyone else: not a finding."""
    _, table = demo_table(demo_path, "false_negative", RowFilter(model_version="v1"))
    assert not row_of(table, FNR_SLICE)["finding"]


def test_noisy_label_slice_is_a_misclassification_finding(demo_path):
    """Flipped labels in broker AND south show up as a non-redundant misclassification finding."""
    spec, table = demo_table(demo_path, "misclassification", None)
    row = row_of(table, NOISY_SLICE)
    assert row["finding"] and not row["redundant"] and row["q_value"] < 1e-6
    assert top_findings(table)["group"].tolist().index(row["group"]) < spec.slices.top_k
    assert table.tested == table.evaluated and table.findings > 0 and table.note is None


# --- agreement with the sliceline package ---------------------------------------------------------


@pytest.mark.parametrize(("seed", "alpha", "k", "max_l", "min_sup"), [
    (0, 0.95, 10, 3, 20), (1, 0.9, 5, 2, 30), (2, 0.99, 10, 4, 10), (3, 0.85, 8, 3, 50),
])
def test_top_k_equals_sliceline_package(seed, alpha, k, max_l, min_sup):
    """Our top-k by score (score > 0, n >= min_sup, ties kept) equals Slicefinder's, scores too."""
    from sliceline.slicefinder import Slicefinder

    features = ["f0", "f1", "f2", "f3"]
    df = synthetic(seed, 3000, planted={(("f1", "v0"), ("f2", "v1")): 0.25, (("f3", "v2"),): 0.1,
                                        (("f0", "v1"),): 0.15})
    df.loc[df.index % 17 == 0, "f2"] = None  # NULLs are a value of their own
    counts, table = search(df, features, alpha=alpha, max_depth=max_l, min_support=min_sup)
    rows = table.rows[(table.rows["score"] > 0) & (table.rows["n"] >= min_sup)]
    ours = rows[rankdata(-rows["score"].to_numpy(), method="min") <= k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder = Slicefinder(alpha=alpha, k=k, max_l=max_l, min_sup=min_sup, verbose=False)
        finder.fit(df[features].fillna("(missing)"), (df["y"] != df["p"]).to_numpy(float))
    theirs = {
        tuple((f, v) for f, v in zip(features, top) if v is not None): stats["slice_score"]
        for top, stats in zip(finder.top_slices_, finder.top_slices_statistics_)
    }
    assert theirs  # a comparison of something
    assert dict(zip(ours["slice"], ours["score"])) == pytest.approx(theirs, rel=1e-12)


def test_sliceline_score_formula():
    """alpha * (rate / average - 1) - (1 - alpha) * (N / n - 1), NaN without errors."""
    got = sliceline_score([100, 50], [30, 5], 1000, 100, 0.9)
    assert got == pytest.approx([0.9 * (0.3 / 0.1 - 1) - 0.1 * 9, 0.9 * (0.1 / 0.1 - 1) - 0.1 * 19])
    assert np.isnan(sliceline_score([100], [0], 1000, 0, 0.9)).all()


# --- statistics, redundancy, error signals ----------------------------------------------------------


def test_statistics_of_a_slice_match_statsmodels():
    """Rate, Wilson interval, complement and exact p-value of one slice, against statsmodels and scipy."""
    df = synthetic(5, 4000, planted={(("f1", "v0"),): 0.2})
    counts, table = search(df, ["f0", "f1", "f2", "f3"])
    row = row_of(table, [("f1", "v0")])
    wrong = df["y"] != df["p"]
    inside = df["f1"] == "v0"
    n, e = int(inside.sum()), int(wrong[inside].sum())
    cn, ce = len(df) - n, int(wrong.sum()) - e
    lo, hi = proportion_confint(e, n, method="wilson")
    assert (row["n"], row["errors"], row["complement_n"]) == (n, e, cn)
    assert (row["rate"], row["ci_low"], row["ci_high"]) == pytest.approx((e / n, lo, hi))
    assert row["difference"] == pytest.approx(e / n - ce / cn)
    # Fisher's exact test, two-sided by doubling the smaller one-sided p-value.
    table_2x2 = [[e, n - e], [ce, cn - ce]]
    one_sided = min(fisher_exact(table_2x2, alternative="greater").pvalue,
                    fisher_exact(table_2x2, alternative="less").pvalue)
    assert row["p_value"] == pytest.approx(min(1.0, 2 * one_sided), rel=1e-9)
    assert row["diff_ci_low"] < row["difference"] < row["diff_ci_high"]
    assert table.tested == len(table.rows)


def test_redundant_children_collapse_under_the_slice_that_explains_them():
    """f1=v0 AND f2=v1 carries the gap: its parents' gaps are diluted, its children add nothing."""
    df = synthetic(11, 30_000, planted={(("f1", "v0"), ("f2", "v1")): 0.3})
    _, table = search(df, ["f0", "f1", "f2", "f3"])
    planted = (("f1", "v0"), ("f2", "v1"))
    row = row_of(table, planted)
    assert row["finding"] and not row["redundant"] and row["parent"] is None
    children = table.rows[table.rows["slice"].map(lambda s: len(s) == 3 and set(planted) <= set(s))]
    found = children[children["finding"]]
    assert len(found) >= 3
    assert found["redundant"].all() and (found["parent"] == planted).all()
    assert top_findings(table, 1).iloc[0]["slice"] == planted
    # Non-findings are never collapsed: only a gap needs explaining.
    assert not table.rows.loc[~table.rows["finding"], "redundant"].any()


@pytest.mark.parametrize("error", ["false_negative", "false_positive"])
def test_rate_signals_find_their_own_planted_gap(error):
    """Errors planted among positives (or negatives) only: each signal finds its own."""
    rng = np.random.default_rng(3)
    df = synthetic(3, 20_000, base_error=0.0)
    target = 1 if error == "false_negative" else 0
    hit = (df["f1"] == "v1").to_numpy() & (df["y"] == target).to_numpy()
    noise = rng.random(len(df)) < np.where(hit, 0.35, 0.12)
    df["p"] = np.where(noise, 1 - df["y"], df["y"])
    _, table = search(df, ["f0", "f1", "f2"], error=error)
    assert top_findings(table, 1).iloc[0]["slice"] == (("f1", "v1"),)
    other = "false_positive" if error == "false_negative" else "false_negative"
    _, table = search(df, ["f0", "f1", "f2"], error=other)
    assert not row_of(table, [("f1", "v1")])["finding"]


def test_score_loss_finds_a_miscalibrated_slice():
    """A slice whose scores are far off the label has the worst squared loss, with t intervals."""
    df = synthetic(4, 10_000)
    bad = (df["f2"] == "v3").to_numpy()
    df.loc[bad, "s"] = 1 - df.loc[bad, "s"]
    _, table = search(df, ["f0", "f1", "f2"], error="score_loss")
    top = top_findings(table, 1).iloc[0]
    assert top["slice"] == (("f2", "v3"),)
    loss = (df["s"] - df["y"]) ** 2
    assert top["rate"] == pytest.approx(loss[bad].mean())
    assert top["complement_rate"] == pytest.approx(loss[~bad].mean())
    assert top["ci_low"] < top["rate"] < top["ci_high"]
    assert top["diff_ci_low"] > 0


def test_labels_compared_after_normalisation():
    """'1.0'/'0.0' text labels and 'True'/'False' predictions map to 1/0 as binarize maps them."""
    df = synthetic(8, 2000)
    want_counts, _ = search(df, ["f0", "f1"])
    df["y"] = df["y"].map({1: "1.0", 0: "0.0"})
    df["p"] = df["p"].map({1: "True", 0: "False"})
    spec = parse_spec(frame_spec(["f0", "f1"]))
    got = fetch_slice_counts(open_frame(df), spec, "1", "true")
    pd.testing.assert_frame_equal(got.frame, want_counts.frame)


def test_prediction_from_score_threshold():
    """Without a prediction column the decision is score >= threshold."""
    df = synthetic(9, 2000)
    cfg = frame_spec(["f0", "f1"])
    del cfg["columns"]["prediction"]
    cfg["columns"]["threshold"] = 0.5
    spec = parse_spec(cfg)
    counts = fetch_slice_counts(open_frame(df), spec, "1", "1")
    assert counts.total_errors == ((df["s"] >= 0.5).astype(int) != df["y"]).sum()


def test_cells_split_into_subsets_give_the_same_counts(monkeypatch):
    """Past the cell budget the features are covered by subsets; the counts do not change."""
    df = synthetic(6, 3000, cards=(2, 3, 4, 5, 6))
    df.loc[df.index % 7 == 0, "f3"] = None
    features = ["f0", "f1", "f2", "f3", "f4"]
    whole, _ = search(df, features, min_support=5)
    monkeypatch.setattr(slice_counts, "CELL_BUDGET", 40)
    split, _ = search(df, features, min_support=5)
    pd.testing.assert_frame_equal(split.frame, whole.frame)
    assert (split.total_n, split.total_errors) == (whole.total_n, whole.total_errors)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_plan_cells_covers_every_combination(depth):
    """Every combination of `depth` features lies in a subset, and each subset keeps to the budget."""
    cards = [2, 3, 4, 5, 6, 8, 10, 12]
    subsets = plan_cells(cards, depth, rows=10**9, budget=2000)
    assert len(subsets) > 1
    for combo in itertools.combinations(range(len(cards)), depth):
        assert any(set(combo) <= set(s) for s in subsets)
    for s in subsets:
        assert np.prod([cards[i] for i in s]) <= 2000
    assert plan_cells(cards, 3, rows=500, budget=2000) == [tuple(range(8))]


def test_numeric_feature_is_binned_with_range_labels():
    """A many-valued number gets quantile bins labelled by their range; NULL is '(missing)'."""
    df = synthetic(10, 5000)
    df["amount"] = np.arange(5000, dtype=float) * 10
    df.loc[::50, "amount"] = None
    counts, table = search(df, ["f0", "amount"], bins=5)
    (name, edges), = counts.bin_edges
    assert name == "amount" and len(edges) == 4
    labels = bin_labels(10.0, edges, 49990.0)  # row 0 (amount 0) is one of the NULLs
    values = set(counts.frame["amount"].dropna())
    assert values == set(labels) | {"(missing)"}
    assert labels[0].startswith("[10, ") and labels[-1].endswith(", 49990]")
    sizes = counts.frame[counts.frame["f0"].isna() & counts.frame["amount"].isin(labels)]["rows"]
    assert sizes.min() >= 900  # quantile bins: about a fifth of the rows each


# --- control: no effect, no findings ------------------------------------------------------------


def test_no_findings_without_an_effect_in_19_of_20_seeds():
    """On data with no planted effect the search flags nothing (at FDR 5%) in at least 19 of 20 seeds."""
    clean = 0
    for seed in range(20):
        _, table = search(synthetic(100 + seed, 3000), ["f0", "f1", "f2", "f3"])
        clean += table.findings == 0
    assert clean >= 19


# --- bad inputs -----------------------------------------------------------------------------------


def test_string_feature_with_50k_values_is_refused_clearly():
    """An id-like text column cannot be searched: a one-line message names it and the fix."""
    df = synthetic(12, 60_000)
    df["customer"] = [f"c{i}" for i in range(len(df))]
    with pytest.raises(DataError, match=r"feature customer has about [\d,]+ distinct values.*max_groups") as err:
        search(df, ["f0", "customer"])
    assert "\n" not in str(err.value) and "drop it from [columns] features" in str(err.value)


def test_numeric_feature_with_50k_values_is_binned():
    """An id-like number is binned instead, so its slices stay few."""
    df = synthetic(13, 60_000)
    df["account"] = np.arange(len(df))
    counts, _ = search(df, ["f0", "account"], bins=4)
    assert counts.frame["account"].nunique() == 4


def test_max_depth_above_the_features_is_clamped_and_said():
    """Depth 3 over two features searches depth 2 and says so."""
    counts, table = search(synthetic(14, 2000), ["f0", "f1"], max_depth=3)
    assert counts.max_depth == 2 and table.max_depth == 2
    assert "max_depth 3 is more than the 2 feature(s)" in table.note
    assert table.rows["depth"].max() == 2


def test_no_errors_at_all_means_no_findings_and_a_note():
    """A perfect model: every slice has rate 0, nothing is flagged, the note says why."""
    df = synthetic(15, 2000)
    df["p"] = df["y"]
    _, table = search(df, ["f0", "f1"], max_depth=2)
    assert table.findings == 0 and table.total_errors == 0
    assert table.note.startswith("No errors at all")
    assert table.rows["score"].isna().all() and (table.rows["rate"] == 0).all()


def test_zero_rows_after_the_filter_is_a_data_error(demo_path):
    """A model version that does not exist leaves no rows: a DataError, not an empty table."""
    cfg = copy.deepcopy(DEMO_CONFIG)
    cfg["source"]["path"] = str(demo_path)
    spec = parse_spec(cfg)
    src = open_source(spec.source)
    try:
        with pytest.raises(DataError, match="no rows to search"):
            fetch_slice_counts(src, spec, "true", "true", RowFilter(model_version="v9"))
    finally:
        src.con.close()


def test_no_actual_positives_is_a_data_error():
    """False negatives need actual positives; without any the message says what to change."""
    df = synthetic(16, 500)
    df["y"] = 0
    with pytest.raises(DataError, match="no rows count toward the false negative signal"):
        search(df, ["f0"], error="false_negative")


def test_non_binary_label_is_a_data_error():
    """A continuous column given as the label is refused before counting."""
    df = synthetic(17, 2000)
    df["y"] = np.arange(len(df))
    with pytest.raises(DataError, match="label column y has about"):
        search(df, ["f0"])


def test_feature_named_like_a_count_column_is_refused():
    """A feature called 'n' would be ambiguous in the counts frame."""
    df = synthetic(18, 200).rename(columns={"f1": "n"})
    with pytest.raises(DataError, match="share a name with a slice count column"):
        search(df, ["f0", "n"])


def test_slice_counts_is_frozen():
    """Results are immutable."""
    counts, _ = search(synthetic(19, 300), ["f0"])
    assert isinstance(counts, SliceCounts)
    with pytest.raises(AttributeError):
        counts.total_n = 0  # type: ignore[misc]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.integers(-5, 40).map(float), st.floats(-1e6, 1e6, allow_nan=False),
                                 st.just(float("nan")), st.none()), min_size=60, max_size=400),
       bins=st.integers(2, 7))
def test_bin_edges_are_the_values_of_the_quantile_ranks(values, bins):
    """Property: edge j is the value of rank ceil(j*m/bins) among the m values that are neither NULL nor NaN
    (DuckDB's quantile_disc), with repeated edges and an edge at the minimum dropped; ties and NaN included."""
    df = synthetic(3, len(values))
    df["x"] = np.array([np.nan if v is None else v for v in values], dtype=float)
    valid = np.sort(np.array([v for v in values if v is not None and v == v], dtype=float))
    if len(np.unique(valid)) <= bins + 2:
        return  # few values stay categories (decided on an approximate distinct count: keep off the boundary)
    counts, _ = search(df, ["f0", "x"], bins=bins)
    (name, edges), = counts.bin_edges
    ranks = [-(-(j * len(valid)) // bins) for j in range(1, bins)]
    expected = tuple(sorted({valid[r - 1] for r in ranks if valid[r - 1] > valid[0]}))
    assert name == "x" and edges == expected
