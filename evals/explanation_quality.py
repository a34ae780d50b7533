"""Explanation quality: pure, dependency-free measures of the student's direct explanations.

Four measures, each defined on :class:`r2r_agent.Ranking` objects (their judgments' ``text``, ``explanation`` and
``id``) plus TREC qrels ``{qid: {docid: grade}}``:

- **verdict agreement** (:func:`extract_verdict`, :func:`verdict_agreement`): the verdict an explanation states
  (relevant / not relevant / unknown) against the qrels grade (relevant when ``grade >= threshold``, 1 for TREC DL).
  Reported as *accuracy* over explanations with a known verdict and a qrels grade, plus *coverage*, the fraction of
  explanations whose verdict is known.
- **groundedness** (:func:`groundedness`): the fraction of an explanation's content words found in the passage, and
  the fraction found only in the query (the explanation restates the query instead of citing the passage).
- **specificity** (:func:`specificity`): ``1 - mean pairwise Jaccard similarity`` of the content-word sets of the
  explanations of different passages of the same query (near-duplicate explanations give a low value).
- **teacher agreement** (:func:`rouge_l_f1`, :func:`unigram_f1`, :func:`teacher_agreement`): ROUGE-L F1 on tokens
  and F1 of the content-word bags between a student's explanation and a reference (teacher) explanation; meant for
  the held-out validation split of the training data (see :mod:`r2r_agent.evals.teacher_agreement`).

:func:`explanation_quality` aggregates the first three over a run and keeps the worst cases for reports.

Tokenisation is deliberately simple and documented so the numbers are reproducible: lowercase, runs of ASCII letters
and digits (an apostrophe inside a word is kept, ``doesn't``), see :func:`tokenize`. Content words drop a small
English stop-word list (:data:`STOP_WORDS`) and fold a plural ``s`` (:func:`content_words`).

Example:
    >>> extract_verdict("The passage is not relevant: it does not mention fleas.")
    'not_relevant'
    >>> round(rouge_l_f1("fleas live two months", "adult fleas live about two months"), 3)
    0.8
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from r2r_agent.errors import InvalidInputError
from r2r_agent.types import Ranking

Verdict = Literal["relevant", "not_relevant", "unknown"]

#: A small English stop-word list: function words that carry no claim about the passage.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the and or but nor so yet if then than that this these those there here it its it's they them their
    theirs he him his she her hers we us our you your i me my mine of in on at by for from to into onto over under
    with without about above below between through during before after up down out off again further once as
    is are was were be been being am do does did doing done have has had having can could will would shall should
    may might must not no yes don't doesn't didn't isn't aren't wasn't weren't can't cannot won't what which who
    whom whose when where why how all any both each few more most other some such only own same very too just also
    s t because while however therefore thus whether either neither one ones e g ie eg etc
    """.split()
)

#: Words explanations use to talk about the task itself; not claims, so :func:`groundedness` ignores them.
META_WORDS: frozenset[str] = frozenset(
    """
    passage query question relevant relevance irrelevant answer answers answered answering information provide
    provides provided mention mentions mentioned discuss discusses describe describes explain explains explanation
    state states address addresses specific specifically directly document text fact facts detail details user
    related unrelated contain contains
    """.split()
)

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

# Verdict phrases (matched case-insensitively). A positive match that overlaps a negative one is dropped
# ("is not relevant" contains "relevant"), then the earliest remaining match decides.
_NEGATIVE = re.compile(
    r"""
    ^\s*no\b
    | \bnot\s+(?:\w+\s+){0,2}?(?:relevant|related|useful|helpful|pertinent)\b
    | \b(?:is|are|was|were)n['’]t\s+(?:\w+\s+){0,2}?(?:relevant|related|useful|helpful|pertinent)\b
    | \b(?:irrelevant|unrelated|off-topic|off\s+topic)\b
    | \b(?:does|do|did)(?:\s+not|n['’]t)\s+(?:\w+\s+){0,2}?
        (?:answer|address|mention|discuss|provide|contain|explain|relate|cover|say|give|include|specify)
    | \b(?:cannot|can['’]t|can\s+not)\s+(?:\w+\s+){0,2}?answer
    | \bfails?\s+to\s+(?:answer|address|mention|explain|provide)
    | \bno\s+(?:relevant\s+|useful\s+)?(?:information|mention|answer)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
_POSITIVE = re.compile(
    r"""
    ^\s*(?:yes|relevant)\b
    | \b(?:is|are|was|were|be|seems|appears)\s+(?:\w+\s+){0,2}?(?:relevant|useful|helpful|pertinent)\b
    | \brelevant\s+(?:to|for|because|since|as)\b
    | \b(?:answers|addresses)\b
    | \b(?:does|do)\s+(?:\w+\s+)?answer\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens: runs of ASCII letters and digits, keeping an inner apostrophe (``doesn't``).

    Example:
        >>> tokenize("Fleas live 2-3 months; it doesn't say.")
        ['fleas', 'live', '2', '3', 'months', 'it', "doesn't", 'say']
    """
    return [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]


def _fold(word: str) -> str:
    # Crude plural folding so "fleas" in an explanation matches "flea" in a passage; no stemmer dependency.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> list[str]:
    """The tokens of ``text`` (see :func:`tokenize`) that are not stop words, with a plural ``s`` folded.

    Example:
        >>> content_words("The fleas live for two months")
        ['flea', 'live', 'two', 'month']
    """
    return [_fold(t) for t in tokenize(text) if t not in STOP_WORDS]


# ---------------------------------------------------------------------------------------------------------------
# 1. Verdict agreement
# ---------------------------------------------------------------------------------------------------------------


def extract_verdict(explanation: str | None) -> Verdict:
    """The verdict an explanation states about its passage.

    Negative phrases (``not relevant``, ``not directly relevant``, ``isn't relevant``, ``irrelevant``,
    ``unrelated``, ``does not answer/address/mention/...``, ``cannot answer``, ``fails to answer``,
    ``no information``, a leading ``No``) and positive phrases (``is relevant``, ``is highly relevant``,
    ``relevant to``, ``answers``, ``addresses``, ``does answer``, a leading ``Yes`` or ``Relevant``) are found; a
    positive phrase inside a negative one is ignored, and the earliest phrase decides ("The passage is relevant,
    though it does not mention X" is relevant). Graded wording such as "partially relevant" counts as relevant.

    Args:
        explanation: The explanation text (``None`` or blank gives ``"unknown"``).

    Returns:
        ``"relevant"``, ``"not_relevant"`` or ``"unknown"`` (no verdict phrase found).

    Example:
        >>> extract_verdict("The passage is highly relevant to the query.")
        'relevant'
        >>> extract_verdict("It doesn't answer the question.")
        'not_relevant'
        >>> extract_verdict("The passage talks about cats.")
        'unknown'
    """
    if not explanation or not explanation.strip():
        return "unknown"
    negatives = [m.span() for m in _NEGATIVE.finditer(explanation)]
    positives = [
        m.span()
        for m in _POSITIVE.finditer(explanation)
        if not any(m.start() < end and start < m.end() for start, end in negatives)
    ]
    first_neg = min((s for s, _ in negatives), default=math.inf)
    first_pos = min((s for s, _ in positives), default=math.inf)
    if first_neg == first_pos == math.inf:
        return "unknown"
    return "not_relevant" if first_neg <= first_pos else "relevant"


@dataclass(frozen=True)
class VerdictAgreement:
    """Agreement of explanation verdicts with qrels grades.

    Attributes:
        n: Explanations considered (non-empty).
        n_known: Those with a known verdict (see :func:`extract_verdict`).
        n_judged: Those with a known verdict and a qrels grade for their passage (the accuracy's denominator).
        n_correct: Judged ones whose verdict matches ``grade >= threshold``.
        coverage: ``n_known / n`` in [0, 1]; ``None`` when ``n == 0``.
        accuracy: ``n_correct / n_judged`` in [0, 1]; ``None`` when ``n_judged == 0``.
        threshold: The grade from which a passage counts as relevant.
    """

    n: int
    n_known: int
    n_judged: int
    n_correct: int
    coverage: float | None
    accuracy: float | None
    threshold: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerdictAgreement:
        """Build from :meth:`to_dict` output."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def verdict_agreement(items: Iterable[tuple[str | None, int | None]], threshold: int = 1) -> VerdictAgreement:
    """Accuracy and coverage of explanation verdicts against qrels grades.

    Args:
        items: ``(explanation, grade)`` pairs; ``grade`` is ``None`` for an unjudged passage. Blank or ``None``
            explanations are skipped.
        threshold: A passage is relevant when ``grade >= threshold`` (1 for TREC DL; 2 for a strict reading).

    Returns:
        A :class:`VerdictAgreement`.

    Example:
        >>> verdict_agreement([("It is relevant.", 2), ("Not relevant.", 2), ("About cats.", 0)]).accuracy
        0.5
    """
    n = n_known = n_judged = n_correct = 0
    for explanation, grade in items:
        if not explanation or not explanation.strip():
            continue
        n += 1
        verdict = extract_verdict(explanation)
        if verdict == "unknown":
            continue
        n_known += 1
        if grade is None:
            continue
        n_judged += 1
        n_correct += (verdict == "relevant") == (grade >= threshold)
    return VerdictAgreement(
        n=n,
        n_known=n_known,
        n_judged=n_judged,
        n_correct=n_correct,
        coverage=n_known / n if n else None,
        accuracy=n_correct / n_judged if n_judged else None,
        threshold=threshold,
    )


# ---------------------------------------------------------------------------------------------------------------
# 2. Groundedness
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Groundedness:
    """Where an explanation's claim words come from.

    The claim words are the explanation's content words (:func:`content_words`, counted with repetition) minus
    :data:`META_WORDS` (task vocabulary such as "passage", "query", "relevant"). The three fractions sum to 1.

    Attributes:
        n_words: Claim words in the explanation.
        in_passage: Fraction of claim words that occur in the passage, in [0, 1].
        query_only: Fraction that occur in the query but not in the passage, in [0, 1]; high means the
            explanation restates the query instead of citing the passage.
        unsupported: Fraction in neither (paraphrase, world knowledge or hallucination), in [0, 1].
    """

    n_words: int
    in_passage: float
    query_only: float
    unsupported: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def groundedness(explanation: str, passage: str, query: str = "") -> Groundedness | None:
    """How much of an explanation's content is in the passage, and how much only in the query.

    Args:
        explanation: The explanation text.
        passage: The passage it explains.
        query: The query (for the ``query_only`` fraction).

    Returns:
        A :class:`Groundedness`, or ``None`` when the explanation has no claim words (blank, or only stop and
        meta words), so that it does not count as perfectly grounded or ungrounded.

    Example:
        >>> g = groundedness("Fleas live three months in carpets.", "A flea lives three months.", "fleas in carpets")
        >>> (g.n_words, g.in_passage, g.query_only, g.unsupported)
        (5, 0.8, 0.2, 0.0)
    """
    words = [w for w in content_words(explanation) if w not in META_WORDS]
    if not words:
        return None
    in_passage = set(content_words(passage))
    in_query = set(content_words(query))
    grounded = sum(w in in_passage for w in words)
    query_only = sum(w in in_query and w not in in_passage for w in words)
    n = len(words)
    return Groundedness(
        n_words=n, in_passage=grounded / n, query_only=query_only / n, unsupported=(n - grounded - query_only) / n
    )


# ---------------------------------------------------------------------------------------------------------------
# 3. Specificity
# ---------------------------------------------------------------------------------------------------------------


def jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the content-word sets of two texts, in [0, 1].

    Two texts without content words are identical (1.0); one without against one with gives 0.0.

    Example:
        >>> jaccard("fleas live three months", "fleas live two months")
        0.6
    """
    sa, sb = set(content_words(a)), set(content_words(b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def specificity(explanations: Sequence[str]) -> float | None:
    """``1 - mean pairwise Jaccard`` (:func:`jaccard`) over explanations of different passages of one query.

    Args:
        explanations: The explanations (one per passage) of one query.

    Returns:
        A value in [0, 1]: 0 when all explanations are the same words, 1 when no two share a content word;
        ``None`` with fewer than two explanations (there is no pair).

    Example:
        >>> specificity(["Fleas live three months.", "Fleas live three months!"])
        0.0
    """
    pairs = list(itertools.combinations(explanations, 2))
    if not pairs:
        return None
    return 1.0 - math.fsum(jaccard(a, b) for a, b in pairs) / len(pairs)


# ---------------------------------------------------------------------------------------------------------------
# 4. Teacher agreement
# ---------------------------------------------------------------------------------------------------------------


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on :func:`tokenize` tokens (all tokens, stop words included), in [0, 1].

    With ``L`` the length of the longest common subsequence, ``P = L / len(candidate)``,
    ``R = L / len(reference)`` and ``F1 = 2PR / (P + R)`` (Lin, 2004, with beta = 1). 0.0 when either text has
    no tokens.

    Example:
        >>> rouge_l_f1("the flea lives three months", "the flea lives three months")
        1.0
    """
    a, b = tokenize(candidate), tokenize(reference)
    if not a or not b:
        return 0.0
    lcs = _lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def unigram_f1(candidate: str, reference: str) -> float:
    """F1 of the content-word bags of two texts (:func:`content_words`, counted with repetition), in [0, 1].

    With ``O`` the size of the bags' intersection, ``P = O / |candidate|``, ``R = O / |reference|`` and
    ``F1 = 2PR / (P + R)``. Unlike :func:`rouge_l_f1` it ignores order and stop words, so it measures shared content
    ("fleas", "three", "month") rather than shared phrasing. 0.0 when either text has no content word.

    Example:
        >>> round(unigram_f1("The fleas live three months.", "A flea lives two months on a cat"), 3)
        0.667
    """
    a, b = Counter(content_words(candidate)), Counter(content_words(reference))
    overlap = sum((a & b).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(a.values()), overlap / sum(b.values())
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class TeacherAgreement:
    """ROUGE-L F1 between student and teacher explanations.

    Attributes:
        n: Pairs scored.
        mean_rouge_l_f1: Mean ROUGE-L F1 in [0, 1]; ``None`` when ``n == 0``.
        lowest: The lowest-scoring pairs, as ``{"index", "student", "teacher", "rouge_l_f1"}`` dicts.
    """

    n: int
    mean_rouge_l_f1: float | None
    lowest: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"n": self.n, "mean_rouge_l_f1": self.mean_rouge_l_f1, "lowest": [dict(x) for x in self.lowest]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeacherAgreement:
        """Build from :meth:`to_dict` output."""
        return cls(data["n"], data["mean_rouge_l_f1"], tuple(dict(x) for x in data.get("lowest", ())))


def teacher_agreement(pairs: Iterable[tuple[str, str]], worst_k: int = 5) -> TeacherAgreement:
    """Mean ROUGE-L F1 (:func:`rouge_l_f1`) over ``(student, teacher)`` explanation pairs.

    Pass pairs from the held-out validation split of the training data (this function loads nothing).

    Args:
        pairs: ``(student_explanation, teacher_explanation)`` pairs.
        worst_k: How many lowest-scoring pairs to keep.

    Example:
        >>> teacher_agreement([("fleas live months", "fleas live months")]).mean_rouge_l_f1
        1.0
    """
    scored = [(i, s, t, rouge_l_f1(s, t)) for i, (s, t) in enumerate(pairs)]
    lowest = sorted(scored, key=lambda x: (x[3], x[0]))[:worst_k]
    return TeacherAgreement(
        n=len(scored),
        mean_rouge_l_f1=math.fsum(x[3] for x in scored) / len(scored) if scored else None,
        lowest=tuple({"index": i, "student": s, "teacher": t, "rouge_l_f1": f} for i, s, t, f in lowest),
    )


# ---------------------------------------------------------------------------------------------------------------
# Aggregate
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplanationCase:
    """One explanation shown in a report as a worst case.

    Attributes:
        qid: The query id.
        query: The query text.
        passage_id: The passage's id (``None`` when it had none).
        explanation: The explanation text.
        value: The measure's value for this case (groundedness ``in_passage``), if any.
        note: What is wrong, e.g. ``"verdict relevant, grade 0"``.
    """

    qid: str
    query: str
    passage_id: str | None
    explanation: str
    value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationCase:
        """Build from :meth:`to_dict` output."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class DuplicatePair:
    """The two most similar explanations of one query (a specificity worst case).

    Attributes:
        qid: The query id.
        query: The query text.
        passage_ids: The two passages' ids.
        explanations: The two explanations.
        similarity: Their :func:`jaccard` similarity in [0, 1].
    """

    qid: str
    query: str
    passage_ids: tuple[str | None, str | None]
    explanations: tuple[str, str]
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "qid": self.qid,
            "query": self.query,
            "passage_ids": list(self.passage_ids),
            "explanations": list(self.explanations),
            "similarity": self.similarity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicatePair:
        """Build from :meth:`to_dict` output."""
        a, b = data["passage_ids"]
        ea, eb = data["explanations"]
        return cls(data["qid"], data["query"], (a, b), (ea, eb), data["similarity"])


@dataclass(frozen=True)
class ExplanationQuality:
    """Explanation-quality measures over a run, with worst cases for reports.

    Attributes:
        n_queries: Rankings considered.
        n_judgments: Judgments in them.
        n_explained: Judgments with a non-blank explanation (the population of every measure).
        n_empty: Judgments whose explanation is an empty or blank string (``None`` is "not explained").
        verdict: Verdict agreement (see :func:`verdict_agreement`).
        groundedness: Mean :attr:`Groundedness.in_passage` over explanations with claim words, or ``None``.
        query_only: Mean :attr:`Groundedness.query_only`, or ``None``.
        unsupported: Mean :attr:`Groundedness.unsupported`, or ``None``.
        n_grounded: Explanations with claim words (the groundedness denominator).
        specificity: Mean per-query :func:`specificity` over queries with at least two explanations, or ``None``.
        n_specificity_queries: Those queries.
        lowest_groundedness: The least grounded explanations, lowest first.
        most_duplicated: Per query, the most similar pair of explanations, most similar first.
        wrong_verdicts: Explanations whose verdict disagrees with the qrels grade.
    """

    n_queries: int
    n_judgments: int
    n_explained: int
    n_empty: int
    verdict: VerdictAgreement
    groundedness: float | None
    query_only: float | None
    unsupported: float | None
    n_grounded: int
    specificity: float | None
    n_specificity_queries: int
    lowest_groundedness: tuple[ExplanationCase, ...] = field(default=())
    most_duplicated: tuple[DuplicatePair, ...] = field(default=())
    wrong_verdicts: tuple[ExplanationCase, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["verdict"] = self.verdict.to_dict()
        for key in ("lowest_groundedness", "most_duplicated", "wrong_verdicts"):
            data[key] = [case.to_dict() for case in data[key]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationQuality:
        """Build from :meth:`to_dict` output."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["verdict"] = VerdictAgreement.from_dict(data["verdict"])
        values["lowest_groundedness"] = tuple(ExplanationCase.from_dict(c) for c in data.get("lowest_groundedness", ()))
        values["most_duplicated"] = tuple(DuplicatePair.from_dict(c) for c in data.get("most_duplicated", ()))
        values["wrong_verdicts"] = tuple(ExplanationCase.from_dict(c) for c in data.get("wrong_verdicts", ()))
        return cls(**values)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def explanation_quality(
    rankings: Mapping[str, Ranking],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    threshold: int = 1,
    worst_k: int = 5,
) -> ExplanationQuality:
    """Verdict agreement, groundedness and specificity of the direct explanations in a run.

    Only judgments with a non-blank ``explanation`` count; ``Ranking.comparison`` is not measured. A passage with
    no id, or one the qrels do not grade, has no grade: its verdict counts for coverage, not for accuracy.

    Args:
        rankings: ``{qid: Ranking}``, one ranking per query (the qid keys the qrels).
        qrels: ``{qid: {docid: grade}}`` (e.g. from :func:`r2r_agent.evals.read_trec_qrels` via
            :func:`r2r_agent.evals.metrics.to_qrels`).
        threshold: A passage is relevant when ``grade >= threshold`` (1 for TREC DL).
        worst_k: How many worst cases of each kind to keep.

    Returns:
        An :class:`ExplanationQuality` (nothing in the inputs is modified).

    Raises:
        InvalidInputError: if ``rankings`` is not a mapping of query ids to :class:`~r2r_agent.Ranking`.
    """
    if not isinstance(rankings, Mapping) or not all(isinstance(r, Ranking) for r in rankings.values()):
        got = type(rankings).__name__ if not isinstance(rankings, Mapping) else "a mapping with non-Ranking values"
        raise InvalidInputError(
            f"explanation_quality expects rankings as {{qid: Ranking}}, got {got}. "
            "Key each Ranking by its query id so explanations can be matched with the qrels."
        )
    n_judgments = n_empty = 0
    pairs: list[tuple[str, int | None]] = []
    wrong: list[ExplanationCase] = []
    grounded: list[tuple[Groundedness, ExplanationCase]] = []
    spec_values: list[float] = []
    duplicates: list[DuplicatePair] = []
    for qid, ranking in rankings.items():
        grades = qrels.get(qid, {})
        explained = []
        for judgment in ranking.judgments:
            n_judgments += 1
            text = judgment.explanation
            if text is None:
                continue
            if not text.strip():
                n_empty += 1
                continue
            explained.append(judgment)
            grade = grades.get(judgment.id) if judgment.id is not None else None
            pairs.append((text, grade))
            verdict = extract_verdict(text)
            if verdict != "unknown" and grade is not None and (verdict == "relevant") != (grade >= threshold):
                note = f"verdict {verdict}, grade {grade}"
                wrong.append(ExplanationCase(qid, ranking.query, judgment.id, text, note=note))
            g = groundedness(text, judgment.text, ranking.query)
            if g is not None:
                note = f"in passage {g.in_passage:.2f}, query only {g.query_only:.2f}, unsupported {g.unsupported:.2f}"
                grounded.append((g, ExplanationCase(qid, ranking.query, judgment.id, text, g.in_passage, note)))
        value = specificity([j.explanation or "" for j in explained])
        if value is not None:
            spec_values.append(value)
            similarity, a, b = max(
                (
                    (jaccard(a.explanation or "", b.explanation or ""), a, b)
                    for a, b in itertools.combinations(explained, 2)
                ),
                key=lambda x: x[0],
            )
            duplicates.append(
                DuplicatePair(qid, ranking.query, (a.id, b.id), (a.explanation or "", b.explanation or ""), similarity)
            )
    lowest = sorted(grounded, key=lambda x: x[0].in_passage)[:worst_k]
    return ExplanationQuality(
        n_queries=len(rankings),
        n_judgments=n_judgments,
        n_explained=len(pairs),
        n_empty=n_empty,
        verdict=verdict_agreement(pairs, threshold),
        groundedness=_mean([g.in_passage for g, _ in grounded]),
        query_only=_mean([g.query_only for g, _ in grounded]),
        unsupported=_mean([g.unsupported for g, _ in grounded]),
        n_grounded=len(grounded),
        specificity=_mean(spec_values),
        n_specificity_queries=len(spec_values),
        lowest_groundedness=tuple(case for _, case in lowest),
        most_duplicated=tuple(sorted(duplicates, key=lambda d: -d.similarity)[:worst_k]),
        wrong_verdicts=tuple(wrong[:worst_k]),
    )
