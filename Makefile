# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean messages translations

run: $(VENV)/.installed translations  ## start Ripple on http://127.0.0.1:8000 (embedded Redis unless REDIS_URL is set)
	$(BIN)/gunicorn -c gunicorn.conf.py

test: lint translations  ## lint, then the whole test suite: real Redis, real Gunicorn, real Chromium
	scripts/ensure-system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev  ## ruff: pyflakes, pycodestyle, import order, bugbear (pyproject.toml)
	$(BIN)/ruff check .

bench: $(VENV)/.installed-bench  ## the benchmark grid (~7-10 min): writes docs/benchmarks.md and docs/img/
	scripts/ensure-bench-packages
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The interface's languages (translations/<locale>/LC_MESSAGES/messages.po; README.md,
# "Languages"). `make messages` gathers every string from the code into each .po (new ones
# untranslated); `make translations` compiles them: the .mo files Flask-Babel reads and the
# page scripts' static/i18n/<lang>.json. Both outputs are committed (a clean clone works without
# make); a test fails when they are out of date with their .po.
BABEL_KEYWORDS := -k _l -k lazy_gettext -k lazy_ngettext:1,2  # t() and tn() in static/js: babel.cfg
messages: $(VENV)/.installed  ## extract every UI string into translations/*.po (NEW_LANGUAGE=fr adds one)
	PYTHONPATH=. $(BIN)/pybabel extract -F babel.cfg $(BABEL_KEYWORDS) --add-location=file --sort-output --no-wrap \
		--add-comments=Translators: --project=Ripple -o translations/messages.pot .
	for lang in $(NEW_LANGUAGE); do test -d translations/$$lang || \
		$(BIN)/pybabel init -i translations/messages.pot -d translations -l $$lang --no-wrap; done
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-wrap --ignore-pot-creation-date \
		--no-fuzzy-matching --ignore-obsolete
	rm translations/messages.pot

translations: $(VENV)/.installed  ## compile translations/*.po into .mo and static/i18n/*.json
	$(BIN)/pybabel compile -d translations --statistics
	$(BIN)/python scripts/i18n_js.py

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt clients/python/pyproject.toml
	$(BIN)/pip install --quiet --no-compile -r requirements-dev.txt
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev requirements-bench.txt
	$(BIN)/pip install --quiet --no-compile -r requirements-bench.txt
	touch $@

clean:
	rm -rf $(VENV)
