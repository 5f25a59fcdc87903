"""A prediction log whose group values, feature values and one column name are attacks on a Markdown page.

Shared by the browser test (tests/e2e/test_browser_hostile.py) and the AppTest walk (tests/test_app_hostile.py).
Every URL points at HOST, a name that never resolves: a browser that asks for it shows up in the requests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HOST = "evil.test"
IMAGE = f"![x](http://{HOST}/md.png)"
LINK = f"[Re-authenticate](http://{HOST}/phish)"
RAW_IMG = f"<img src=http://{HOST}/raw.png>"
SCRIPT = "<script>document.title='pwned'</script>"
LATEX = "$\\LaTeX$"
DIRECTIVES = ":red[x] :material/lock:"
BARE = f"http://{HOST}/bare"
GROUPS = (IMAGE, LINK, RAW_IMG)  # values of the hostile sensitive feature
FEATURES = (SCRIPT, LATEX, DIRECTIVES, BARE)  # values of an ordinary feature
COLUMN = f":red[col] ![c](http://{HOST}/col.png)"  # the name of a sensitive feature
CONFIG_LINK = f"![x](http://{HOST}/pixel.png) [link](http://{HOST}/phish)"  # a crafted ?config= value
STRINGS = (*GROUPS, *FEATURES, COLUMN, CONFIG_LINK)


def write_hostile_log(folder: Path, rows: int = 6000, seed: int = 7) -> Path:
    """A Parquet log and its fairwatch.toml in `folder`; returns the config's path.

    The LINK group gets three times the false-negative rate and the LATEX feature value a worse error rate,
    so that the verdicts, the plain-language summary and the slice findings all name them.
    """
    from fairwatch.connectors.config import write_config
    from fairwatch.metrics.audit.spec import parse_spec

    rng = np.random.default_rng(seed)
    group = rng.choice(len(GROUPS), rows, p=[0.45, 0.35, 0.20])
    feature = rng.choice(len(FEATURES), rows)
    sex = rng.choice(["female", "male"], rows)
    label = rng.random(rows) < 0.5
    fnr = np.where(group == 1, 0.45, 0.15) + np.where(feature == 1, 0.2, 0.0)
    fpr = np.where(feature == 1, 0.3, 0.1)
    pred = np.where(label, rng.random(rows) >= fnr, rng.random(rows) < fpr)
    score = np.clip(np.where(pred, 0.6, 0.3) + rng.normal(0, 0.12, rows), 0, 1).round(3)
    start = np.datetime64("2025-01-01T00:00:00", "s")
    ts = start + (rng.random(rows) * 180 * 86400).astype("timedelta64[s]")
    frame = pd.DataFrame({
        "id": np.arange(rows), "ts": ts, "model_version": np.where(ts < start + np.timedelta64(90, "D"), "v1", "v2"),
        COLUMN: np.array(GROUPS, dtype=object)[group], "sex": sex,
        "comment": np.array(FEATURES, dtype=object)[feature],
        "outcome": label.astype(int), "decision": pred.astype(int), "score": score,
    })
    data = folder / "hostile.parquet"
    frame.to_parquet(data, index=False)
    spec = parse_spec({
        "source": {"path": str(data)},
        "columns": {"label": "outcome", "prediction": "decision", "score": "score", "sensitive": [COLUMN, "sex"],
                    "features": ["comment"], "time": "ts", "model_version": "model_version", "id": "id"},
    })
    config = folder / "fairwatch.toml"
    write_config(spec, config)
    return config
