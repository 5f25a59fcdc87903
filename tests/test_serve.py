"""The launcher (connectors/serve.py): loopback only without sign-in unless --allow-unauthenticated-remote,
sign-in settings checked before Streamlit starts, and the exact `streamlit run` command it execs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairwatch.connectors.access import ACCESS_CONFIG_ENV
from fairwatch.connectors.serve import (ALLOW_ENV, ALLOW_FLAG, ServeError, ServeOptions, check_bind, host_is_loopback,
                              SHARED_SETTINGS, prepare, read_auth_section, streamlit_command)
from fairwatch.metrics.privacy.roles import AccessConfigError

ROOT = Path(__file__).resolve().parents[1]
AUTH = """\
[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "{secret}"
client_id = "fairwatch"
client_secret = "s3cret"
server_metadata_url = "http://127.0.0.1:9000/.well-known/openid-configuration"
"""


@pytest.fixture()
def files(tmp_path, monkeypatch) -> dict[str, Path]:
    """An empty secrets file, one with [auth], and an access config, outside any data folder."""
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(ACCESS_CONFIG_ENV, raising=False)
    out = {"empty": tmp_path / "empty.toml", "auth": tmp_path / "secrets.toml", "access": tmp_path / "access.toml"}
    out["empty"].write_text("[other]\nx = 1\n", encoding="utf-8")
    out["auth"].write_text(AUTH.format(secret="x" * 64), encoding="utf-8")
    out["access"].write_text('[roles.viewer]\nemails = ["a@b.org"]\n[log]\npath = "log.jsonl"\n', encoding="utf-8")
    return out


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host):
    assert host_is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "192.168.1.20", "8.8.8.8"])
def test_addresses_beyond_this_machine(host):
    assert not host_is_loopback(host)


def test_an_unknown_host_name_is_an_error():
    with pytest.raises(ServeError, match="cannot resolve the address 'no-such-host.invalid'"):
        host_is_loopback("no-such-host.invalid")


def test_without_sign_in_a_public_address_is_refused_naming_the_flag():
    with pytest.raises(ServeError) as err:
        check_bind("0.0.0.0", auth_on=False, allow_remote=False)
    text = str(err.value)
    assert text.startswith("refusing to serve on 0.0.0.0 without sign-in") and ALLOW_FLAG in text
    assert "[auth] in .streamlit/secrets.toml" in text and "127.0.0.1" in text and "\n" not in text
    assert "anyone who can reach this port" in check_bind("0.0.0.0", auth_on=False, allow_remote=True)
    assert check_bind("0.0.0.0", auth_on=True, allow_remote=False) is None
    assert check_bind("127.0.0.1", auth_on=False, allow_remote=False) is None


def test_the_flag_opens_remote_access_and_a_stale_environment_variable_does_not(files):
    opts = ServeOptions(host="0.0.0.0", secrets=(str(files["empty"]),))
    with pytest.raises(ServeError, match=ALLOW_FLAG):
        prepare(opts, environ={ALLOW_ENV: "1"})
    cmd, env, notes = prepare(ServeOptions(host="0.0.0.0", secrets=(str(files["empty"]),),
                                           allow_unauthenticated_remote=True), environ={})
    assert env[ALLOW_ENV] == "1" and any("without sign-in" in n for n in notes)
    _, env, notes = prepare(ServeOptions(secrets=(str(files["empty"]),)), environ={ALLOW_ENV: "1"})
    assert ALLOW_ENV not in env and notes == ["local mode: no sign-in configured; only this machine can reach the "
                                              "dashboard"]


def test_with_sign_in_the_command_carries_the_secrets_and_the_access_config(files):
    opts = ServeOptions(host="0.0.0.0", port=8600, secrets=(str(files["auth"]),), access=str(files["access"]))
    cmd, env, notes = prepare(opts, environ={})
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(ROOT / "asgi.py")]
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags == {"--server.address": "0.0.0.0", "--server.port": "8600", "--server.headless": "true",
                     "--client.showSidebarNavigation": "false", "--secrets.files": str(files["auth"].resolve()),
                     "--server.fileWatcherType": "none", "--runner.postScriptGC": "false",
                     **{f"--{k}": v for k, v in SHARED_SETTINGS.items()}}
    assert env[ACCESS_CONFIG_ENV] == str(files["access"].resolve()) and ALLOW_ENV not in env
    assert notes[0].startswith("sign-in: default provider at http://127.0.0.1:9000/")
    assert any("plain http beyond this machine" in n for n in notes)


def test_sign_in_settings_and_roles_are_checked_before_starting(files):
    files["auth"].write_text(AUTH.format(secret="short"), encoding="utf-8")
    with pytest.raises(AccessConfigError, match="cookie_secret is too short"):
        prepare(ServeOptions(secrets=(str(files["auth"]),)), environ={})
    files["auth"].write_text(AUTH.format(secret="x" * 64), encoding="utf-8")
    files["access"].write_text("[roles.root]\n", encoding="utf-8")
    with pytest.raises(AccessConfigError, match="unknown role 'root'"):
        prepare(ServeOptions(secrets=(str(files["auth"]),), access=str(files["access"])), environ={})
    empty = files["access"].with_name("none.toml")
    empty.write_text("", encoding="utf-8")
    _, _, notes = prepare(ServeOptions(secrets=(str(files["auth"]),), access=str(empty)), environ={})
    assert any("no roles are configured" in n for n in notes)


@pytest.mark.parametrize("opts, message", [
    (ServeOptions(port=0), "--port 0 is not a TCP port"),
    (ServeOptions(secrets=("/nonexistent/secrets.toml",)), "secrets file not found: /nonexistent/secrets.toml"),
])
def test_bad_flags_are_one_line_errors(opts, message):
    with pytest.raises(ServeError, match=message):
        prepare(opts, environ={})


def test_the_auth_section_is_merged_over_the_files_as_streamlit_does(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[auth]\nclient_id = "one"\nredirect_uri = "x"\n', encoding="utf-8")
    b.write_text('[auth]\nclient_id = "two"\n', encoding="utf-8")
    assert read_auth_section([a, b, tmp_path / "missing.toml"]) == {"client_id": "two", "redirect_uri": "x"}
    assert read_auth_section([tmp_path / "missing.toml"]) is None
    b.write_text("[auth\n", encoding="utf-8")
    with pytest.raises(ServeError, match="is not valid TOML"):
        read_auth_section([b])


@pytest.mark.parametrize("command", [["-m", "fairwatch.cli", "serve"], ["-m", "fairwatch.connectors.serve"]],
                         ids=["fairwatch serve", "python -m connectors.serve"])
def test_the_command_line_refuses_0_0_0_0_without_sign_in_before_binding_anything(files, tmp_path, command):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop(ALLOW_ENV, None)
    proc = subprocess.run([sys.executable, *command, "--host", "0.0.0.0", "--port", "8599",
                           "--secrets", str(files["empty"])], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fairwatch: error: refusing to serve on 0.0.0.0 without sign-in")
    assert ALLOW_FLAG in proc.stderr and proc.stderr.count("\n") == 1


def test_streamlit_command_passes_every_secrets_file(tmp_path):
    cmd = streamlit_command(ServeOptions(secrets=(str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))))
    assert cmd.count("--secrets.files") == 2


class _Exec(BaseException):
    """Raised by the stand-in for os.execve: what would have been started, without starting it."""


def _no_exec(monkeypatch) -> None:
    """Replace os.execve so that a test sees the command instead of becoming the server."""
    def fake(path, argv, env):
        raise _Exec(argv, env)

    monkeypatch.setattr(os, "execve", fake)


def test_fairwatch_serve_refuses_a_public_address_in_one_line_naming_the_flag(files, monkeypatch, capsys):
    from fairwatch.cli import main

    _no_exec(monkeypatch)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--secrets", str(files["empty"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fairwatch: error: refusing to serve on 0.0.0.0 without sign-in")
    assert ALLOW_FLAG in err and err.count("\n") == 1 and "Traceback" not in err


def test_fairwatch_serve_with_the_flag_starts_streamlit_on_that_address(files, monkeypatch, capsys):
    from fairwatch.cli import main

    _no_exec(monkeypatch)
    with pytest.raises(_Exec) as started:
        main(["serve", "--host", "0.0.0.0", "--port", "8611", "--secrets", str(files["empty"]), ALLOW_FLAG])
    argv, env = started.value.args
    flags = dict(zip(argv[5::2], argv[6::2]))
    assert argv[2:4] == ["streamlit", "run"] and flags["--server.address"] == "0.0.0.0"
    assert flags["--server.port"] == "8611" and env[ALLOW_ENV] == "1"
    err = capsys.readouterr().err
    assert "anyone who can reach this port sees all the data" in err and "open http://0.0.0.0:8611" in err


def test_a_bad_serve_flag_is_one_line(capsys):
    from fairwatch.cli import main

    assert main(["serve", "--port", "not-a-port"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err and "fairwatch serve --help" in err


def test_make_run_goes_through_fairwatch_serve():
    """`make run` starts the app through the launcher's checks, with HOST and PORT passed on."""
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "fairwatch serve --host $(HOST) --port $(PORT)" in recipe and "streamlit run" not in recipe


def test_server_start_pays_the_first_visit_s_one_time_costs():
    """asgi.py's start-up imports the pages' code and pays Streamlit's own first-use costs (its emoji catalog,
    its once-per-process `streamlit run` check), so a cold first visit does not wait for them."""
    code = ("import asyncio, sys\nimport asgi\nfrom streamlit import delta_generator\n"
            "async def start():\n    async with asgi.import_pages_code(asgi.app):\n        pass\n"
            "asyncio.run(start())\n"
            "print('fairwatch.pages.components.loaders' in sys.modules, 'streamlit.emojis' in sys.modules, "
            "delta_generator._use_warning_has_been_displayed)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "True", "True"], done.stderr[-2000:]


def test_the_shared_deployment_settings_are_valid_and_the_same_in_config_toml():
    """XSRF on, CORS protection on, no error details or links: on the command line and in .streamlit/config.toml."""
    import tomllib

    from streamlit import config as st_config

    toml = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    for key, value in SHARED_SETTINGS.items():
        section, name = key.split(".")
        assert str(toml[section][name]).lower() == value, key
        assert key in st_config._config_options_template, f"{key} is not a Streamlit 1.67 option"
    assert SHARED_SETTINGS["client.showErrorDetails"] in {o.value for o in st_config.ShowErrorDetailsConfigOptions}
    assert SHARED_SETTINGS["server.enableXsrfProtection"] == SHARED_SETTINGS["server.enableCORS"] == "true"
    assert 0 < toml["server"]["maxUploadSize"] <= 200


def test_the_server_computes_the_default_view_before_the_first_visit(tmp_path, monkeypatch):
    """asgi.py's warm-up thread fills the caches a new session reads (issue 18), and again when the data changes."""
    import threading

    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
    from fairwatch.connectors.config import write_config
    from fairwatch.metrics.audit.spec import RowFilter, SourceSpec, parse_spec
    from fairwatch.pages.components import loaders

    write_demo(tmp_path / "demo.duckdb", rows=5_000)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(tmp_path / "demo.duckdb")}))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(write_config(spec, tmp_path / "fairwatch.toml")))
    from fairwatch.connectors.active import default_spec

    active = default_spec()
    stamp = loaders.stamp_of(active)
    assert not loaders.search_done(active, RowFilter(), stamp)
    stop = threading.Event()
    worker = threading.Thread(target=loaders.warm_default_view, args=(stop, 0.2), daemon=True)
    worker.start()
    try:
        for _ in range(600):
            if loaders.search_done(active, RowFilter(), stamp):
                break
            stop.wait(0.5)
        assert loaders.search_done(active, RowFilter(), stamp)
        write_demo(tmp_path / "demo.duckdb", rows=6_000, seed=8)  # the data changes: warmed again
        changed = loaders.stamp_of(active)
        assert changed != stamp
        for _ in range(600):
            if loaders.search_done(active, RowFilter(), changed):
                break
            stop.wait(0.5)
        assert loaders.search_done(active, RowFilter(), changed)
    finally:
        stop.set()
        worker.join(timeout=60)


def test_the_warm_up_threads_missing_context_warnings_are_not_printed():
    """Streamlit warns "missing ScriptRunContext" when a thread outside a session fills a cache: the warm-up does
    so on purpose, so asgi.py drops those lines (on the logger that writes them) and keeps every other thread's."""
    import logging

    from streamlit.runtime.scriptrunner_utils import script_run_context

    import asgi

    def record(thread: str) -> logging.LogRecord:
        """A warning as Streamlit's logger writes it, from the named thread."""
        made = logging.LogRecord(script_run_context._LOGGER.name, logging.WARNING, __file__, 1,
                                 "Thread %r: missing ScriptRunContext!", (thread,), None)
        made.threadName = thread
        return made

    assert script_run_context._LOGGER.name == asgi.CONTEXT_LOGGER
    assert not asgi._not_from_warm_up(record(asgi.WARM_UP_THREAD))
    assert asgi._not_from_warm_up(record("ScriptRunner.scriptThread"))
