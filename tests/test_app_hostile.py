"""Every Markdown text the app sends, for the hostile log (tests/hostile.py), as an analyst, in AppTest.

The browser test (tests/e2e/test_browser_hostile.py) walks every page as a viewer, an analyst and an auditor;
this one is its cheap twin that runs with the unit tests: it reads the Markdown source of every text element
(bodies, labels, help) of each page an analyst may open and of a crafted `?config=` link, and holds each to
the same promise with markdown-it as the oracle: no hostile string appears unescaped, nothing parses as a
link, an image or HTML, and no server folder is named.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.metrics.privacy.roles import PAGES, visible_pages
from fairwatch.metrics.presentation.text import md_escape
from tests.hostile import CONFIG_LINK, HOST, STRINGS, write_hostile_log
from tests.test_access import ACCESS as ACCESS_ROLES
from tests.test_access import serve_with_roles

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py is not installed (pip install -e '.[test]')")
ROOT = Path(__file__).resolve().parents[1]
MD = markdown_it.MarkdownIt("commonmark")
# The access tests' roles without the auditor: no role here may read the access log.
ACCESS = ACCESS_ROLES.replace('[roles.auditor]\nemails = ["alice@example.org"]\n', "")
AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 64, "client_id": "fw",
        "client_secret": "s", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
BOB = {"is_logged_in": True, "sub": "b1", "email": "bob@corp.org", "name": "Bob Analyst", "groups": ["data-science"]}
CAROL = {"is_logged_in": True, "sub": "c1", "email": "carol@partner.net", "name": "Carol Viewer"}
MARKUP = {"image", "link_open", "html_inline", "html_block"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The hostile log and its config."""
    folder = tmp_path_factory.mktemp("hostile")
    write_hostile_log(folder)
    return folder


@pytest.fixture()
def env(data_dir, tmp_path, monkeypatch) -> Path:
    """The app over the hostile log, with roles from an access config; returns the data folder."""
    serve_with_roles(monkeypatch, tmp_path, data_dir, ACCESS)
    return data_dir


def markdown_texts(node) -> list[str]:
    """Every Markdown source in an AppTest element tree: bodies, labels and help, and st.table's cells and headers
    (st.table renders Markdown in them; st.dataframe and charts show text as text and are left out)."""
    out = []
    proto = getattr(node, "proto", None)
    if type(proto).__name__ == "Table":
        frame = node.value
        out += [str(c) for c in frame.columns] + [v for v in frame.to_numpy().ravel() if isinstance(v, str)]
    if proto is not None and hasattr(proto, "DESCRIPTOR"):
        fields = {f.name for f in proto.DESCRIPTOR.fields}
        out += [getattr(proto, f) for f in ("body", "label", "help") if f in fields and getattr(proto, f)]
        for holder in ("expandable", "tab"):  # an expander's or a tab's label
            if holder in fields and proto.HasField(holder) and getattr(proto, holder).label:
                out.append(getattr(proto, holder).label)
    children = getattr(node, "children", None) or {}
    for child in (children.values() if isinstance(children, dict) else children):
        out += markdown_texts(child)
    return out


def problems(texts: list[str], folder: Path) -> list[str]:
    """What breaks the promise in these Markdown sources."""
    found = []
    for text in texts:
        found += [f"unescaped {s!r} in {text[:120]!r}" for s in STRINGS if s in text]
        tokens = MD.parse(text)
        kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or ())}
        if md_escape(HOST) in text or HOST in text:  # the app's own constants may show raw HTML as text (Streamlit escapes it); data may not
            found += [f"{k} in {text[:120]!r}" for k in kinds & MARKUP]
        if str(folder) in text:
            found.append(f"server folder in {text[:120]!r}")
    return found


def _run(page: str, user: dict, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.secrets["auth"] = AUTH
    at.user = user
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    return at


def test_every_page_an_analyst_opens_sends_only_escaped_text(env):
    files = [p.file for p in PAGES if (ROOT / p.file).is_file()]
    pages = visible_pages("analyst", files)
    assert len(pages) == 8
    seen = []
    for page in sorted(pages, key=lambda p: p.title != "Slices"):  # the search first: the Overview's board uses it
        at = _run(page.file, BOB)
        assert not at.exception and not at.error, (page.title, [e.value for e in (*at.exception, *at.error)])
        texts = markdown_texts(at._tree)
        assert problems(texts, env) == [], page.title
        assert not [c.value for c in at.code if str(env) in c.value], f"{page.title}: a server folder in a code block"
        seen += texts
    assert any(md_escape(HOST) in t for t in seen), "the hostile values should be named somewhere (escaped)"


def test_a_crafted_config_link_is_an_escaped_error_without_server_folders(env):
    at = _run("pages/3_Performance.py", CAROL, {"config": CONFIG_LINK})
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and any(md_escape(CONFIG_LINK) in e for e in errors)
    assert problems(markdown_texts(at._tree), env) == []


def test_the_checker_catches_what_it_should():
    """problems() must be able to fail: raw values, links and folders are each reported."""
    folder = Path("/srv/secret/data")
    assert problems([f"group {STRINGS[0]}"], folder)
    assert problems([f"see [here](http://{HOST}/x)"], folder)
    assert problems([f"<img src=http://{HOST}/x.png>"], folder)
    assert problems([f"cannot read {folder}/x.csv"], folder)
    assert problems(["plain \\[text\\]"], folder) == []
