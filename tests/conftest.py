"""Shared fixtures: the project root on sys.path, paths to the shared real data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Every snapshot written under test (CLI, pages, servers started from here) is checked against the
# published schema; users' exports skip it (connectors/export.py validation_wanted).
os.environ.setdefault("FAIRWATCH_VALIDATE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real public data; tests that need it skip where it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA} (only present on the team's machines)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _private_access_log(tmp_path_factory, monkeypatch):
    """Pages that log (example rows, exports, downloads) write to a temp access log, never the repo's logs/.

    Tests of the log itself set or unset FAIRWATCH_ACCESS_LOG after this runs; a server started by a
    module-scoped fixture passes its own (tests/e2e).
    """
    monkeypatch.setenv("FAIRWATCH_ACCESS_LOG", str(tmp_path_factory.mktemp("access-log") / "access-log.jsonl"))
