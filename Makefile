# make demo · make test · make bench  — each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*)
TEST_PLUGINS := $(wildcard tests/plugins/*)
# Re-install when any project file that declares dependencies changes.
SETUP_INPUTS := pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml tests/plugins/*/pyproject.toml)

.PHONY: demo test lint bench clean

$(BIN)/.installed: $(SETUP_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' \
		$(foreach p,$(PLUGINS),-e '$(p)[test]') $(foreach p,$(TEST_PLUGINS),-e '$(p)')
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python examples/demo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check zoo_core registry_server plugins tests bench examples

test: lint
	$(BIN)/python -m pytest tests $(foreach p,$(PLUGINS),$(p)/tests)

bench: $(BIN)/.installed
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
