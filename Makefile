# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

run: $(VENV)/.installed  ## start Ripple on http://127.0.0.1:8000 (embedded Redis unless REDIS_URL is set)
	$(BIN)/gunicorn -c gunicorn.conf.py

test: lint  ## lint, then the whole test suite: real Redis, real Gunicorn, real Chromium
	scripts/ensure-system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev  ## ruff: pyflakes, pycodestyle, import order, bugbear (pyproject.toml)
	$(BIN)/ruff check .

bench: $(VENV)/.installed-bench  ## the benchmark grid (~7-10 min): writes docs/benchmarks.md and docs/img/
	scripts/ensure-bench-packages
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt clients/python/pyproject.toml
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

clean:
	rm -rf $(VENV)
