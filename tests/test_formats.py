"""One display vocabulary: the dashboard and the report use the same metric names, headline metrics and formatters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import fairwatch.metrics.discovery.diagnosis
import fairwatch.metrics.policy.overview
import fairwatch.metrics.presentation.report_model
from fairwatch.metrics.presentation import formats
from fairwatch.metrics.presentation.formats import HEADLINE_METRICS, fmt_num, fmt_pct, fmt_q, fmt_ratio, metric_label
from fairwatch.metrics.presentation.report_model import Table, build_report


def test_one_definition_of_each_word_and_formatter():
    """The overview, the diagnosis and the report read the same objects; none keeps a copy of its own."""
    for module in (fairwatch.metrics.policy.overview, fairwatch.metrics.discovery.diagnosis,
                   fairwatch.metrics.presentation.report_model):
        assert module.HEADLINE_METRICS is formats.HEADLINE_METRICS
    for name in ("fmt_pct", "fmt_ratio", "fmt_q"):
        assert getattr(fairwatch.metrics.policy.overview, name) is getattr(formats, name)
        assert getattr(fairwatch.metrics.presentation.report_model, name) is getattr(formats, name)
    report = fairwatch.metrics.presentation.report_model
    assert not hasattr(report, "METRIC_TEXT") and not hasattr(report, "metric_name")
    assert "true_positive_rate" in HEADLINE_METRICS  # the dashboard's verdicts use it; the report dropped it


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, np.nan, True, "x"])
def test_formatters_show_an_em_dash_for_anything_that_is_not_a_number(missing):
    """Undefined values (and non-numbers from a document) are an em dash in every formatter, never an error."""
    assert fmt_pct(missing) == fmt_num(missing) == fmt_ratio(missing) == fmt_q(missing) == "—"


def test_formatters_keep_the_dashboards_look():
    """The dashboard's formats: one-decimal percentages, 'x' ratios, scientific q-values below 0.001."""
    assert fmt_pct(0.4485) == "44.9%" and fmt_pct(0.004, 2) == "0.40%" and fmt_pct(np.float64(1.0)) == "100.0%"
    assert fmt_ratio(1.98) == "1.98×" and fmt_num(0.8) == "0.80"
    assert fmt_q(1.2e-4) == "1.2e-04" and fmt_q(0.0123) == "0.012" and fmt_q(0.0) == "< 1e-300"
    assert math.isclose(float(fmt_num(2 / 3, 4)), 0.6667)


def test_the_report_speaks_the_dashboards_words():
    """The report's headline table lists every headline metric by the dashboard's name; gaps use its q format."""
    import fairwatch

    rng = np.random.default_rng(2)
    n = 3000
    race = rng.choice(["a", "b"], n)
    label = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < np.where(race == "b", 0.4, 0.1), 1 - label, label)
    doc = fairwatch.audit(pd.DataFrame({"race": race, "label": label, "pred": pred}), label="label",
                          prediction="pred", sensitive="race").to_dict()
    tables = [b for s in build_report(doc).sections for b in s.blocks if isinstance(b, Table)]
    headline = next(t for t in tables if t.columns[:3] == ("Group", "People", "With outcome"))
    assert headline.columns[3:-1] == tuple(metric_label(m) for m in HEADLINE_METRICS)
    assert "True positive rate (recall)" in headline.columns
    gaps = next(t for t in tables if "q-value" in t.columns)
    q_values = [r[gaps.columns.index("q-value")] for r in gaps.rows]
    assert q_values and all(q == "< 1e-300" or "e-" in q or q.startswith("0.") for q in q_values)
    assert any("e-" in q for q in q_values)  # a planted gap this size is far below 0.001: shown as the dashboard does
