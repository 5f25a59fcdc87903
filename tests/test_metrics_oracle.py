"""The counts path against fairlearn and sklearn on the raw rows: every metric, every grouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    roc_auc_score,
)

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.groups import groupings
from fairwatch.metrics.audit.spec import parse_spec


def _npv(y_true, y_pred):
    """Negative predictive value by sklearn: precision of the negative class."""
    return precision_score(y_true, y_pred, pos_label=0, zero_division=np.nan)


def _base_rate(y_true, y_pred):
    """Prevalence of the positive label."""
    return float(np.mean(y_true))


def _ece(y_true, y_prob, bins=10):
    """ECE on raw rows by its definition (equal-width bins)."""
    y, p = np.asarray(y_true, float), np.asarray(y_prob, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return sum(abs(y[idx == b].sum() - p[idx == b].sum()) for b in range(bins)) / len(y)


# Oracle: (fairlearn/sklearn function, denominator on raw rows that must be > 0 for it to be defined).
ORACLE = {
    "base_rate": (_base_rate, lambda t, p: len(t)),
    "selection_rate": (selection_rate, lambda t, p: len(t)),
    "accuracy": (accuracy_score, lambda t, p: len(t)),
    "true_positive_rate": (true_positive_rate, lambda t, p: (t == 1).sum()),
    "false_negative_rate": (false_negative_rate, lambda t, p: (t == 1).sum()),
    "false_positive_rate": (false_positive_rate, lambda t, p: (t == 0).sum()),
    "true_negative_rate": (true_negative_rate, lambda t, p: (t == 0).sum()),
    "precision": (lambda t, p: precision_score(t, p, zero_division=np.nan), lambda t, p: (p == 1).sum()),
    "false_discovery_rate": (lambda t, p: 1 - precision_score(t, p, zero_division=np.nan), lambda t, p: (p == 1).sum()),
    "negative_predictive_value": (_npv, lambda t, p: (p == 0).sum()),
    "false_omission_rate": (lambda t, p: 1 - _npv(t, p), lambda t, p: (p == 0).sum()),
    "balanced_accuracy": (balanced_accuracy_score, lambda t, p: min((t == 1).sum(), (t == 0).sum())),
    "f1": (lambda t, p: f1_score(t, p, zero_division=np.nan), lambda t, p: ((t == 1) | (p == 1)).sum()),
}
SCORE_ORACLE = {
    "roc_auc": (roc_auc_score, lambda t: min((t == 1).sum(), (t == 0).sum())),
    "brier_score": (brier_score_loss, len),
    "expected_calibration_error": (_ece, len),
}


def audit_frame(df: pd.DataFrame, sensitive: list[str], *, score: bool = True, positive_label=None):
    """Audit a raw frame through the full counts path (DuckDB, metrics/) with nothing masked."""
    cols = {"label": "y_true", "prediction": "y_pred", "sensitive": sensitive}
    if score:
        cols["score"] = "score"
    if positive_label is not None:
        cols["positive_label"] = positive_label
    spec = parse_spec({"source": {"path": "(frame)"}, "columns": cols, "policy": {"min_support": 1}})
    return run_audit(spec, src=open_frame(df))


values = st.sampled_from(["a", "b", "c", "Ω", "x y", "O'Neil", None])


@st.composite
def raw_frames(draw):
    """Random raw prediction logs: 1-3 sensitive features, skewed outcomes, scores with 3 decimals."""
    n = draw(st.integers(1, 300))
    k = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    frame = {}
    for i in range(k):
        alphabet = draw(st.lists(values, min_size=1, max_size=4, unique=True))
        frame[f"s{i}"] = rng.choice(np.array(alphabet, dtype=object), n)
    p_pos = draw(st.floats(0, 1))
    frame["y_true"] = (rng.random(n) < p_pos).astype(int)
    frame["y_pred"] = (rng.random(n) < draw(st.floats(0, 1))).astype(int)
    frame["score"] = np.round(rng.random(n), 3)
    return pd.DataFrame(frame), [f"s{i}" for i in range(k)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_frames())
def test_every_metric_equals_fairlearn_on_raw_rows(case):
    """Property: for random data the counts path equals fairlearn on the raw rows to 1e-12."""
    df, sensitive = case
    if any(df[c].isna().all() for c in sensitive):  # nothing to compare: refused, with the column named
        empty = next(c for c in sensitive if df[c].isna().all())
        with pytest.raises(DataError, match=f"sensitive column {empty} is empty"):
            audit_frame(df, sensitive)
        return
    # The raw oracle sees missing sensitive values as the explicit group the audit reports.
    oracle_df = df.copy()
    for c in sensitive:
        oracle_df[c] = oracle_df[c].fillna("(missing)")
    check_against_oracle(df, oracle_df, sensitive)


def check_against_oracle(raw: pd.DataFrame, oracle: pd.DataFrame, sensitive: list[str]) -> None:
    """Audit `raw` (with NULL groups) and compare with fairlearn on `oracle` (NULL as '(missing)')."""
    snap = audit_frame(raw, sensitive)
    rows = snap.groups.rows.set_index(["group", "metric"])
    yt, yp, sc = oracle["y_true"].to_numpy(), oracle["y_pred"].to_numpy(), oracle["score"].to_numpy()
    for cols in groupings(sensitive):
        sf = oracle[list(cols)].astype(str)
        mf = MetricFrame(metrics={m: fn for m, (fn, _) in ORACLE.items()}, y_true=yt, y_pred=yp, sensitive_features=sf)
        for key, expected in mf.by_group.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            mask = np.logical_and.reduce([(sf[c] == v).to_numpy() for c, v in zip(cols, key)])
            group = ", ".join(f"{c}={v}" for c, v in zip(cols, key))
            if not mask.any():
                assert (group, "accuracy") not in rows.index
                continue
            for m, (_, den) in ORACLE.items():
                got = rows.loc[(group, m), "value"]
                if den(yt[mask], yp[mask]) == 0:
                    assert np.isnan(got), (group, m, got)
                else:
                    assert got == pytest.approx(expected[m], abs=1e-12), (group, m)
            for m, (fn, den) in SCORE_ORACLE.items():
                got = rows.loc[(group, m), "value"]
                if den(yt[mask]) == 0:
                    assert np.isnan(got), (group, m, got)
                else:
                    assert got == pytest.approx(fn(yt[mask], sc[mask]), abs=1e-12), (group, m)
            assert rows.loc[(group, "accuracy"), "n"] == mask.sum()


def test_string_labels_and_predictions_map_by_positive_label():
    """'approved'/'denied' style values are mapped by the positive label, then equal fairlearn."""
    rng = np.random.default_rng(3)
    n = 500
    df = pd.DataFrame({
        "g": rng.choice(["p", "q"], n),
        "y_true": rng.choice(["repaid", "default"], n),
        "y_pred": rng.choice(["repaid", "default"], n),
    })
    snap = audit_frame(df, ["g"], score=False, positive_label="repaid")
    rows = snap.groups.rows.set_index(["group", "metric"])
    yt = (df["y_true"] == "repaid").astype(int)
    yp = (df["y_pred"] == "repaid").astype(int)
    mf = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate}, y_true=yt, y_pred=yp,
                     sensitive_features=df["g"])
    for g in ("p", "q"):
        assert rows.loc[(f"g={g}", "true_positive_rate"), "value"] == pytest.approx(mf.by_group.loc[g, "tpr"], abs=1e-12)
        assert rows.loc[(f"g={g}", "false_positive_rate"), "value"] == pytest.approx(mf.by_group.loc[g, "fpr"], abs=1e-12)


def test_group_without_positives_is_nan_not_zero():
    """sklearn says 0.0 for TPR of a group with no positives; the audit says 'undefined'."""
    df = pd.DataFrame({"g": ["a"] * 40 + ["b"] * 40, "y_true": [0] * 40 + [1, 0] * 20,
                       "y_pred": [1, 0] * 40, "score": [0.5] * 80})
    snap = audit_frame(df, ["g"])
    rows = snap.groups.rows.set_index(["group", "metric"])
    assert np.isnan(rows.loc[("g=a", "true_positive_rate"), "value"])
    assert rows.loc[("g=a", "true_positive_rate"), "support"] == 0
    assert true_positive_rate(np.zeros(40, int), np.array([1, 0] * 20)) == 0.0  # the trap we avoid
