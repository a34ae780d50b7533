"""Distillation datasets: explanation targets and ranking targets, split by query.

From :class:`~r2r_agent.training.QueryAnnotation` records (teacher runs or the R2R import) this builds

* :class:`ExplanationExample` ``direct``: the chat messages of :func:`r2r_agent.prompts.direct_explanation_messages`
  for one passage, with the teacher's direct reason as the target;
* :class:`ExplanationExample` ``comparison``: :func:`r2r_agent.prompts.comparison_messages` over the teacher's top
  passages (best first), with a target built from their listwise (comparison) reasons;
* :class:`RankingExample`: the candidates with the teacher's order and any relevance labels.

The student is trained on exactly the messages it sees at inference. Train and validation never share a query.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent import prompts
from r2r_agent.errors import InvalidInputError

from .jsonl import write_json_lines
from .records import QueryAnnotation
from .splits import SPLIT_SEED, VALIDATION_FRACTION, check_disjoint, split_query_ids

_KINDS = ("direct", "comparison")


@dataclass(frozen=True)
class ExplanationExample:
    """One explanation target.

    Attributes:
        kind: ``"direct"`` (one passage) or ``"comparison"`` (the top passages, best first).
        query_id: The query's id.
        query: The query text.
        passages: The passage texts the prompt shows (one for ``direct``), full length: a trainer that cuts passages
            to the explainer's token budget should rebuild the messages with :meth:`messages` on the cut texts.
        target: The text the student should write.
        passage_ids: The passages' ids (``None`` where unknown).
        source: Where the target came from (the annotation's source).
        verdicts: The teacher's verdict of each passage, shown to the student (it then learns to explain a given
            verdict, as at inference: the judged prompts of r2r-prompts-2); empty: the zero-shot form.
        evidence: The teacher's best-answering sentence of each passage, shown with the verdicts (a comparison
            shows only these sentences, as ``RerankConfig(comparison="lm")`` does).
    """

    kind: str
    query_id: str
    query: str
    passages: tuple[str, ...]
    target: str
    passage_ids: tuple[str | None, ...] = ()
    source: str = ""
    verdicts: tuple[str | None, ...] = ()
    evidence: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        for name in ("passages", "passage_ids", "verdicts", "evidence"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.verdicts and (len(self.verdicts) != len(self.passages) or len(self.evidence) != len(self.passages)):
            raise InvalidInputError("an ExplanationExample's verdicts and evidence need one entry per passage")
        if self.kind not in _KINDS:
            raise InvalidInputError(f"ExplanationExample.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "direct" and len(self.passages) != 1:
            raise InvalidInputError(f"a direct ExplanationExample has exactly 1 passage, got {len(self.passages)}")

    def messages(self, passages: Sequence[str] | None = None) -> list[dict[str, str]]:
        """The prompt messages (from :mod:`r2r_agent.prompts`), optionally with other (e.g. cut) passage texts."""
        texts = self.passages if passages is None else tuple(passages)
        if self.kind == "direct":
            if self.verdicts:
                return prompts.direct_explanation_messages(self.query, texts[0], self.verdicts[0], self.evidence[0])
            return prompts.direct_explanation_messages(self.query, texts[0])
        if self.verdicts:
            return prompts.grounded_comparison_messages(self.query, self.evidence, self.verdicts)
        return prompts.comparison_messages(self.query, texts)

    @property
    def verdict(self) -> str | None:
        """The verdict of a direct target's passage (``None`` without one)."""
        return self.verdicts[0] if self.kind == "direct" and self.verdicts else None

    def to_chat_example(self) -> dict[str, Any]:
        """``{"messages": prompt messages, "target": text}``, ready for a supervised fine-tuning collator."""
        return {"messages": self.messages(), "target": self.target}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"kind": self.kind, "query_id": self.query_id, "query": self.query, "passages": list(self.passages),
                "target": self.target, "passage_ids": list(self.passage_ids), "source": self.source,
                "verdicts": list(self.verdicts), "evidence": list(self.evidence)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationExample:
        """Build from :meth:`to_dict` output."""
        return cls(kind=data["kind"], query_id=data["query_id"], query=data["query"], passages=data["passages"],
                   target=data["target"], passage_ids=data.get("passage_ids", ()), source=data.get("source", ""),
                   verdicts=data.get("verdicts", ()), evidence=data.get("evidence", ()))


@dataclass(frozen=True)
class RankingExample:
    """One ranking target: a query's candidates with the teacher's order and optional labels.

    Attributes:
        query_id: The query's id.
        query: The query text.
        passages: The candidate texts in input order.
        teacher_order: The teacher's order, best first, as 0-based indices into ``passages``.
        labels: Relevance labels per passage in input order (empty when unknown).
        passage_ids: The passages' ids.
        source: Where the annotation came from.
    """

    query_id: str
    query: str
    passages: tuple[str, ...]
    teacher_order: tuple[int, ...]
    labels: tuple[int | None, ...] = ()
    passage_ids: tuple[str | None, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("passages", "teacher_order", "labels", "passage_ids"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if sorted(self.teacher_order) != list(range(len(self.passages))):
            raise InvalidInputError(f"RankingExample {self.query_id!r}: teacher_order must be a permutation of "
                                    f"0..{len(self.passages) - 1}, got {self.teacher_order}")

    def teacher_ranks(self) -> tuple[int, ...]:
        """Each passage's 0-based rank in the teacher's order (0 = best), in input order."""
        ranks = [0] * len(self.passages)
        for rank, index in enumerate(self.teacher_order):
            ranks[index] = rank
        return tuple(ranks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"query_id": self.query_id, "query": self.query, "passages": list(self.passages),
                "teacher_order": list(self.teacher_order), "labels": list(self.labels),
                "passage_ids": list(self.passage_ids), "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RankingExample:
        """Build from :meth:`to_dict` output."""
        return cls(query_id=data["query_id"], query=data["query"], passages=data["passages"],
                   teacher_order=data["teacher_order"], labels=data.get("labels", ()),
                   passage_ids=data.get("passage_ids", ()), source=data.get("source", ""))


@dataclass(frozen=True)
class DatasetSplit:
    """The examples of one split."""

    explanations: tuple[ExplanationExample, ...] = ()
    rankings: tuple[RankingExample, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "explanations", tuple(self.explanations))
        object.__setattr__(self, "rankings", tuple(self.rankings))

    @property
    def query_ids(self) -> frozenset[str]:
        """Every query id in the split."""
        return frozenset(e.query_id for e in self.explanations) | frozenset(r.query_id for r in self.rankings)


@dataclass(frozen=True)
class DistillationDataset:
    """Training and validation examples; construction rejects a query present in both splits."""

    train: DatasetSplit
    validation: DatasetSplit

    def __post_init__(self) -> None:
        check_disjoint(self.train.query_ids, self.validation.query_ids)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``{train,validation}.{explanations,rankings}.jsonl`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, split in (("train", self.train), ("validation", self.validation)):
            for kind, items in (("explanations", split.explanations), ("rankings", split.rankings)):
                write_json_lines(out / f"{name}.{kind}.jsonl", (item.to_dict() for item in items))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DistillationDataset:
        """Read what :meth:`save` wrote."""
        root = Path(directory)

        def read(name: str, kind: str, factory: Any) -> tuple[Any, ...]:
            with (root / f"{name}.{kind}.jsonl").open(encoding="utf-8") as handle:
                return tuple(factory(json.loads(line)) for line in handle if line.strip())

        splits = {name: DatasetSplit(read(name, "explanations", ExplanationExample.from_dict),
                                     read(name, "rankings", RankingExample.from_dict))
                  for name in ("train", "validation")}
        return cls(**splits)


@dataclass(frozen=True)
class DatasetConfig:
    """How annotations become examples.

    Attributes:
        explain_top: Direct-explanation targets only for the teacher's top this many passages per query (``None``:
            every passage with a direct reason; low-ranked passages teach "not relevant" explanations).
        compare_top: Passages in the comparison prompt (the teacher's top ones); < 2 disables comparison targets.
        comparison_target: ``"listwise"`` builds the comparison target from the passages' listwise reasons,
            numbered as the comparison prompt numbers them; ``"teacher"`` uses the teacher's overall comparison of
            the window holding the top passages when it has one (its passage numbers follow that window's
            numbering), falling back to ``"listwise"``.
        validation_fraction: Share of queries held out for validation.
        seed: Seed of the (deterministic) split by query.
        judged: Show the teacher's verdict and best sentence in each direct target's prompt (the student then
            learns to explain a given verdict, as :class:`~r2r_agent.Reranker` asks it to); off: the zero-shot form.
        balance_verdicts: Give the training split as many ``not_relevant`` and ``partial`` direct targets as
            ``relevant`` ones (the rarer repeated, the commoner thinned, deterministically by the seed), so the
            student does not learn one verdict's wording as its default.
    """

    explain_top: int | None = field(default=None, metadata={"help": "direct targets for the teacher's top N only"})
    compare_top: int = field(default=3, metadata={"help": "passages in each comparison target"})
    comparison_target: str = field(default="listwise", metadata={"help": "listwise or teacher"})
    validation_fraction: float = field(default=VALIDATION_FRACTION, metadata={"help": "share of queries held out"})
    seed: int = field(default=SPLIT_SEED, metadata={"help": "seed of the split by query"})
    judged: bool = field(default=True, metadata={"help": "show the teacher's verdict and best sentence in direct "
                                                         "prompts (r2r-prompts-2)"})
    balance_verdicts: bool = field(default=True, metadata={"help": "as many not_relevant and partial direct targets "
                                                                   "as relevant ones in training"})

    def __post_init__(self) -> None:
        if self.explain_top is not None and self.explain_top < 0:
            raise InvalidInputError(f"DatasetConfig.explain_top must be >= 0 or None, got {self.explain_top}")
        if self.compare_top < 0:
            raise InvalidInputError(f"DatasetConfig.compare_top must be >= 0, got {self.compare_top}")
        if self.comparison_target not in ("listwise", "teacher"):
            raise InvalidInputError(
                f"DatasetConfig.comparison_target must be 'listwise' or 'teacher', got {self.comparison_target!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InvalidInputError(
                f"DatasetConfig.validation_fraction must be in [0, 1), got {self.validation_fraction}")


def _comparison_text(annotation: QueryAnnotation, top: Sequence[int], mode: str) -> str | None:
    if mode == "teacher":
        for window in reversed(annotation.windows):
            if window.answer is not None and set(top) <= set(window.positions):
                if window.answer.comparison:
                    return window.answer.comparison
                break
    reasons = annotation.comparison_reasons()
    if any(i not in reasons for i in top):
        return None
    return " ".join(f"[{rank}] {reasons[i]}" for rank, i in enumerate(top, start=1))


def examples_from_annotation(annotation: QueryAnnotation,
                             config: DatasetConfig | None = None) -> tuple[list[ExplanationExample],
                                                                           RankingExample | None]:
    """The explanation examples and the ranking example (``None`` if the teacher ranked nothing) of one query."""
    config = config or DatasetConfig()
    texts = [c.text for c in annotation.candidates]
    ids = [c.id for c in annotation.candidates]
    answered = any(w.ok and len(w.positions) > 0 for w in annotation.windows)
    explanations: list[ExplanationExample] = []
    direct = annotation.direct_reasons()
    verdicts = annotation.verdicts()
    evidence = annotation.evidence()
    chosen = annotation.order if config.explain_top is None else annotation.order[: config.explain_top]
    def judged(indices: Sequence[int]) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
        if not config.judged or any(i not in verdicts for i in indices):
            return (), ()  # a teacher that stated no verdict: the zero-shot form
        return tuple(verdicts[i] for i in indices), tuple(evidence.get(i) for i in indices)

    for index in chosen:
        if index in direct:
            explanations.append(ExplanationExample("direct", annotation.query_id, annotation.query, (texts[index],),
                                                   direct[index], (ids[index],), annotation.source,
                                                   *judged([index])))
    if config.compare_top >= 2 and answered and len(texts) >= 2:
        top = list(annotation.order[: config.compare_top])
        target = _comparison_text(annotation, top, config.comparison_target)
        if target:
            explanations.append(ExplanationExample("comparison", annotation.query_id, annotation.query,
                                                   tuple(texts[i] for i in top), target, tuple(ids[i] for i in top),
                                                   annotation.source, *judged(top)))
    ranking = None
    if answered and len(texts) >= 2:
        ranking = RankingExample(annotation.query_id, annotation.query, tuple(texts), annotation.order,
                                 annotation.labels, tuple(ids), annotation.source)
    return explanations, ranking


def build_dataset(annotations: Iterable[QueryAnnotation], config: DatasetConfig | None = None, *,
                  validation: Iterable[QueryAnnotation] | None = None) -> DistillationDataset:
    """Build train and validation examples, split by query.

    Args:
        annotations: The annotated queries.
        config: Target and split settings.
        validation: Explicit validation annotations; when given, ``annotations`` are all training and
            ``config.validation_fraction`` is ignored.

    Raises:
        SplitLeakageError: when an explicit validation set shares a query id with the training annotations.

    Example:
        >>> from r2r_agent.training.r2r_import import load_r2r_annotations                     # doctest: +SKIP
        >>> data = build_dataset(load_r2r_annotations(path), DatasetConfig(validation_fraction=0.1))  # doctest: +SKIP
        >>> data.train.explanations[0].to_chat_example()["target"]                             # doctest: +SKIP
    """
    config = config or DatasetConfig()
    annotations = list(annotations)
    if validation is None:
        _, held = split_query_ids((a.query_id for a in annotations), config.validation_fraction, config.seed)
        held_ids = set(held)
        train_annotations = [a for a in annotations if a.query_id not in held_ids]
        validation_annotations = [a for a in annotations if a.query_id in held_ids]
    else:
        train_annotations, validation_annotations = annotations, list(validation)
        check_disjoint((a.query_id for a in train_annotations), (a.query_id for a in validation_annotations))

    def split(items: list[QueryAnnotation], balance: bool) -> DatasetSplit:
        explanations: list[ExplanationExample] = []
        rankings: list[RankingExample] = []
        for annotation in items:
            more, ranking = examples_from_annotation(annotation, config)
            explanations.extend(more)
            if ranking is not None:
                rankings.append(ranking)
        if balance:
            explanations = balance_verdicts(explanations, config.seed)
        return DatasetSplit(tuple(explanations), tuple(rankings))

    return DistillationDataset(train=split(train_annotations, config.balance_verdicts and config.judged),
                               validation=split(validation_annotations, False))


def balance_verdicts(examples: Sequence[ExplanationExample], seed: int = 0) -> list[ExplanationExample]:
    """Direct targets with as many ``partial`` and ``not_relevant`` verdicts as ``relevant`` ones: a rarer verdict's
    targets are repeated (all of them, then the first ones again), a commoner one's are thinned by a seeded hash.
    Comparison targets and direct targets without a verdict are kept as they are. The order is stable.

    Example:
        >>> e = [ExplanationExample("direct", str(i), "q", ("p",), "t", verdicts=(v,), evidence=(None,))
        ...      for i, v in enumerate(["relevant", "relevant", "partial", "partial", "partial", "not_relevant"])]
        >>> sorted(x.verdict for x in balance_verdicts(e))
        ['not_relevant', 'not_relevant', 'partial', 'partial', 'relevant', 'relevant']
    """
    groups: dict[str, list[ExplanationExample]] = {}
    kept: list[ExplanationExample] = []
    for example in examples:
        if example.kind == "direct" and example.verdict is not None:
            groups.setdefault(example.verdict, []).append(example)
        else:
            kept.append(example)
    target = len(groups.get("relevant", ())) or max((len(g) for g in groups.values()), default=0)

    def key(example: ExplanationExample) -> str:
        return hashlib.sha256(f"{seed}\x00{example.query_id}\x00{example.target}".encode()).hexdigest()

    for group in groups.values():
        if len(group) >= target:
            kept.extend(sorted(group, key=key)[:target])
        else:
            kept.extend(group[i % len(group)] for i in range(target))
    return kept


__all__ = ["DatasetConfig", "DatasetSplit", "DistillationDataset", "ExplanationExample", "RankingExample",
           "build_dataset", "check_disjoint", "examples_from_annotation", "split_query_ids"]
