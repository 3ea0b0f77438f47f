# make demo · make test · make bench  — each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*)
TEST_PLUGINS := $(wildcard tests/plugins/*)
# Re-install when any project file that declares dependencies changes.
HF_CLIENTS := 0.36.2 1.33.0
SETUP_INPUTS := pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml tests/plugins/*/pyproject.toml)

.PHONY: demo test lint bench clean wheelhouse

$(BIN)/.installed: $(SETUP_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[server,test]' \
		$(foreach p,$(PLUGINS),-e '$(p)[test]') $(foreach p,$(TEST_PLUGINS),-e '$(p)')
	# earlier major versions of the Hugging Face client, which the tests also point at the zoo server
	$(foreach v,$(HF_CLIENTS),$(BIN)/python -m pip install --quiet --upgrade --target $(VENV)/hf-clients/$(v) \
		'huggingface_hub==$(v)' &&) true
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python examples/demo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check zoo_core registry_server plugins tests bench examples scripts

# The registry tests also run against a real PostgreSQL (started on loopback by scripts/pg-test-server.sh,
# installed from Debian's packages when missing); ZOO_SKIP_POSTGRES=1 runs them on SQLite only.
# The web catalog's browser tests drive Debian's Chromium (scripts/chromium.sh installs it when missing) through
# Playwright; ZOO_SKIP_BROWSER=1 leaves them out.
test: lint
	if [ -n "$$ZOO_SKIP_POSTGRES" ]; then url=; else url=$$(bash scripts/pg-test-server.sh); fi; \
	if [ -n "$$ZOO_SKIP_BROWSER" ]; then chromium=; else chromium=$$(bash scripts/chromium.sh); fi; \
	ZOO_TEST_POSTGRES_URL=$$url ZOO_CHROMIUM=$$chromium \
		$(BIN)/python -m pytest tests $(foreach p,$(PLUGINS),$(p)/tests)

bench: $(BIN)/.installed
	cd bench && ../$(BIN)/python startup.py
	cd bench && ../$(BIN)/python overhead.py
	cd bench && ../$(BIN)/python cache.py
	cd bench && ../$(BIN)/python stream.py
	cd bench && ../$(BIN)/python lfs.py
	cd bench && ../$(BIN)/python catalog.py
	cd bench && ../$(BIN)/python registry.py
	cd bench && ../$(BIN)/python load.py
	cd bench && ../$(BIN)/python faults.py
	cd bench && ../$(BIN)/python slowloris.py
	cd bench && ../$(BIN)/python transfer.py
	cd bench && ../$(BIN)/python distributed.py

# Wheels for scripts/gpu-check.sh on a GPU machine without a package index (torch excluded: it brings its own)
wheelhouse: $(BIN)/.installed
	bash scripts/wheelhouse.sh dist/wheelhouse

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
