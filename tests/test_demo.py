"""Tests for connectors.demo: schema, determinism, planted effects and safe writing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import recall_score, roc_auc_score

from fairwatch.connectors import demo
from fairwatch.connectors.demo import DEMO_CONFIG, PLANTED, DemoSummary, PlantedEffect, write_demo

ROWS = 120_000
SEED = 7

EXPECTED_SCHEMA = {
    "predictions": [
        ("request_id", "BIGINT"),
        ("ts", "TIMESTAMP"),
        ("model_version", "VARCHAR"),
        ("sex", "VARCHAR"),
        ("race_ethnicity", "VARCHAR"),
        ("age_band", "VARCHAR"),
        ("region", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("employment", "VARCHAR"),
        ("income_band", "VARCHAR"),
        ("loan_purpose", "VARCHAR"),
        ("credit_history_band", "VARCHAR"),
        ("loan_amount", "DOUBLE"),
        ("applicant_income", "DOUBLE"),
        ("score", "DOUBLE"),
        ("approved", "BOOLEAN"),
    ],
    "labels": [("request_id", "BIGINT"), ("repaid", "BOOLEAN"), ("labelled_at", "TIMESTAMP")],
    "ground_truth": [
        ("request_id", "BIGINT"),
        ("true_repaid", "BOOLEAN"),
        ("label_flipped", "BOOLEAN"),
    ],
}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, Path]:
    """Write one demo database for the whole module."""
    path = tmp_path_factory.mktemp("demo") / "nested" / "demo.duckdb"
    return write_demo(path, rows=ROWS, seed=SEED), path


@pytest.fixture(scope="module")
def con(demo_db: tuple[DemoSummary, Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the module's demo database."""
    connection = duckdb.connect(str(demo_db[1]), read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every prediction with its recorded label (NA if unlabelled) and the truth."""
    return con.sql(
        """
        SELECT p.*, l.repaid, l.labelled_at, g.true_repaid, g.label_flipped
        FROM predictions p
        LEFT JOIN labels l USING (request_id)
        JOIN ground_truth g USING (request_id)
        ORDER BY request_id
        """
    ).df()


@pytest.fixture(scope="module")
def labelled(rows: pd.DataFrame) -> pd.DataFrame:
    """Only the rows whose outcome has been recorded."""
    out = rows[rows["repaid"].notna()].copy()
    out["repaid"] = out["repaid"].astype(bool)
    return out


def fnr(frame: pd.DataFrame, label: str = "repaid") -> float:
    """False-negative rate (repaid but not approved), via sklearn's recall."""
    return 1.0 - recall_score(frame[label].astype(bool), frame["approved"].astype(bool))


def fnr_ratio(frame: pd.DataFrame, mask: pd.Series, label: str = "repaid") -> float:
    """FNR of the masked rows divided by the FNR of all other rows."""
    return fnr(frame[mask], label) / fnr(frame[~mask], label)


def table_hash(path: Path, table: str) -> str:
    """Content hash of a table ordered by request_id."""
    with duckdb.connect(str(path), read_only=True) as c:
        frame = c.sql(f"SELECT * FROM {table} ORDER BY request_id").df()
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return hashlib.sha256(digest).hexdigest()


def planted(kind: str) -> PlantedEffect:
    """The planted effect of one kind."""
    (effect,) = [p for p in PLANTED if p.kind == kind]
    return effect


def slice_mask(frame: pd.DataFrame, effect: PlantedEffect) -> pd.Series:
    """Rows belonging to a planted effect's slice."""
    mask = pd.Series(True, index=frame.index)
    for column, value in effect.slice_dict().items():
        mask &= frame[column].eq(value).fillna(False).astype(bool)
    return mask


# --- shape ------------------------------------------------------------------------


def test_summary_matches_file(demo_db: tuple[DemoSummary, Path], con) -> None:
    """The summary reports what was written, and nothing is left beside the file."""
    summary, path = demo_db
    assert summary == DemoSummary(
        path=str(path), rows=ROWS, labelled_rows=summary.labelled_rows, seed=SEED
    )
    assert con.execute("SELECT count(*) FROM labels").fetchall()[0][0] == summary.labelled_rows
    assert sorted(os.listdir(path.parent)) == ["demo.duckdb"]


def test_schema(con) -> None:
    """Exactly the three tables with the documented column names and types."""
    tables = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    assert tables == set(EXPECTED_SCHEMA)
    for table, columns in EXPECTED_SCHEMA.items():
        got = [(r[0], r[1]) for r in con.sql(f"DESCRIBE {table}").fetchall()]
        assert got == columns, table


def test_counts_and_ids(con) -> None:
    """Row counts, unique ids, labels a subset of predictions, truth for every row."""
    def counts(table: str) -> tuple[int, int]:
        """Row count and distinct id count of a table."""
        sql = f"SELECT count(*), count(DISTINCT request_id) FROM {table}"
        return con.execute(sql).fetchall()[0]

    assert counts("predictions") == (ROWS, ROWS)
    assert counts("ground_truth") == (ROWS, ROWS)
    n_lab, d_lab = counts("labels")
    assert n_lab == d_lab
    orphans = con.execute(
        "SELECT count(*) FROM labels l ANTI JOIN predictions p USING (request_id)"
    ).fetchall()[0][0]
    assert orphans == 0


def test_values_and_versions(rows: pd.DataFrame) -> None:
    """Categories, score range, approval threshold and the v1 -> v2 switch."""
    assert set(rows["sex"]) == {"female", "male"}
    assert set(rows["race_ethnicity"].dropna()) == {
        "White",
        "Black",
        "Hispanic",
        "Asian",
        "Pacific Islander",
    }
    assert 0.005 < rows["race_ethnicity"].isna().mean() < 0.015
    assert set(rows["age_band"]) == {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert rows["region"].nunique() == 5
    assert set(rows["channel"]) == {"branch", "online", "mobile", "broker"}
    assert set(rows["employment"].dropna()) == {
        "salaried",
        "self-employed",
        "unemployed",
        "retired",
    }
    assert rows["income_band"].nunique() == 5
    assert 5 <= rows["loan_purpose"].nunique() <= 6
    assert set(rows["credit_history_band"]) == {"none", "thin", "fair", "good", "excellent"}
    for column in ("sex", "age_band", "region", "channel", "loan_purpose", "credit_history_band"):
        assert rows[column].notna().all(), column
    assert (rows["loan_amount"] > 0).all()
    assert rows["score"].between(0, 1).all()
    assert (rows["approved"] == (rows["score"] >= 0.5)).all()

    assert rows["ts"].min() >= pd.Timestamp("2025-01-01")
    assert rows["ts"].max() < pd.Timestamp("2026-01-01")
    switch = pd.Timestamp("2025-07-01")
    assert (rows.loc[rows["ts"] < switch, "model_version"] == "v1").all()
    assert (rows.loc[rows["ts"] >= switch, "model_version"] == "v2").all()
    assert set(rows["model_version"]) == {"v1", "v2"}


def test_score_is_roughly_calibrated(rows: pd.DataFrame) -> None:
    """Within each score decile the true repayment rate is close to the mean score."""
    bins = pd.cut(rows["score"], np.linspace(0, 1, 11))
    table = rows.groupby(bins, observed=True).agg(
        n=("score", "size"), score=("score", "mean"), truth=("true_repaid", "mean")
    )
    table = table[table["n"] >= 500]
    assert (table["score"] - table["truth"]).abs().max() < 0.03
    assert roc_auc_score(rows["true_repaid"], rows["score"]) > 0.7


def test_deterministic_per_seed(tmp_path: Path) -> None:
    """Same seed gives identical tables; another seed gives different ones."""
    a = write_demo(tmp_path / "a.duckdb", rows=20_000, seed=3).path
    b = write_demo(tmp_path / "b.duckdb", rows=20_000, seed=3).path
    c = write_demo(tmp_path / "c.duckdb", rows=20_000, seed=4).path
    for table in EXPECTED_SCHEMA:
        assert table_hash(Path(a), table) == table_hash(Path(b), table), table
    assert table_hash(Path(a), "predictions") != table_hash(Path(c), "predictions")


# --- planted effects ------------------------------------------------------------------


def test_planted_catalogue() -> None:
    """PLANTED lists each kind once, with slices over real columns and values."""
    kinds = [p.kind for p in PLANTED]
    assert sorted(kinds) == sorted(
        ["fnr_gap", "too_small", "noisy_labels", "missing_values", "falling_share"]
    )
    assert len({hash(p) for p in PLANTED}) == len(PLANTED)
    for effect in PLANTED:
        assert effect.description and isinstance(effect.slice_dict(), dict)
    assert planted("fnr_gap").slice_dict() == {"race_ethnicity": "Black", "age_band": "18-24"}
    assert planted("fnr_gap").model_version == "v2"
    assert set(planted("missing_values").columns) == {
        "employment",
        "income_band",
        "applicant_income",
    }


def test_planted_slices_exist(rows: pd.DataFrame) -> None:
    """Every planted slice names existing columns and matches some rows."""
    for effect in PLANTED:
        assert set(effect.slice_dict()) <= set(rows.columns), effect.kind
        assert slice_mask(rows, effect).sum() > 0, effect.kind


def test_fnr_gap_intersectional_v2_only(labelled: pd.DataFrame) -> None:
    """The slice's FNR is >= 1.5x the rest under v2, similar under v1, diluted per attribute."""
    effect = planted("fnr_gap")
    v1 = labelled[labelled["model_version"] == "v1"]
    v2 = labelled[labelled["model_version"] == "v2"]
    ratio_v2 = fnr_ratio(v2, slice_mask(v2, effect))
    ratio_v1 = fnr_ratio(v1, slice_mask(v1, effect))
    assert ratio_v2 >= 1.5
    assert 0.75 <= ratio_v1 <= 1.35
    for column, value in effect.slice_dict().items():
        single = fnr_ratio(v2, v2[column].eq(value).fillna(False).astype(bool))
        assert single < 1.35, column
        assert ratio_v2 - single > 0.5, column


def test_too_small_group(rows: pd.DataFrame, labelled: pd.DataFrame) -> None:
    """The tiny group: from 10 November on, mostly unlabelled, too few labels to judge; labelling settles it."""
    effect = planted("too_small")
    mask = slice_mask(rows, effect)
    assert mask.sum() == min(200, ROWS // 750)
    assert rows.loc[mask, "ts"].min() >= pd.Timestamp("2025-11-10")
    recorded = rows["repaid"].notna()
    # Mostly delayed labels: a pool of unlabelled rows several times the labelled ones.
    assert 0.1 <= recorded[mask].mean() <= 0.35
    # The +0.17 gap is planted exactly (to one row) among its labelled and its pending repaying applicants.
    rest = fnr(rows[~mask], "true_repaid")
    for part in (recorded, ~recorded):
        positives = int((mask & part & rows["true_repaid"]).sum())
        gap = fnr(rows[mask & part], "true_repaid") - rest
        assert abs(gap - 0.17) <= 0.5 / positives + 1e-9, (gap, positives)
    # With the recorded labels it cannot be judged: fewer repaying applicants than min_support ...
    lab_mask = slice_mask(labelled, effect)
    assert 10 <= (lab_mask & labelled["repaid"]).sum() < DEMO_CONFIG["policy"]["min_support"]
    # ... while with every row at its true outcome the gap is significant even at a Bonferroni level over
    # a thousand comparisons (the audit's family is about that size).
    pos = rows[rows["true_repaid"]]
    declined = ~pos["approved"].astype(bool)
    in_group = slice_mask(pos, effect)
    table = [[int((declined & in_group).sum()), int((~declined & in_group).sum())],
             [int((declined & ~in_group).sum()), int((~declined & ~in_group).sum())]]
    assert stats.fisher_exact(table).pvalue < 0.05 / 1000


def test_noisy_labels(labelled: pd.DataFrame) -> None:
    """~20% flipped labels in the slice, none elsewhere; the score still tracks the truth."""
    mask = slice_mask(labelled, planted("noisy_labels"))
    flipped = labelled["label_flipped"].astype(bool)
    assert 0.17 <= flipped[mask].mean() <= 0.23
    assert flipped[~mask].sum() == 0
    assert (labelled["repaid"] == (labelled["true_repaid"] ^ flipped)).all()
    inside, outside = labelled[mask], labelled[~mask]
    auc_truth_in = roc_auc_score(inside["true_repaid"], inside["score"])
    auc_truth_out = roc_auc_score(outside["true_repaid"], outside["score"])
    auc_recorded_in = roc_auc_score(inside["repaid"], inside["score"])
    assert abs(auc_truth_in - auc_truth_out) < 0.03
    assert auc_truth_in - auc_recorded_in > 0.08


def test_no_flips_among_unlabelled(rows: pd.DataFrame) -> None:
    """Only a recorded label can be flipped."""
    assert not rows.loc[rows["repaid"].isna(), "label_flipped"].any()


def test_missing_values(rows: pd.DataFrame) -> None:
    """~35% NULLs in the planted columns for mobile, ~1% elsewhere."""
    effect = planted("missing_values")
    mask = slice_mask(rows, effect)
    for column in effect.columns:
        assert 0.30 <= rows.loc[mask, column].isna().mean() <= 0.40, column
        assert rows.loc[~mask, column].isna().mean() < 0.03, column


def test_falling_share(rows: pd.DataFrame) -> None:
    """65+ share falls from ~12% in January to ~4% in December."""
    mask = slice_mask(rows, planted("falling_share"))
    month = rows["ts"].dt.month
    share = mask.groupby(month).mean()
    assert 0.10 <= share[1] <= 0.14
    assert 0.03 <= share[12] <= 0.06
    assert share.is_monotonic_decreasing or (np.diff(share.to_numpy()) < 0.01).all()


def test_unplanted_groups_have_no_fnr_gap(labelled: pd.DataFrame) -> None:
    """On v1 every well-supported sensitive group has an FNR ratio within 0.8-1.25."""
    v1 = labelled[labelled["model_version"] == "v1"]
    # The tiny group has a planted gap; it also has far too little support here.
    planted_groups = set(planted("too_small").slice)
    checked = 0
    for column in DEMO_CONFIG["columns"]["sensitive"]:
        for value in v1[column].dropna().unique():
            if (column, value) in planted_groups:
                continue
            mask = v1[column].eq(value).fillna(False).astype(bool)
            # The 1% NULL race group is too small to hold to this band.
            if v1.loc[mask, "repaid"].sum() < 1000:
                continue
            ratio = fnr_ratio(v1, mask)
            assert 0.8 <= ratio <= 1.25, (column, value, ratio)
            checked += 1
    assert checked >= 11


def test_labels_are_delayed(rows: pd.DataFrame) -> None:
    """Everything old is labelled, the last two weeks mostly not, 1-10 weeks of delay."""
    labelled_mask = rows["repaid"].notna()
    assert labelled_mask[rows["ts"] < pd.Timestamp("2025-10-01")].mean() >= 0.99
    assert labelled_mask[rows["ts"] >= pd.Timestamp("2025-12-18")].mean() < 0.5
    weekly = labelled_mask.groupby(rows["ts"].dt.to_period("W")).mean()
    tail = weekly.iloc[-10:].to_numpy()
    assert (np.diff(tail) <= 0.02).all()
    assert tail[0] > 0.9 and tail[-1] < 0.1
    delay = (rows["labelled_at"] - rows["ts"])[labelled_mask]
    assert delay.min() >= pd.Timedelta(days=7)
    assert delay.max() <= pd.Timedelta(days=70)
    assert (rows.loc[labelled_mask, "labelled_at"] < pd.Timestamp("2026-01-01")).all()


def test_demo_config_shape(rows: pd.DataFrame) -> None:
    """DEMO_CONFIG names real columns and sensible reference shares."""
    assert DEMO_CONFIG["source"] == {
        "path": "data/demo.duckdb",
        "table": "predictions",
        "labels_table": "labels",
        "id_column": "request_id",
    }
    cols = DEMO_CONFIG["columns"]
    for key in ("prediction", "score", "time", "model_version", "id"):
        assert cols[key] in rows.columns
    assert cols["label"] == "repaid" and cols["positive_label"] == "true"
    assert set(cols["sensitive"]) | set(cols["features"]) <= set(rows.columns)
    assert DEMO_CONFIG["reference"] == {}
    assert DEMO_CONFIG["policy"] == {"min_support": 30}
    shares = DEMO_CONFIG["reference_shares"]
    assert set(shares) == set(cols["sensitive"])
    for column, groups in shares.items():
        assert abs(sum(groups.values()) - 1.0) < 1e-9, column
        assert set(groups) == set(rows[column].dropna()), column


# --- bad input and safe writing ---------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -5, 999])
def test_too_few_rows(tmp_path: Path, bad: int) -> None:
    """rows below 1000 is a one-line ValueError, and nothing is written."""
    with pytest.raises(ValueError, match="at least 1000") as info:
        write_demo(tmp_path / "x.duckdb", rows=bad)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_non_integer_rows(tmp_path: Path) -> None:
    """A non-integer row count is rejected."""
    with pytest.raises(TypeError, match="rows"):
        write_demo(tmp_path / "x.duckdb", rows="5000")  # type: ignore[arg-type]


def test_minimum_rows_works(tmp_path: Path) -> None:
    """The smallest allowed size still writes a valid file."""
    summary = write_demo(tmp_path / "small.duckdb", rows=1000, seed=1)
    with duckdb.connect(summary.path, read_only=True) as c:
        assert c.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 1000


def test_unwritable_path(tmp_path: Path) -> None:
    """A path under a regular file raises a clear OSError and leaves nothing behind."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write demo database"):
        write_demo(blocker / "demo.duckdb", rows=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


def test_directory_as_path(tmp_path: Path) -> None:
    """A directory as the target is refused."""
    with pytest.raises(OSError, match="directory"):
        write_demo(tmp_path, rows=1000)


def test_failure_mid_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while writing removes the .tmp and keeps any previous file intact."""
    target = tmp_path / "demo.duckdb"
    write_demo(target, rows=1000, seed=1)
    before = target.read_bytes()

    def explode(con: duckdb.DuckDBPyConnection, tables: dict) -> None:
        """Write part of the data, then fail."""
        con.execute("CREATE TABLE predictions AS SELECT 1 AS request_id")
        raise RuntimeError("boom")

    monkeypatch.setattr(demo, "_write_tables", explode)
    with pytest.raises(RuntimeError, match="boom"):
        write_demo(target, rows=1000, seed=2)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb"]


def test_overwrite_and_stale_tmp(tmp_path: Path) -> None:
    """A stale .tmp from a crashed run is ignored and an existing file is replaced."""
    target = tmp_path / "demo.duckdb"
    Path(str(target) + ".tmp").write_bytes(b"garbage from a crashed run")
    write_demo(target, rows=1000, seed=1)
    summary = write_demo(str(target), rows=2000, seed=1)
    assert summary.rows == 2000
    with duckdb.connect(str(target), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.duckdb"]
