"""Drill-down queries against pandas on the raw rows: slice cells, value counts with the search's bins, a page of
example rows without hidden columns, and the analysis of a slice against the search's own numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import drill_down, fetch_example_rows, fetch_slice_cells, fetch_value_counts, visible_columns
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.presentation.slice_views import (REST_SIDE, SLICE_SIDE, analysis_lines, confusion_table, distribution_points,
                                 metric_versus_points, slice_test)
from fairwatch.metrics.audit.spec import RowFilter, parse_spec

N = 4000


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    df = pd.DataFrame({
        "uid": np.arange(N) + 1000,
        "ts": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24, N), unit="h"),
        "mv": rng.choice(["a", "b"], N),
        "sex": rng.choice(["f", "m"], N).astype(object),
        "region": rng.choice(["north", "south", "east"], N, p=[0.5, 0.3, 0.2]),
        "amount": rng.gamma(2.0, 500.0, N).round(2),
        "y": rng.choice(["yes", "no"], N).astype(object),
        "p": rng.choice(["yes", "no"], N),
        "s": rng.random(N),
        "secret": [f"s{i}" for i in range(N)],
    })
    df.loc[rng.random(N) < 0.05, "sex"] = None
    df.loc[rng.random(N) < 0.2, "y"] = None  # unlabelled rows
    df.loc[rng.random(N) < 0.03, "amount"] = np.nan
    df.loc[rng.random(N) < 0.02, "s"] = np.nan
    worse = (df["region"] == "south") & (df["sex"] == "f") & df["y"].notna() & (rng.random(N) < 0.3)
    df.loc[worse, "p"] = np.where(df.loc[worse, "y"] == "yes", "no", "yes")  # a worse slice for the search to find
    return df


def _spec(**extra):
    raw = {"source": {"path": "frame"},
           "columns": {"label": "y", "positive_label": "yes", "prediction": "p", "score": "s", "sensitive": ["sex"],
                       "features": ["region", "amount"], "id": "uid", "time": "ts", "model_version": "mv"},
           "policy": {"min_support": 20}, "slices": {"bins": 4, "max_depth": 2},
           "privacy": {"hidden_columns": ["secret", "id"]}}
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_spec(raw)


@pytest.fixture(scope="module")
def src(rows):
    return open_frame(rows)


@pytest.fixture(scope="module")
def snap(src):
    return run_audit(_spec(), src=src)


def _in(rows: pd.DataFrame, slice_) -> pd.Series:
    """The pandas oracle of a slice predicate on text values ('(missing)' = null)."""
    mask = pd.Series(True, index=rows.index)
    for col, value in slice_:
        mask &= rows[col].isna() if value == "(missing)" else rows[col].astype(str).eq(value) & rows[col].notna()
    return mask


def test_cells_match_pandas_counts_and_score_sums(rows, src):
    slice_ = (("sex", "(missing)"), ("region", "north"))
    cells = fetch_slice_cells(src, _spec(), slice_)
    assert int(cells["n"].sum()) == N
    inside = _in(rows, slice_)
    got = cells[cells["in_slice"]].fillna({"label_raw": "NA"}).groupby(["label_raw", "pred_raw"])["n"].sum()
    want = rows[inside].fillna({"y": "NA"}).groupby(["y", "p"]).size()
    assert got.sort_index().tolist() == want.sort_index().tolist() and int(got.sum()) == int(inside.sum()) > 0
    scored = rows[inside & rows["s"].notna()]
    assert int(cells.loc[cells["in_slice"], "scored"].sum()) == len(scored)
    for k in (1, 2, 4):
        assert cells.loc[cells["in_slice"], f"s{k}"].sum() == pytest.approx((scored["s"] ** k).sum())


def test_row_filter_applies_to_the_cells(rows, src):
    cells = fetch_slice_cells(src, _spec(), (("region", "east"),), RowFilter(model_version="b"))
    assert int(cells["n"].sum()) == int((rows["mv"] == "b").sum())
    assert int(cells.loc[cells["in_slice"], "n"].sum()) == int(((rows["mv"] == "b") & (rows["region"] == "east")).sum())


def test_value_counts_bin_numbers_like_the_search_and_a_range_label_selects_its_rows(rows, src, snap):
    values = fetch_value_counts(src, _spec(), ())
    assert list(dict.fromkeys(values["feature"])) == ["sex", "region", "amount"]  # spec order
    assert not values["in_slice"].any()
    sex = values[values["feature"] == "sex"].set_index("value")["n"]
    assert sex.to_dict() == {"(missing)": int(rows["sex"].isna().sum()), **rows["sex"].value_counts().to_dict()}
    bins = values[values["feature"] == "amount"]
    searched = {v for s in snap.slices.rows["slice"] for f, v in s if f == "amount"}
    labels = set(bins["value"]) - {"(missing)"}
    assert len(labels) == 4 and labels == searched - {"(missing)"}  # exactly the search's range labels
    assert int(bins.loc[bins["value"] == "(missing)", "n"].sum()) == int(rows["amount"].isna().sum())
    assert int(bins["n"].sum()) == N
    for label, count in zip(bins["value"], bins["n"]):
        if label == "(missing)":
            continue
        lo, hi = (float(x) for x in label.strip("[]()").split(","))
        upper = rows["amount"] <= hi if label.endswith("]") else rows["amount"] < hi
        assert int(((rows["amount"] >= lo) & upper).sum()) == count, label
        cells = fetch_slice_cells(src, _spec(), (("amount", label),))
        assert int(cells.loc[cells["in_slice"], "n"].sum()) == count, label


def test_value_counts_of_a_slice_split_the_other_features_by_side(rows, src):
    slice_ = (("region", "south"),)
    values = fetch_value_counts(src, _spec(), slice_)
    assert set(values["feature"]) == {"sex", "amount"}
    inside = _in(rows, slice_)
    got = values[values["feature"] == "sex"].set_index(["value", "in_slice"])["n"]
    for flag in (True, False):
        part = rows[inside == flag]
        assert got.loc[("(missing)", flag)] == int(part["sex"].isna().sum())
        for value, count in part["sex"].value_counts().items():
            assert got.loc[(value, flag)] == count
    points = distribution_points(values)
    shares = points.groupby(["feature", "side_label"])["share"].sum()
    assert np.allclose(shares.loc["sex"].to_numpy(), 1.0)
    assert (points["ci_low"] <= points["share"]).all() and (points["share"] <= points["ci_high"]).all()
    assert set(points["side_label"]) == {SLICE_SIDE, REST_SIDE}


def test_example_rows_hide_columns_stay_in_the_slice_and_page_in_a_stable_order(rows, src):
    spec = _spec()
    slice_ = (("sex", "f"), ("region", "south"))
    inside = rows[_in(rows, slice_)]
    first = fetch_example_rows(src, spec, slice_, page=1, page_size=30)
    assert "secret" not in first.columns and "uid" not in first.columns  # named, and the id by its role
    assert {"sex", "region", "y", "p", "s", "ts"} <= set(first.columns)
    assert (first["sex"] == "f").all() and (first["region"] == "south").all()
    pages = [fetch_example_rows(src, spec, slice_, page=k, page_size=30) for k in range(1, len(inside) // 30 + 3)]
    everything = pd.concat(pages, ignore_index=True)
    assert len(everything) == len(inside)
    want = inside.assign(_u=inside["y"].isna()).sort_values(["_u", "ts", "uid"], ascending=[True, False, True])
    assert everything["ts"].tolist() == want["ts"].tolist()
    assert everything["y"].notna().tolist() == sorted(everything["y"].notna().tolist(), reverse=True)


def test_a_misspelt_hidden_column_shows_no_rows(src):
    spec = _spec(privacy={"hidden_columns": ["secrte"]})
    with pytest.raises(DataError, match="secrte"):
        visible_columns(src, spec)
    with pytest.raises(DataError, match="secrte"):
        fetch_example_rows(src, spec, (("region", "south"),))


def test_bad_slices_are_one_line_errors_and_values_are_parameters(src, snap):
    spec = _spec()
    with pytest.raises(DataError, match="which the source does not have"):
        fetch_slice_cells(src, spec, (("nope", "x"),))
    with pytest.raises(DataError, match="not a sensitive feature or feature"):
        fetch_slice_cells(src, spec, (("secret", "s1"),))
    with pytest.raises(DataError, match="no rows match"):
        drill_down(src, spec, snap, (("region", "south' OR 1=1 --"),))
    with pytest.raises(DataError, match="no rows match"):
        drill_down(src, spec, snap, (("sex", "f"), ("region", "west")))
    with pytest.raises(DataError, match="names a column twice"):
        drill_down(src, spec, snap, (("region", "north"), ("region", "south")))


def test_a_search_slice_shows_the_search_numbers_whatever_the_order_it_is_given_in(src, snap):
    spec = _spec()
    finding = next(f for f in snap.findings if len(f.slice) == 2)
    given = tuple((f.upper(), v) for f, v in reversed(finding.slice))  # another order, another spelling
    a = drill_down(src, spec, snap, given)
    assert a.slice == finding.slice and a.origin == "finding"
    assert (int(a.error["n"]), a.error["rate"], a.error["q_value"]) == (finding.n, finding.value, finding.q_value)
    assert (a.need, a.message) == (finding.need, finding.message)
    conf = confusion_table(a)
    assert int(conf["n (labelled, with a decision)"].iloc[0]) == finding.n
    points = metric_versus_points(a, "#000", "#555")
    assert points.loc[points["side"] == "own", "flag"].iloc[0]  # the searched error: significantly worse
    assert (points["ci_low"] <= points["value"] + 1e-12).all()


def test_a_hand_slice_is_tested_once_and_diagnosed(rows, src, snap):
    spec = _spec()
    slice_ = (("sex", "m"), ("region", "east"), ("amount", "(missing)"))  # deeper than max_depth 2
    a = drill_down(src, spec, snap, slice_)
    assert a.origin == "hand" and "p = " in a.test_note
    inside = _in(rows, slice_)
    assert a.rows == int(inside.sum()) and a.rest_rows == N - a.rows
    assert len(a.quality) and all(tuple(s) == slice_ for s in a.quality["slice"])  # counted on demand
    assert a.message


@pytest.mark.parametrize("error", ["misclassification", "false_negative", "false_positive", "score_loss"])
def test_the_error_signal_of_a_slice_matches_pandas(rows, src, snap, error):
    spec = _spec(slices={"error": error})
    slice_ = (("region", "south"),)
    cells = fetch_slice_cells(src, spec, slice_)
    got = slice_test(slice_, cells, "yes", "yes", spec).rows.iloc[0]
    lab = rows[rows["y"].notna()]
    y, yhat = lab["y"] == "yes", lab["p"] == "yes"
    if error == "score_loss":
        lab = lab[lab["s"].notna()]
        loss = (lab["s"] - (lab["y"] == "yes")) ** 2
        part = loss[lab["region"] == "south"]
        assert int(got["n"]) == len(part)
        assert got["errors"] == pytest.approx(part.sum()) and got["errors_sq"] == pytest.approx((part ** 2).sum())
        return
    den = {"misclassification": y | ~y, "false_negative": y, "false_positive": ~y}[error]
    wrong = {"misclassification": y != yhat, "false_negative": ~yhat, "false_positive": yhat}[error]
    south = lab["region"] == "south"
    assert int(got["n"]) == int((den & south).sum()) and int(got["errors"]) == int((den & wrong & south).sum())
    assert int(got["complement_n"]) == int((den & ~south).sum())


def test_a_score_loss_audit_drills_down_with_means_not_rates(src):
    spec = _spec(slices={"error": "score_loss"})
    snap = run_audit(spec, src=src)
    a = drill_down(src, spec, snap, (("region", "south"),))
    assert a.origin in ("finding", "inconclusive", "explained") and a.metric == "score_loss"
    assert "mean squared score loss" in analysis_lines(a)[1] and "%" not in analysis_lines(a)[1].split(" is ")[1][:8]
    points = metric_versus_points(a, "#000", "#555")
    assert "Error rate (searched)" not in set(points["metric_label"])  # a mean loss is not drawn on a rate axis
