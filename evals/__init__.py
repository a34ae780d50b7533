"""Evaluation data and metrics for r2r-agent: TREC DL, BRIGHT and BEIR-format data, trec_eval-exact metrics.

Modules: :mod:`.records` (typed records), :mod:`.trec` (TREC run/qrels files), :mod:`.candidates` (the shared
candidate-list format), :mod:`.bright` (BRIGHT, including a local ``xlangai/BRIGHT`` copy), :mod:`.beir` (BEIR
folders), :mod:`.metrics` (nDCG@10, RR@10, R@k, significance tests), :mod:`.registry` (named datasets, their
corpora), :mod:`.first_stage` and :mod:`.retrieval` (retrieve candidates from a corpus: BM25, dense,
reason-then-retrieve), :mod:`.memory` (the RSS a system needs), :mod:`.explanation_quality` and
:mod:`.teacher_agreement` (explanations against qrels and against the teacher's reasons on held-out training
queries).

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
from .metrics import DEFAULT_MEASURES, Evaluation, Measure, PairedTest, RunIssues, evaluate, paired_test, rank_order
from .records import Candidate, CandidateList, Qrel, Qrels, Run, ScoredDoc
from .registry import (
    Corpus,
    Dataset,
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
    "DatasetSpec",
    "Evaluation",
    "Measure",
    "PairedTest",
    "Qrel",
    "Qrels",
    "Run",
    "RunIssues",
    "ScoredDoc",
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
