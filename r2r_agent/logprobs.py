"""Reading an OpenAI-compatible server's answers: the first token's ``top_logprobs`` and the yes/no log-odds.

Pure functions, tested on every shape servers send (chat and completions, llama.cpp, vLLM) and on malformed ones.

Servers differ in how they spell a token: ``"yes"``, ``" yes"``, ``"Yes"``, ``"YES"``, or a raw vocabulary piece
(``"Ġyes"``, ``"▁Yes"``). :func:`answer_word` reduces each to the word; :func:`answer_log_odds` sums the probability
of every spelling of each answer, as :class:`~r2r_agent.LMScorer` sums over its answer token ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .openai_client import MalformedResponse, ServerError, first_choice

#: Scores are kept within ± this (log-odds of about 1e43 to 1): beyond it a server's numbers say only "certain".
LOG_ODDS_LIMIT = 100.0
#: Markers some servers leave on raw vocabulary pieces: GPT-2 byte-level space, SentencePiece space.
_SPACE_MARKERS = ("Ġ", "▁")

NO_LOGPROBS = ("expected choices[0].logprobs with the first token's top_logprobs (chat: logprobs.content[0]"
               ".top_logprobs; completions: logprobs.top_logprobs[0]); the fix: serve the model with a server that "
               "returns logprobs (vLLM, SGLang, llama.cpp server, Ollama >= 0.12) or score with a local scorer")


def answer_word(token: str) -> str:
    """A token's text as an answer word: space markers and surrounding whitespace removed, lower case.

    Example:
        >>> [answer_word(t) for t in ["Yes", " yes", "YES", "Ġyes", "▁No", "\\nno "]]
        ['yes', 'yes', 'yes', 'yes', 'no', 'no']
    """
    for marker in _SPACE_MARKERS:
        token = token.replace(marker, " ")
    return token.strip().lower()


#: How far above 0 a log-probability may be and still be read as 0 (float rounding in a server's softmax).
_ABOVE_ZERO = 1e-3


def _logprob(value: Any, where: str, *, sampled: bool = False) -> float:
    """A log-probability a server sent, as a float in ``[-inf, 0]``; anything else is :class:`MalformedResponse`.

    NaN, a value above 0 (a probability over 1: 800 or 1e308 overflowed ``exp``) and, for the sampled token, ``-inf``
    (it was generated, so its probability is not 0) are garbled answers: retried, never scored.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(f"{where}: a logprob that is not a number: {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number) or number > _ABOVE_ZERO or (sampled and number == -math.inf):
        raise MalformedResponse(f"{where}: logprob {number!r} is not a log-probability of "
                                f"{'the generated token' if sampled else 'a token'} (expected a number in "
                                f"{'(-inf' if sampled else '[-inf'}, 0])")
    return min(number, 0.0)


def _pairs(entries: Any) -> list[tuple[str, float]]:
    """``(token, logprob)`` pairs from a list of ``{"token", "logprob"}`` objects or a ``{token: logprob}`` map."""
    if isinstance(entries, Mapping):
        items = list(entries.items())
    elif isinstance(entries, Sequence) and not isinstance(entries, str):
        items = [(e.get("token"), e.get("logprob")) for e in entries if isinstance(e, Mapping)]
    else:
        raise MalformedResponse(f"top_logprobs is a {type(entries).__name__}, expected a list or an object")
    pairs = []
    for token, value in items:
        if not isinstance(token, str):
            raise MalformedResponse(f"a top_logprobs entry without a text token: {token!r}: {value!r}")
        pairs.append((token, _logprob(value, f"top_logprobs entry {token!r}")))
    return pairs


def _first(values: Any, label: str) -> Any:
    """The first item of an optional list in a completions answer (``None`` when absent or empty)."""
    if values is None:
        return None
    if not isinstance(values, list):
        raise MalformedResponse(f"logprobs.{label} is a {type(values).__name__}, expected a list")
    return values[0] if values else None


def first_token_logprobs(body: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The first generated token's alternatives, ``(token text, log-probability)``, from a chat or completions body.

    Reads ``choices[0].logprobs`` in either form: chat (``content[0].top_logprobs``, a list of ``{"token",
    "logprob"}``) or completions (``top_logprobs[0]``, a ``{token: logprob}`` map, or a list). The generated token
    itself is added when the list lacks it.

    Raises:
        MalformedResponse: ``choices`` missing or of the wrong shape, or a log-probability that is not one (NaN,
            above 0, ``-inf`` for the generated token, not a number): the request is retried.
        ServerError: the answer has no logprobs (not retried: the server does not give them).

    Example:
        >>> body = {"choices": [{"logprobs": {"content": [{"token": "Yes", "logprob": -0.1,
        ...         "top_logprobs": [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}]}]}}]}
        >>> first_token_logprobs(body)
        [('Yes', -0.1), ('No', -2.4)]
    """
    logprobs = first_choice(body).get("logprobs")
    if not isinstance(logprobs, Mapping):
        raise ServerError(f"the answer has no logprobs (choices[0].logprobs is {logprobs!r}); {NO_LOGPROBS}")
    if "content" in logprobs:  # chat form (also llama.cpp's and vLLM's chat)
        content = logprobs["content"]
        if not isinstance(content, list) or not content or not isinstance(content[0], Mapping):
            raise ServerError(f"the answer has no token logprobs (logprobs.content is {content!r}); {NO_LOGPROBS}")
        first = content[0]
        pairs = _pairs(first.get("top_logprobs") or [])
        chosen = (first.get("token"), first.get("logprob"))
    elif "top_logprobs" in logprobs or "tokens" in logprobs:  # completions form
        top = _first(logprobs.get("top_logprobs"), "top_logprobs")
        pairs = _pairs(top if top is not None else {})
        chosen = (_first(logprobs.get("tokens"), "tokens"), _first(logprobs.get("token_logprobs"), "token_logprobs"))
    else:
        raise ServerError(f"logprobs of an unknown form (keys: {sorted(map(str, logprobs))}); {NO_LOGPROBS}")
    token, value = chosen
    if isinstance(token, str) and value is not None:
        logprob = _logprob(value, f"the generated token {token!r}", sampled=True)
        if all(token != known for known, _ in pairs):
            pairs.append((token, logprob))
    if not pairs:
        raise ServerError(f"the answer's first token has no logprobs; {NO_LOGPROBS}")
    return pairs


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def answer_log_odds(pairs: Sequence[tuple[str, float]], answers: tuple[str, str] = ("yes", "no")
                    ) -> tuple[float, str]:
    """``log p(yes) - log p(no)`` from one token's alternatives, each answer's probability summed over its spellings.

    A server returns only its top ``k`` tokens. When one answer is not among them its log-probability is taken at
    its *upper bound* (the floor): the lowest log-probability returned (a token outside the top ``k`` is no likelier
    than any inside) or the log of the probability left over by the returned tokens, whichever is lower. The score
    is then a bound: the true log-odds are at least this high when only "yes" was seen, at most this low when only
    "no" was. When neither appears both take the floor and the score is 0. Scores are kept within
    ``±LOG_ODDS_LIMIT`` (a probability of exactly 0 would make them infinite).

    Raises:
        MalformedResponse: a logprob that is NaN or above 0, or both answers at ``-inf`` (no score is defined):
            a garbled answer is retried, never scored (a NaN once ranked a passage first with 100.0).

    Returns:
        The score and which answers were seen: ``"both"``, ``"yes"``, ``"no"`` (the other at the floor) or
        ``"neither"``.

    Example:
        >>> round(answer_log_odds([(" Yes", -0.5), ("yes", -1.5), ("No", -2.0)])[0], 4)
        1.8133
        >>> score, seen = answer_log_odds([("Yes", -0.1), ("Sure", -2.5)])  # "no" at log(1 - 0.905 - 0.082)
        >>> round(score, 3), seen
        (4.237, 'yes')
    """
    if any(math.isnan(value) or value > _ABOVE_ZERO for _, value in pairs):
        raise MalformedResponse("a logprob that is NaN or above 0 cannot be scored")
    yes = [value for token, value in pairs if answer_word(token) == answers[0]]
    no = [value for token, value in pairs if answer_word(token) == answers[1]]
    if yes and no:
        log_yes, log_no = _logsumexp(yes), _logsumexp(no)
        if log_yes == log_no == -math.inf:
            raise MalformedResponse(f"both {answers[0]!r} and {answers[1]!r} have logprob -inf (probability 0): "
                                    "no score can be read from that")
        return _bounded(log_yes - log_no), "both"
    finite = [value for _, value in pairs if math.isfinite(value)]
    floor = min(finite, default=-LOG_ODDS_LIMIT)
    left = 1.0 - math.fsum(math.exp(v) for v in finite)
    if left > 0.0:
        floor = min(floor, math.log(left))
    log_yes = _logsumexp(yes) if yes else floor
    log_no = _logsumexp(no) if no else floor
    return _bounded(log_yes - log_no), answers[0] if yes else answers[1] if no else "neither"


def _bounded(score: float) -> float:
    """``score`` within ``±LOG_ODDS_LIMIT``: a server may send a probability of exactly 0 (``-inf``)."""
    return max(-LOG_ODDS_LIMIT, min(LOG_ODDS_LIMIT, score))


__all__ = ["LOG_ODDS_LIMIT", "NO_LOGPROBS", "answer_log_odds", "answer_word", "first_token_logprobs"]
