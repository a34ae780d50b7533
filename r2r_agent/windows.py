"""Windows: a passage longer than a scorer's token budget, read whole in overlapping pieces.

A scorer reads at most a few hundred tokens at once (all-MiniLM-L6-v2: 256). A longer passage is cut into windows
of that size, each ending at a sentence boundary where one falls in its second half, each starting with the last
sentence(s) of the one before (at most :data:`WINDOW_OVERLAP_TOKENS` tokens of overlap, or that many tokens where
no sentence starts there), up to ``max_tokens_per_passage`` tokens in all (like Cohere's ``max_tokens_per_doc``):
text past that bound is not read and the passage is flagged ``truncated``. Every window is scored; the passage's
score follows a rule (:data:`WINDOW_RULES`; default ``"max"``, the best window), and each window's score is kept
(:attr:`Scores.windows <r2r_agent.scorers.Scores.windows>`). Cost grows linearly with the windows: a passage of
``T`` tokens costs about ``T / (window - overlap)`` window encodings where it cost one.

Offsets are characters of the text given, so evidence found in any window indexes the original text.

Example:
    >>> from r2r_agent.windows import window_count
    >>> window_count(1000, window_tokens=254)
    5
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError

#: The default bound on the tokens of one passage that are read (in windows): 4,096, as Cohere's v3.5+ rerankers'
#: ``max_tokens_per_doc``. About 16,000 characters of English.
DEFAULT_MAX_TOKENS_PER_PASSAGE = 4096
#: Tokens a window repeats from the one before, so a sentence cut by a window's end is whole in the next.
WINDOW_OVERLAP_TOKENS = 32
#: How the windows' scores make the passage's: ``"max"`` (the best window: an answer anywhere counts fully; the
#: default) or ``"mean"`` (a passage relevant throughout beats one with a single relevant part).
WINDOW_RULES: dict[str, Callable[[Sequence[float]], float]] = {
    "max": max,
    "mean": lambda values: math.fsum(values) / len(values),
}
#: Characters per token assumed when deciding how much text to tokenise (as :func:`r2r_agent.modeling.fit_tokens`).
_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one passage.

    Attributes:
        spans: ``(start, end)`` character offsets of each window in the text, in order; one span ``(0, len(text))``
            when the text fits one window.
        covered: How many leading characters the windows cover (``len(text)`` when nothing was left out).
        truncated: Whether text past ``max_tokens_per_passage`` tokens was left unread.
    """

    spans: list[tuple[int, int]]
    covered: int
    truncated: bool


def check_max_tokens_per_passage(owner: str, value: int | None) -> int | None:
    """``value`` when it is ``None`` or an int >= 1, else a clear error naming ``owner``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError(f"{owner}: max_tokens_per_passage must be an int >= 1 (tokens read per passage, in "
                                f"windows) or None (the first window only), got {value!r}")
    return value


def check_window_rule(owner: str, rule: str) -> str:
    """``rule`` when it names a :data:`WINDOW_RULES` entry, else a clear error naming ``owner``."""
    if rule not in WINDOW_RULES:
        raise InvalidInputError(f"{owner}: window_rule must be one of {sorted(WINDOW_RULES)}, got {rule!r}")
    return rule


def window_count(tokens: int, window_tokens: int, overlap: int = WINDOW_OVERLAP_TOKENS) -> int:
    """How many windows ``tokens`` tokens take at most when windows never end early at a sentence (a cost bound)."""
    if tokens <= window_tokens:
        return 1
    step = max(1, window_tokens - min(overlap, window_tokens // 4))
    return 1 + math.ceil((tokens - window_tokens) / step)


def _offsets(tokenizer: Any, text: str, max_tokens: int) -> tuple[list[tuple[int, int]], bool]:
    """The character offsets of the first ``max_tokens`` tokens of ``text`` and whether more tokens follow."""
    limit = (max_tokens + 1) * _CHARS_PER_TOKEN
    while True:
        candidate = text[:limit]
        offsets = [(int(a), int(b)) for a, b in
                   tokenizer(candidate, add_special_tokens=False, return_offsets_mapping=True,
                             verbose=False)["offset_mapping"]]
        if len(offsets) > max_tokens:
            return offsets[:max_tokens], True
        if len(candidate) == len(text):
            return offsets, False
        limit *= 2  # one long "word" can be a single unknown token: look further, at most to the whole text


def plan_windows(tokenizer: Any, text: str, window_tokens: int, max_tokens: int,
                 overlap: int = WINDOW_OVERLAP_TOKENS) -> WindowPlan:
    """Cut ``text`` into windows of at most ``window_tokens`` tokens covering its first ``max_tokens`` tokens.

    Args:
        tokenizer: A fast Hugging Face tokenizer (character offsets are required).
        text: The passage as the model reads it (:func:`r2r_agent.types.model_text`).
        window_tokens: The scorer's budget for one passage, in tokens (>= 1).
        max_tokens: The bound on the tokens read in all (>= 1).
        overlap: Tokens a window may repeat from the one before (at most a quarter of a window).

    Returns:
        The plan: windows end at a sentence start in their second half where there is one, and the next begins at
        the first sentence start within ``overlap`` tokens before that end (else exactly ``overlap`` tokens before).
    """
    from .evidence import sentence_spans

    offsets, more = _offsets(tokenizer, text, max_tokens)
    if not offsets:
        return WindowPlan([(0, len(text))] if text else [], len(text), False)
    covered = offsets[-1][1] if more else len(text)
    if len(offsets) <= window_tokens and not more:
        return WindowPlan([(0, len(text))], len(text), False)
    overlap = min(overlap, window_tokens // 4)
    starts = [start for start, _ in sentence_spans(text, end=covered + 64) if start < covered]
    token_starts = [a for a, _ in offsets]
    # The tokens at which a sentence begins (the first token starting at or after the sentence's first character).
    boundaries = sorted({bisect.bisect_left(token_starts, c) for c in starts} - {0, len(offsets)})
    spans: list[tuple[int, int]] = []
    begin = 0
    while True:
        end = min(begin + window_tokens, len(offsets))
        if end < len(offsets):  # end before the last sentence that starts in the window's second half
            k = bisect.bisect_right(boundaries, end) - 1
            if k >= 0 and boundaries[k] > begin + window_tokens // 2:
                end = boundaries[k]
        spans.append((offsets[begin][0], offsets[end - 1][1]))
        if end >= len(offsets):
            break
        k = bisect.bisect_left(boundaries, end - overlap)
        begin = boundaries[k] if k < len(boundaries) and boundaries[k] <= end else end - overlap
    spans[-1] = (spans[-1][0], covered)
    return WindowPlan(spans, covered, more)


def window_texts(texts: Sequence[str], plans: Sequence[WindowPlan]) -> list[str]:
    """Every window's text, plan by plan, flattened (a text that fits one window: itself; an empty text: ``""``)."""
    return [text if plan.spans == [(0, len(text))] else text[a:b]
            for text, plan in zip(texts, plans) for a, b in (plan.spans or [(0, 0)])]


def pool(values: Sequence[float], rule: str) -> float:
    """The passage's score from its windows' ``values`` by ``rule`` (:data:`WINDOW_RULES`)."""
    return float(WINDOW_RULES[rule](values))


__all__ = ["DEFAULT_MAX_TOKENS_PER_PASSAGE", "WINDOW_OVERLAP_TOKENS", "WINDOW_RULES", "WindowPlan",
           "check_max_tokens_per_passage", "check_window_rule", "plan_windows", "pool", "window_count",
           "window_texts"]
