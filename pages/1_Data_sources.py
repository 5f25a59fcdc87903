"""Data sources: choose what to audit, map its columns, check it, and save the mapping for the CLI."""

import streamlit as st

from fairwatch.connectors.config import spec_to_toml
from fairwatch.pages.components.auth import md, shown_paths
from fairwatch.pages.components.frame import PageContext, guard, run_page
from fairwatch.pages.components.source_form import mapping_form, pick_source, reference_form, save_form, show_flash
from fairwatch.pages.components.state import config_name


def draw(ctx: PageContext) -> None:
    """The Data sources page."""
    show_flash()
    if ctx.selection is not None:
        spec = ctx.selection.spec
        st.markdown(f"**In use:** {md(spec.source.describe())}"
                    + (f" · saved as {md(config_name())}" if config_name() else ""))
        with st.expander("The active mapping as fairwatch.toml"):
            st.code(shown_paths(spec_to_toml(spec)), language="toml")
        with guard():  # say here, where it can be fixed, when the active mapping does not fit the data
            snap = ctx.snapshot()
            st.markdown("**Reference groups** (others are compared with these; saved in `[reference]`)")
            reference_form(spec, snap)
    st.subheader("Choose the data")
    source = None
    with guard():
        source = pick_source()
    if source is not None:
        st.subheader("Map the columns")
        st.caption("The guesses come from column names, types and values; check each one. "
                   "Checking opens the source and runs the full audit, so every problem shows up here.")
        with guard():
            mapping_form(source)
    if ctx.selection is not None:
        st.subheader("Save the mapping")
        st.caption("Saved configs live in the data folder; `fairwatch audit --config FILE` reads them.")
        save_form(ctx.selection.spec)


run_page("Data sources", ":material/database:", draw, needs_source=False)
