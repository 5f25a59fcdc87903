"""The dashboard in Streamlit's AppTest: every page draws on a small demo, reacts to the sidebar, and turns
bad input into a one-line st.error, never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.config import write_config
from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.presentation.text import md_unescape
from fairwatch.metrics.presentation.views import worst_table

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = {  # page: (charts at least, tables at least)
    "app.py": (1, 1),
    "pages/1_Data_sources.py": (0, 0),
    "pages/2_Representation.py": (2, 2),
    "pages/3_Performance.py": (3, 2),
}


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A 100k-row demo and its fairwatch.toml in a fresh data folder (once per test session)."""
    folder = tmp_path_factory.mktemp("fairwatch-data")
    write_demo(folder / "demo.duckdb", rows=100_000)
    spec = parse_spec(DEMO_CONFIG)
    write_config(spec.with_source(spec.source.__class__(**{**spec.to_dict()["source"],
                                                           "path": str(folder / "demo.duckdb")})),
                 folder / "fairwatch.toml")
    return folder


@pytest.fixture()
def env(demo_dir, monkeypatch) -> Path:
    """The app pointed at the small demo (set before AppTest is created, as the app reads them at start)."""
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(demo_dir))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(demo_dir / "fairwatch.toml"))
    return demo_dir


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def _clean(at: AppTest) -> None:
    """No exception and no error on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_draws_its_charts_and_tables(env, page):
    at = _app().run()
    if page != "app.py":
        at.switch_page(page).run()
    _clean(at)
    charts, tables = PAGES[page]
    assert len(at.get("vega_lite_chart")) >= charts
    assert len(at.dataframe) + len(at.table) >= tables  # the Overview's few worst gaps are an st.table
    assert at.sidebar.multiselect(key="fw.w.features").value == ["sex", "race_ethnicity", "age_band"]


def test_overview_says_what_it_found_in_plain_words(env):
    at = _app().run()
    text = " ".join(m.value for m in at.markdown)
    assert "meets policy" in text or "fails policy" in text or "cannot be judged" in text
    # Issue 16: no button; the slice search runs in the background (a progress line until its board is drawn).
    assert not at.button
    assert at.get("progress") or any(m.value.startswith("**Model**") for m in at.markdown)
    assert _metric(at, "Decisions audited") == "100,000"
    assert [e.label for e in at.expander] == ["What do these metrics mean?"]
    closed = " ".join(m.value for m in at.markdown)
    assert "**policy band**" not in closed  # the glossary is drawn once opened, not in every new tab
    at.session_state["fw.ov.glossary"] = True  # what opening the expander does
    at.run()
    _clean(at)
    opened = " ".join(m.value for m in at.expander[0].markdown)
    assert "**policy band**" in opened and "*" in opened


def test_overview_shows_the_worst_gaps_as_a_static_table_of_escaped_text(env):
    """Issue 18: the worst gaps are an st.table (a new tab has no data grid to load and boot for six rows); st.table
    renders Markdown, so its cells are escaped and read back as worst_table's text."""
    at = _app().run()
    _clean(at)
    assert len(at.table) == 1 and not at.dataframe  # no data grid left on the Overview of a fresh demo
    table = at.table[0].value.rename(columns=md_unescape).map(md_unescape)
    assert list(table.columns) == list(worst_table([]).columns)
    assert 1 <= len(table) <= 6
    assert table["Group rate"].str.fullmatch(r"\d+\.\d% \(n=[\d,]+\)").all()
    assert table["Verdict"].str.len().all() and table["Metric"].str.len().all()


def test_model_version_changes_the_numbers_the_url_and_survives_page_switches(env):
    at = _app().run()
    everything = _metric(at, "Decisions audited")
    at.sidebar.selectbox(key="fw.w.model_version").select("v2").run()
    _clean(at)
    v2 = _metric(at, "Decisions audited")
    assert int(v2.replace(",", "")) < int(everything.replace(",", ""))
    assert at.query_params.get("model_version") in ("v2", ["v2"])
    at.switch_page("pages/3_Performance.py").run()
    _clean(at)
    assert at.sidebar.selectbox(key="fw.w.model_version").value == "v2"
    at.switch_page("app.py").run()
    assert _metric(at, "Decisions audited") == v2


def test_a_shared_link_restores_the_view(env):
    at = _app()
    at.query_params["model_version"] = "v1"
    at.query_params["features"] = "sex,age_band"
    at.query_params["from"] = "2025-03-01"
    at.query_params["to"] = "2025-05-31"
    at.run()
    _clean(at)
    assert at.sidebar.selectbox(key="fw.w.model_version").value == "v1"
    assert at.sidebar.multiselect(key="fw.w.features").value == ["sex", "age_band"]
    assert "race_ethnicity" not in " ".join(m.value for m in at.markdown if m.value.startswith("###"))
    assert int(_metric(at, "Decisions audited").replace(",", "")) < 40_000


def test_feature_choice_hides_groupings(env):
    at = _app().run()
    at.switch_page("pages/3_Performance.py").run()
    at.sidebar.multiselect(key="fw.w.features").set_value(["sex"]).run()
    _clean(at)
    assert at.selectbox(key="fw.perf.grouping").options == ["sex"]


def test_threshold_slider_moves_the_rates(env):
    at = _app().run()
    at.switch_page("pages/3_Performance.py").run()
    before = at.dataframe[-1].value["Value"].tolist()
    at.slider(key="fw.thr.sex").set_value(0.8).run()
    _clean(at)
    after = at.dataframe[-1].value["Value"].tolist()
    assert after != before and after[0] < before[0]  # a stricter threshold selects fewer


@pytest.mark.parametrize("config, message", [
    ("missing.toml", "config file not found"),
    ("bad_column.toml", "is not a column of the source"),
    ("missing_source.toml", "file not found"),
])
def test_bad_sources_show_a_one_line_error_on_every_page(demo_dir, monkeypatch, tmp_path, config, message):
    spec = parse_spec(DEMO_CONFIG)
    source = spec.source.__class__(**{**spec.to_dict()["source"], "path": str(demo_dir / "demo.duckdb")})
    if config == "bad_column.toml":
        write_config(parse_spec({**spec.to_dict(), "source": source.__dict__ | {},
                                 "columns": {**spec.to_dict()["columns"], "label": "nope"}}), tmp_path / config)
    elif config == "missing_source.toml":
        write_config(spec.with_source(source.__class__(path=str(tmp_path / "gone.duckdb"), table="predictions")),
                     tmp_path / config)
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(demo_dir))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(tmp_path / config))
    at = _app().run()
    for page in PAGES:
        if page != "app.py":
            at.switch_page(page).run()
        assert not at.exception
        assert any(message in e.value for e in at.error), [e.value for e in at.error]
        assert all("\n" not in e.value and "Traceback" not in e.value for e in at.error)
    # The Data sources page still lets the user pick something that works.
    at.switch_page("pages/1_Data_sources.py").run()
    assert at.radio(key="fw.src.kind").options[0] == "Demo data"


def test_data_sources_page_maps_checks_and_activates_a_file(env):
    at = _app().run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select("demo.duckdb").run()
    at.selectbox(key="fw.src.labels.demo.duckdb").select("labels").run()
    _clean(at)
    assert at.selectbox(key="fw.src.table.demo.duckdb").value == "ground_truth"  # first table, alphabetically
    at.selectbox(key="fw.src.table.demo.duckdb").select("predictions").run()
    submit = next(b for b in at.button if b.label == "Check and use this mapping")
    submit.click().run()
    _clean(at)
    assert any("Mapping checked and in use" in s.value for s in at.success)
    assert "predictions" in at.sidebar.caption[0].value


def test_data_sources_page_refuses_paths_outside_the_data_folder(env):
    at = _app().run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.text_input(key="fw.src.typed").input("../../etc/passwd").run()
    assert not at.exception
    assert any("'..' is not allowed" in md_unescape(e.value) for e in at.error)
