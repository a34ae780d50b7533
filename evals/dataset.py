"""A loaded evaluation dataset (:class:`Dataset`) and a dataset's documents for a first stage (:class:`Corpus`).

Datasets are loaded by name from :mod:`.registry` (``load_dataset("dl19")``) or retrieved by a first stage
(:mod:`.retrieval`); both give a :class:`Dataset`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from r2r_agent import Passage

from .evaluation import DEFAULT_MEASURES, Evaluation, Measure, evaluate
from .records import CandidateList, Qrels, Run, docid


@dataclass(frozen=True)
class Dataset:
    """A loaded evaluation dataset: what a runner reranks and what it is scored against.

    Attributes:
        name: The registry name.
        queries: ``{qid: query text}``.
        candidates: ``{qid: first-stage candidates in rank order}``, :class:`r2r_agent.Passage` objects (see
            :func:`~r2r_agent.evals.records.candidate`).
        qrels: ``{qid: {docid: label}}``.
        excluded: ``{qid: doc ids to drop before scoring}`` (BRIGHT); pass to :func:`evaluate`.
        description: One line for reports.
        missing_texts: Doc ids whose text is not available (their candidates' text is ``""``): systems that read
            texts refuse the queries holding them (:attr:`has_texts`).
    """

    name: str
    queries: Mapping[str, str]
    candidates: Mapping[str, tuple[Passage, ...]]
    qrels: Qrels
    excluded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    description: str = ""
    missing_texts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Copies: a frozen dataset never shares a mapping the caller may change afterwards.
        object.__setattr__(self, "queries", dict(self.queries))
        object.__setattr__(self, "candidates", {q: tuple(c) for q, c in self.candidates.items()})
        object.__setattr__(self, "qrels", {q: dict(d) for q, d in self.qrels.items()})
        object.__setattr__(self, "excluded", {q: frozenset(e) for q, e in self.excluded.items()})
        object.__setattr__(self, "missing_texts", frozenset(self.missing_texts))

    @property
    def has_texts(self) -> bool:
        """Whether every candidate has its text (needed to rerank)."""
        return not self.missing_texts

    def without_text(self, candidates: Sequence[Passage]) -> list[str]:
        """The doc ids among ``candidates`` whose text is not available."""
        return [docid(c) for c in candidates if c.id in self.missing_texts] if self.missing_texts else []

    def first_stage_run(self) -> Run:
        """The first-stage run ``{qid: {docid: first-stage score}}``."""
        return {q: {docid(c): c.first_stage_score or 0.0 for c in cands} for q, cands in self.candidates.items()}

    def candidate_lists(self) -> list[CandidateList]:
        """The candidates in the shared candidate-list form, one per query."""
        return [CandidateList(q, self.queries[q], cands, frozenset(self.without_text(cands)))
                for q, cands in self.candidates.items()]

    def evaluate(
        self,
        run: Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]],
        measures: Sequence[str | Measure] = DEFAULT_MEASURES,
        **kwargs: object,
    ) -> Evaluation:
        """Score ``run`` against this dataset's qrels, removing its excluded ids first."""
        return evaluate(self.qrels, run, measures, excluded=self.excluded or None, **kwargs)  # type: ignore[arg-type]

    def evaluate_first_stage(
        self, measures: Sequence[str | Measure] = DEFAULT_MEASURES, **kwargs: object
    ) -> Evaluation:
        """Score the first-stage order itself (the baseline every reranker is compared with)."""
        return self.evaluate(self.first_stage_run(), measures, **kwargs)


@dataclass(frozen=True)
class Corpus:
    """A dataset's documents, for a first stage to retrieve from.

    Attributes:
        documents: ``{docid: text}`` (for BEIR: the title and the text, see
            :attr:`~r2r_agent.evals.beir.BeirDocument.full_text`).
        source: Where they came from (for reports and messages).
    """

    documents: Mapping[str, str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.documents)

    @cached_property
    def fingerprint(self) -> str:
        """A digest of every (docid, text), in docid order: equal fingerprints mean the same corpus.

        Cached runs and dense indexes are keyed by it, so an edited corpus is never served stale results.
        """
        digest = hashlib.sha256()
        for doc in sorted(self.documents):
            digest.update(doc.encode("utf-8") + b"\x00" + self.documents[doc].encode("utf-8") + b"\x01")
        return digest.hexdigest()[:24]


__all__ = ["Corpus", "Dataset"]
