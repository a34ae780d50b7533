"""Evaluation data and metrics for r2r-agent: TREC DL, BRIGHT and BEIR-format data, trec_eval-exact metrics.

Data: :mod:`.records` (typed records; candidates are :class:`r2r_agent.Passage` objects), :mod:`.trec` (TREC
run/qrels files), :mod:`.candidates` (the shared candidate-list format), :mod:`.bright` (BRIGHT, including a local
``xlangai/BRIGHT`` copy), :mod:`.beir` (BEIR folders), :mod:`.dataset` (a loaded dataset, a corpus),
:mod:`.registry` (datasets by name).

Metrics: :mod:`.measures` (nDCG@10, RR@10, R@k), :mod:`.evaluation` (trec_eval-exact evaluation by ir_measures;
``.metrics``, its old name, still works), :mod:`.significance` (paired tests, scipy).

First stages: :mod:`.first_stage` (BM25, dense, reason-then-retrieve), :mod:`.first_stage_options` (which one, how
built) and :mod:`.retrieval` (a dataset's candidates retrieved from its corpus, cached).

Systems and runs: :mod:`.protocol` (what a system is), :mod:`.reranker_system` and :mod:`.teacher_system` (the
systems), :mod:`.systems` (systems by name and their options), :mod:`.results` (what a run measures),
:mod:`.tasks` and :mod:`.result_cache` (the one cached loop), :mod:`.runner` (``run_eval``) and :mod:`.passes` (its
passes besides ranking), :mod:`.memory` (the RSS a system needs), :mod:`.report`, :mod:`.trust_report`, :mod:`.markdown`
and :mod:`.plots` (markdown, JSON, PNG).

Explanations: :mod:`.explanation_quality` (against qrels; its measures in :mod:`.verdicts`, :mod:`.text_measures`
and :mod:`.claims`), :mod:`.teacher_agreement` (against the teacher's reasons on held-out training queries) and
:mod:`.evidence_agreement` (evidence against the teacher's best sentence). Judgments of every candidate (relevance,
verdicts, abstention): :mod:`.judgments`.

The training queries are kept out of every evaluation by :mod:`r2r_agent.training.splits`, shared with
``r2r distill``.

Importing this package needs only the standard library; ``ir_measures``, ``scipy`` and ``pyarrow`` (the ``evals``
extra) are used when installed.

Example:
    >>> from r2r_agent.evals import load_dataset
    >>> ds = load_dataset("dl19", "../shared/data")          # doctest: +SKIP
    >>> ds.evaluate_first_stage()["nDCG@10"]                  # doctest: +SKIP
    0.5058...
"""

from __future__ import annotations

from .beir import BeirData, BeirDocument, BeirLayoutError, load_beir_folder
from .bright import (
    SUBSETS as BRIGHT_SUBSETS,
)
from .bright import (
    BrightExample,
    BrightLayoutError,
    BrightSubset,
    load_bright_folder,
    remove_excluded,
)
from .candidates import read_candidates, write_candidates
from .dataset import Corpus, Dataset
from .evaluation import DEFAULT_MEASURES, Evaluation, Measure, PairedTest, RunIssues, evaluate, paired_test, rank_order
from .records import Candidate, CandidateList, Qrel, Qrels, Run, ScoredDoc, candidate
from .registry import (
    DATASETS,
    DatasetLoaders,
    DatasetSpec,
    corpus_datasets,
    known_datasets,
    load_corpus_dataset,
    load_dataset,
    register_dataset,
)
from .trec import read_trec_qrels, read_trec_run, write_trec_qrels, write_trec_run

__all__ = [
    "BRIGHT_SUBSETS",
    "DATASETS",
    "DEFAULT_MEASURES",
    "BeirData",
    "BeirDocument",
    "BeirLayoutError",
    "BrightExample",
    "BrightLayoutError",
    "BrightSubset",
    "Candidate",
    "CandidateList",
    "Corpus",
    "Dataset",
    "DatasetLoaders",
    "DatasetSpec",
    "Evaluation",
    "Measure",
    "PairedTest",
    "Qrel",
    "Qrels",
    "Run",
    "RunIssues",
    "ScoredDoc",
    "candidate",
    "corpus_datasets",
    "evaluate",
    "known_datasets",
    "load_beir_folder",
    "load_bright_folder",
    "load_corpus_dataset",
    "load_dataset",
    "paired_test",
    "rank_order",
    "read_candidates",
    "read_trec_qrels",
    "read_trec_run",
    "register_dataset",
    "remove_excluded",
    "write_candidates",
    "write_trec_qrels",
    "write_trec_run",
]
