"""All I/O: sources, SQL, demo data, export writers. Never imports streamlit."""
