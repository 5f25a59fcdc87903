"""The what-if thresholds from bucket counts against fairlearn's ThresholdOptimizer on the raw rows.

Where scores have no more decimals than the buckets, thresholds, randomisation weights, rates and the
objective must be fairlearn's own (weights within 1e-9); with finer scores the objective may only be
below fairlearn's by at most the stated bucket error, and the constraint must still hold on the raw rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from fairwatch.metrics.policy.whatif import (
    CONSTRAINTS,
    FAIRLEARN_OBJECTIVES,
    Objective,
    Tolerance,
    apply_rules,
    fit_thresholds,
    objective_value,
    raw_cells,
    rate_table,
)

WEIGHT_TOL = 1e-9


class ScoreColumn(ClassifierMixin, BaseEstimator):
    """A 'model' whose decision is the score column itself (prefit)."""

    def fit(self, X, y=None):
        """Nothing to learn."""
        self.fitted_ = True
        return self

    def predict(self, X):
        """The score column."""
        return np.asarray(X["score"], float)


def fairlearn_fit(frame: pd.DataFrame, constraint: str, objective: str, tol: float | None = None) -> ThresholdOptimizer:
    """ThresholdOptimizer(prefit=True) on the raw rows; the group is the label fairwatch gives it."""
    opt = ThresholdOptimizer(estimator=ScoreColumn().fit(None), constraints=constraint,
                             objective=FAIRLEARN_OBJECTIVES[objective], prefit=True, predict_method="predict",
                             tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.fit(frame[["score"]], frame["y"], sensitive_features=frame["group"])
    return opt


def expected_rates(frame: pd.DataFrame, p_yes: np.ndarray) -> dict[tuple[str, str], float]:
    """Per group, the expected selection rate, TPR and FPR of a randomised decision on the raw rows."""
    out = {}
    for g, sub in frame.assign(p=p_yes).groupby("group"):
        y = sub["y"].to_numpy() == 1
        out[(g, "selection_rate")] = sub["p"].mean()
        out[(g, "true_positive_rate")] = sub["p"][y].mean()
        out[(g, "false_positive_rate")] = sub["p"][~y].mean()
    return out


def ours_from_table(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The same rates from fairwatch's rate table."""
    return {(g, m): v for g, m, v in zip(table["group"], table["metric"], table["value"])}


def accuracy_of(frame: pd.DataFrame, p_yes: np.ndarray, objective: str) -> float:
    """Expected accuracy or balanced accuracy of a randomised decision on the raw rows."""
    y = frame["y"].to_numpy() == 1
    if objective == "accuracy":
        return float(np.mean(np.where(y, p_yes, 1 - p_yes)))
    return float(0.5 * p_yes[y].mean() + 0.5 * (1 - p_yes[~y]).mean())


def cells_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw rows counted per (group, score, y, today's decision)."""
    cells = raw_cells(frame.assign(pred=(frame["score"] >= 0.5).astype(int)), ["g"], "score", "y", "pred")
    return cells


def compare(frame: pd.DataFrame, constraint: str, objective: str, tol: float | None = None) -> None:
    """Hold fairwatch's fit from the counts to fairlearn's on the raw rows, exactly."""
    cells = cells_of(frame)
    tolerance = Tolerance("difference", tol) if tol else Tolerance()
    fit = fit_thresholds(cells, constraint, Objective(objective), tolerance, min_support=1)
    opt = fairlearn_fit(frame, constraint, objective, tol)
    theirs = opt.interpolated_thresholder_.interpolation_dict
    assert sorted(theirs) == sorted(r.group for r in fit.rules)
    for rule in fit.rules:
        t = theirs[rule.group]
        assert rule.threshold0 == t.operation0.threshold and rule.threshold1 == t.operation1.threshold, rule.group
        assert abs(rule.p0 - t.p0) <= WEIGHT_TOL and abs(rule.p1 - t.p1) <= WEIGHT_TOL
        assert abs(rule.p_ignore - t.get("p_ignore", 0.0)) <= WEIGHT_TOL
        if "prediction_constant" in t:
            assert abs(rule.constant - t.prediction_constant) <= WEIGHT_TOL
    p_fl = opt._pmf_predict(frame[["score"]], sensitive_features=frame["group"])[:, 1]
    applied = apply_rules(cells, fit)
    ours = ours_from_table(rate_table(applied, "p_yes"))
    for key, value in expected_rates(frame, p_fl).items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert objective_value(applied, "p_yes", Objective(objective)) == pytest.approx(
        accuracy_of(frame, p_fl, objective), abs=1e-12)
    if constraint != "equalized_odds":
        assert fit.objective_value == pytest.approx(opt._y_best, abs=1e-12)


def random_frame(seed: int, rows: int = 3000, decimals: int = 2, groups: int = 3) -> pd.DataFrame:
    """Random scores with a few decimals, labels correlated with them, groups of different skill."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    shift = np.array([0.0, 0.1, -0.15, 0.05, 0.2])[g]
    y = (rng.random(rows) < 0.4 + shift).astype(int)
    score = np.clip(rng.normal(0.35 + 0.3 * y + shift / 2, 0.2), 0, 1)
    score = np.round(score, decimals)
    labels = np.array([f"g={k}" for k in range(groups)])[g]
    return pd.DataFrame({"g": [f"{k}" for k in g], "group": labels, "score": score, "y": y})


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("objective", ["accuracy", "balanced_accuracy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_fairlearn_on_random_data(constraint, objective, seed):
    """Thresholds, weights, rates and objective are fairlearn's, for every constraint and both objectives."""
    compare(random_frame(seed, decimals=2 if seed == 0 else 3, groups=3 + seed), constraint, objective)


@pytest.mark.parametrize("constraint", [c for c in CONSTRAINTS if c != "equalized_odds"])
@pytest.mark.parametrize("tol", [0.02, 0.1])
def test_equals_fairlearn_with_a_tolerance(constraint, tol):
    """fairlearn's sliding window for a maximum difference, mirrored."""
    compare(random_frame(3, decimals=2), constraint, "accuracy", tol)


def compas(shared_data) -> pd.DataFrame:
    """COMPAS: decile_score as the score, two_year_recid as the label, race as the group."""
    raw = pd.read_csv(shared_data / "compas" / "compas-scores-two-years.csv", usecols=["decile_score", "race", "two_year_recid"])
    return pd.DataFrame({"g": raw["race"].astype(str), "group": "g=" + raw["race"].astype(str),
                         "score": raw["decile_score"].astype(float), "y": raw["two_year_recid"].astype(int)})


@pytest.mark.parametrize("constraint", CONSTRAINTS)
@pytest.mark.parametrize("objective", ["accuracy", "balanced_accuracy"])
def test_equals_fairlearn_on_compas(shared_data, constraint, objective):
    """COMPAS deciles: every race group's rule as fairlearn's."""
    compare(compas(shared_data), constraint, objective)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_finer_scores_stay_within_the_bucket_error(constraint):
    """Scores with more decimals than the buckets: objective within the stated error, constraint still met."""
    frame = random_frame(5, rows=4000, decimals=6)
    bucketed = frame.assign(score=np.floor(frame["score"] * 100 + 0.5) / 100)  # score_decimals = 2
    fit = fit_thresholds(cells_of(bucketed), constraint, Objective("accuracy"), min_support=1)
    opt = fairlearn_fit(frame, constraint, "accuracy")
    p_fl = opt._pmf_predict(frame[["score"]], sensitive_features=frame["group"])[:, 1]
    # Our rules applied to the raw scores (not the buckets).
    raw = raw_cells(frame.assign(pred=0), ["g"], "score", "y", "pred")
    applied = apply_rules(raw, fit)
    ours = objective_value(applied, "p_yes", Objective("accuracy"))
    theirs = accuracy_of(frame, p_fl, "accuracy")
    assert ours <= theirs + 1e-12
    assert theirs - ours <= fit.bucket_error + 1e-12
    table = rate_table(applied, "p_yes")
    metric = {"demographic_parity": "selection_rate", "true_positive_rate_parity": "true_positive_rate",
              "false_positive_rate_parity": "false_positive_rate",
              "false_negative_rate_parity": "false_negative_rate", "equalized_odds": "true_positive_rate"}[constraint]
    values = table.loc[table["metric"] == metric, "value"]
    assert values.max() - values.min() <= 1e-9


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(200, 1500), decimals=st.integers(1, 3),
       groups=st.integers(2, 5), constraint=st.sampled_from(CONSTRAINTS),
       objective=st.sampled_from(["accuracy", "balanced_accuracy"]))
def test_property_equals_fairlearn(seed, rows, decimals, groups, constraint, objective):
    """Property: on any random log whose scores fit the buckets, the rules are fairlearn's."""
    frame = random_frame(seed, rows=rows, decimals=decimals, groups=groups)
    if frame.groupby("group")["y"].agg(["min", "max"]).pipe(lambda t: (t["min"] == t["max"]).any()):
        return  # fairlearn refuses a group with one outcome only ("degenerate labels"); fairwatch keeps it as today
    compare(frame, constraint, objective)


def _eo_rates(cells: pd.DataFrame, fit) -> pd.DataFrame:
    """Per group (rows) the what-if's expected TPR and FPR (columns) from the counts."""
    table = rate_table(apply_rules(cells, fit), "p_yes")
    return table.pivot(index="group", columns="metric", values="value")[["true_positive_rate", "false_positive_rate"]]


@pytest.mark.parametrize("objective", ["accuracy", "balanced_accuracy", "cost"])
@pytest.mark.parametrize("tol", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("seed", [0, 3])
def test_equalized_odds_with_a_maximum_difference(seed, tol, objective):
    """TPRs and FPRs at most tol apart on the fit range, and an objective no worse than exact equalized odds."""
    cells = cells_of(random_frame(seed, groups=4))
    obj = Objective(objective, 3, 1) if objective == "cost" else Objective(objective)
    exact = fit_thresholds(cells, "equalized_odds", obj, min_support=1)
    relaxed = fit_thresholds(cells, "equalized_odds", obj, Tolerance("difference", tol), min_support=1)
    rates = _eo_rates(cells, relaxed)
    assert (rates.max() - rates.min()).max() <= tol + 1e-9
    assert relaxed.feasible
    ours = objective_value(apply_rules(cells, relaxed), "p_yes", obj)
    theirs = objective_value(apply_rules(cells, exact), "p_yes", obj)
    if objective == "cost":  # objective_value gives the cost itself: lower is better
        ours, theirs = -ours, -theirs
    assert ours >= theirs - 1e-12
    assert relaxed.objective_value == pytest.approx(ours, abs=1e-12)
    if tol >= 0.05:  # a real relaxation buys something on these groups of different skill
        assert ours > theirs + 1e-4


@pytest.mark.parametrize("objective", ["accuracy", "balanced_accuracy"])
def test_equalized_odds_tolerance_to_zero_is_the_exact_result(objective):
    """Tolerance 0 is fairlearn's result bit for bit; a vanishing tolerance converges to it."""
    frame = random_frame(1, groups=3)
    cells = cells_of(frame)
    exact = fit_thresholds(cells, "equalized_odds", Objective(objective), min_support=1)
    zero = fit_thresholds(cells, "equalized_odds", Objective(objective), Tolerance("difference", 0.0), min_support=1)
    assert zero.rules == exact.rules and zero.objective_value == exact.objective_value
    compare(frame, "equalized_odds", objective)  # and that exact result is still fairlearn's
    tiny = fit_thresholds(cells, "equalized_odds", Objective(objective), Tolerance("difference", 1e-9), min_support=1)
    assert tiny.objective_value == pytest.approx(exact.objective_value, abs=1e-7)
    for a, b in zip(tiny.rules, exact.rules):
        assert (a.group, a.threshold0, a.threshold1) == (b.group, b.threshold0, b.threshold1)
        assert abs(a.p0 - b.p0) <= 1e-6 and abs(a.p_ignore - b.p_ignore) <= 1e-6
    assert np.abs(_eo_rates(cells, tiny).to_numpy() - _eo_rates(cells, exact).to_numpy()).max() <= 1e-7


@pytest.mark.parametrize("seed", [0, 2])
def test_equalized_odds_within_the_policy_band(seed):
    """Band form: each group's TPR and FPR within [0.8, 1.25] × the reference group's; objective no worse."""
    cells = cells_of(random_frame(seed, groups=3))
    exact = fit_thresholds(cells, "equalized_odds", min_support=1)
    band = fit_thresholds(cells, "equalized_odds", tolerance=Tolerance("band", reference="g=0"), min_support=1)
    rates = _eo_rates(cells, band)
    ratio = rates / rates.loc["g=0"]
    assert ((ratio >= 0.8 - 1e-9) & (ratio <= 1.25 + 1e-9)).all().all(), ratio
    ours = objective_value(apply_rules(cells, band), "p_yes", Objective())
    assert ours >= objective_value(apply_rules(cells, exact), "p_yes", Objective()) - 1e-12
    assert band.objective_value == pytest.approx(ours, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(300, 1500), decimals=st.integers(1, 3),
       groups=st.integers(2, 4), tol=st.floats(0.001, 0.3), band=st.booleans())
def test_property_equalized_odds_tolerance_holds_and_pays(seed, rows, decimals, groups, tol, band):
    """Property: the relaxed rates meet the tolerance on the fit counts, and the objective is never below exact."""
    cells = cells_of(random_frame(seed, rows=rows, decimals=decimals, groups=groups))
    kept = cells.groupby("group")["y_true"].agg(["min", "max"])
    if (kept["min"] == kept["max"]).sum() > groups - 2:
        return  # fewer than two groups with both outcomes: nothing to equalise (its own test)
    exact = fit_thresholds(cells, "equalized_odds", min_support=1)
    ref = next(r.group for r in exact.rules if not r.kept)
    tolerance = Tolerance("band", reference=ref) if band else Tolerance("difference", tol)
    relaxed = fit_thresholds(cells, "equalized_odds", tolerance=tolerance, min_support=1)
    optimised = [r.group for r in relaxed.rules if not r.kept]
    rates = _eo_rates(cells, relaxed).loc[optimised]
    if band:
        ratio = (rates / rates.loc[ref]).fillna(1.0)  # 0/0: both rates zero, inside any band
        assert ((ratio >= 0.8 - 1e-9) & (ratio <= 1.25 + 1e-9)).all().all()
    else:
        assert (rates.max() - rates.min()).max() <= tol + 1e-9
    assert relaxed.objective_value >= exact.objective_value - 1e-12
