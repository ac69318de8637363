# HAT Playground.
#   make run    set up .venv (first time only) and serve the app on http://127.0.0.1:7860
#   make test   set up .venv with the test tools and chromium, then run ruff and pytest
# Both are idempotent: stamp files in .venv skip the installs until a requirements file changes.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# Extra pip arguments for torch only, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
APP_ARGS ?=
PYTEST_ARGS ?= -q
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test setup setup-dev chromium lint bench clean

run: $(RUN_STAMP)
	$(BIN)/python app.py $(APP_ARGS)

test: $(DEV_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(RUN_STAMP)

setup-dev: $(DEV_STAMP)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(RUN_STAMP)
	$(BIN)/python bench/load_times.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from its exact pin, so no other requirement can pull a different (CUDA) build.
# requirements-nodeps.txt holds packages whose declared deps are not needed (see the file).
$(RUN_STAMP): requirements.txt requirements-nodeps.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q $(TORCH_PIP_ARGS) $(TORCH)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $@

# requirements.txt again, so its torch pin constrains the dev tools too.
$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $@

# Browser tests drive Debian's chromium through Playwright (no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
			chromium fonts-noto-color-emoji fonts-noto-cjk; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis tests/browser/screenshots
