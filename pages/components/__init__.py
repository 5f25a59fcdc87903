"""Streamlit glue shared by the pages: cached loaders, the sidebar, the page frame (not pages themselves)."""
