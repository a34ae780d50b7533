"""A served student: the scorer and the explainer behind an OpenAI-compatible server (vLLM, llama.cpp server...).

:class:`OpenAIScorer` scores each passage with one request, from the server's log-probabilities of the answer words
(:mod:`r2r_agent.logprobs`); :class:`OpenAIExplainer` writes explanations with greedy chat completions. Both send
exactly the messages of :mod:`r2r_agent.prompts`, which the student was trained on, and share one
:class:`~r2r_agent.openai_client.OpenAIClient`. :meth:`Student.from_openai <r2r_agent.Student.from_openai>` builds
both. Every request of a call is in flight at once (up to the client's ``max_concurrency``), so a server with
continuous batching (vLLM) batches them. Each sync method has an async twin (``ascore``, ``aexplain``...), and
under :meth:`Reranker.arerank <r2r_agent.Reranker.arerank>` the sync ones run on the caller's event loop
(:func:`r2r_agent.aio.call`).

Passages and queries are cut to a budget before they are sent: characters by default (the server's tokenizer is not
here), or tokens when ``tokenizer=`` gives the served model's tokenizer (then the prompts are exactly the in-process
student's). A cut text is flagged (``Scores.truncated``, ``Generation.truncated``, ``query_truncated``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import aio, prompts
from .errors import InvalidInputError
from .explainer import Generation, tidy
from .logprobs import answer_log_odds, first_token_logprobs
from .modeling import fit_tokens, visible_chars
from .openai_client import MalformedResponse, OpenAIClient, first_choice
from .scorers import Scores
from .types import model_text
from .validation import check_count

logger = logging.getLogger(__name__)

#: Endpoints :class:`OpenAIScorer` can read logprobs from (``"completions"`` needs the model's tokenizer).
ENDPOINTS = ("chat", "completions")
#: Characters per token assumed by the default character budgets (English text with a 50k-token vocabulary).
CHARS_PER_TOKEN = 4


class TextBudget:
    """How much of a text a served model is sent: ``tokens`` of a local ``tokenizer``, else ``chars`` characters
    (cut at the last space in the final fifth of the budget, when there is one).

    Example:
        >>> TextBudget(chars=12).cut("Adult fleas live two months.")
        ('Adult fleas', True)
    """

    def __init__(self, *, chars: int, tokens: int | None = None, tokenizer: Any = None) -> None:
        self.chars, self.tokens, self.tokenizer = chars, tokens, tokenizer

    def cut(self, text: str) -> tuple[str, bool]:
        """``text`` within the budget, and whether it was cut."""
        if self.tokenizer is not None and self.tokens is not None:
            return fit_tokens(self.tokenizer, text, self.tokens)
        text = model_text(text)
        if len(text) <= self.chars:
            return text, False
        space = text.rfind(" ", 0, self.chars + 1)
        return (text[:space] if space >= self.chars * 0.8 else text[: self.chars]), True

    def visible(self, text: str) -> int:
        """How many leading characters of ``text`` are sent."""
        if self.tokenizer is not None and self.tokens is not None:
            return visible_chars(self.tokenizer, text, self.tokens)
        cut, truncated = self.cut(text)
        return len(cut) if truncated else len(text)


def _count(owner: str, label: str, value: Any, least: int = 1) -> int:
    return check_count(f"{owner}: {label}", value, least)


def _check_client(owner: str, client: Any, model: Any) -> None:
    if not isinstance(client, OpenAIClient):
        raise InvalidInputError(f"{owner}: client must be an OpenAIClient, got {type(client).__name__}; build one "
                                "with OpenAIClient(base_url, api_key=...) or use Student.from_openai")
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError(f"{owner}: model must be the model name the server serves, got {model!r}")


class OpenAIScorer:
    """Scores passages by a served LM's ``log p(yes) - log p(no)``: the :class:`~r2r_agent.LMScorer` score, remotely.

    One request per passage (``max_tokens=1``, ``temperature=0``, ``logprobs``), all in flight at once. Each
    answer's probability is summed over the spellings the server returns (``"yes"``, ``" Yes"``, ``"YES"``...; the
    in-process scorer sums over ``yes``, ``Yes``, `` yes`` and `` Yes``, so a vocabulary with a single ``YES`` token
    adds that token's small mass here). When the top ``top_logprobs`` hold only one answer, the other takes a floor
    (see :func:`r2r_agent.logprobs.answer_log_odds`); when they hold neither the score is 0 and a warning is logged
    (raise ``top_logprobs``; vLLM caps it with ``--max-logprobs``, default 20). A distilled rank head is not used:
    the server serves the LM.

    Args:
        client: The student's client.
        model: The model name the server serves (vLLM: the ``--lora-modules`` name for an adapter).
        name: The scorer's name in rankings and calibrators (default: ``model``).
        endpoint: ``"chat"`` (``/chat/completions``, the server applies the chat template) or ``"completions"``
            (``/completions`` with the prompt rendered here: needs ``tokenizer``).
        top_logprobs: Alternatives asked for at the answer position.
        tokenizer: The served model's tokenizer (optional): budgets in tokens, exactly the in-process student's.
        max_passage_chars: Passage budget in characters (without ``tokenizer``).
        max_query_chars: Query budget in characters (without ``tokenizer``).
        max_passage_tokens: Passage budget in tokens (with ``tokenizer``).
        max_query_tokens: Query budget in tokens (with ``tokenizer``).
        extra_body: Extra JSON fields for every request.

    Example:
        >>> client = OpenAIClient("http://localhost:8000/v1")                              # doctest: +SKIP
        >>> OpenAIScorer(client, "r2r").score("how long do fleas live", ["Fleas live 2-3 months."])  # doctest: +SKIP
        Scores(values=[3.2...], truncated=[False], query_truncated=False)
    """

    def __init__(self, client: OpenAIClient, model: str, *, name: str | None = None, endpoint: str = "chat",
                 top_logprobs: int = 20, tokenizer: Any = None, max_passage_chars: int = 256 * CHARS_PER_TOKEN,
                 max_query_chars: int = 256 * CHARS_PER_TOKEN, max_passage_tokens: int = 256,
                 max_query_tokens: int = 256, extra_body: Mapping[str, Any] | None = None) -> None:
        _check_client("OpenAIScorer", client, model)
        if endpoint not in ENDPOINTS:
            raise InvalidInputError(f"OpenAIScorer: endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
        if endpoint == "completions" and tokenizer is None:
            raise InvalidInputError("OpenAIScorer: endpoint='completions' sends the rendered prompt, so it needs the "
                                    "served model's tokenizer (tokenizer=) for its chat template; or use 'chat'")
        self.client, self.model, self.name, self.endpoint = client, model, name or model, endpoint
        self.top_logprobs = _count("OpenAIScorer", "top_logprobs", top_logprobs)
        self.tokenizer = tokenizer
        self.passage_budget = TextBudget(chars=_count("OpenAIScorer", "max_passage_chars", max_passage_chars),
                                         tokens=_count("OpenAIScorer", "max_passage_tokens", max_passage_tokens),
                                         tokenizer=tokenizer)
        self.query_budget = TextBudget(chars=_count("OpenAIScorer", "max_query_chars", max_query_chars),
                                       tokens=_count("OpenAIScorer", "max_query_tokens", max_query_tokens),
                                       tokenizer=tokenizer)
        self.extra_body = dict(extra_body or {})
        self._warned = False

    def __repr__(self) -> str:
        return f"OpenAIScorer({self.model!r}, client={self.client!r}, endpoint={self.endpoint!r})"

    def visible_chars(self, text: str) -> int:
        """How many leading characters of a passage are sent (the evidence is chosen within them)."""
        return self.passage_budget.visible(text)

    def _payloads(self, query: str, passages: Sequence[str]) -> tuple[list[dict[str, Any]], list[bool], bool]:
        query, query_cut = self.query_budget.cut(query)
        payloads, flags = [], []
        for passage in passages:
            cut, truncated = self.passage_budget.cut(passage)
            messages = prompts.relevance_messages(query, cut)
            payload: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0}
            if self.endpoint == "chat":
                payload.update(messages=messages, logprobs=True, top_logprobs=self.top_logprobs)
            else:
                payload.update(prompt=prompts.render(self.tokenizer, messages), logprobs=self.top_logprobs)
            payloads.append({**payload, **self.extra_body})
            flags.append(truncated)
        return payloads, flags, query_cut

    @property
    def _path(self) -> str:
        return "chat/completions" if self.endpoint == "chat" else "completions"

    def _read(self, body: dict[str, Any]) -> tuple[float, str]:
        return answer_log_odds(first_token_logprobs(body), prompts.RELEVANCE_ANSWERS)

    def _scores(self, answers: Sequence[tuple[float, str]], flags: list[bool], query_cut: bool) -> Scores:
        neither = sum(1 for _, seen in answers if seen == "neither")
        if neither and not self._warned:
            self._warned = True
            logger.warning("%s: neither %r nor %r was among the top %d tokens for %d of %d passages; they score 0. "
                           "Raise top_logprobs (vLLM: --max-logprobs) or check the model name and chat template.",
                           self.name, *prompts.RELEVANCE_ANSWERS, self.top_logprobs, neither, len(answers))
        return Scores(values=[value for value, _ in answers], truncated=flags, query_truncated=query_cut)

    def score(self, query: str, passages: Sequence[str]) -> Scores:
        """Score ``passages`` for ``query``: one request each, all in flight at once.

        Raises:
            ServerError: the server failed after the retries, refused the request, or gave no logprobs.
        """
        def sync() -> Scores:
            payloads, flags, query_cut = self._payloads(query, passages)
            answers = self.client.map(lambda p: self.client.post(self._path, p, parse=self._read), payloads)
            return self._scores(answers, flags, query_cut)

        return aio.call(sync, lambda: self.ascore(query, passages))

    async def ascore(self, query: str, passages: Sequence[str]) -> Scores:
        """:meth:`score` on the running event loop."""
        payloads, flags, query_cut = self._payloads(query, passages)
        answers = await self.client.amap(lambda p: self.client.apost(self._path, p, parse=self._read), payloads)
        return self._scores(answers, flags, query_cut)


def _reply(body: dict[str, Any]) -> tuple[str, int]:
    """The message text of a chat answer and its completion tokens (``usage``; 0 when the server gives none or a
    count that is not one)."""
    choice = first_choice(body)
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise MalformedResponse(f"choices[0] has no message (keys: {sorted(choice)})")
    content = message.get("content")
    if isinstance(content, list):  # content parts
        texts = [part.get("text", "") for part in content if isinstance(part, Mapping)]
        if not all(isinstance(text, str) for text in texts):
            raise MalformedResponse("choices[0].message.content has a part whose text is not text")
        content = "".join(texts)
    if content is not None and not isinstance(content, str):
        raise MalformedResponse(f"choices[0].message.content is a {type(content).__name__}, expected text")
    usage = body.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
    return content or "", tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0 else 0


class _Plan:
    """The requests of one explainer call: the messages of each, their cut flags, the query's, the length."""

    def __init__(self, messages: list[list[dict[str, str]]], flags: list[bool], query_cut: bool,
                 max_tokens: int) -> None:
        self.messages, self.flags, self.query_cut, self.max_tokens = messages, flags, query_cut, max_tokens


class OpenAIExplainer:
    """Writes direct and comparison explanations with a served LM: greedy chat completions, the student's prompts.

    The drop-in for :class:`~r2r_agent.explainer.Explainer` (same methods, same :class:`Generation` results): the
    texts are tidied (:func:`r2r_agent.explainer.tidy`), ``generated_tokens`` comes from the server's ``usage``.

    Args:
        client: The student's client.
        model: The model name the server serves.
        name: The explainer's name in rankings (default: ``model``).
        max_new_tokens: Upper bound on each explanation's length (``max_tokens``; comparisons get twice as many).
        tokenizer: The served model's tokenizer (optional): budgets in tokens, exactly the in-process student's.
        max_passage_chars: Passage budget of a direct explanation, in characters (without ``tokenizer``).
        max_comparison_passage_chars: Budget of each passage (or best sentence) in a comparison, in characters.
        max_query_chars: Query budget in characters.
        max_passage_tokens: As ``max_passage_chars``, in tokens (with ``tokenizer``).
        max_comparison_passage_tokens: As ``max_comparison_passage_chars``, in tokens.
        max_query_tokens: As ``max_query_chars``, in tokens.
        extra_body: Extra JSON fields for every request.

    Example:
        >>> explainer = OpenAIExplainer(OpenAIClient("http://localhost:8000/v1"), "r2r")     # doctest: +SKIP
        >>> explainer.explain("how long do fleas live", ["Adult fleas live 2-3 months."]).texts  # doctest: +SKIP
    """

    def __init__(self, client: OpenAIClient, model: str, *, name: str | None = None, max_new_tokens: int = 48,
                 tokenizer: Any = None, max_passage_chars: int = 160 * CHARS_PER_TOKEN,
                 max_comparison_passage_chars: int = 96 * CHARS_PER_TOKEN,
                 max_query_chars: int = 256 * CHARS_PER_TOKEN, max_passage_tokens: int = 160,
                 max_comparison_passage_tokens: int = 96, max_query_tokens: int = 256,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        _check_client("OpenAIExplainer", client, model)
        owner = "OpenAIExplainer"
        self.client, self.model, self.name = client, model, name or model
        self.max_new_tokens = _count(owner, "max_new_tokens", max_new_tokens)
        self.passage_budget = TextBudget(chars=_count(owner, "max_passage_chars", max_passage_chars),
                                         tokens=_count(owner, "max_passage_tokens", max_passage_tokens),
                                         tokenizer=tokenizer)
        self.comparison_budget = TextBudget(
            chars=_count(owner, "max_comparison_passage_chars", max_comparison_passage_chars),
            tokens=_count(owner, "max_comparison_passage_tokens", max_comparison_passage_tokens), tokenizer=tokenizer)
        self.query_budget = TextBudget(chars=_count(owner, "max_query_chars", max_query_chars),
                                       tokens=_count(owner, "max_query_tokens", max_query_tokens), tokenizer=tokenizer)
        self.extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return f"OpenAIExplainer({self.model!r}, client={self.client!r}, max_new_tokens={self.max_new_tokens})"

    # -- the plans: what each call sends ------------------------------------------------------------------------

    def _explain_plan(self, query: str, passages: Sequence[str], verdicts: Sequence[str | None] | None,
                      evidence: Sequence[str | None] | None) -> _Plan:
        query, query_cut = self.query_budget.cut(query)
        verdicts = list(verdicts) if verdicts is not None else [None] * len(passages)
        evidence = list(evidence) if evidence is not None else [None] * len(passages)
        messages, flags = [], []
        for passage, verdict, sentence in zip(passages, verdicts, evidence):
            cut, truncated = self.passage_budget.cut(passage)
            messages.append(prompts.direct_explanation_messages(query, cut, verdict, sentence))
            flags.append(truncated)
        return _Plan(messages, flags, query_cut, self.max_new_tokens)

    def _grounded_plan(self, query: str, evidences: Sequence[str | None], verdicts: Sequence[str | None]) -> _Plan:
        query, query_cut = self.query_budget.cut(query)
        cut = [self.comparison_budget.cut(e)[0] if e else None for e in evidences]
        return _Plan([prompts.grounded_comparison_messages(query, cut, verdicts)], [False] * len(evidences),
                      query_cut, self.max_new_tokens * 2)

    # -- running a plan ----------------------------------------------------------------------------------------

    def _payload(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
                **self.extra_body}

    def _generation(self, plan: _Plan, replies: Sequence[tuple[str, int]], start: float) -> Generation:
        return Generation(texts=[tidy(text) for text, _ in replies], truncated=plan.flags,
                          generated_tokens=sum(tokens for _, tokens in replies),
                          seconds=time.perf_counter() - start, query_truncated=plan.query_cut)

    def _run(self, plan: _Plan) -> Generation:
        def sync() -> Generation:
            start = time.perf_counter()
            replies = self.client.map(lambda m: self.client.post("chat/completions",
                                                                 self._payload(m, plan.max_tokens), parse=_reply),
                                      plan.messages)
            return self._generation(plan, replies, start)

        return aio.call(sync, lambda: self._arun(plan))

    async def _arun(self, plan: _Plan) -> Generation:
        start = time.perf_counter()
        replies = await self.client.amap(lambda m: self.client.apost("chat/completions",
                                                                     self._payload(m, plan.max_tokens), parse=_reply),
                                         plan.messages)
        return self._generation(plan, replies, start)

    # -- the Explainer interface -------------------------------------------------------------------------------

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        """Direct explanations, one request per passage, all in flight at once.

        Args:
            query: The query.
            passages: The passages to explain.
            verdicts: Each passage's verdict, given to the LM (it then writes only the reason); ``None``: it judges.
            evidence: Each passage's best sentence, given with the verdict.

        Raises:
            ServerError: the server failed after the retries or refused the request.
        """
        return self._run(self._explain_plan(query, passages, verdicts, evidence))

    async def aexplain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                       evidence: Sequence[str | None] | None = None) -> Generation:
        """:meth:`explain` on the running event loop."""
        return await self._arun(self._explain_plan(query, passages, verdicts, evidence))

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:
        """One comparison of passages (best first) written from their verdicts and best sentences only."""
        return self._run(self._grounded_plan(query, evidences, verdicts))

    async def acompare_grounded(self, query: str, evidences: Sequence[str | None],
                                verdicts: Sequence[str | None]) -> Generation:
        """:meth:`compare_grounded` on the running event loop."""
        return await self._arun(self._grounded_plan(query, evidences, verdicts))


__all__ = ["CHARS_PER_TOKEN", "ENDPOINTS", "OpenAIExplainer", "OpenAIScorer", "TextBudget"]
