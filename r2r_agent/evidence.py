"""Evidence: the sentence of a passage that best answers the query, as an exact substring with character offsets.

A passage is cut into sentences (:func:`sentence_spans`); the student's own scorer scores each sentence against the
query, and the best one that states something is the evidence (:func:`choose_evidence`): a question, a title or a
near-copy of the query repeats the query rather than answering it (:func:`statement_problem`). Only text the scorer
saw counts: when a passage was cut to the scorer's token budget, sentences that start past the cut are left out and
one that runs over it is cut there, so an explanation never rests on text the model did not read. Offsets always
index the original text.

Bounded work on any input: splitting is linear and only the part read is split (a 4 MB document costs what its
first window costs), and at most :data:`MAX_SENTENCES_PER_PASSAGE` spans of a passage are judged.

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


def sentence_spans(text: str, *, max_words: int = MAX_SENTENCE_WORDS, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each sentence of ``text``, trimmed of white space, in order.

    Text without a boundary is one sentence (or windows of ``max_words`` words when longer); blank text has none.
    Time is linear in the text split.

    Args:
        text: The text.
        max_words: The longest span, in words, before a long sentence is cut into windows.
        end: Split only ``text[:end]`` (the part a model reads), without copying it; the last span stops there.

    Example:
        >>> sentence_spans("one-word")
        [(0, 8)]
        >>> sentence_spans("   ")
        []
        >>> sentence_spans("First one. Second one.", end=12)
        [(0, 10), (11, 12)]
    """
    stop = len(text) if end is None else max(0, min(end, len(text)))
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text, 0, stop):
        if _after_abbreviation(text, match.start()):
            continue
        spans.extend(_windows(text, start, match.start(), max_words))
        start = match.end()
    spans.extend(_windows(text, start, stop, max_words))
    return spans


#: How far back from a full stop an abbreviation or initials can start: a longer word is neither, so the look back
#: is bounded and splitting stays linear however long the text (it copied everything before each boundary once).
_LONGEST_ABBREVIATION = 32


def _after_abbreviation(text: str, boundary: int) -> bool:
    """Whether the full stop just before ``boundary`` closes an abbreviation or initials, not a sentence."""
    if boundary == 0 or text[boundary - 1] != ".":
        return False
    lookback = max(0, boundary - _LONGEST_ABBREVIATION - 1)
    chunk = text[lookback:boundary]
    word = chunk.rsplit(None, 1)[-1]
    if lookback > 0 and len(word) == len(chunk):  # no white space in the window: longer than any abbreviation
        return False
    return bool(_INITIALS.match(word)) or word[:-1].lower().lstrip("([\"'") in ABBREVIATIONS


def _windows(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [(chunk[0][0], chunk[-1][1]) for chunk in
            (words[i : i + max_words] for i in range(0, len(words), max_words))]


#: A span of at most this many words without a sentence's closing punctuation reads as a title or heading
#: ("Tsar Nicholas II", "What does a high TSH mean"), not as a statement.
TITLE_MAX_WORDS = 8
#: A span holding this share of the query's words, with at most :data:`NEAR_COPY_EXTRA_WORDS` words more than the
#: query, repeats the query rather than answering it.
NEAR_COPY_SHARE = 0.8
NEAR_COPY_EXTRA_WORDS = 3
_TOKEN = re.compile(r"[^\W_]+")
_CLOSING = ".!?。！？…:;\"'”’)]"


def statement_problem(sentence: str, query: str | None = None) -> str | None:
    """Why ``sentence`` is no evidence of an answer, or ``None`` when it states something.

    ``"question"``: it ends with a question mark; ``"title"``: at most :data:`TITLE_MAX_WORDS` words without a
    sentence's closing punctuation, or in Title Case (a heading, a page title, a label: "Flail Chest.");
    ``"near-copy of the query"`` (only with ``query``): it holds :data:`NEAR_COPY_SHARE` of the query's words and
    adds at most :data:`NEAR_COPY_EXTRA_WORDS`.

    Example:
        >>> statement_problem("What does a high TSH mean?")
        'question'
        >>> statement_problem("Tsar Nicholas II")
        'title'
        >>> statement_problem("What does a high TSH mean for you.", "what does a high TSH mean")
        'near-copy of the query'
        >>> statement_problem("A high TSH means the thyroid is underactive.") is None
        True
    """
    text = sentence.strip()
    if not text:
        return "title"
    if text.rstrip("\"'”’)] ").endswith(("?", "？")):
        return "question"
    words = _TOKEN.findall(text.lower())
    if query is not None:
        wanted = set(_TOKEN.findall(query.lower()))
        if wanted and len(wanted & set(words)) >= NEAR_COPY_SHARE * len(wanted) \
                and len(words) <= len(wanted) + NEAR_COPY_EXTRA_WORDS:
            return "near-copy of the query"
    if len(words) <= TITLE_MAX_WORDS:
        long_words = [w for w in _TOKEN.findall(text) if len(w) >= 4 and w.isalpha()]
        title_case = len(long_words) >= 2 and all(w[0].isupper() for w in long_words)
        if title_case or not text.endswith(tuple(_CLOSING)):
            return "title"
    return None


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


#: At most this many spans of one passage are judged (scored against the query): a passage of a thousand tiny
#: "sentences" ("Ok! Ok! ...") would otherwise cost a thousand scorer inputs (for a served student, a thousand
#: requests). Beyond it, neighbouring sentences are joined into as many even groups, so every part of the text read
#: is still a candidate, in longer spans.
MAX_SENTENCES_PER_PASSAGE = 64
#: Characters past the read part that the splitter looks at, so a boundary just before the cut is seen as in the
#: whole text (its look-ahead wants the white space and the capital after a full stop).
_LOOKAHEAD_CHARS = 64


def candidate_spans(text: str, visible_chars: int | None = None, *,
                    max_sentences: int = MAX_SENTENCES_PER_PASSAGE) -> list[tuple[int, int]]:
    """The sentence spans of ``text`` that lie in its first ``visible_chars`` characters (all when ``None``); a
    sentence that runs past that point is cut there. Only that part of the text is split.

    Args:
        text: The passage.
        visible_chars: How many leading characters a model read (``Scorer.visible_chars``), ``None``: all.
        max_sentences: At most this many spans come back: when there are more sentences, consecutive ones are joined
            into ``max_sentences`` groups of near-equal counts (each still an exact span of ``text``).

    Example:
        >>> text = "Ok! " * 6
        >>> [text[s:e] for s, e in candidate_spans(text, max_sentences=2)]
        ['Ok! Ok! Ok!', 'Ok! Ok! Ok!']
    """
    if isinstance(max_sentences, bool) or not isinstance(max_sentences, int) or max_sentences < 1:
        raise ValueError(f"candidate_spans: max_sentences must be an int >= 1, got {max_sentences!r}")
    if visible_chars is None:
        return _at_most(sentence_spans(text), max_sentences)
    spans = sentence_spans(text, end=visible_chars + _LOOKAHEAD_CHARS)
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
    return _at_most(kept, max_sentences)


def best_window_spans(text: str, windows: Sequence[tuple[int, int, float]], visible_chars: int | None = None, *,
                      keep: int = 2, max_sentences: int = MAX_SENTENCES_PER_PASSAGE) -> list[tuple[int, int]]:
    """The sentence spans of a long passage's ``keep`` best-scoring windows (``Scores.windows``), in text order.

    A passage read in many windows has more sentences than :data:`MAX_SENTENCES_PER_PASSAGE`, which
    :func:`candidate_spans` joins into groups (evidence of 2-3 sentences at 20,000 characters); the sentences of the
    windows the scorer scored best are where the answer is, and there are few enough to judge one by one.
    Without windows (or with one) this is :func:`candidate_spans`.

    Args:
        text: The passage.
        windows: ``(start, end, score)`` of each window, offsets into ``text``.
        visible_chars: As :func:`candidate_spans`.
        keep: How many of the best windows to take sentences from.
        max_sentences: As :func:`candidate_spans`.

    Example:
        >>> text = "Cats purr. Dogs bark. Fleas live three months. Birds sing."
        >>> [text[s:e] for s, e in best_window_spans(text, [(0, 21, 0.1), (22, 58, 0.9)], keep=1)]
        ['Fleas live three months.', 'Birds sing.']
    """
    if len(windows) < 2:
        return candidate_spans(text, visible_chars, max_sentences=max_sentences)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"best_window_spans: keep must be an int >= 1, got {keep!r}")
    best = sorted(windows, key=lambda w: -w[2])[:keep]
    every = candidate_spans(text, visible_chars, max_sentences=len(text) + 1)
    inside = [(s, e) for s, e in every if any(a <= s and e <= b for a, b, _ in best)]
    return _at_most(inside, max_sentences) if inside else _at_most(every, max_sentences)


def _at_most(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """``spans`` joined, neighbour to neighbour, into at most ``limit`` groups of near-equal counts."""
    if len(spans) <= limit:
        return spans
    bounds = [round(k * len(spans) / limit) for k in range(limit + 1)]
    return [(spans[a][0], spans[b - 1][1]) for a, b in zip(bounds, bounds[1:]) if b > a]


def choose_evidence(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                    sentence_scores: Sequence[float],
                    preference: Sequence[float] | None = None, *, query: str | None = None) -> list[Evidence | None]:
    """The best span of each text that states something.

    A question, a title or (given ``query``) a near-copy of the query (:func:`statement_problem`) scores high against
    the query because it repeats it, yet answers nothing: such a span is evidence only when no span of the passage
    states anything.

    Args:
        texts: The passages.
        spans: Each passage's candidate spans (:func:`candidate_spans`).
        sentence_scores: The scorer's score of every span, flattened in the same order (passage by passage).
        preference: What picks the best span, in the same order (default: ``sentence_scores``), e.g. each
            sentence's calibrated relevance, which also weighs the query words it holds.
        query: The query, to recognise a near-copy of it (questions and titles are recognised without it).

    Returns:
        One :class:`Evidence` per passage (``None`` for a passage without any span), with its scorer score. Ties keep
        the earlier sentence.

    Example:
        >>> text = "What is a flea? A flea is a small wingless insect."
        >>> choose_evidence([text], [sentence_spans(text)], [0.9, 0.6])[0].text
        'A flea is a small wingless insect.'
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
        stating = [k for k, (a, b) in enumerate(own) if statement_problem(text[a:b], query) is None]
        best = max(stating or range(len(own)), key=lambda k: (rank[k], -k))
        start, end = own[best]
        out.append(Evidence(span=(start, end), text=text[start:end], score=float(scores[best])))
    return out


__all__ = ["MAX_SENTENCES_PER_PASSAGE", "MAX_SENTENCE_WORDS", "NEAR_COPY_EXTRA_WORDS", "NEAR_COPY_SHARE",
           "TITLE_MAX_WORDS", "Evidence", "best_window_spans", "candidate_spans", "choose_evidence", "sentence_spans",
           "statement_problem"]
