"""Evidence: the sentence of a passage that best answers the query, as an exact substring with character offsets.

A passage is cut into sentences (:func:`sentence_spans`); the student's own scorer scores each sentence against the
query, and the best one is the evidence (:func:`choose_evidence`). Only text the scorer saw counts: when a passage
was cut to the scorer's token budget, sentences that start past the cut are left out and one that runs over it is
cut there, so an explanation never rests on text the model did not read. Offsets always index the original text.

Example:
    >>> text = "Fleas are insects. An adult flea lives two to three months. They bite."
    >>> [text[s:e] for s, e in sentence_spans(text)]
    ['Fleas are insects.', 'An adult flea lives two to three months.', 'They bite.']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: A sentence ends at ``.``, ``!``, ``?`` (or their CJK forms, or an ellipsis) followed by white space, or at a line
#: break. A full stop only ends a sentence before a capital, a digit, a quote or a bracket, so "e.g. the" and
#: "approx. 3" do not split as readily.
_BOUNDARY = re.compile(r"(?:(?<=[!?])|(?<=\.)(?=\s+[\"'“‘(\[]?[A-Z0-9])|(?<=…))\s+|(?<=[。！？])\s*|\s*\n\s*")
#: Longer "sentences" (lists, run-on text without punctuation) are cut into windows of about this many words, so the
#: evidence stays a readable span rather than the whole passage.
MAX_SENTENCE_WORDS = 45
_WORD = re.compile(r"\S+")
#: Words after which a full stop does not end a sentence ("approx. 3 weeks", "Dr. Smith"); initials such as "U.S."
#: are recognised by their shape.
ABBREVIATIONS = frozenset("""approx apr aug cf co corp dec dept dr e.g eg est etc feb fig gen gov i.e ie inc jan jr jul
                           jun lt ltd mar mr mrs ms mt no nov oct prof rev sen sep sept sgt sr st vol vs""".split())
_INITIALS = re.compile(r"^(?:[A-Za-z]\.)+$")


def sentence_spans(text: str, *, max_words: int = MAX_SENTENCE_WORDS) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each sentence of ``text``, trimmed of white space, in order.

    Text without a boundary is one sentence (or windows of ``max_words`` words when longer); blank text has none.

    Example:
        >>> sentence_spans("one-word")
        [(0, 8)]
        >>> sentence_spans("   ")
        []
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _after_abbreviation(text, match.start()):
            continue
        spans.extend(_windows(text, start, match.start(), max_words))
        start = match.end()
    spans.extend(_windows(text, start, len(text), max_words))
    return spans


def _after_abbreviation(text: str, boundary: int) -> bool:
    """Whether the full stop just before ``boundary`` closes an abbreviation or initials, not a sentence."""
    if boundary == 0 or text[boundary - 1] != ".":
        return False
    word = text[:boundary].rsplit(None, 1)[-1]
    return bool(_INITIALS.match(word)) or word[:-1].lower().lstrip("([\"'") in ABBREVIATIONS


def _windows(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [(chunk[0][0], chunk[-1][1]) for chunk in
            (words[i : i + max_words] for i in range(0, len(words), max_words))]


@dataclass(frozen=True)
class Evidence:
    """The best-answering sentence of one passage.

    Attributes:
        span: ``(start, end)`` character offsets into the passage text.
        text: ``passage[start:end]``, exactly.
        score: The scorer's score of that sentence for the query (the same scale as the passage scores).
    """

    span: tuple[int, int]
    text: str
    score: float


def candidate_spans(text: str, visible_chars: int | None = None) -> list[tuple[int, int]]:
    """The sentence spans of ``text`` that lie in its first ``visible_chars`` characters (all when ``None``); a
    sentence that runs past that point is cut there."""
    spans = sentence_spans(text)
    if visible_chars is None:
        return spans
    kept = []
    for start, end in spans:
        if start >= visible_chars:
            break
        if end > visible_chars:  # cut where the model stopped reading, at the last whole word before it
            words = [m.end() for m in _WORD.finditer(text, start, visible_chars)
                     if m.end() < visible_chars or visible_chars == len(text) or text[visible_chars].isspace()]
            if not words:
                break
            end = words[-1]
        kept.append((start, end))
    return kept


def choose_evidence(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                    sentence_scores: Sequence[float],
                    preference: Sequence[float] | None = None) -> list[Evidence | None]:
    """The best span of each text.

    Args:
        texts: The passages.
        spans: Each passage's candidate spans (:func:`candidate_spans`).
        sentence_scores: The scorer's score of every span, flattened in the same order (passage by passage).
        preference: What picks the best span, in the same order (default: ``sentence_scores``), e.g. each
            sentence's calibrated relevance, which also weighs the query words it holds.

    Returns:
        One :class:`Evidence` per passage (``None`` for a passage without any span), with its scorer score. Ties keep
        the earlier sentence.
    """
    preference = sentence_scores if preference is None else preference
    if not sum(len(s) for s in spans) == len(sentence_scores) == len(preference):
        raise ValueError(f"choose_evidence: {sum(len(s) for s in spans)} spans but {len(sentence_scores)} scores "
                         f"and {len(preference)} preferences")
    out: list[Evidence | None] = []
    position = 0
    for text, own in zip(texts, spans):
        rank = preference[position : position + len(own)]
        scores = sentence_scores[position : position + len(own)]
        position += len(own)
        if not own:
            out.append(None)
            continue
        best = max(range(len(own)), key=lambda k: (rank[k], -k))
        start, end = own[best]
        out.append(Evidence(span=(start, end), text=text[start:end], score=float(scores[best])))
    return out


__all__ = ["MAX_SENTENCE_WORDS", "Evidence", "candidate_spans", "choose_evidence", "sentence_spans"]
