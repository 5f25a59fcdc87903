"""Throwaway PostgreSQL and Spark for the engine tests: started by the tests, skipped with a reason if absent."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (initdb, pg_ctl), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run server commands as the postgres system user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_postgres() -> Iterator[str]:
    """Start a private PostgreSQL on a free loopback port; yield its URL; stop and delete it after."""
    url = os.environ.get("FAIRWATCH_TEST_PG_URL")
    if url:
        yield url
        return
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql); .ci/run installs it")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="fairwatch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    try:
        subprocess.run(_as_postgres([str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                                     "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"]
                                    + ["start"]), check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def load_postgres(url: str, table: str, frame: pd.DataFrame) -> None:
    """Create a table from a frame (text, bigint, double precision, timestamp columns) and copy the rows in."""
    import psycopg

    types = {"object": "text", "str": "text", "string": "text", "int64": "bigint", "int32": "integer",
             "int16": "smallint", "int8": "smallint", "float64": "double precision",
             "bool": "boolean", "datetime64[ns]": "timestamp", "datetime64[us]": "timestamp"}
    cols = ", ".join(f'"{c}" {types.get(str(t), "text")}' for c, t in frame.dtypes.items())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        conn.execute(f'CREATE TABLE "{table}" ({cols})')
        with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
            for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
                copy.write_row(row)


def spark_available() -> str | None:
    """None when Spark can run here, else the reason it cannot."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark not installed (pip install '.[spark]'); .ci/run installs it"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime for Spark"
    return None


def postgres_with_nans(frame: pd.DataFrame, column: str, nan_ids: list) -> Iterator[str]:
    """A private PostgreSQL holding the frame as table `log`, with `column` a stored NaN in the rows `nan_ids`.

    A stored NaN is not NULL in PostgreSQL; the engine tests hold that both engines treat it as DuckDB does.
    """
    import psycopg

    gen = start_postgres()
    url = next(gen)
    load_postgres(url, "log", frame)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE log SET {column} = 'NaN' WHERE id = ANY(%s)", (nan_ids,))
    yield url
    next(gen, None)
