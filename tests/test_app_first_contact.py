"""A new source through the Data sources page: the view after "Check and use this mapping" is exactly the audit the
check ran (every row, every sensitive feature), whatever the sidebar held for the previous source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.demo import write_demo
from metrics.text import md_unescape
from tests.test_app import APP, _clean, _metric

ROWS = 600


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A data folder with a small demo and a CSV of another shape (other dates, other features)."""
    root = tmp_path_factory.mktemp("first-contact")
    write_demo(root / "demo.duckdb", rows=20_000)
    rng = np.random.default_rng(7)
    decided = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 700, ROWS), unit="D")
    pd.DataFrame({
        "person_id": np.arange(ROWS),
        "decided": decided.strftime("%Y-%m-%d"),
        "screened": (decided - pd.Timedelta(days=3)).strftime("%Y-%m-%d"),
        "two_year_recid": rng.integers(0, 2, ROWS),
        "decile_score": rng.integers(1, 11, ROWS),
        "race": rng.choice(["African-American", "Caucasian", "Hispanic"], ROWS, p=[0.5, 0.35, 0.15]),
        "sex": rng.choice(["Male", "Female"], ROWS),
        "age_cat": rng.choice(["Less than 25", "25 - 45", "Greater than 45"], ROWS),
    }).to_csv(root / "people.csv", index=False)
    pd.DataFrame({
        "readmitted": rng.choice(["NO", "<30", ">30"], ROWS, p=[0.5, 0.15, 0.35]),
        "flagged": rng.choice(["yes", "no"], ROWS),
        "gender": rng.choice(["Female", "Male"], ROWS),
    }).to_csv(root / "visits.csv", index=False)
    return root


@pytest.fixture()
def app(folder, monkeypatch) -> AppTest:
    """The app on the demo (the start-up spec), with people.csv waiting in the data folder."""
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(folder))
    monkeypatch.delenv("FAIRWATCH_CONFIG", raising=False)
    monkeypatch.setattr("connectors.datapaths.demo_path", lambda: folder / "demo.duckdb")
    monkeypatch.setattr("connectors.active.demo_path", lambda: folder / "demo.duckdb")
    return AppTest.from_file(APP, default_timeout=90)


def _narrow_the_demo_view(at: AppTest) -> None:
    """What a user may have chosen before: one model version, a short window, one feature."""
    at.sidebar.selectbox(key="fw.w.model_version").select("v2").run()
    _, hi = at.sidebar.date_input(key="fw.w.window").value
    at.sidebar.date_input(key="fw.w.window").set_value((hi - dt.timedelta(days=20), hi)).run()
    at.sidebar.multiselect(key="fw.w.features").set_value(["sex"]).run()
    _clean(at)


def _open_file(at: AppTest, name: str) -> dict:
    """The Data sources page with a data-folder file picked; its mapping widgets by label."""
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select(name).run()
    _clean(at)
    return {w.label: w for w in [*at.main.selectbox, *at.main.multiselect, *at.main.number_input]}


def _submit(at: AppTest) -> None:
    """Press "Check and use this mapping"."""
    next(b for b in at.button if b.label == "Check and use this mapping").click().run()


def _check_and_use(at: AppTest, time: str) -> None:
    """Map people.csv on the Data sources page (score + threshold, three sensitive features) and use it."""
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select("people.csv").run()
    _clean(at)
    form = {w.label: w for w in [*at.main.selectbox, *at.main.multiselect, *at.main.number_input]}
    form["Label (actual outcome)"].select("two_year_recid")
    form["Prediction (the decision)"].select("(none)")
    form["Score (optional)"].select("decile_score")
    form["Threshold on the score (only without a prediction)"].set_value(5.0)
    form["Time"].select(time)
    form["Model version"].select("(none)")
    form["Sensitive features"].set_value(["race", "sex", "age_cat"])
    form["Other features (for slicing)"].set_value([])
    next(b for b in at.button if b.label == "Check and use this mapping").click().run()
    _clean(at)
    assert any(f"{ROWS:,} rows" in s.value for s in at.success), [s.value for s in at.success]


def _audits_everything(at: AppTest) -> None:
    """The Overview audits every row and draws a card for every sensitive feature."""
    at.switch_page("app.py").run()
    _clean(at)
    assert _metric(at, "Decisions audited") == f"{ROWS:,}"
    cards = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert [md_unescape(c.split("\n")[0].split(" ", 2)[-1]) for c in cards] == ["race", "sex", "age_cat"]
    assert at.sidebar.multiselect(key="fw.w.features").value == ["race", "sex", "age_cat"]
    assert not at.sidebar.selectbox  # the demo's model versions are gone with the demo
    assert "all rows" in " ".join(c.value for c in at.sidebar.caption)


def test_a_new_source_is_audited_whole_whatever_the_old_view_was(app, folder):
    at = app.run()
    _narrow_the_demo_view(at)
    _check_and_use(at, "decided")
    decided = pd.to_datetime(pd.read_csv(folder / "people.csv")["decided"])
    assert at.sidebar.date_input(key="fw.w.window").value == (decided.min().date(), decided.max().date())
    _audits_everything(at)
    assert not at.query_params.get("from") and not at.query_params.get("features")


def test_another_time_column_does_not_leave_an_empty_window(app):
    at = app.run()
    _check_and_use(at, "decided")
    # A narrowed window on the first mapping, then a new time column: the new mapping starts whole again.
    lo, _ = at.sidebar.date_input(key="fw.w.window").value
    at.sidebar.date_input(key="fw.w.window").set_value((lo, lo + dt.timedelta(days=5))).run()
    _check_and_use(at, "screened")
    _audits_everything(at)


def test_a_stale_link_window_outside_the_data_is_no_window(app):
    app.query_params["from"], app.query_params["to"] = "1999-01-01", "1999-02-01"
    at = app.run()
    _clean(at)
    assert _metric(at, "Decisions audited") == "20,000"


def test_a_reference_group_per_feature_is_chosen_checked_and_saved(app, folder):
    at = app.run()
    _check_and_use(at, "decided")
    largest = at.selectbox(key=next(w.key for w in at.main.selectbox if w.label == "Reference group of race"))
    assert largest.value.startswith("\x00") and "African-American" in largest.format_func(largest.value)
    largest.select("Caucasian").run()
    _clean(at)
    assert any("Reference groups changed" in s.value for s in at.success)
    assert '[reference]\nrace = "Caucasian"' in at.code[0].value
    at.switch_page("app.py").run()
    _clean(at)
    assert _metric(at, "Decisions audited") == f"{ROWS:,}"  # a new reference does not narrow the view either
    at.switch_page("pages/1_Data_sources.py").run()
    next(b for b in at.button if b.label == "Save as fairwatch.toml").click().run()
    _clean(at)
    assert 'race = "Caucasian"' in (folder / "fairwatch.toml").read_text()


def test_a_three_valued_label_is_mapped_in_the_app(app):
    at = app.run()
    form = _open_file(at, "visits.csv")
    form["Label (actual outcome)"].select("readmitted").run()
    form = _open_file(at, "visits.csv")
    positive = next(w for w in at.main.multiselect if w.label == "Label values that count as positive")
    assert set(positive.options) == {"NO", "<30", ">30"} and positive.value == []
    form["Prediction (the decision)"].select("flagged")
    form["Sensitive features"].set_value(["gender"])
    _submit(at)
    # Without a choice: the message names the app's field, not a CLI flag.
    assert not at.exception and at.error, "a three-valued label needs a choice"
    assert "Label values that count as positive" in at.error[0].value and "--" not in at.error[0].value
    positive.set_value(["<30", ">30"]).run()
    next(w for w in at.main.multiselect if w.label == "Sensitive features").set_value(["gender"])
    next(w for w in at.main.selectbox if w.label == "Prediction (the decision)").select("flagged")
    _submit(at)
    _clean(at)
    assert any(f"{ROWS:,} rows" in s.value for s in at.success)
    assert 'positive_label = ["<30", ">30"]' in at.code[0].value
    at.switch_page("app.py").run()
    _clean(at)
    assert "readmitted = <30 or >30 counts as positive" in " ".join(md_unescape(m.value) for m in at.markdown)
