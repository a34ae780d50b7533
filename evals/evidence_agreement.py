"""Evidence against the teacher's: does the student's best sentence match the sentence the teacher says answers?

On held-out training passages, the teacher (R2R's GPT-4) named each passage's best-answering sentence
(``direct_answer_sentence``, :meth:`r2r_agent.training.QueryAnnotation.evidence`). A judgment's
:attr:`~r2r_agent.Judgment.evidence` matches it when :func:`same_sentence` says so. Two baselines are measured on the
same passages, from the passage's sentences (:func:`r2r_agent.evidence.sentence_spans`): the first sentence, and the
sentence holding the largest share of the query's content words (:func:`r2r_agent.calibration.query_coverage`, the
earliest on ties). Passages whose teacher sentence is missing or a placeholder (:data:`NO_SENTENCE`: "Not
applicable", "N/A", "None") are skipped and counted.

Example:
    >>> same_sentence("Adult fleas live two to three months.", "An adult flea lives 2-3 months. They bite.")
    False
    >>> same_sentence("Adult fleas live two to three months.", "adult fleas live two to three months")
    True
    >>> first_sentence("Fleas bite. Adult fleas live two months."), best_covering_sentence(
    ...     "how long do fleas live", "Fleas bite. Adult fleas live two months.")
    ('Fleas bite.', 'Adult fleas live two months.')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from r2r_agent.calibration import query_coverage
from r2r_agent.evidence import sentence_spans

#: Share of the smaller word set, and of the larger, that two sentences must share to match.
SMALLER_SHARE = 0.8
LARGER_SHARE = 0.5
#: What the teacher writes when no sentence answers (compared lower-cased, without punctuation).
NO_SENTENCE = frozenset({"", "n a", "na", "none", "not applicable", "not available", "no answer", "nothing"})
_WORD = re.compile(r"[^\W_]+")


def sentence_words(text: str) -> set[str]:
    """The normalised word set of a sentence: lower-cased runs of letters and digits (punctuation dropped)."""
    return set(_WORD.findall(text.lower()))


def same_sentence(a: str | None, b: str | None) -> bool:
    """Whether ``a`` and ``b`` are the same sentence, give or take a few words: their normalised word sets
    (:func:`sentence_words`) share at least :data:`SMALLER_SHARE` of the smaller set and at least
    :data:`LARGER_SHARE` of the larger. The first condition lets a sentence match itself cut short or with a clause
    added; the second keeps a short phrase from matching a long sentence that merely contains it. Empty text matches
    nothing."""
    first, second = sentence_words(a or ""), sentence_words(b or "")
    if not first or not second:
        return False
    shared = len(first & second)
    return shared >= SMALLER_SHARE * min(len(first), len(second)) and shared >= LARGER_SHARE * max(len(first),
                                                                                                    len(second))


def first_sentence(passage: str) -> str | None:
    """The passage's first sentence (``None`` for blank text)."""
    spans = sentence_spans(passage)
    return passage[spans[0][0] : spans[0][1]] if spans else None


def best_covering_sentence(query: str, passage: str) -> str | None:
    """The sentence holding the largest share of the query's content words (the earliest on ties)."""
    sentences = [passage[s:e] for s, e in sentence_spans(passage)]
    if not sentences:
        return None
    return max(enumerate(sentences), key=lambda item: (query_coverage(query, item[1]), -item[0]))[1]


def has_sentence(teacher: str | None) -> bool:
    """Whether the teacher named a sentence (not a placeholder such as "Not applicable")."""
    return teacher is not None and " ".join(_WORD.findall(teacher.lower())) not in NO_SENTENCE


@dataclass(frozen=True)
class EvidenceMiss:
    """A passage whose evidence did not match the teacher's sentence (a worst case for reports)."""

    qid: str
    passage_id: str | None
    evidence: str | None
    teacher: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class EvidenceAgreement:
    """How often evidence matches the teacher's best sentence, beside two baselines on the same passages.

    Attributes:
        n: Passages with a teacher sentence (the denominator of every rate).
        n_skipped: Passages without one (missing or a placeholder).
        n_without_evidence: Passages the system gave no evidence for (counted as misses).
        n_system: Passages whose evidence matches.
        n_first_sentence: Passages whose first sentence matches.
        n_query_coverage: Passages whose best query-covering sentence matches.
        misses: The first few passages whose evidence does not match.
    """

    n: int
    n_skipped: int
    n_without_evidence: int
    n_system: int
    n_first_sentence: int
    n_query_coverage: int
    misses: tuple[EvidenceMiss, ...] = field(default=())

    def rate(self, count: int) -> float | None:
        """``count / n`` (``None`` when ``n`` is 0)."""
        return count / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict, with the three match rates."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["misses"] = [m.to_dict() for m in self.misses]
        data.update(system_rate=self.rate(self.n_system), first_sentence_rate=self.rate(self.n_first_sentence),
                    query_coverage_rate=self.rate(self.n_query_coverage))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidenceAgreement:
        """Build from :meth:`to_dict` output."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["misses"] = tuple(EvidenceMiss(**m) for m in data.get("misses", ()))
        return cls(**values)


def evidence_agreement(items: Iterable[tuple[str, str, str | None, str, str | None, str | None]], *,
                       worst_k: int = 5) -> EvidenceAgreement:
    """Count matches over ``items``: ``(qid, query, passage_id, passage, evidence, teacher sentence)`` each.

    Example:
        >>> a = evidence_agreement([("q", "fleas live", "d1", "Cats. Fleas live 2 months.", "Fleas live 2 months.",
        ...                          "Fleas live 2 months."), ("q", "fleas live", "d2", "Cats.", "Cats.", "N/A")])
        >>> a.n, a.n_skipped, a.n_system, a.n_first_sentence, a.n_query_coverage
        (1, 1, 1, 0, 1)
    """
    n = skipped = without = system = first = covering = 0
    misses: list[EvidenceMiss] = []
    for qid, query, passage_id, passage, evidence, teacher in items:
        if not has_sentence(teacher):
            skipped += 1
            continue
        n += 1
        without += evidence is None
        if same_sentence(evidence, teacher):
            system += 1
        elif len(misses) < worst_k:
            misses.append(EvidenceMiss(qid, passage_id, evidence, teacher or ""))
        first += same_sentence(first_sentence(passage), teacher)
        covering += same_sentence(best_covering_sentence(query, passage), teacher)
    return EvidenceAgreement(n, skipped, without, system, first, covering, tuple(misses))


__all__ = ["LARGER_SHARE", "NO_SENTENCE", "SMALLER_SHARE", "EvidenceAgreement", "EvidenceMiss",
           "best_covering_sentence", "evidence_agreement", "first_sentence", "has_sentence", "same_sentence",
           "sentence_words"]
