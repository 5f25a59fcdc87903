"""Access I/O (connectors/access.py) and the access gate of every page (pages/components/auth.py, in AppTest).

The log: append-only, hash-chained, locked and synced; concurrent writers from threads and processes
never interleave or fork the chain; an edited, removed or torn line is reported. The gate: local mode,
each role, no role, not signed in (provider reachable or not), all without a browser; the real sign-in
flow is tests/e2e/test_auth.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from fairwatch.connectors.access import (ACCESS_CONFIG_ENV, ACCESS_LOG_ENV, GENESIS, AccessLogError, auth_settings,
                               check_provider, load_access_config, read_access_log, record_access,
                               verify_access_log)
from fairwatch.metrics.privacy.roles import AccessConfigError
from fairwatch.metrics.presentation.text import md_unescape

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
ACCESS = """\
claim = "groups"
[roles.auditor]
emails = ["alice@example.org"]
[roles.analyst]
claim_values = ["data-science"]
[roles.viewer]
emails = ["*@partner.net"]
[log]
path = "logs/access.jsonl"
"""


# ----------------------------------------------------------------------------- the access config


def test_the_access_config_is_read_with_the_log_beside_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ACCESS_LOG_ENV, raising=False)
    (tmp_path / "access.toml").write_text(ACCESS, encoding="utf-8")
    config = load_access_config(tmp_path / "access.toml")
    assert config.rules.claim == "groups" and ("alice@example.org", "auditor") in config.rules.emails
    assert config.log_path == (tmp_path / "logs" / "access.jsonl").resolve()
    monkeypatch.setenv(ACCESS_LOG_ENV, str(tmp_path / "elsewhere.jsonl"))
    assert load_access_config(tmp_path / "access.toml").log_path == (tmp_path / "elsewhere.jsonl").resolve()


def test_no_access_config_means_no_roles_but_a_named_missing_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv(ACCESS_CONFIG_ENV, raising=False)
    monkeypatch.setattr("fairwatch.connectors.access.DEFAULT_ACCESS_CONFIG", tmp_path / "absent.toml")
    assert load_access_config().rules.empty
    with pytest.raises(AccessConfigError, match="access config not found: .*absent.toml; create it"):
        load_access_config(tmp_path / "absent.toml")


@pytest.mark.parametrize("text, message", [
    ("claim = [", "is not valid TOML"),
    ("[roles.admin]\nemails = ['a@b.org']", "unknown role 'admin'"),
    ("[log]\nfile = 'x'", "[log] takes one key: path"),
])
def test_a_broken_access_config_is_one_line_naming_the_file(tmp_path, text, message):
    (tmp_path / "access.toml").write_text(text, encoding="utf-8")
    with pytest.raises(AccessConfigError) as err:
        load_access_config(tmp_path / "access.toml")
    assert message in str(err.value) and "access.toml" in str(err.value) and "\n" not in str(err.value)


def test_the_log_may_not_live_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(ACCESS_LOG_ENV, raising=False)
    (tmp_path / "access.toml").write_text("[log]\npath = 'access.jsonl'\n", encoding="utf-8")
    with pytest.raises(AccessConfigError, match="inside the data folder"):
        load_access_config(tmp_path / "access.toml")


# ----------------------------------------------------------------------------- sign-in settings


def _auth(**changes) -> dict:
    base = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 64,
            "client_id": "fw", "client_secret": "s", "server_metadata_url":
                "http://127.0.0.1:9000/.well-known/openid-configuration"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def test_a_good_auth_section_names_its_provider():
    assert auth_settings(_auth()).provider == "default"
    named = {k: v for k, v in _auth().items() if k in ("redirect_uri", "cookie_secret")}
    named["corp"] = {k: v for k, v in _auth().items() if k not in named}
    assert auth_settings(named).provider == "corp"


@pytest.mark.parametrize("changes, message", [
    ({"cookie_secret": None}, "has no cookie_secret"),
    ({"cookie_secret": "short"}, "cookie_secret is too short"),
    ({"redirect_uri": "http://127.0.0.1:8501/"}, "ending in /oauth2callback"),
    ({"client_secret": None}, "is missing client_secret"),
    ({"server_metadata_url": "127.0.0.1:9000/x"}, "must be an http(s) URL"),
    ({"redirect_uri": "http://localhost:8501/oauth2callback"}, "use the same host name in both"),
])
def test_a_bad_auth_section_says_which_key_to_fix(changes, message):
    with pytest.raises(AccessConfigError) as err:
        auth_settings(_auth(**changes))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_provider_check_tells_reachable_from_unreachable():
    pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is not installed (pip install -e '.[test]')")
    from tests.e2e.oidc import dead_url, oidc_provider

    with oidc_provider() as url:
        ok = check_provider(f"{url}/.well-known/openid-configuration")
        not_oidc = check_provider(f"{url}/")
        missing = check_provider(f"{url}/no-such-page")
    assert ok.ok, ok.message
    assert not not_oidc.ok and "did not answer with OIDC metadata" in not_oidc.message
    assert not missing.ok and "answered HTTP 404" in missing.message
    down = check_provider(f"{dead_url()}/.well-known/openid-configuration", timeout=1.0)
    assert not down.ok and "cannot be reached" in down.message and "server_metadata_url" in down.message


# ----------------------------------------------------------------------------- the access log


def _append(path: Path, n: int, who: str = "alice@example.org") -> None:
    for i in range(n):
        record_access(path, who=who, name="Alice", role="auditor", action="example_rows", what=f"rows {i}",
                      detail={"rows": i, "slice": {"sex": "female"}})


def test_records_chain_and_read_back_newest_first(tmp_path):
    log = tmp_path / "logs" / "access.jsonl"
    _append(log, 3)
    records = read_access_log(log)
    assert [r.seq for r in records] == [3, 2, 1]
    assert records[-1].prev == GENESIS and records[0].prev == records[1].line_sha256
    assert records[0].detail == {"rows": 2, "slice": {"sex": "female"}} and records[0].time.endswith("+00:00")
    check = verify_access_log(log)
    assert check.intact and check.records == 3 and check.last_sha256 == records[0].line_sha256
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert read_access_log(tmp_path / "none.jsonl") == () and verify_access_log(tmp_path / "none.jsonl").intact


@pytest.mark.parametrize("damage, expected", [
    (lambda lines: [lines[0], lines[1].replace(b"rows 1", b"rows 9"), lines[2]], "line 3: does not link"),
    (lambda lines: [lines[0], lines[2]], "line 2: does not link"),
    (lambda lines: [lines[1], lines[0], lines[2]], "line 1: does not link"),
    (lambda lines: [lines[0], lines[1], lines[2][:20]], "line 3: not a complete record"),
])
def test_an_edited_removed_reordered_or_torn_line_breaks_the_chain(tmp_path, damage, expected):
    log = tmp_path / "access.jsonl"
    _append(log, 3)
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(damage(lines)) + b"\n")
    check = verify_access_log(log)
    assert not check.intact and any(p.startswith(expected) for p in check.problems), check.problems


def test_after_a_torn_line_the_next_record_starts_a_new_line_and_the_chain_goes_on(tmp_path):
    log = tmp_path / "access.jsonl"
    _append(log, 2)
    with open(log, "ab") as fh:
        fh.write(b'{"seq": 3, "half a rec')  # a crash mid-write
    _append(log, 1)
    lines = log.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 4 and json.loads(lines[3])["seq"] == 3
    check = verify_access_log(log)
    assert check.problems == ("line 3: not a complete record (damaged or cut off)",)


def _writer(path: str, who: str, n: int) -> None:
    """A separate process appending n records."""
    _append(Path(path), n, who=who)


def test_concurrent_writers_from_threads_and_processes_never_fork_the_chain(tmp_path):
    log = tmp_path / "access.jsonl"
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    procs = [ctx.Process(target=_writer, args=(str(log), f"proc{i}@x.org", 25)) for i in range(3)]
    threads = [threading.Thread(target=_append, args=(log, 25, f"thread{i}@x.org")) for i in range(3)]
    for w in [*procs, *threads]:
        w.start()
    for w in [*procs, *threads]:
        w.join(60)
    assert all(p.exitcode == 0 for p in procs)
    check = verify_access_log(log)
    assert check.intact, check.problems[:3]
    assert check.records == 150 and sorted(r.seq for r in read_access_log(log)) == list(range(1, 151))


def test_an_unwritable_log_is_an_error_that_says_so(tmp_path):
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    with pytest.raises(AccessLogError, match="cannot open the access log .* make its folder writable"):
        _append(tmp_path / "a-file" / "access.jsonl", 1)


def test_actions_are_short_words():
    with pytest.raises(ValueError, match="short lower_case word"):
        record_access("/dev/null", who="a", name="a", role="viewer", action="Drop Table", what="x")


# ----------------------------------------------------------------------------- the gate, in AppTest


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """A 20k-row demo with its config."""
    from fairwatch.connectors.config import write_config
    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
    from fairwatch.metrics.audit.spec import SourceSpec, parse_spec

    folder = tmp_path_factory.mktemp("access-data")
    write_demo(folder / "demo.duckdb", rows=20_000)
    spec = parse_spec(DEMO_CONFIG)
    write_config(spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(folder / "demo.duckdb")})),
                 folder / "fairwatch.toml")
    return folder


def serve_with_roles(monkeypatch, tmp_path: Path, data: Path, access: str = ACCESS) -> None:
    """Point the app at a data folder (with its fairwatch.toml) and an access config written to tmp_path."""
    (tmp_path / "access.toml").write_text(access, encoding="utf-8")
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(data))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(data / "fairwatch.toml"))
    monkeypatch.setenv(ACCESS_CONFIG_ENV, str(tmp_path / "access.toml"))
    monkeypatch.delenv(ACCESS_LOG_ENV, raising=False)
    monkeypatch.delenv("FAIRWATCH_ALLOW_UNAUTHENTICATED_REMOTE", raising=False)


@pytest.fixture()
def env(demo_dir, tmp_path, monkeypatch) -> Path:
    """The app over the demo, with an access config and log in a temp folder; returns the log path."""
    serve_with_roles(monkeypatch, tmp_path, demo_dir)
    return tmp_path / "logs" / "access.jsonl"


def _app(page: str = "app.py", user: dict | None = None, auth: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    if user is not None:
        at.user = user
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "markdown", "error", "warning", "info") for e in getattr(at, kind)]
    return " ".join(str(p) for p in parts)


ALICE = {"is_logged_in": True, "sub": "a1", "email": "alice@example.org", "name": "Alice Auditor"}
BOB = {"is_logged_in": True, "sub": "b1", "email": "bob@corp.org", "name": "Bob Analyst", "groups": ["data-science"]}
CAROL = {"is_logged_in": True, "sub": "c1", "email": "carol@partner.net", "name": "Carol Viewer"}
MALLORY = {"is_logged_in": True, "sub": "m1", "email": "m@elsewhere.com", "name": "Mallory"}


def test_local_mode_shows_everything_with_a_note_that_anyone_on_the_port_can_see_it(env):
    at = _app()
    assert not at.exception and not at.error
    assert at.title[0].value == "Overview"
    assert "anyone who can reach this port can see everything" in " ".join(m.value for m in at.sidebar.markdown)
    at.switch_page("pages/9_Access_log.py").run()
    assert not at.exception and not at.error and at.title[0].value == "Access log"
    assert any("Nothing logged yet" in i.value for i in at.info)


def test_local_mode_on_a_public_address_shows_nothing_unless_the_flag_was_given(env, monkeypatch):
    with patch_config_options({"server.address": "0.0.0.0"}):
        at = _app()
        assert not at.exception and len(at.metric) == 0
        assert "--allow-unauthenticated-remote" in at.error[0].value and "shows nothing" in at.error[0].value
        monkeypatch.setenv("FAIRWATCH_ALLOW_UNAUTHENTICATED_REMOTE", "1")
        at = _app()
        assert not at.error and len(at.metric) >= 4
        assert "anyone who can reach this port can see everything" in at.sidebar.warning[0].value


@pytest.mark.parametrize("user, page, allowed", [
    (CAROL, "app.py", True), (CAROL, "pages/1_Data_sources.py", False), (CAROL, "pages/9_Access_log.py", False),
    (BOB, "pages/1_Data_sources.py", True), (BOB, "pages/9_Access_log.py", False),
    (ALICE, "pages/9_Access_log.py", True),
])
def test_each_role_reaches_its_pages_and_is_refused_the_others(env, user, page, allowed):
    at = _app(page, user=user, auth=_auth())
    assert not at.exception
    assert user["name"] in " ".join(m.value for m in at.sidebar.markdown)  # the name on every page
    refused = [e.value for e in at.error if e.value.startswith("Not permitted")]
    if allowed:
        assert not refused and not at.error, [e.value for e in at.error]
    else:
        assert len(refused) == 1 and "Ask an admin" in refused[0]
        assert len(at.metric) == 0 and len(at.dataframe) == 0 and len(at.table) == 0
        denied = read_access_log(env)[0]
        assert (denied.action, denied.who) == ("denied", user["email"])


def test_a_user_without_a_role_is_told_to_ask_an_admin_and_sees_nothing(env):
    at = _app("pages/3_Performance.py", user=MALLORY, auth=_auth())
    assert not at.exception and at.title[0].value == "No access yet"
    assert "ask an admin" in at.warning[0].value and "m@elsewhere" in md_unescape(at.warning[0].value)
    assert len(at.metric) == 0 and len(at.dataframe) == 0 and len(at.table) == 0 and not at.get("vega_lite_chart")


def test_names_from_the_provider_are_shown_as_text_not_markdown(env):
    user = {**CAROL, "name": "[Carol](javascript:alert(1)) **admin**"}
    at = _app("pages/9_Access_log.py", user=user, auth=_auth())
    shown = " ".join(m.value for m in at.sidebar.markdown) + " " + at.error[0].value
    assert "\\[Carol\\]\\(javascript\\:" in shown and "\\*\\*admin\\*\\*" in shown
    assert "[Carol](" not in shown and "[Carol](javascript:alert(1)) **admin**" in md_unescape(shown)


def test_signed_out_people_get_the_sign_in_page_only_when_the_provider_answers(env):
    pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is not installed (pip install -e '.[test]')")
    from tests.e2e.oidc import dead_url, oidc_provider

    with oidc_provider() as url:
        metadata = f"{url}/.well-known/openid-configuration"
        at = _app(user={"is_logged_in": False}, auth=_auth(server_metadata_url=metadata))
    assert at.title[0].value == "Sign in to fairwatch" and [b.label for b in at.button] == ["Sign in"]
    assert len(at.metric) == 0 and not at.error
    at = _app(user={"is_logged_in": False}, auth=_auth(server_metadata_url=f"{dead_url()}/.well-known/x"))
    assert at.title[0].value == "Sign in to fairwatch" and [b.label for b in at.button] == ["Try again"]
    assert "cannot be reached" in at.error[0].value and "\n" not in at.error[0].value


def test_a_browser_on_another_host_name_is_sent_to_the_one_sign_in_returns_to(env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = _auth(server_metadata_url="http://127.0.0.1:1/.well-known/x")
    at.user = {"is_logged_in": False}
    at.context = {"url": "http://localhost:8501/"}
    at.run()
    assert "Open fairwatch at http://127.0.0.1:8501/" in md_unescape(at.warning[0].value)


def test_a_broken_auth_section_or_access_config_fails_closed_with_one_line(env):
    at = _app(user=ALICE, auth=_auth(cookie_secret="short"))
    assert "cookie_secret is too short" in md_unescape(at.error[0].value) and len(at.metric) == 0
    Path(os.environ[ACCESS_CONFIG_ENV]).write_text("[roles.admin]\nemails = ['alice@example.org']\n")
    at = _app(user=ALICE, auth=_auth())
    assert "unknown role 'admin'" in md_unescape(at.error[0].value) and len(at.metric) == 0


def _pages_script() -> None:
    """An AppTest script: log an access and a logged download as the local user, then show the records."""
    import streamlit as st

    from fairwatch.connectors.access import read_access_log
    from fairwatch.metrics.errors import FairwatchError
    from fairwatch.metrics.privacy.roles import local_principal
    from fairwatch.pages.components.auth import PRINCIPAL, access_config, log_access, logged

    st.session_state[PRINCIPAL] = local_principal("ana")
    try:
        log_access("example_rows", "20 example rows of sex=female", {"rows": 20})
        data = logged("export", "download snap.zip", lambda: b"zip-bytes", {"snapshot": "snap"})
        st.write(f"before the click: {len(read_access_log(access_config().log_path))}")
        st.write(f"bytes: {data().decode()}")
        st.write(f"after the click: {len(read_access_log(access_config().log_path))}")
    except FairwatchError as exc:
        st.error(str(exc))


def test_pages_log_example_rows_and_downloads_before_showing_them(env):
    at = AppTest.from_function(_pages_script, default_timeout=30).run()
    assert not at.exception and not at.error
    assert [m.value for m in at.markdown] == ["before the click: 1", "bytes: zip-bytes", "after the click: 2"]
    download, rows = read_access_log(env)
    assert (rows.action, rows.who, rows.role, rows.detail) == ("example_rows", "local:ana", "auditor", {"rows": 20})
    assert (download.action, download.what) == ("export", "download snap.zip")


def test_when_the_log_cannot_be_written_nothing_is_shown(env, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    monkeypatch.setenv(ACCESS_LOG_ENV, str(tmp_path / "a-file" / "access.jsonl"))
    at = AppTest.from_function(_pages_script, default_timeout=30).run()
    assert not at.exception and not at.markdown
    assert "cannot open the access log" in at.error[0].value and "(nothing was shown or exported)" in at.error[0].value


# ----------------------------------------------------------------------------- what a viewer sees on the pages


@pytest.fixture(scope="module")
def smallest_group(demo_dir) -> tuple[str, str, int]:
    """(grouping, label, n) of the demo's smallest two-feature group: one an export withholds."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.config import load_spec
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.audit.spec import RowFilter

    spec = load_spec(demo_dir / "fairwatch.toml")
    src = open_source(spec.source)
    try:
        rows = run_audit(spec, RowFilter(), src, search_slices=False).groups.rows
    finally:
        src.close()
    pairs = rows[rows["slice"].map(len) == 2].drop_duplicates("group").sort_values("n", kind="stable")
    small = pairs.iloc[0]
    assert small["n"] < spec.suppress_below, "the demo has no group small enough to withhold; use fewer rows"
    return small["grouping"], small["group"], int(small["n"])


def _groups_shown(at: AppTest) -> set[str]:
    """Every group label in the page's tables (st.table's cells are escaped Markdown: read back as text)."""
    tables = [df.value for df in at.dataframe] + [t.value.rename(columns=md_unescape).map(md_unescape) for t in at.table]
    return {g for df in tables for g in (df["Group"] if "Group" in df else [])}


@pytest.mark.parametrize("page, key", [("pages/3_Performance.py", "fw.perf.grouping"),
                                       ("pages/2_Representation.py", "fw.rep.grouping")])
def test_a_viewer_does_not_see_a_small_groups_numbers_but_an_analyst_does(env, smallest_group, page, key):
    grouping, label, n = smallest_group
    seen = {}
    for who in (BOB, CAROL):
        at = _app(page, user=who, auth=_auth())
        at.selectbox(key=key).select(grouping).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        seen[who["name"]] = (_groups_shown(at), " ".join(md_unescape(c.value) for c in at.caption))
    analyst, viewer = seen["Bob Analyst"], seen["Carol Viewer"]
    assert label in analyst[0] and "withheld" not in analyst[1]
    assert label not in viewer[0] and viewer[0], "the viewer sees the other groups of the grouping"
    assert "withheld: groups of fewer than 10 people" in viewer[1]


def test_a_viewers_overview_and_heatmap_leave_out_small_cells(env, smallest_group):
    grouping, label, _ = smallest_group
    at = _app("app.py", user=CAROL, auth=_auth())
    assert not at.exception and not at.error
    shown = " ".join(str(x.value) for kind in ("markdown", "caption") for x in getattr(at, kind))
    cells = " ".join(md_unescape(v) for t in at.table for v in t.value.to_numpy().ravel() if isinstance(v, str))
    assert at.table and label not in cells  # the worst gaps leave it out too
    assert label not in shown and "withheld" in shown
    at.switch_page("pages/2_Representation.py").run()
    first, second = grouping.split(" × ")
    at.selectbox(key="fw.rep.first").select(first).run()
    at.selectbox(key="fw.rep.second").select(second).run()
    assert not at.exception and not at.error
    assert any("are withheld at your role" in c.value for c in at.caption)


def test_the_menu_lists_only_the_pages_of_the_role(env):
    """Streamlit's own menu is off (.streamlit/config.toml); the gate links the role's pages only."""
    from streamlit import config as st_config

    from fairwatch.metrics.privacy.roles import visible_pages

    assert st_config.get_option("client.showSidebarNavigation") is False
    for who, role in ((CAROL, "viewer"), (BOB, "analyst"), (ALICE, "auditor")):
        at = _app(user=who, auth=_auth())
        links = [e.proto.label for e in at.sidebar.get("page_link")]
        assert links == [p.title for p in visible_pages(role)], role


# ----------------------------------------------------------------------------- exports and downloads are logged


@pytest.fixture()
def downloads(monkeypatch) -> dict:
    """File name -> the deferred callable behind each st.download_button the pages draw (what a click runs)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    made: dict = {}
    original = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return made


def test_a_snapshot_records_the_signed_in_author_and_every_export_is_logged(env, tmp_path, monkeypatch, downloads):
    from fairwatch.connectors.export import load_snapshot
    from fairwatch.connectors.snapshot_store import SNAPSHOT_DIR_ENV

    history = tmp_path / "snapshots"
    monkeypatch.setenv(SNAPSHOT_DIR_ENV, str(history))
    at = _app("pages/7_Audit_export.py", user=ALICE, auth=_auth())
    assert not at.exception and not at.error
    author = next(t for t in at.text_input if t.label == "Author")
    assert author.value == "Alice Auditor" and author.disabled  # the signed-in person, not typed
    at.text_area(key="fw.export.note").input("quarterly review")
    next(b for b in at.button if b.label == "Create snapshot").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = [p for p in history.iterdir() if not p.name.startswith(".")]
    doc, manifest = load_snapshot(folder), json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    expected = {"name": "Alice Auditor", "id": "alice@example.org", "role": "auditor", "signed_in": "oidc"}
    assert doc["export"]["author"] == expected and manifest["author"] == expected
    assert doc["annotation"][0]["author"] == "Alice Auditor"
    created = read_access_log(env)[0]
    assert (created.action, created.who, created.what) == ("export", "alice@example.org", "create snapshot of all rows")

    # A download is logged when clicked (the file is made after its log line), not when the page is drawn.
    before = len(read_access_log(env))
    zipped = downloads[f"{folder.name}.zip"]
    assert len(read_access_log(env)) == before
    assert zipped()[:2] == b"PK"
    record = read_access_log(env)[0]
    assert (record.action, record.who, record.what) == ("export", "alice@example.org", f"download {folder.name}.zip")
    assert record.detail == {"snapshot": folder.name, "file": "zip"}
    assert verify_access_log(env).intact


def test_the_data_plan_logs_its_rows_and_each_download(env, downloads):
    at = _app("pages/8_Data_plan.py", user=BOB, auth=_auth())
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = read_access_log(env)[0]
    assert (shown.action, shown.who) == ("example_rows", "bob@corp.org") and "labelling queue" in shown.what
    at.run()  # a rerun of the same view is not logged again
    assert len(read_access_log(env)) == 1
    assert {"data_plan.csv", "label_queue.csv", "label_studio_tasks.json"} <= set(downloads)
    downloads["label_queue.csv"]()
    record = read_access_log(env)[0]
    assert (record.action, record.who, record.what) == ("export", "bob@corp.org", "download label_queue.csv")
    assert record.detail["budget"] == 200 and record.detail["view"] == "all rows"
