"""The examples in the core's docstrings run (the modules that show one), so the docs cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["r2r_agent.config", "r2r_agent.registry", "r2r_agent.types", "r2r_agent.reranker", "r2r_agent.render",
           "r2r_agent.explainer", "r2r_agent.metrics", "r2r_agent.traces.records", "r2r_agent.traces.sinks",
           "r2r_agent.traces.diff", "r2r_agent.integrations._common"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
