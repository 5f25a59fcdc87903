"""The dashboard as `fairwatch serve` runs it: Streamlit's own app, with every HTTP response gzip-compressed.

Streamlit 1.67 serves its static files (5.3 MB of JavaScript for the first visit) uncompressed; the
same files gzip to about a third. `st.App` takes user middleware that runs before Streamlit's own,
so Starlette's GZipMiddleware compresses them here, for browsers that ask for it. The pages are
those of app.py, unchanged; `streamlit run app.py` still works, only without compression.
"""

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware


WARM_UP_THREAD = "fairwatch-warm-up"
# The logger Streamlit writes "missing ScriptRunContext" with (streamlit.runtime.scriptrunner_utils.script_run_context).
CONTEXT_LOGGER = "streamlit.runtime.scriptrunner_utils.script_run_context"


def _not_from_warm_up(record: logging.LogRecord) -> bool:
    """Drop Streamlit's "missing ScriptRunContext" warnings of the warm-up thread: it fills the caches outside
    any session on purpose, and the five lines on every `make run` read like a fault."""
    return record.threadName != WARM_UP_THREAD


@asynccontextmanager
async def import_pages_code(_app: st.App) -> AsyncIterator[None]:
    """Import the pages' code (pandas, scipy, altair, DuckDB: about 2 s) while the server starts, not on the
    first visit: by the time someone opens the URL it is loaded."""
    # What app.py imports (not app.py itself: importing it would run the page outside a session).
    import fairwatch.metrics.presentation.charts  # noqa: F401
    import fairwatch.metrics.presentation.views  # noqa: F401
    import fairwatch.pages.components.frame  # noqa: F401
    import fairwatch.pages.components.loaders  # noqa: F401
    import fairwatch.pages.components.slice_view  # noqa: F401

    # Streamlit's own first-use costs, paid here rather than by the first visit (py-spy on a cold 10M-row
    # Overview: about a tenth of its server time): the emoji catalog, imported by the first st.info or
    # st.error whose text is not ASCII, and the once-per-process check that the app runs under
    # `streamlit run` (inspect.stack() over every frame). Private names, so each is optional.
    import streamlit.emojis  # noqa: F401
    from streamlit import delta_generator

    getattr(delta_generator, "_maybe_print_use_warning", lambda: None)()

    # The default view's audits, computed in the background from the start (and again when the data
    # changes): the first visitor waits for Streamlit, not for the audit. FAIRWATCH_WARM=0 turns it off.
    stop = threading.Event()
    if os.environ.get("FAIRWATCH_WARM", "1").strip() != "0":
        logging.getLogger(CONTEXT_LOGGER).addFilter(_not_from_warm_up)
        threading.Thread(target=fairwatch.pages.components.loaders.warm_default_view, args=(stop,),
                         name=WARM_UP_THREAD, daemon=True).start()
    try:
        yield
    finally:
        stop.set()


# Level 6: nearly level 9's size (the static files are compressed once per request, on a 2-core laptop).
app = st.App("app.py", lifespan=import_pages_code,
             middleware=[Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)])
