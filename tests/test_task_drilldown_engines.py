"""The regression and multiclass drill-down (searched error test, need, quality signals counted now, other features)
gives DuckDB's numbers on a real PostgreSQL server and on Spark (issue 19)."""

from __future__ import annotations

import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import drill_down
from fairwatch.connectors.source import open_source
from tests import test_task_engines as engines
from tests.engine_servers import spark_available

TASKS, spec_for = engines.TASKS, engines.spec_for
# The task engine tests' log and its copies (Parquet with real NaN, a private PostgreSQL) as this module's fixtures.
log, parquet, postgres_url = engines.log, engines.parquet, engines.postgres_url

SLICES = ((("race", "b"),), (("sex", "f"), ("region", "s")))


def drill(spec, slice_):
    """The audit and the drill-down of one slice on a spec's engine."""
    snap = run_audit(spec)
    src = open_source(spec.source)
    try:
        return drill_down(src, spec, snap, slice_)
    finally:
        src.close()


def assert_same_drill(ours, theirs) -> None:
    """The same error test, need, quality signal counts and other features' values (1e-12 relative)."""
    assert (ours.rows, ours.rest_rows, ours.need, ours.additional_rows, ours.origin, ours.quality_note) == \
        (theirs.rows, theirs.rest_rows, theirs.need, theirs.additional_rows, theirs.origin, theirs.quality_note)
    for key, value in ours.error.items():
        other = theirs.error[key]
        if isinstance(value, float) and isinstance(other, float):
            assert value == pytest.approx(other, rel=1e-12, abs=1e-300, nan_ok=True), key
        else:
            assert value == other, key
    cols = ["signal", "column", "x", "n", "complement_x", "complement_n"]
    assert ours.quality[cols].fillna("").values.tolist() == theirs.quality[cols].fillna("").values.tolist()
    order = ["feature", "value", "in_slice"]
    assert ours.values.sort_values(order).values.tolist() == theirs.values.sort_values(order).values.tolist()


@pytest.mark.parametrize("task", list(TASKS))
def test_postgres_drills_down_as_duckdb(task, parquet, postgres_url):
    """Two slices (one a sensitive group, one an intersection the audit did not check) on PostgreSQL."""
    for slice_ in SLICES:
        assert_same_drill(drill(spec_for(task, {"path": parquet}), slice_),
                          drill(spec_for(task, {"path": postgres_url, "table": "log"}), slice_))


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_spark_drills_down_as_duckdb(task, parquet):
    """The intersection the audit did not check, on Spark."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    slice_ = SLICES[1]
    assert_same_drill(drill(spec_for(task, {"path": parquet}), slice_),
                      drill(spec_for(task, {"path": parquet, "engine": "spark", "master": "local[1]"}), slice_))
