# The two commands of the README: `make run` serves, `make test` tests. Both install what they need first,
# into .venv, so they work on a fresh machine with only python3 (3.11+) and network access to PyPI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS ?=

.PHONY: run test sim install clean fuzz soak

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/router serve $(ARGS)

# The venv's bin first on PATH: tools installed as test extras (hadolint) are found by the tests.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(ARGS)

# Long fuzzing: the property-based request-path fuzz test with many examples, then schemathesis against
# the router's own OpenAPI document (installed here on first use: a fuzzing tool, not a test dependency).
FUZZ_EXAMPLES ?= 20000
API_EXAMPLES ?= 500
fuzz: $(STAMP)
	@if [ -f tests/gateway/test_fuzz.py ]; then \
		ROUTER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/gateway/test_fuzz.py; \
	else echo "fuzz: tests/gateway/test_fuzz.py not present; skipping the request-path fuzz test"; fi
	@$(BIN)/python -c "import schemathesis" 2>/dev/null || $(BIN)/python -m pip install -q --disable-pip-version-check 'schemathesis>=4.30,<5'
	$(BIN)/python -m bench.fuzz_api --examples $(API_EXAMPLES)

# N minutes of mixed load against the simulator with faults; RSS, fds and errors every 30 s (BENCHMARKS.md, Soak).
MINUTES ?= 10
SOAK_ARGS ?= --minutes $(MINUTES)
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

sim: $(STAMP)
	$(BIN)/router sim $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
