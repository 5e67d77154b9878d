# The two commands of the README: `make run` serves, `make test` tests. Both install what they need first,
# into .venv, so they work on a fresh machine with only python3 (3.11+) and network access to PyPI.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS ?=

.PHONY: run test sim install clean

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

sim: $(STAMP)
	$(BIN)/router sim $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
