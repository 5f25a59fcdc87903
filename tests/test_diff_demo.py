"""Issue 6 acceptance: the diff of a demo audit against a later window lists the planted drift.

The demo's `falling_share` effect: age_band='65+' falls from ~12% of predictions in January to ~4% in
December. An audit of the first quarter and one of the last quarter, exported into one history and
compared with `fairwatch diff`, must list 65+'s share as a clear move downwards, and must not list
the shares of groups the generator keeps steady (sex is 50/50 all year).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairwatch.cli import main
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.demo import DEMO_CONFIG, PLANTED, write_demo
from fairwatch.connectors.export import export_snapshot, load_snapshot, verify
from fairwatch.connectors.source import open_source
from fairwatch.metrics.monitoring.diff import diff_snapshots
from fairwatch.metrics.audit.spec import RowFilter, SourceSpec, parse_spec

ROWS = 20_000  # ~5,000 rows a quarter: the share intervals are about +-1 point, the drift is ~6 points
EARLY = RowFilter(time_from="2025-01-01", time_to="2025-03-31")
LATE = RowFilter(time_from="2025-10-01", time_to="2025-12-31")
DRIFT = next(p for p in PLANTED if p.kind == "falling_share")
DRIFT_GROUP = ", ".join(f"{k}={v}" for k, v in sorted(DRIFT.slice))  # the diff's group label: "age_band=65+"


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    """A small demo audited for its first and its last quarter, both exported into one history."""
    root = tmp_path_factory.mktemp("diff-demo")
    write_demo(root / "demo.duckdb", rows=ROWS)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(root / "demo.duckdb")}))
    src = open_source(spec.source)
    try:
        early = export_snapshot(run_audit(spec, EARLY, src), root / "history" / "early", src=src)
        late = export_snapshot(run_audit(spec, LATE, src), root / "history" / "late", src=src)
    finally:
        src.close()
    return {"history": root / "history", "early": early.path, "late": late.path}


def test_the_windows_are_what_was_asked(snapshots):
    """Each snapshot audited its own window, and the two form an intact history."""
    early, late = load_snapshot(snapshots["early"]), load_snapshot(snapshots["late"])
    assert (early["filter"]["time_from"], late["filter"]["time_from"]) == ("2025-01-01", "2025-10-01")
    assert early["data"]["rows"] > 3000 and late["data"]["rows"] > 3000
    assert verify(snapshots["history"]).intact


def test_fairwatch_diff_lists_the_falling_share(snapshots, capsys):
    """`fairwatch diff --json` lists 65+'s share as a clear move down, matching the generator's schedule."""
    assert main(["diff", str(snapshots["early"]), str(snapshots["late"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    shares = {m["group"]: m for m in result["moved"] if m["metric"] == "share"}
    assert DRIFT_GROUP in shares, sorted(shares)
    drift = shares[DRIFT_GROUP]
    assert drift["strength"] == "clear"
    # January-March averages ~11%, October-December ~5% (12% falling linearly to 4%).
    assert 0.09 < drift["old_value"] < 0.13 and 0.03 < drift["new_value"] < 0.07, drift
    assert drift["new_ci"][1] < drift["old_ci"][0]
    # The planted drift is the one that falls: no other age band's share clearly shrinks (they grow instead).
    falling = [g for g, m in shares.items() if g.startswith("age_band=") and "," not in g
               and m["strength"] == "clear" and m["new_value"] < m["old_value"]]
    assert falling == [DRIFT_GROUP]
    # Steady groups are not reported as drift.
    assert not {"sex=female", "sex=male"} & {g for g, m in shares.items() if m["strength"] == "clear"}


def test_the_plain_diff_names_the_drift(snapshots, capsys):
    """The text a person reads says it in one line, and the same diff comes from the library."""
    assert main(["diff", str(snapshots["early"]), str(snapshots["late"])]) == 0
    text = capsys.readouterr().out
    assert f"{DRIFT_GROUP}: share moved from" in text, text[:2000]
    d = diff_snapshots(load_snapshot(snapshots["early"]), load_snapshot(snapshots["late"]))
    assert any(m.group == DRIFT_GROUP and m.metric == "share" and m.strength == "clear" for m in d.moved)
    assert d.fingerprint_changed and not d.unchanged
