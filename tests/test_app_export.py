"""The Audit export page in AppTest on the small demo: snapshots go into a temporary history, are listed with
their author and note, verify intact, differ where the view differed, and a changed file is named."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.export import load_snapshot, zip_bytes
from fairwatch.connectors.snapshot_store import SNAPSHOT_DIR_ENV
from fairwatch.metrics.monitoring.diff import SnapshotError
from fairwatch.metrics.presentation.export_views import annotation_record
from fairwatch.metrics.presentation.text import md_unescape
from tests.test_app import ROOT, _clean, demo_dir, env  # noqa: F401 - fixtures shared with the other page tests

PAGE = "pages/7_Audit_export.py"


def _snapshot(at, author: str, note: str) -> None:
    at.text_input(key="fw.export.author").input(author)
    at.text_area(key="fw.export.note").input(note)
    next(b for b in at.button if b.label == "Create snapshot").click().run()


def test_export_creates_lists_verifies_diffs_and_names_a_changed_file(env, tmp_path, monkeypatch):
    history = tmp_path / "snapshots"
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(history))
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=60).run()  # the page alone: no Overview to draw
    _clean(at)
    assert any("No snapshots" in i.value for i in at.info)
    _snapshot(at, "   ", "no author")
    assert not at.exception and any("fill in the author" in e.value for e in at.error)
    assert not history.exists() or not any(history.iterdir())

    _snapshot(at, "Alice Auditor", "quarterly review")
    _clean(at)
    assert any(s.value.startswith("Snapshot #1 written") for s in at.success)
    at.sidebar.selectbox(key="fw.w.model_version").select("v2").run()
    _snapshot(at, "Bob", "after the v2 rollout")
    _clean(at)

    table = at.dataframe[0].value
    assert table["#"].tolist() == [2, 1]  # newest first
    assert table["Author"].tolist() == ["Bob", "Alice Auditor"]
    assert table["View"].tolist() == ["model version v2", "all rows"]
    assert table["Chain link"].tolist() == ["ok", "first"]
    assert any(md_unescape(s.value).startswith("Intact: 2 snapshot(s)") for s in at.success)
    assert len(at.get("download_button")) == 4  # zip, HTML, PDF, JSON
    figures = {m.label: m.value for m in at.metric}
    assert figures["Data"] == "changed"
    changes = next(d.value for d in at.dataframe if list(d.value.columns) == ["What", "Older", "Newer"])
    assert ("filter.model_version", "—", "v2") in set(changes.itertuples(index=False, name=None))
    # The older snapshot's findings and open questions, followed into the newer one, with the numbers then and now.
    follow = next(d.value for d in at.dataframe if "Then" in d.value.columns)
    assert list(follow.columns) == ["Status", "Group", "Metric", "Then", "Now", "Why"] and len(follow)
    assert set(follow["Status"]) <= {"resolved", "improved", "unchanged", "worse", "still undecided"}

    first = history / table.loc[table["#"] == 1, "Folder"].iloc[0]
    note = load_snapshot(first)["annotation"][0]
    assert (note["author"], note["note"], note["view"]) == ("Alice Auditor", "quarterly review", "all rows")
    # Local mode: the typed author is the snapshot's author (snapshot.json, manifest, both reports); the
    # server's own account stays as the id it was typed under.
    doc = load_snapshot(first)
    creator = doc["export"]["author"]
    assert creator["name"] == "Alice Auditor"
    assert creator["signed_in"] == "local" and creator["id"].startswith("local:") and creator["role"] == "auditor"
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["author"]["name"] == "Alice Auditor"
    assert "by Alice Auditor" in (first / "report.html").read_text(encoding="utf-8")
    assert b"Alice Auditor" in (first / "report.pdf").read_bytes()
    assert "root (local" not in (first / "report.html").read_text(encoding="utf-8").split("Created by")[0]
    # The snapshot's time is when it was taken, not when the cached audit ran.
    assert doc["created_at"][:16] == doc["export"]["exported_at"][:16]
    intact_zip = zip_bytes(first)
    with open(first / "report.html", "a", encoding="utf-8") as fh:
        fh.write("<!-- edited -->")
    at.run()
    assert not at.exception
    assert any(e.value.startswith("TAMPERED") for e in at.error)
    problems = next(d.value for d in at.dataframe if "Problem" in d.value.columns)
    assert problems[["File", "Problem"]].values.tolist() == [["report.html", "changed"]]

    # A zip brought from elsewhere is verified too: the intact one passes, the edited one is named.
    at.file_uploader(key="fw.export.upload").upload("snap.zip", intact_zip, "application/zip")
    at.run()
    assert not at.exception
    assert any(s.value.startswith("Intact") for s in at.success[-1:]), [s.value for s in at.success]
    at.file_uploader(key="fw.export.upload").upload("edited.zip", zip_bytes(first), "application/zip")
    at.run()
    assert not at.exception and at.error[-1].value.startswith("TAMPERED")
    at.file_uploader(key="fw.export.upload").upload("junk.zip", b"not a zip", "application/zip")
    at.run()
    assert not at.exception and "not a readable zip" in at.error[-1].value


@pytest.mark.parametrize("author, note", [("", "x"), ("  ", ""), ("a" * 200, ""), ("ok", "n" * 3000)])
def test_an_annotation_needs_a_short_author_and_note(author, note):
    with pytest.raises(SnapshotError):
        annotation_record(author, note, "all rows")


def test_an_annotation_keeps_who_why_and_which_view():
    assert annotation_record("  Alice   Auditor ", " why \n", "model version v2") == [
        {"author": "Alice Auditor", "note": "why", "view": "model version v2"}]


def _only_snapshot(history) -> dict:
    """The one snapshot.json written into `history`."""
    (folder,) = [p for p in history.iterdir() if p.is_dir()]
    return load_snapshot(folder)


def _whatif_set(history, monkeypatch) -> AppTest:
    """The app with snapshots going into `history`, after the what-if was computed on the Performance page."""
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(history))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/3_Performance.py").run()
    at.toggle(key="fw.whatif.on").set_value(True).run()
    _clean(at)
    return at


def test_export_attaches_the_whatif_set_on_the_performance_page(env, tmp_path, monkeypatch):
    """The what-if computed on the Performance page goes into the exported snapshot, as `--whatif-group` puts it."""
    history = tmp_path / "snapshots"
    at = _whatif_set(history, monkeypatch)
    at.switch_page(PAGE).run()
    _clean(at)
    box = at.checkbox(key="fw.export.whatif")
    assert box.value and "false negative rate parity on sex" in md_unescape(box.label)
    _snapshot(at, "Alice Auditor", "with the what-if")
    _clean(at)
    assert any("With the what-if (false negative rate parity on sex" in md_unescape(s.value) for s in at.success)
    doc = _only_snapshot(history)
    whatif = doc["whatif"]
    assert whatif["policy"]["constraint"] == "false_negative_rate_parity"
    assert {g["group"].split("=")[0] for g in whatif["policy"]["groups"]} == {"sex"}
    folder = next(p for p in history.iterdir() if p.is_dir())
    assert "What would meet the policy" in (folder / "report.html").read_text(encoding="utf-8")


def test_export_without_a_whatif_says_so_and_writes_none(env, tmp_path, monkeypatch):
    """No what-if set (never computed, or switched off again): nothing to tick, the page says so, none is written."""
    history = tmp_path / "snapshots"
    at = _whatif_set(history, monkeypatch)
    at.toggle(key="fw.whatif.on").set_value(False).run()  # set, then switched off: no what-if any more
    at.switch_page(PAGE).run()
    _clean(at)
    assert not [c for c in at.checkbox if c.key == "fw.export.whatif"]
    assert any("No what-if is set" in c.value for c in at.caption)
    _snapshot(at, "Bob", "without")
    _clean(at)
    assert any(s.value.startswith("Snapshot #1 written") and "what-if" not in s.value for s in at.success)
    assert "whatif" not in _only_snapshot(history)


def test_export_says_when_the_whatif_no_longer_fits_the_view(env, tmp_path, monkeypatch):
    """A what-if whose groups are no longer sensitive features of the view: written without it, and said why."""
    from fairwatch.metrics.policy.whatif_result import WhatIfChoice
    from fairwatch.pages.components.whatif_view import CHOSEN

    history = tmp_path / "snapshots"
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(history))
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=120)
    at.session_state[CHOSEN] = WhatIfChoice(("no_such_feature",), "false_negative_rate_parity", "accuracy", 1.0, 1.0,
                                            "exact", 0.0, "week", True)
    at.run()
    _clean(at)
    assert at.checkbox(key="fw.export.whatif").value
    _snapshot(at, "Carol", "stale what-if")
    _clean(at)
    text = [md_unescape(s.value) for s in at.success]
    assert any("Written without the what-if: " in t and "no_such_feature" in t for t in text), text
    assert "whatif" not in _only_snapshot(history)
