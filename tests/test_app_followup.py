"""The Overview's "Since the last snapshot" in AppTest on the small demo: one caption line without an earlier
snapshot of this spec and view; with one, the counts per status and the earlier findings with their numbers."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from connectors.active import default_spec
from connectors.audit import run_audit
from connectors.export import export_snapshot, load_snapshot
from connectors.snapshot_store import SNAPSHOT_DIR_ENV
from connectors.source import open_source
from metrics.followup import STATUSES, follow_up
from metrics.spec import RowFilter
from metrics.text import md_unescape
from tests.test_app import APP, _clean, demo_dir, env  # noqa: F401 - fixtures shared with the other page tests
from tests.test_app_slices import _board

SMALL_FNR = "false_negative_rate|race_ethnicity=Pacific Islander"


def _section(at: AppTest) -> list[str]:
    """The captions and markdown of the page, as text."""
    return [md_unescape(c.value) for c in at.caption] + [md_unescape(m.value) for m in at.markdown]


def _export(history: Path, row_filter: RowFilter) -> Path:
    """The full audit of the app's spec under a filter, exported into the history as `fairwatch audit` does."""
    spec = default_spec()
    src = open_source(spec.source)
    try:
        return export_snapshot(run_audit(spec, row_filter, src), history=history, src=src).path
    finally:
        src.close()


def test_without_an_earlier_snapshot_one_caption_says_so(env, tmp_path, monkeypatch):
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(tmp_path / "empty-history"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    _clean(at)
    assert any(s.value == "Since the last snapshot" for s in at.subheader)
    lines = [t for t in _section(at) if "earlier snapshot" in t]
    assert len(lines) == 1 and lines[0].startswith("No earlier snapshot of this source, spec and view")
    assert not any("Then" in d.value.columns for d in at.dataframe)


def test_with_an_earlier_snapshot_the_overview_follows_its_findings_up(env, tmp_path, monkeypatch):
    history = tmp_path / "history"
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(history))
    earlier = _export(history, RowFilter())
    # A later snapshot of another view (model v2) is not this view's baseline: the all-rows one is followed.
    _export(history, RowFilter(model_version="v2"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    _clean(at)
    # The Overview follows up with the full audit once its background slice search is done: wait for it,
    # so the page and the oracle below follow up the same audit.
    at = _board(at)
    at.run()
    _clean(at)
    table = next(d.value for d in at.dataframe if "Then" in d.value.columns)
    assert list(table.columns) == ["Status", "Group", "Metric", "Then", "Now", "Why"]
    # The oracle: the same follow-up computed here from the exported document and this view's group audit.
    spec = default_spec()
    src = open_source(spec.source)
    try:
        later = run_audit(spec, RowFilter(), src, search_slices=True).to_dict()
    finally:
        src.close()
    expected = follow_up(load_snapshot(earlier), later)
    assert len(table) == len(expected) > 0
    assert table["Status"].tolist() == [f.status.replace("_", " ") for f in expected]
    # The planted too-small group's open question is still open (same rows), with its n then and now.
    small = next(f for f in expected if f.id == SMALL_FNR)
    row = table[(table["Group"] == small.group) & (table["Metric"] == "false-negative rate")].iloc[0]
    assert row["Status"] == "still undecided" and f"n {small.then['n']:,}" in row["Then"]
    counts = next(t for t in _section(at) if t.endswith("still undecided"))
    assert counts == " · ".join(f"{sum(f.status == s for f in expected)} {s.replace('_', ' ')}" for s in STATUSES)
    caption = next(t for t in _section(at) if t.startswith("Compared with snapshot #1"))
    assert "followed" in caption and "Rule:" in caption
    # The search has run, so the export's slice findings are followed up too, with no "not yet searched" note.
    assert "until this view's slice search runs" not in caption
