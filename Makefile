# The two commands of the README: `make run` and `make test`. Each sets everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := data/demo.duckdb
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's metadata changes.
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# EXTRAS=test,spark adds the Spark engine (CI does); the Spark tests skip without it.
EXTRAS ?= test
$(VENV)/.installed-test: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@ $(VENV)/.installed

$(DEMO): | $(VENV)/.installed
	$(BIN)/fairwatch demo --out $(DEMO)

demo: $(DEMO)

# `fairwatch serve` prints the URL, checks sign-in first and refuses a non-loopback HOST without it;
# SERVE_ARGS passes more flags, e.g. SERVE_ARGS=--allow-unauthenticated-remote or --secrets FILE.
SERVE_ARGS ?=
run: $(VENV)/.installed $(DEMO)
	@$(BIN)/fairwatch serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

# Two workers, each taking whole files (module fixtures such as a demo, a server or a Spark session are built
# once): about half the wall time on two cores. WORKERS=0 runs in one process; WORKERS=auto uses every core.
WORKERS ?= 2
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data/*.duckdb .pytest_cache
