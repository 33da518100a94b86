# Tongyeok: the two commands are `make demo` (or `make run`) and `make test`.
# Both install what they need on a fresh Debian/Ubuntu machine: the Debian
# packages of the embedded engines and of test speech, a virtual
# environment, and the PyPI packages.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 50051
WEB_PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Debian packages, one list for the server at run time (which the
# container image installs too: deploy/Dockerfile reads the same file) and one
# for the tests, the demo and the bench; each package's reason is in its file.
DEB_PACKAGES := $(shell sed -e 's/\#.*//' deploy/packages/runtime.txt deploy/packages/dev.txt)
PYTEST_ARGS ?=

.PHONY: help setup system-deps demo run test lint pytest proto bench clean print-deb-packages

help:
	@echo "make demo   - start the server on the embedded engines and interpret synthesised English speech"
	@echo "make run    - run the server alone (PORT=$(PORT)) with the meeting page on http://localhost:$(WEB_PORT)/; flags via TONGYEOK_* variables"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - latency, capacity and memory figures"
	@echo "make proto  - regenerate the gRPC stubs from protos/"

setup: system-deps $(VENV)/.installed

system-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(PY) tools/demo.py

run: setup
	@echo "The meeting page: http://localhost:$(WEB_PORT)/ (e.g. http://localhost:$(WEB_PORT)/?source=en&target=es)"
	$(VENV)/bin/tongyeok-server --port $(PORT) --web-port $(WEB_PORT)

test: setup lint pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest $(PYTEST_ARGS)

proto: $(VENV)/.installed
	$(PY) tools/gen_proto.py

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

print-deb-packages:
	@echo $(DEB_PACKAGES)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
