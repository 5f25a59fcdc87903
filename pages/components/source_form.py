"""Widgets of the Data sources page: pick a source, map its columns, check it, make it active, save it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import streamlit as st

from connectors.active import demo_spec, save_spec
from connectors.datapaths import DATA_SUFFIXES, data_dir, list_data_files, safe_data_path, save_upload
from connectors.freshness import source_stamp
from metrics.mapping import RoleGuess, mapping_config
from metrics.outcomes import normalise_value
from metrics.snapshot import AuditSnapshot
from metrics.spec import TASK_LABELS, TASKS, AuditSpec, RowFilter, SourceSpec, parse_spec
from metrics.views import reference_options
from pages.components.auth import md
from pages.components.frame import guard
from pages.components.loaders import list_tables, load_column_values, load_profiles, load_snapshot, stamp_of
from pages.components.state import set_active_spec

NONE = "(none)"
LARGEST = "\x00largest"  # the reference choice "the largest group" (never a value: values are shown as text)
FLASH = "fw.flash"


def activate(spec: AuditSpec, message: str, config_name: str | None = None) -> None:
    """Check the spec end to end (open, audit), make it active, and rerun so the sidebar follows."""
    snap = load_snapshot(spec, RowFilter(), stamp_of(spec))
    set_active_spec(spec, config_name)
    st.session_state[FLASH] = (f"{message}: {snap.data.rows:,} rows, {snap.data.labelled_rows:,} labelled, "
                               f"{snap.groups.rows['group'].nunique()} groups audited.")
    st.rerun()


def show_flash() -> None:
    """The success message of the previous run (set just before a rerun)."""
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(md(message))


def pick_source() -> SourceSpec | None:
    """The source the user points at: the demo (activated directly), a data-folder file, or an upload."""
    root = data_dir()
    kind = st.radio("Where are the data?", ["Demo data", "A file in the data folder", "Upload a file"],
                    horizontal=True, key="fw.src.kind")
    if kind == "Demo data":
        st.caption("A year of loan decisions with planted fairness problems (see connectors/demo.py).")
        if st.button("Use the demo", type="primary"):
            with guard():
                activate(demo_spec(), "Using the demo")
        return None
    if kind == "Upload a file":
        up = st.file_uploader("CSV, Parquet, JSON or DuckDB file", type=[s.lstrip(".") for s in DATA_SUFFIXES])
        if up is None:
            return None
        name = save_upload(up.name, up.getvalue(), root).name
        st.caption(f"Saved in the data folder as {md(name)}.")
    else:
        files = list_data_files(root)
        picked = st.selectbox(f"Files in the data folder {md(root)}", [NONE, *files], key="fw.src.file")
        typed = st.text_input("…or type a path inside the data folder (a glob such as logs/*.parquet works)",
                              key="fw.src.typed")
        name = typed.strip() or (picked if picked != NONE else "")
        if not name:
            return None
    table = labels = id_col = None
    tables = list_tables(name) if "*" not in name else []
    if tables:
        table = st.selectbox("Table with the predictions", tables, key=f"fw.src.table.{name}")
        labels = st.selectbox("Labels in a separate table (optional)", [NONE, *[t for t in tables if t != table]],
                              key=f"fw.src.labels.{name}")
        labels = None if labels == NONE else labels
        id_col = st.text_input("Id column joining the two", "request_id", key=f"fw.src.id.{name}") if labels else None
    # A glob matches files only when opened; the folder check still applies to its fixed part.
    path = str(safe_data_path(name, root, must_exist="*" not in name))
    return SourceSpec(path=path, table=table, labels_table=labels, id_column=id_col)


def _choice(box, label: str, names: list[str], guess: str | None, key: str) -> str | None:
    """A selectbox over the columns, pre-set to the guess, with '(none)' for a role left out."""
    options = [NONE, *names]
    value = box.selectbox(label, options, index=options.index(guess) if guess in options else 0, key=key)
    return None if value == NONE else value


def mapping_form(source: SourceSpec) -> None:
    """The column-mapping form for a source, pre-filled with guesses; submitting checks and activates it."""
    profiles, g = load_profiles(source, source_stamp(source))
    names = [p.name for p in profiles]
    k = "fw.map." + hashlib.sha1(repr(source).encode()).hexdigest()[:10]
    with st.expander(f"Columns found ({len(names)})"):
        st.dataframe([{"column": p.name, "type": p.type, "distinct (sample)": p.distinct, "examples": ", ".join(p.examples)}
                      for p in profiles], hide_index=True, width="stretch")
    _guess_notes(g)
    # The label and its positive values sit outside the form: the value picker follows the chosen label.
    l1, l2 = st.columns([1, 2])
    label = l1.selectbox("Label (actual outcome)", names, index=names.index(g.label) if g.label in names else 0,
                         key=k + ".label")
    values = list(load_column_values(source, source_stamp(source), label))
    guess = [v for v in values if g.positive_label is not None and label == g.label
             and normalise_value(v) == normalise_value(g.positive_label)]
    positive = l2.multiselect("Label values that count as positive", values, default=guess[:1],
                              key=f"{k}.pos.{label}",
                              help="Every other value counts as negative: a label with three values (e.g. NO, <30, "
                                   ">30) or in words is mapped here. Empty: 1/true when the label is plainly binary.")
    with st.form(k):
        c1, c2, c3 = st.columns(3)
        roles = {
            "label": label,
            "positive_label": list(positive) if len(positive) > 1 else (positive[0] if positive else None),
            "task": c1.selectbox("What the model outputs", TASKS, key=k + ".task",
                                 format_func=TASK_LABELS.get),
            "prediction": _choice(c1, "Prediction (the decision)", names, g.prediction, k + ".pred"),
            "score": _choice(c2, "Score (optional)", names, g.score, k + ".score"),
            "threshold": c2.number_input("Threshold on the score (only without a prediction)", value=g.threshold or 0.5,
                                         key=k + ".thr"),
            "time": _choice(c2, "Time", names, g.time, k + ".time"),
            "model_version": _choice(c2, "Model version", names, g.model_version, k + ".mv"),
            "id": _choice(c3, "Row id", names, g.id, k + ".id"),
        }
        # The chosen label is never a default feature: a slice cannot be defined by the outcome.
        # Keyed by the label too: a new label gets fresh defaults instead of keeping itself as a feature.
        roles["sensitive"] = c3.multiselect("Sensitive features", names, default=[f for f in g.sensitive if f != label],
                                            key=f"{k}.sens.{label}")
        roles["features"] = c3.multiselect("Other features (for slicing)", names,
                                           default=[f for f in g.features if f != label], key=f"{k}.feat.{label}")
        min_support = c3.number_input("Smallest n a rate is shown for (min_support)", 1, 10**6, 30, key=k + ".min")
        submitted = st.form_submit_button("Check and use this mapping", type="primary")
    if submitted:
        raw = mapping_config({"path": source.path, "table": source.table, "labels_table": source.labels_table,
                              "id_column": source.id_column}, roles, {"min_support": int(min_support)})
        with guard():
            activate(parse_spec(raw), "Mapping checked and in use")


def _guess_notes(g: RoleGuess) -> None:
    """Why each role was guessed, why columns are not default slicing features, and what to check (tables show text as text)."""
    for warning in g.warnings:
        st.warning(md(warning))  # built from column names
    with st.expander(f"Why these guesses ({len(g.excluded)} columns left out of the slicing features)"):
        st.dataframe([{"role": role, "why": why} for role, why in g.reasons], hide_index=True, width="stretch")
        st.dataframe([{"column": column, "left out because": why} for column, why in g.excluded],
                     hide_index=True, width="stretch")
        st.caption("Any column left out can still be added by hand under Other features.")


def reference_form(spec: AuditSpec, snap: AuditSnapshot) -> None:
    """A reference group per sensitive feature (default: the largest, as the spec's); a change checks and uses it."""
    chosen, picked = dict(spec.reference), {}
    k = "fw.ref." + hashlib.sha1(repr((spec.source, spec.sensitive)).encode()).hexdigest()[:10]
    cols = st.columns(min(len(spec.sensitive), 3))
    for i, feat in enumerate(spec.sensitive):
        options = [v for v, _ in reference_options(snap.representation, feat)]
        largest = f"the largest group ({options[0]})" if options else "the largest group"
        choices = [LARGEST, *options]
        value = cols[i % len(cols)].selectbox(
            f"Reference group of {md(feat)}", choices, index=choices.index(chosen[feat]) if chosen.get(feat) in choices else 0,
            format_func=lambda v, text=largest: text if v == LARGEST else v, key=f"{k}.{feat}",
            help="Every other group of this feature is compared with this one (ratios, gaps).")
        if value != LARGEST:
            picked[feat] = value
    if picked != chosen:
        with guard():
            activate(replace(spec, reference=tuple(picked.items())), "Reference groups changed, checked and in use")


def save_form(spec: AuditSpec) -> None:
    """Save the active spec as a fairwatch.toml in the data folder (the CLI reads it with --config)."""
    with st.form("fw.save"):
        name = st.text_input("File name in the data folder", "fairwatch.toml")
        if st.form_submit_button("Save as fairwatch.toml"):
            with guard():
                path = save_spec(spec, name)
                set_active_spec(spec, str(path.relative_to(data_dir())), fresh_view=False)
                st.success(f"Saved {md(path)}. Run {md(f'fairwatch audit --config {path} --out audits/today')}, "
                           f"or share this page's link (it now names the saved config).")
