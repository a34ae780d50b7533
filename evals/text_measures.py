"""Text measures of explanations, pure and dependency-free: word tokens, groundedness, specificity, overlap.

- **groundedness** (:func:`groundedness`): the fraction of an explanation's content words found in the passage, and
  the fraction found only in the query (the explanation restates the query instead of citing the passage);
- **specificity** (:func:`specificity`): ``1 - mean pairwise Jaccard similarity`` of the content-word sets of the
  explanations of different passages of the same query (near-duplicate explanations give a low value);
- **overlap with a reference** (:func:`rouge_l_f1`, :func:`unigram_f1`): ROUGE-L F1 on tokens and F1 of the
  content-word bags between an explanation and a reference (teacher) explanation.

Tokenisation is deliberately simple and documented so the numbers are reproducible: lowercase, runs of ASCII letters
and digits (an apostrophe inside a word is kept, ``doesn't``), see :func:`tokenize`. Content words drop a small
English stop-word list (:data:`STOP_WORDS`) and fold a plural ``s`` (:func:`content_words`).

Example:
    >>> round(rouge_l_f1("fleas live two months", "adult fleas live about two months"), 3)
    0.8
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

# One tokenizer and content-word definition for the project, in the core.
from r2r_agent.vocabulary import STOP_WORDS, content_words, tokenize

#: Words explanations use to talk about the task itself; not claims, so :func:`groundedness` ignores them.
META_WORDS: frozenset[str] = frozenset(
    """
    passage query question relevant relevance irrelevant answer answers answered answering information provide
    provides provided mention mentions mentioned discuss discusses describe describes explain explains explanation
    state states address addresses specific specifically directly document text fact facts detail details user
    related unrelated contain contains
    """.split()
)

# ---------------------------------------------------------------------------------------------------------------
# Groundedness
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
# Specificity
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
# Overlap with a reference explanation (teacher agreement)
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


__all__ = ["META_WORDS", "STOP_WORDS", "Groundedness", "content_words", "groundedness", "jaccard", "rouge_l_f1",
           "specificity", "tokenize", "unigram_f1"]
