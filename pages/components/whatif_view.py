"""The "What if" section: per-group thresholds that would meet a constraint, and what they cost."""

from __future__ import annotations

import streamlit as st

from fairwatch.connectors.whatif import NO_SCORE, policy_bytes
from fairwatch.metrics.presentation.charts import whatif_chart
from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.policy.overview import grouping_features, threshold_scope_note
from fairwatch.metrics.policy.whatif_result import WhatIfChoice
from fairwatch.metrics.privacy.roles import allowed
from fairwatch.metrics.policy.whatif import (
    CONSTRAINTS,
    OBJECTIVES,
    reference_label,
    whatif_options,
)
from fairwatch.metrics.policy.whatif_result import (
    changes_table,
    comparison_table,
    rules_table,
    verdict_lines,
)
from fairwatch.pages.components.frame import PageContext, one_line, show_chart, show_table
from fairwatch.pages.components.loaders import load_whatif, stamp_of


CHOSEN = "fw.whatif.chosen"  # not a widget key: widget keys are dropped when the user leaves the page


def chosen_whatif() -> WhatIfChoice | None:
    """The what-if last computed on the Performance page in this session, or None."""
    return st.session_state.get(CHOSEN)


def compute_whatif(sel, choice: WhatIfChoice):
    """The what-if of `choice` on the view `sel` (cached); a FairwatchError when it cannot be computed."""
    obj, tol = whatif_options(choice.objective, choice.cost_fn, choice.cost_fp, choice.tolerance,
                              choice.max_difference, sel.spec.policy, reference_label(sel.spec, choice.features))
    return load_whatif(sel.spec, sel.row_filter, choice.features, choice.constraint, obj, tol, choice.randomise,
                       choice.grain if sel.spec.time else None, stamp_of(sel.spec))


def _say(line: str) -> None:
    """One sentence that may hold group names from the data: shown as text, never as Markdown."""
    st.text(line)


def render_whatif(ctx: PageContext, grouping: str) -> None:
    """Controls, the trade-off curves with the chosen points, both ranges side by side, the policy download."""
    sel = ctx.selection
    if note := threshold_scope_note(sel.spec.task):  # per-group thresholds need a yes/no decision from a score
        st.info(note)
        return
    if sel.spec.score is None:
        st.info(NO_SCORE)
        return
    if not allowed(ctx.role, "small_cells"):
        st.info("The what-if shows every group's rates, small groups included: it needs the analyst role.")
        return
    if not st.toggle("Compute the what-if for these groups", key="fw.whatif.on",
                     help="Counts the scores of the fit range and the later range (two queries), then fits"):
        st.session_state.pop(CHOSEN, None)  # off: no what-if is set, and none is exported
        return
    features = grouping_features(grouping)
    c1, c2, c3 = st.columns(3)
    constraint = c1.selectbox("Make equal", CONSTRAINTS, index=CONSTRAINTS.index("false_negative_rate_parity"),
                              format_func=lambda c: c.replace("_", " "), key="fw.whatif.constraint")
    objective = c2.selectbox("While maximising", OBJECTIVES, format_func=lambda o: o.replace("_", " "),
                             key="fw.whatif.objective")
    tolerance = c3.selectbox("Tolerance", ("exact", "difference", "band"), key="fw.whatif.tolerance",
                             format_func={"exact": "exact", "difference": "a maximum difference",
                                          "band": "the policy band"}.get)
    d1, d2, d3, d4 = st.columns(4)
    cost_fn = d1.number_input("Cost of a false negative", 0.0, value=1.0, key="fw.whatif.cost_fn",
                              disabled=objective != "cost")
    cost_fp = d2.number_input("Cost of a false positive", 0.0, value=1.0, key="fw.whatif.cost_fp",
                              disabled=objective != "cost")
    max_diff = d3.number_input("Maximum difference", 0.0, 0.99, 0.02, 0.01, key="fw.whatif.maxdiff",
                               disabled=tolerance != "difference")
    grain = d4.selectbox("Check on the latest", ("week", "day", "month"), key="fw.whatif.grain",
                         help="Fit on every window but the latest, check on the latest")
    randomise = st.checkbox("Allow randomised decisions between two thresholds (as fairlearn does)", value=True,
                            key="fw.whatif.randomise")
    choice = WhatIfChoice(tuple(features), constraint, objective, float(cost_fn), float(cost_fp), tolerance,
                          float(max_diff), grain, bool(randomise))
    try:
        result = compute_whatif(sel, choice)
    except FairwatchError as exc:
        st.session_state.pop(CHOSEN, None)
        st.error(one_line(exc))
        return
    st.session_state[CHOSEN] = choice  # the Audit export page attaches this what-if to the snapshot
    fit = result.fit
    if fit.feasible:
        st.success("Thresholds found that meet the constraint on the fit range.")
    else:
        st.warning("No thresholds meet the constraint with these scores; the closest achievable is shown.")
    for line in result.summary():
        _say(line)
    groups = [r.group for r in fit.rules if not r.kept]
    show_chart(whatif_chart(fit.curves, fit.chosen, groups, fit.x_metric, fit.y_metric))
    st.caption(f"Each dot is one threshold of one group on the fit range; lines join the best trade-offs (randomising "
               f"between two neighbouring thresholds reaches any point on them); diamonds are the chosen operating "
               f"points. Exact at the score resolution of {10 ** -result.score_decimals:g}; otherwise the objective "
               f"is at most {fit.bucket_error:.4f} below fairlearn's on the raw rows.")
    show_table(rules_table(fit), columns={})
    tabs = st.tabs(["Fit range", "Later range (never seen by the fit)"])
    for tab, r in zip(tabs, (result.fitted, result.later)):
        with tab:
            if r is None:
                _say(result.split_note)
                continue
            _say(f"{r.description}: {r.rows:,} labelled rows. {r.note}")
            for line in verdict_lines(r):
                _say(line)
            show_table(comparison_table(r), columns={})
            show_table(changes_table(r), columns={})
    st.download_button("Download the thresholds (JSON policy)", policy_bytes(result), "whatif_policy.json",
                       "application/json", key="fw.whatif.download")
