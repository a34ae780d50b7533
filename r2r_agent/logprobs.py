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
        if not isinstance(token, str) or isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedResponse(f"a top_logprobs entry without a text token and a number: {token!r}: {value!r}")
        if not math.isnan(value):  # -inf is a real answer (probability 0); NaN is not
            pairs.append((token, float(value)))
    return pairs


def first_token_logprobs(body: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The first generated token's alternatives, ``(token text, log-probability)``, from a chat or completions body.

    Reads ``choices[0].logprobs`` in either form: chat (``content[0].top_logprobs``, a list of ``{"token",
    "logprob"}``) or completions (``top_logprobs[0]``, a ``{token: logprob}`` map, or a list). The generated token
    itself is added when the list lacks it.

    Raises:
        MalformedResponse: ``choices`` missing or of the wrong shape (the request is retried).
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
        tops = logprobs.get("top_logprobs") or []
        pairs = _pairs(tops[0] if isinstance(tops, list) and tops and tops[0] is not None else {})
        tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
        chosen = (tokens[0] if tokens else None, values[0] if values else None)
    else:
        raise ServerError(f"logprobs of an unknown form (keys: {sorted(logprobs)}); {NO_LOGPROBS}")
    token, value = chosen
    if isinstance(token, str) and isinstance(value, int | float) and not isinstance(value, bool) \
            and all(token != known for known, _ in pairs):
        pairs.append((token, float(value)))
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
    yes = [value for token, value in pairs if answer_word(token) == answers[0]]
    no = [value for token, value in pairs if answer_word(token) == answers[1]]
    if yes and no:
        return _bounded(_logsumexp(yes) - _logsumexp(no)), "both"
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
