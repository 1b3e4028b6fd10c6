# streamfuse: `make demo` runs the demo, `make test` runs every test. Both install first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install demo test test-unit test-integration lint broker-jars clean

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

test: install
	$(VENV)/bin/ruff check streams agents models tests
	$(VENV)/bin/pytest tests

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check streams agents models tests

clean:
	rm -rf .state
