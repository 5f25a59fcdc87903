"""The page-run caches behind many users at once (issue 18): a keyed chart is the element st.altair_chart draws,
built once per key; loader results kept in memory are computed once, shared, and never keep an error; a chart's
key changes with everything its picture depends on (view, role, the page's choices)."""

from __future__ import annotations

import itertools
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fairwatch.metrics.errors import FairwatchError
from fairwatch.pages.components.loaders import chart_spec, kept_in_memory

_fresh = itertools.count()


def _key(name: str) -> tuple:
    """A key no other test has used (the spec store is shared by the whole process)."""
    return ("test_page_caches", name, next(_fresh))


def _chart() -> alt.LayerChart:
    """A chart with data, a layer and a tooltip: what the pages draw."""
    frame = pd.DataFrame({"group": ["a", "b", "c"], "ratio": [0.7, 1.0, 1.3]})
    frame["lo"], frame["hi"] = frame["ratio"] - 0.1, frame["ratio"] + 0.1
    base = alt.Chart(frame).encode(y="group:N")
    return base.mark_rule().encode(x="lo:Q", x2="hi:Q") + base.mark_point().encode(x="ratio:Q",
                                                                                   tooltip=["group", "ratio"])


def _page() -> None:
    """st.altair_chart, then the same chart twice through its key (built, then the kept spec)."""
    import altair as alt
    import pandas as pd
    import streamlit as st

    from fairwatch.pages.components.frame import show_chart

    def chart():
        frame = pd.DataFrame({"group": ["a", "b", "c"], "ratio": [0.7, 1.0, 1.3]})
        frame["lo"], frame["hi"] = frame["ratio"] - 0.1, frame["ratio"] + 0.1
        base = alt.Chart(frame).encode(y="group:N")
        return base.mark_rule().encode(x="lo:Q", x2="hi:Q") + base.mark_point().encode(
            x="ratio:Q", tooltip=["group", "ratio"])

    st.altair_chart(chart(), width="stretch")
    key = ("test_page_caches", "same element", st.session_state.setdefault("n", 0))
    show_chart(chart, key=key)
    show_chart(chart, key=key)


def test_a_keyed_chart_is_the_element_altair_chart_draws():
    """Spec text, datasets (Arrow bytes and names), width and theme are identical, built or kept."""
    at = AppTest.from_function(_page, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    protos = [c.proto for c in at.get("vega_lite_chart")]
    assert len(protos) == 3
    drawn = [(p.spec, [(d.name, d.data.data) for d in p.datasets], p.theme, p.use_container_width) for p in protos]
    assert drawn[0] == drawn[1] == drawn[2]
    assert protos[0].datasets and '"layer"' in protos[0].spec


def test_a_chart_is_built_once_per_key_and_again_for_a_new_key():
    """The builder runs on the first draw of a key only; another key builds its own."""
    built = []

    def build():
        built.append(1)
        return _chart()

    first_key = _key("once")
    first = chart_spec(first_key, build)
    assert chart_spec(first_key, build) is first
    assert len(built) == 1
    other = chart_spec(_key("other"), build)
    assert len(built) == 2
    assert other == first  # the same picture under another key: built again, equal


def test_a_failing_chart_is_not_kept():
    """A builder that raises raises again next time (nothing half-built is stored)."""
    key = _key("fails")

    def broken():
        raise FairwatchError("no such metric; pick another")

    for _ in range(2):
        with pytest.raises(FairwatchError, match="no such metric"):
            chart_spec(key, broken)
    assert chart_spec(key, _chart)["layer"]


def test_kept_results_are_computed_once_shared_and_errors_are_not_kept():
    """The loader runs once per argument value; its object is returned as is; an error is raised every time."""
    calls = []

    @kept_in_memory
    @st.cache_data(show_spinner=False)
    def square(x: int, *, tag: str = "") -> dict:
        calls.append(x)
        if x < 0:
            raise FairwatchError("x must be at least 0; give a count")
        return {"x": x * x, "tag": tag}

    token = next(_fresh)  # st.cache_data keeps values per process too: arguments no other run has used
    one = square(token)
    assert square(token) is one and one["x"] == token * token
    assert square(token, tag="b") is not one and square(token, tag="b")["tag"] == "b"
    assert calls == [token, token]
    for _ in range(2):
        with pytest.raises(FairwatchError, match="at least 0"):
            square(-1 - token)
    assert calls.count(-1 - token) == 2


@pytest.fixture(scope="module")
def demo_spec(tmp_path_factory):
    """The demo's spec over a small demo file."""
    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
    from fairwatch.metrics.audit.spec import SourceSpec, parse_spec

    folder = Path(tmp_path_factory.mktemp("caches"))
    write_demo(folder / "demo.duckdb", rows=5_000)
    spec = parse_spec(DEMO_CONFIG)
    return spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(folder / "demo.duckdb")}))


def test_a_charts_key_changes_with_the_view_the_role_and_the_pages_choices(demo_spec):
    """Two sessions share a chart only when filter, features, role and choices are all the same."""
    from fairwatch.metrics.audit.spec import RowFilter
    from fairwatch.pages.components.frame import PageContext
    from fairwatch.pages.components.sidebar import Selection

    features = tuple(demo_spec.sensitive)
    base = PageContext(Selection(demo_spec, RowFilter(), features), "auditor")
    assert base.chart_key("c", "sex") == PageContext(Selection(demo_spec, RowFilter(), features),
                                                     "auditor").chart_key("c", "sex")
    others = [PageContext(Selection(demo_spec, RowFilter(), features), "viewer").chart_key("c", "sex"),
              PageContext(Selection(demo_spec, RowFilter(model_version="v2"), features),
                          "auditor").chart_key("c", "sex"),
              PageContext(Selection(demo_spec, RowFilter(), features[:1]), "auditor").chart_key("c", "sex"),
              base.chart_key("c", "race_ethnicity"), base.chart_key("d", "sex")]
    assert all(k != base.chart_key("c", "sex") for k in others)
    assert len(set(others)) == len(others)


def test_the_warm_up_computes_what_the_overview_reads_for_every_role(demo_spec, monkeypatch):
    """After warm_overview, a first visitor of any role reads verdicts and arrows without computing anything."""
    from fairwatch.metrics.audit.spec import RowFilter
    from fairwatch.metrics.privacy.roles import ROLES
    from fairwatch.pages.components import loaders

    stamp = loaders.stamp_of(demo_spec)
    loaders.warm_overview(demo_spec, stamp)

    def computed(*_args, **_kwargs):
        raise AssertionError("computed on the visit, not by the warm-up")

    monkeypatch.setattr(loaders, "run_trends", computed)
    monkeypatch.setattr("fairwatch.metrics.policy.overview.feature_verdicts", computed)
    features = tuple(demo_spec.sensitive)
    for role in ROLES:
        verdicts, worst, _ = loaders.load_overview(demo_spec, RowFilter(), stamp, features, role)
        assert verdicts
        loaders.load_trend_arrows(demo_spec, RowFilter(), stamp, features, role)
    with pytest.raises(AssertionError, match="on the visit"):  # the check can fail: another view is computed
        loaders.load_overview(demo_spec, RowFilter(model_version="v2"), stamp, features, "viewer")


def test_the_warm_up_computes_each_model_versions_group_audit(demo_spec, monkeypatch):
    """A session opening ?model_version=v2 (or picking it in the sidebar) reads the audit the warm-up computed."""
    import threading

    from fairwatch.metrics.audit.spec import RowFilter
    from fairwatch.pages.components import loaders

    monkeypatch.setattr("fairwatch.connectors.active.default_spec", lambda: demo_spec)
    stamp = loaders.stamp_of(demo_spec)
    versions = loaders.load_filter_options(demo_spec, stamp).model_versions
    assert versions
    stop = threading.Event()
    worker = threading.Thread(target=loaders.warm_default_view, args=(stop, 0.2), daemon=True)
    worker.start()
    try:
        for _ in range(600):
            if loaders.search_done(demo_spec, RowFilter(), stamp):
                break
            stop.wait(0.5)
    finally:
        stop.set()
        worker.join(timeout=60)

    def audited(*_args, **_kwargs):
        raise AssertionError("audited on the visit, not by the warm-up")

    monkeypatch.setattr(loaders, "run_audit", audited)
    for version in versions[:loaders.WARM_VERSIONS]:
        assert loaders.load_snapshot(demo_spec, RowFilter(model_version=version), stamp).data.rows > 0
