"""Every evals module's examples run (doctests), and the names that moved between modules stay importable."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import r2r_agent.evals as evals

MODULES = sorted(m.name for m in pkgutil.iter_modules(evals.__path__) if m.name != "cli")


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"r2r_agent.evals.{name}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("module, names", [
    ("runner", ["run_eval", "ResultCache", "input_hash", "EvalResults", "SystemRun", "SystemCost", "TrainingQueries",
                "TrainingQueryError", "check_not_training", "find_training_queries", "load_training_queries",
                "normalize_query", "limit_dataset", "explanation_key", "agreement_key"]),
    ("systems", ["System", "SystemResult", "FirstStageSystem", "RerankerSystem", "TeacherSystem", "SystemOptions",
                 "ModelPool", "build_system", "build_systems", "known_systems", "parse_system", "system_key",
                 "query_limit", "can_explain", "can_explain_passages"]),
    ("cache", ["ResultCache", "input_hash"]),  # the old name of result_cache
    ("evaluation", ["evaluate", "Evaluation", "paired_test", "PairedTest", "parse_measure", "rank_order",
                    "DEFAULT_MEASURES"]),
    ("metrics", ["evaluate", "Evaluation", "paired_test", "PairedTest", "parse_measure", "rank_order",
                 "DEFAULT_MEASURES"]),
    ("explanation_quality", ["explanation_quality", "extract_verdict", "verdict_agreement", "groundedness",
                             "specificity", "jaccard", "rouge_l_f1", "unigram_f1", "tokenize", "content_words"]),
    ("retrieval", ["retrieve_dataset", "FirstStageOptions", "FIRST_STAGES", "stage_config", "build_first_stage",
                   "reasoner_writer", "reasonings", "run_paths"]),
    ("registry", ["Dataset", "Corpus", "load_dataset", "load_corpus_dataset", "parse_dataset", "known_datasets",
                  "corpus_datasets", "register_dataset", "DatasetSpec"]),
    ("report", ["write_report", "render_markdown", "plot_name", "write_plots"]),
])
def test_moved_names_stay_importable(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(f"r2r_agent.evals.{module}")
    assert [n for n in names if not hasattr(loaded, n)] == []


def test_package_names_are_importable() -> None:
    assert [n for n in evals.__all__ if not hasattr(evals, n)] == []
