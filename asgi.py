"""The dashboard as `fairwatch serve` runs it: Streamlit's own app, with every HTTP response gzip-compressed.

Streamlit 1.67 serves its static files (5.3 MB of JavaScript for the first visit) uncompressed; the
same files gzip to about a third. `st.App` takes user middleware that runs before Streamlit's own,
so Starlette's GZipMiddleware compresses them here, for browsers that ask for it. The pages are
those of app.py, unchanged; `streamlit run app.py` still works, only without compression.
"""

import streamlit as st
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

# Level 6: nearly level 9's size (the static files are compressed once per request, on a 2-core laptop).
app = st.App("app.py", middleware=[Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)])
