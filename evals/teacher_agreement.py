"""Teacher agreement: how close a student's direct explanations come to the teacher's, on held-out training data.

The R2R training data carries a teacher's (GPT-4's) direct reason for every passage. On the queries the distiller
holds out for validation (:func:`r2r_agent.training.split_query_ids` with the same fraction and seed as
``r2r distill``), a student explains the same passages with the same prompt, and each (student, teacher) pair is
scored with pure measures from :mod:`r2r_agent.evals.explanation_quality`:

- **verdict agreement**: the verdict each explanation states (:func:`extract_verdict`: relevant / not relevant /
  unknown); agreement is over pairs where both verdicts are known, with each side's coverage (share known);
- **ROUGE-L F1** (:func:`rouge_l_f1`): longest common token subsequence, all tokens (wording and order);
- **unigram F1** (:func:`unigram_f1`): overlap of the content-word bags (stop words dropped, plurals folded), so it
  measures shared facts regardless of order and function words.

A blank student explanation scores 0 on both overlaps and has an unknown verdict (it is counted, not skipped, so a
silent student cannot look good). Only the validation split is used: :func:`validation_split` takes the examples of
:attr:`DistillationDataset.validation` and checks they share no query with the training split.

Example:
    >>> pair = score_pair("q1", "how long do fleas live", "d1", "Relevant: fleas live 2-3 months.",
    ...                   "This passage is relevant because it says fleas live two to three months.")
    >>> pair.student_verdict, pair.teacher_verdict, round(pair.unigram_f1, 2)
    ('relevant', 'relevant', 0.57)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError

from .evidence_agreement import EvidenceAgreement
from .records import PathLike, PerQueryMeans
from .text_measures import rouge_l_f1, unigram_f1
from .verdicts import Verdict, extract_verdict

# ---------------------------------------------------------------------------------------------------------------
# The validation split
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationQuery:
    """One held-out query: the passages the teacher explained and its direct reasons.

    Attributes:
        qid: The query id.
        query: The query text.
        passage_ids: Each passage's id (``None`` where the data has none).
        passages: The passage texts, in the teacher's ranked order.
        teacher: The teacher's direct reason for each passage, same order.
        teacher_evidence: The teacher's best-answering sentence of each passage
            (:meth:`r2r_agent.training.QueryAnnotation.evidence`), ``None`` where it named none; empty: none known.
    """

    qid: str
    query: str
    passage_ids: tuple[str | None, ...]
    passages: tuple[str, ...]
    teacher: tuple[str, ...]
    teacher_evidence: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        for name in ("passage_ids", "passages", "teacher", "teacher_evidence"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.teacher_evidence:
            object.__setattr__(self, "teacher_evidence", (None,) * len(self.passages))
        if not len(self.passage_ids) == len(self.passages) == len(self.teacher) == len(self.teacher_evidence):
            raise InvalidInputError(
                f"ValidationQuery {self.qid!r}: {len(self.passage_ids)} ids, {len(self.passages)} passages, "
                f"{len(self.teacher)} teacher reasons and {len(self.teacher_evidence)} teacher sentences; give one of "
                "each per passage."
            )

    def input_hash(self) -> str:
        """A digest of what a student is shown (the query and passage texts, in order), for the result cache."""
        payload = json.dumps([self.query, list(self.passages)], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ValidationSplit:
    """The held-out queries to measure teacher agreement on.

    Attributes:
        queries: The chosen validation queries (the first ``max_queries`` of the split, in data order).
        validation_queries: Queries in the whole validation split.
        train_queries: Queries in the training split (never used; recorded to compare with an adapter's).
        validation_fraction: The share of queries held out.
        seed: The seed of the split.
        top: Passages per query: the teacher's top this many (``None``: every passage with a direct reason).
        sources: The data files.
    """

    queries: tuple[ValidationQuery, ...]
    validation_queries: int
    train_queries: int
    validation_fraction: float
    seed: int
    top: int | None = None
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", tuple(self.queries))
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def n_passages(self) -> int:
        """Passages over all chosen queries."""
        return sum(len(q.passages) for q in self.queries)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no passage texts)."""
        return {"sources": list(self.sources), "validation_fraction": self.validation_fraction, "seed": self.seed,
                "top": self.top, "queries": len(self.queries), "passages": self.n_passages,
                "teacher_sentences": sum(s is not None for q in self.queries for s in q.teacher_evidence),
                "validation_queries": self.validation_queries, "train_queries": self.train_queries,
                "qids": [q.qid for q in self.queries]}


def validation_split(annotations: Iterable[Any], *, validation_fraction: float = 0.1, seed: int = 0,
                     max_queries: int | None = None, top: int | None = None,
                     sources: Sequence[str] = ()) -> ValidationSplit:
    """The validation queries of annotated training data, split exactly as ``r2r distill`` splits it.

    Args:
        annotations: :class:`r2r_agent.training.QueryAnnotation` records (the R2R import or ``r2r teach`` output),
            all of the data the student was distilled on (the split depends on the whole set of query ids).
        validation_fraction: As ``r2r distill --validation-fraction`` (default 0.1).
        seed: As ``r2r distill --split-seed`` (default 0).
        max_queries: Use the first N validation queries (``None``: all).
        top: Explain the teacher's top N passages of each query (``None``: every passage with a direct reason).
        sources: Where the annotations came from (recorded).

    Raises:
        InvalidInputError: when the split holds no validation query with a direct reason, or arguments are out of
            range.
        SplitLeakageError: if a chosen query is also a training query (it never should be).
    """
    from r2r_agent.training.dataset import DatasetConfig, build_dataset
    from r2r_agent.training.splits import check_disjoint

    if max_queries is not None and max_queries < 1:
        raise InvalidInputError(f"max_queries must be >= 1 or None, got {max_queries}.")
    if top is not None and top < 1:
        raise InvalidInputError(f"top must be >= 1 or None, got {top}.")
    if not 0.0 < validation_fraction < 1.0:
        raise InvalidInputError(
            f"validation_fraction must be in (0, 1) to hold queries out, got {validation_fraction}.")
    dataset = build_dataset(annotations, DatasetConfig(explain_top=top, compare_top=0,
                                                       validation_fraction=validation_fraction, seed=seed))
    grouped: dict[str, list[Any]] = {}
    for example in dataset.validation.explanations:
        if example.kind == "direct" and example.target.strip():
            grouped.setdefault(example.query_id, []).append(example)
    if not grouped:
        raise InvalidInputError(
            f"No validation query with a teacher's direct reason (validation fraction {validation_fraction}, seed "
            f"{seed}, {len(dataset.train.query_ids)} training queries); pass more data or a larger fraction."
        )
    chosen = list(grouped.items())[:max_queries] if max_queries is not None else list(grouped.items())
    check_disjoint(dataset.train.query_ids, (qid for qid, _ in chosen))
    queries = tuple(
        ValidationQuery(qid, examples[0].query, tuple(e.passage_ids[0] if e.passage_ids else None for e in examples),
                        tuple(e.passages[0] for e in examples), tuple(e.target for e in examples),
                        tuple(e.evidence[0] if e.evidence else None for e in examples))
        for qid, examples in chosen
    )
    return ValidationSplit(queries, len(dataset.validation.query_ids), len(dataset.train.query_ids),
                           validation_fraction, seed, top, tuple(sources))


def load_validation_split(paths: PathLike | Sequence[PathLike], *, validation_fraction: float = 0.1, seed: int = 0,
                          max_queries: int | None = None, top: int | None = None) -> ValidationSplit:
    """:func:`validation_split` of R2R training files (``msmarco_*.jsonl.gz``), read in the order given.

    Pass the same files as ``r2r distill --r2r-data`` (and its ``--validation-fraction`` / ``--split-seed``): the
    split depends on every query id in them.

    Raises:
        InvalidInputError: when a file does not exist (and see :func:`validation_split`).
    """
    from r2r_agent.training.r2r_import import iter_r2r_annotations

    files = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not files:
        raise InvalidInputError("No R2R file given; pass the msmarco_*.jsonl.gz files the student was distilled on.")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InvalidInputError(f"R2R file(s) not found: {missing}; expected e.g. "
                                "../shared/data/r2r-train/msmarco_100.jsonl.gz")
    annotations = [a for f in files for a in iter_r2r_annotations(f)]
    return validation_split(annotations, validation_fraction=validation_fraction, seed=seed,
                            max_queries=max_queries, top=top, sources=[str(f) for f in files])


# ---------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementPair:
    """One student explanation next to the teacher's reason for the same passage, scored.

    Attributes:
        qid: The query id.
        query: The query text.
        passage_id: The passage's id, if any.
        student: The student's explanation.
        teacher: The teacher's direct reason.
        student_verdict: :func:`extract_verdict` of ``student``.
        teacher_verdict: :func:`extract_verdict` of ``teacher``.
        rouge_l_f1: :func:`rouge_l_f1` of the two, in [0, 1].
        unigram_f1: :func:`unigram_f1` of the two, in [0, 1].
    """

    qid: str
    query: str
    passage_id: str | None
    student: str
    teacher: str
    student_verdict: Verdict
    teacher_verdict: Verdict
    rouge_l_f1: float
    unigram_f1: float

    @property
    def verdicts_known(self) -> bool:
        """Whether both sides state a verdict."""
        return self.student_verdict != "unknown" and self.teacher_verdict != "unknown"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgreementPair:
        """Build from :meth:`to_dict` output."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def score_pair(qid: str, query: str, passage_id: str | None, student: str | None, teacher: str) -> AgreementPair:
    """Score one (student, teacher) explanation pair (a blank or missing student explanation scores 0)."""
    text = student or ""
    return AgreementPair(qid, query, passage_id, text, teacher, extract_verdict(text), extract_verdict(teacher),
                         rouge_l_f1(text, teacher), unigram_f1(text, teacher))


@dataclass(frozen=True)
class AgreementQuality:
    """Agreement of student explanations with the teacher's reasons, averaged, with worst cases.

    Attributes:
        n: Pairs scored (blank student explanations included, with 0 overlap).
        n_empty: Pairs whose student explanation was blank.
        n_both_known: Pairs where both verdicts are known (the verdict agreement's denominator).
        n_verdict_agree: Of those, pairs with the same verdict.
        verdict_agreement: ``n_verdict_agree / n_both_known``; ``None`` when no pair has both verdicts.
        student_coverage: Share of pairs whose student verdict is known; ``None`` when ``n == 0``.
        teacher_coverage: Share of pairs whose teacher verdict is known; ``None`` when ``n == 0``.
        confusion: ``{"student_verdict/teacher_verdict": count}`` over all pairs.
        rouge_l_f1: Mean ROUGE-L F1; ``None`` when ``n == 0``.
        unigram_f1: Mean content-word unigram F1; ``None`` when ``n == 0``.
        lowest: The pairs with the lowest ROUGE-L F1, lowest first.
        disagreements: Pairs whose known verdicts differ, in data order.
    """

    n: int
    n_empty: int
    n_both_known: int
    n_verdict_agree: int
    verdict_agreement: float | None
    student_coverage: float | None
    teacher_coverage: float | None
    confusion: Mapping[str, int]
    rouge_l_f1: float | None
    unigram_f1: float | None
    lowest: tuple[AgreementPair, ...] = ()
    disagreements: tuple[AgreementPair, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["confusion"] = dict(self.confusion)
        data["lowest"] = [p.to_dict() for p in self.lowest]
        data["disagreements"] = [p.to_dict() for p in self.disagreements]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgreementQuality:
        """Build from :meth:`to_dict` output."""
        values = {f.name: data[f.name] for f in fields(cls)}
        values["confusion"] = dict(data["confusion"])
        values["lowest"] = tuple(AgreementPair.from_dict(p) for p in data["lowest"])
        values["disagreements"] = tuple(AgreementPair.from_dict(p) for p in data["disagreements"])
        return cls(**values)


def agreement_quality(pairs: Iterable[AgreementPair], *, worst_k: int = 5) -> AgreementQuality:
    """Average the scored pairs (see :class:`AgreementQuality`) and keep ``worst_k`` worst cases of each kind.

    Example:
        >>> q = agreement_quality([score_pair("q", "fleas", None, "Not relevant.", "It is relevant: fleas."),
        ...                        score_pair("q", "fleas", None, "", "It is relevant.")])
        >>> q.n, q.n_empty, q.n_both_known, q.verdict_agreement, q.student_coverage
        (2, 1, 1, 0.0, 0.5)
    """
    items = list(pairs)
    n = len(items)
    known = [p for p in items if p.verdicts_known]
    agree = sum(p.student_verdict == p.teacher_verdict for p in known)
    confusion = Counter(f"{p.student_verdict}/{p.teacher_verdict}" for p in items)
    lowest = sorted(range(n), key=lambda i: (items[i].rouge_l_f1, i))[:worst_k]
    return AgreementQuality(
        n=n,
        n_empty=sum(not p.student.strip() for p in items),
        n_both_known=len(known),
        n_verdict_agree=agree,
        verdict_agreement=agree / len(known) if known else None,
        student_coverage=sum(p.student_verdict != "unknown" for p in items) / n if n else None,
        teacher_coverage=sum(p.teacher_verdict != "unknown" for p in items) / n if n else None,
        confusion=dict(sorted(confusion.items())),
        rouge_l_f1=math.fsum(p.rouge_l_f1 for p in items) / n if n else None,
        unigram_f1=math.fsum(p.unigram_f1 for p in items) / n if n else None,
        lowest=tuple(items[i] for i in lowest),
        disagreements=tuple(p for p in known if p.student_verdict != p.teacher_verdict)[:worst_k],
    )


@dataclass(frozen=True)
class AgreementRun(PerQueryMeans):
    """One system's explanations of the validation passages and their agreement with the teacher.

    Attributes:
        system: The report name.
        key: The cache key.
        queries: Validation queries explained.
        computed: Queries computed in this run (the rest came from the cache).
        seconds: Total explanation seconds (model loading excluded).
        generated_tokens: Tokens generated.
        quality: The agreement measures.
        note: A caution for the report (e.g. an adapter distilled on another split), or ``""``.
        pairs: Every scored pair (kept for callers; reports store only the measures and worst cases).
        evidence: Its judgments' evidence against the teacher's best sentences
            (:mod:`~r2r_agent.evals.evidence_agreement`); ``None`` when not measured.
    """

    system: str
    key: str
    queries: int
    computed: int
    seconds: float
    generated_tokens: int
    quality: AgreementQuality
    note: str = ""
    pairs: tuple[AgreementPair, ...] = field(default=(), repr=False)
    evidence: EvidenceAgreement | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (without the pairs)."""
        return {"system": self.system, "key": self.key, "queries": self.queries, "computed": self.computed,
                "seconds": self.seconds, "seconds_per_query": self.seconds_per_query,
                "generated_tokens": self.generated_tokens, "quality": self.quality.to_dict(), "note": self.note,
                "evidence": self.evidence.to_dict() if self.evidence is not None else None}


def adapter_split_note(adapter: PathLike | None, split: ValidationSplit) -> str:
    """A caution when an adapter's recorded split sizes differ from ``split``'s (``""`` when they match or are unknown).

    ``r2r distill`` writes the sizes of its split to ``r2r_training.json``; different sizes mean other data or
    another fraction or seed, so some of these "validation" queries may have been training queries for the adapter.
    """
    if adapter is None:
        return ""
    info_path = Path(adapter) / "r2r_training.json"
    try:
        data = json.loads(info_path.read_text(encoding="utf-8")).get("data", {})
    except (OSError, ValueError, AttributeError):
        return ""
    theirs = (data.get("train_queries"), data.get("validation_queries"))
    if None in theirs or theirs == (split.train_queries, split.validation_queries):
        return ""
    return (f"the adapter was distilled on a split of {theirs[0]} training / {theirs[1]} validation queries, this one "
            f"has {split.train_queries} / {split.validation_queries}: some of these queries may have been training "
            "queries for it; pass the same R2R files, --validation-fraction and --split-seed as `r2r distill`")


__all__ = ["AgreementPair", "AgreementQuality", "AgreementRun", "ValidationQuery", "ValidationSplit",
           "adapter_split_note", "agreement_quality", "load_validation_split", "score_pair", "validation_split"]
