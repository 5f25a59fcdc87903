"""A label with more than two values (readmitted NO / <30 / >30) or in words is mapped by naming the value(s)
that count as positive; the rest are negative. Parse-time validation, the oracle on raw rows, the CLI's
comma list, and messages that name the app's field in the app and the CLI's flag in the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate

from fairwatch.cli import main
from fairwatch.metrics.errors import DataError, SpecError
from fairwatch.metrics.audit.outcomes import choose_positive
from fairwatch.metrics.audit.spec import parse_spec
from tests.test_metrics_oracle import audit_frame

BASE = {"source": {"path": "x.csv"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["g"]}}


def _spec(positive):
    """A spec with [columns] positive_label set."""
    return parse_spec({**BASE, "columns": {**BASE["columns"], "positive_label": positive}})


@pytest.mark.parametrize("given, kept", [("<30", "<30"), (["<30", ">30"], ("<30", ">30")), (["yes"], "yes"),
                                         (1, "1"), (True, "true"), ([1, 2.0], ("1", "2"))])
def test_positive_label_is_one_value_or_several(given, kept):
    spec = _spec(given)
    assert spec.positive_label == kept
    assert parse_spec(spec.to_dict()).positive_label == kept  # round-trips through fairwatch.toml's shape


@pytest.mark.parametrize("given, message", [([], "non-empty list"), (["a", "a"], "names a value twice"),
                                            (["a", ""], "non-empty list"), (["a", ["b"]], "non-empty list"),
                                            ("  ", "is empty")])
def test_bad_positive_labels_are_refused_when_parsed(given, message):
    with pytest.raises(SpecError, match=message):
        _spec(given)


def _readmissions(n: int = 900, seed: int = 5) -> pd.DataFrame:
    """Three-valued outcomes and decisions, as the diabetes data's `readmitted`."""
    rng = np.random.default_rng(seed)
    classes = np.array(["NO", "<30", ">30"], dtype=object)
    return pd.DataFrame({"g": rng.choice(["a", "b"], n), "y_true": rng.choice(classes, n, p=[0.5, 0.15, 0.35]),
                         "y_pred": rng.choice(["1", "0"], n)})


def test_a_three_valued_label_mapped_to_two_positives_equals_fairlearn():
    df = _readmissions()
    snap = audit_frame(df, ["g"], score=False, positive_label=("<30", ">30"))
    rows = snap.groups.rows.set_index(["group", "metric"])
    yt = df["y_true"].isin(["<30", ">30"]).astype(int)
    yp = (df["y_pred"] == "1").astype(int)
    mf = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate}, y_true=yt, y_pred=yp,
                     sensitive_features=df["g"])
    for g in ("a", "b"):
        assert rows.loc[(f"g={g}", "true_positive_rate"), "value"] == pytest.approx(mf.by_group.loc[g, "tpr"], abs=1e-12)
        assert rows.loc[(f"g={g}", "false_positive_rate"), "value"] == pytest.approx(mf.by_group.loc[g, "fpr"], abs=1e-12)
    assert snap.to_dict()["data"]["positive_label"] == ["<30", ">30"]


def test_a_three_valued_label_with_one_named_positive_maps_the_rest_negative():
    df = _readmissions()
    snap = audit_frame(df, ["g"], score=False, positive_label="<30")
    rows = snap.groups.rows.set_index(["group", "metric"])
    yt = (df["y_true"] == "<30").astype(int)
    mask = (df["g"] == "a") & (yt == 1)
    assert rows.loc[("g=a", "true_positive_rate"), "support"] == mask.sum()


def test_a_three_valued_label_without_a_choice_names_the_field_where_it_is_fixed():
    with pytest.raises(DataError) as err:
        choose_positive({"NO", "<30", ">30"}, None, "label", "readmitted", "positive_label")
    assert "--positive-label" in str(err.value) and "(the rest are negative)" in str(err.value)
    app = err.value.in_app()
    assert "--" not in app and "Label values that count as positive" in app and "Data sources page" in app
    with pytest.raises(DataError, match="'maybe' are not values of readmitted"):
        choose_positive({"NO", "<30", ">30"}, ("<30", "maybe"), "label", "readmitted", "positive_label")


def test_the_cli_takes_a_comma_list_of_positive_labels(tmp_path, capsys):
    path = tmp_path / "readmissions.csv"
    _readmissions().to_csv(path, index=False)
    out = tmp_path / "audit"
    code = main(["audit", str(path), "--label", "y_true", "--prediction", "y_pred", "--sensitive", "g",
                 "--positive-label", "<30,>30", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    code = main(["audit", str(path), "--label", "y_true", "--prediction", "y_pred", "--sensitive", "g",
                 "--out", str(tmp_path / "again")])
    assert code == 2 and "--positive-label" in capsys.readouterr().err


def test_an_error_keeps_both_wordings_through_pickle():
    import pickle

    err = pickle.loads(pickle.dumps(DataError("say which with {field}", field="positive_label")))
    assert "--positive-label" in str(err) and "Data sources page" in err.in_app()
