"""SQL injection through the whole audit (issue 8), beyond the group counts of test_injection.py.

Arbitrary strings as the names of every column role (sensitive, feature, model version, time), as group
values, and as the values typed into the app's filters (model version, time window) go through
`run_audit` with the slice search and the data-quality counts. Each run either gives the numbers a pandas
filter and groupby give on the raw rows, or refuses with a one-line fairwatch error; never an engine
error, and the source (a DuckDB file with a sentinel table, in a folder whose name is itself SQL) is
unchanged, byte for byte.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_source
from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from tests.test_injection import file_sha256, write_log_with_sentinel

NASTY = ["'", '"', ";", "--", "/*", "*/", "'; DROP TABLE sentinel; --", '"; DROP TABLE sentinel; --', "\n", "\\",
         "$1", "?", "%", "é", "🙂", " ", "NULL", "(missing)x", "' OR '1'='1"]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8)
word = st.lists(st.one_of(text, st.sampled_from(NASTY)), min_size=1, max_size=3).map("".join)
# Always holds one of the NASTY pieces: every example attacks, not just the lucky ones.
nasty = st.tuples(word, st.sampled_from(NASTY), word).map("".join)
FOLDER = "it's; DROP TABLE sentinel; -- \"x\""  # the source's folder name is SQL too (view definitions quote it)
N = 240


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(nasty, min_size=4, max_size=4), groups=st.lists(word, min_size=2, max_size=4, unique=True),
       versions=st.lists(nasty, min_size=2, max_size=2, unique=True), typed=nasty, pick=st.sampled_from([0, 0, 1, 2]),
       seed=st.integers(0, 10**6))
def test_every_name_and_typed_value_is_only_data(names, groups, versions, typed, pick, seed):
    sensitive, feature, version_col, time_col = names
    lowered = [n.lower() for n in (*names, "label", "pred")]
    assume(all(n.strip() for n in names) and len(set(lowered)) == len(lowered))
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({sensitive: rng.choice(groups, N), feature: rng.choice(groups, N),
                        version_col: rng.choice(versions, N), "label": rng.integers(0, 2, N),
                        "pred": rng.integers(0, 2, N),
                        time_col: pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, N), unit="D")})
    # The typed filter: an existing version, a string that matches nothing, or a time bound that is not a time.
    row_filter = [RowFilter(model_version=versions[0]), RowFilter(model_version=typed),
                  RowFilter(time_from=typed)][pick]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FOLDER
        folder.mkdir()
        path = folder / "log.duckdb"
        before = write_log_with_sentinel(path, raw)
        spec = parse_spec({"source": {"path": str(path), "table": "log"},
                           "columns": {"label": "label", "prediction": "pred", "sensitive": [sensitive],
                                       "features": [feature], "model_version": version_col, "time": time_col},
                           "policy": {"min_support": 1}})
        src = open_source(spec.source)
        try:
            try:
                snap = run_audit(spec, row_filter, src)
            except FairwatchError as exc:  # a refusal is a one-line fairwatch error, never an engine error
                assert "\n" not in str(exc), str(exc)
                snap = None
        finally:
            src.close()
        assert file_sha256(path) == before
        db = duckdb.connect(str(path), read_only=True)
        assert db.execute("SELECT answer FROM sentinel").fetchall() == [(42,)]
        assert sorted(r[0] for r in db.execute("SELECT table_name FROM information_schema.tables").fetchall()) \
            == ["log", "sentinel"]
        db.close()
    if pick == 0 or (pick == 1 and typed in versions):
        assert snap is not None, "an existing model version must audit"
    if snap is None:
        return
    kept = raw if row_filter.model_version is None else raw[raw[version_col] == row_filter.model_version]
    assert snap.data.rows == len(kept)
    rows = snap.groups.rows
    got = {dict(s)[sensitive]: int(n) for s, n in zip(rows["slice"], rows["n"]) if [k for k, _ in s] == [sensitive]}
    assert got == kept[sensitive].value_counts().to_dict()
