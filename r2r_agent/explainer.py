"""The explainer: the part of the student that writes *why*.

:class:`ExplainerLike` is what the cascade needs from one (as :class:`~r2r_agent.Scorer` is for scoring);
:class:`Explainer` is the in-process implementation: one batched, greedy ``generate`` call writes the direct
explanations of several passages (left padding, bounded ``max_new_tokens``), a second the comparison of the top
passages from their verdicts and evidence. :class:`~r2r_agent.OpenAIExplainer` is the served one.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from . import aio, prompts
from .modeling import fit_tokens, left_pad, load_causal_lm
from .scorers import DEFAULT_MAX_QUERY_TOKENS
from .validation import check_count


@dataclass(frozen=True)
class Generation:
    """The texts from one batched generation, with what they cost.

    Attributes:
        texts: One tidied text per prompt, in input order.
        truncated: Whether each prompt's passage(s) had to be cut to the token budget.
        generated_tokens: Tokens generated in total (padding and tokens after end-of-text not counted).
        seconds: Wall-clock seconds.
        query_truncated: Whether the query was cut to the query budget.
    """

    texts: list[str]
    truncated: list[bool] = field(default_factory=list)
    generated_tokens: int = 0
    seconds: float = 0.0
    query_truncated: bool = False


@runtime_checkable
class ExplainerLike(Protocol):
    """Writes the reasons of a rerank: what :attr:`Student.explainer <r2r_agent.Student.explainer>` holds.

    The protocol is named ``ExplainerLike`` because :class:`Explainer`, the in-process implementation, has been
    public under that name since 0.1 (users build it with ``Explainer.from_pretrained``); as with
    :class:`~r2r_agent.Scorer`, the reranker only relies on these two methods and ``name``.
    """

    name: str

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        """One reason per passage, in input order, given each passage's verdict and best sentence (``None``:
        unknown). :attr:`Generation.truncated` may be empty (nothing was cut)."""
        ...

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:
        """One comparison of passages (best first) from their best sentences and verdicts, in ``texts[0]``."""
        ...


class PreVerdictExplainer:
    """An explainer written for 0.1, whose ``explain(query, passages)`` takes no verdicts, made an
    :class:`ExplainerLike`: it judges by itself (its reason is still guarded and checked against the verdict).
    :class:`~r2r_agent.Student` wraps such an explainer on construction, with a ``DeprecationWarning``.

    Args:
        explainer: The 0.1 explainer (``name``, ``explain(query, passages)``, optionally ``compare_grounded``).
    """

    def __init__(self, explainer: Any) -> None:
        self.wrapped = explainer
        self.name: str = explainer.name

    @staticmethod
    def needed(explainer: object) -> bool:
        """Whether ``explainer.explain`` takes no ``verdicts=`` (the one signature check, made once per student)."""
        import inspect

        try:
            parameters = inspect.signature(explainer.explain).parameters  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return False
        return "verdicts" not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        """The wrapped explainer's reasons (it is not given the verdicts and evidence)."""
        result: Generation = self.wrapped.explain(query, passages)
        return result

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:
        """The wrapped explainer's ``compare_grounded``."""
        result: Generation = self.wrapped.compare_grounded(query, evidences, verdicts)
        return result


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def tidy(text: str) -> str:
    """Strip whitespace and drop a trailing unfinished sentence cut off by the token budget.

    Example:
        >>> tidy(" Relevant: it gives the lifespan. It also men")
        'Relevant: it gives the lifespan.'
    """
    text = " ".join(text.split())
    if not text or text[-1] in ".!?":
        return text
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


class Explainer:
    """Writes direct and comparison explanations with a causal LM.

    Args:
        model: A loaded ``transformers`` causal LM in eval mode.
        tokenizer: Its tokenizer.
        name: An identifier recorded in rankings.
        max_new_tokens: Upper bound on each explanation's length, in tokens.
        max_passage_tokens: Token budget per passage in a direct-explanation prompt.
        max_comparison_passage_tokens: Token budget per passage in the comparison prompt.
        max_query_tokens: Token budget of the query.
        batch_size: Prompts per ``generate`` call.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "explainer", max_new_tokens: int = 48,
                 max_passage_tokens: int = 160, max_comparison_passage_tokens: int = 96,
                 max_query_tokens: int = DEFAULT_MAX_QUERY_TOKENS, batch_size: int = 8) -> None:
        for label, value in (("max_new_tokens", max_new_tokens), ("max_passage_tokens", max_passage_tokens),
                             ("max_comparison_passage_tokens", max_comparison_passage_tokens),
                             ("max_query_tokens", max_query_tokens), ("batch_size", batch_size)):
            check_count(f"Explainer: {label}", value)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.max_passage_tokens = max_passage_tokens
        self.max_comparison_passage_tokens = max_comparison_passage_tokens
        self.max_query_tokens = max_query_tokens
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, adapter: str | os.PathLike[str] | None = None,
                        quantize: str = "none", dtype: str = "float32", device: str | None = None,
                        local_files_only: bool = True, **kwargs: Any) -> Explainer:
        """Load a causal LM (and optional adapter) from local folders."""
        model, tokenizer = load_causal_lm(path, adapter=adapter, quantize=quantize, dtype=dtype, device=device,
                                          local_files_only=local_files_only)
        return cls(model, tokenizer, name=str(path), **kwargs)

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Generation:
        """Direct explanations, one per passage, in one batched generation.

        Args:
            query: The query.
            passages: The passages to explain.
            verdicts: Each passage's verdict, given to the LM (it then writes only the reason); ``None``: it judges.
            evidence: Each passage's best sentence, given with the verdict.
        """
        query, query_cut = fit_tokens(self.tokenizer, query, self.max_query_tokens)
        verdicts = list(verdicts) if verdicts is not None else [None] * len(passages)
        evidence = list(evidence) if evidence is not None else [None] * len(passages)
        rendered, flags = [], []
        for passage, verdict, sentence in zip(passages, verdicts, evidence):
            cut, truncated = fit_tokens(self.tokenizer, passage, self.max_passage_tokens)
            messages = prompts.direct_explanation_messages(query, cut, verdict, sentence)
            rendered.append(prompts.render(self.tokenizer, messages))
            flags.append(truncated)
        # The judged prompt asks for one sentence, the zero-shot one for one or two: stop there (issue 20 item 4).
        result = self._generate(rendered, None, [1 if v is not None else 2 for v in verdicts])
        return Generation(result.texts, flags, result.generated_tokens, result.seconds, query_cut)

    def compare_grounded(self, query: str, evidences: Sequence[str | None],
                         verdicts: Sequence[str | None]) -> Generation:
        """One comparison of passages (best first) written from their verdicts and best sentences only."""
        query, query_cut = fit_tokens(self.tokenizer, query, self.max_query_tokens)
        cut = [fit_tokens(self.tokenizer, e, self.max_comparison_passage_tokens)[0] if e else None for e in evidences]
        prompt = prompts.render(self.tokenizer, prompts.grounded_comparison_messages(query, cut, verdicts))
        # The prompt asks for two sentences, but the adapter writes one per passage ("[1] ... [2] ... [3] ..."): stop
        # after as many as there are passages, so no passage's sentence is cut off (A/B in docs/performance.md).
        result = self._generate([prompt], self.max_new_tokens * 2, [max(2, len(evidences))])
        return Generation(result.texts, [False] * len(evidences), result.generated_tokens, result.seconds, query_cut)

    def _generate(self, rendered: list[str], max_new_tokens: int | None, sentences: list[int | None]) -> Generation:
        # A subclass written before generate(sentences=) (overriding generate without it) keeps working, unstopped.
        if "sentences" in inspect.signature(self.generate).parameters:
            return self.generate(rendered, max_new_tokens=max_new_tokens, sentences=sentences)
        return self.generate(rendered, max_new_tokens=max_new_tokens)

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def generate(self, rendered_prompts: Sequence[str], *, max_new_tokens: int | None = None,
                 sentences: Sequence[int | None] | None = None) -> Generation:
        """Greedy generation for already-rendered prompts, batched with left padding.

        The prompts' longest common token prefix (system prompt, query...) is run once and its KV cache shared by
        the batch (:data:`MIN_SHARED_PREFIX_TOKENS` or more). A row stops after ``sentences[i]`` complete sentences
        (``None``: at end of turn or ``max_new_tokens`` only); the batch ends when every row has.
        """
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        start = time.perf_counter()
        if not rendered_prompts:
            return Generation(texts=[])
        tokenizer = self.tokenizer
        eos_id = tokenizer.eos_token_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
        config = GenerationConfig(max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False,
                                  pad_token_id=pad_id, eos_token_id=eos_id)
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in rendered_prompts]
        wanted = list(sentences) if sentences is not None else [None] * len(encoded)
        texts: list[str] = [""] * len(encoded)
        generated = 0
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        with torch.inference_mode():
            for begin in range(0, len(order), self.batch_size):
                batch = order[begin : begin + self.batch_size]
                rows = [encoded[i] for i in batch]
                stop = _SentenceStop(tokenizer, [wanted[i] for i in batch])
                criteria = StoppingCriteriaList([stop]) if stop.active else None
                output, width = self._generate_batch(rows, pad_id, config, criteria)
                new_tokens = output[:, width:]
                for row, i in enumerate(batch):
                    tokens = new_tokens[row].cpu().tolist()
                    if stop.lengths[row] is not None:
                        tokens = tokens[: stop.lengths[row]]
                    if eos_id is not None and eos_id in tokens:
                        tokens = tokens[: tokens.index(eos_id)]
                    generated += len(tokens)
                    texts[i] = tidy(tokenizer.decode(tokens, skip_special_tokens=True))
        return Generation(texts=texts, truncated=[False] * len(texts), generated_tokens=generated,
                          seconds=time.perf_counter() - start)

    def _generate_batch(self, rows: list[list[int]], pad_id: int, config: Any, criteria: Any) -> tuple[Any, int]:
        """``generate`` on one batch, the shared prefix's KV cache computed once: ``(output ids, input width)``."""
        import torch

        device = self.model.device
        shared = _common_prefix(rows) if len(rows) > 1 else 0
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps a token of its own to feed
        if shared < MIN_SHARED_PREFIX_TOKENS:
            ids, mask = left_pad(rows, pad_id)
            output = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                         generation_config=config, stopping_criteria=criteria)
            return output, ids.shape[1]
        from transformers import DynamicCache

        # Prefix, then each row's own tokens left-padded *after* it: the padding sits mid-sequence, masked out, and
        # positions come from the attention mask, so every row attends to and is placed exactly as when run alone.
        prefix = torch.tensor([rows[0][:shared]], dtype=torch.long, device=device)
        cache = DynamicCache(config=self.model.config)
        # transformers 5.x renames past_key_values to cache (the old name goes in 5.40); take what this one has
        keyword = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.model(input_ids=prefix, use_cache=True, **{keyword: cache})
        cache.batch_repeat_interleave(len(rows))
        tails, tail_mask = left_pad([r[shared:] for r in rows], pad_id)
        ids = torch.cat([prefix.expand(len(rows), -1), tails.to(device)], dim=1)
        mask = torch.cat([torch.ones((len(rows), shared), dtype=torch.long), tail_mask], dim=1).to(device)
        output = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                     stopping_criteria=criteria, **{keyword: cache})
        return output, ids.shape[1]


#: Prompts sharing at least this many leading tokens run them once per batch (shorter: not worth a second pass).
MIN_SHARED_PREFIX_TOKENS = 16


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """The length of the longest token prefix all ``rows`` share."""
    first = rows[0]
    length = min(len(r) for r in rows)
    for other in rows[1:]:
        n = 0
        while n < length and other[n] == first[n]:
            n += 1
        length = n
    return length


class _SentenceStop:
    """A stopping criterion ending each row after its number of complete sentences (a ``.``, ``!`` or ``?`` then
    whitespace: the row has written the first token after it, which :func:`tidy` drops).

    Records, per row, how many new tokens it had when it stopped (``lengths``), so that what a finished row is
    padded with afterwards is never read.
    """

    def __init__(self, tokenizer: Any, sentences: Sequence[int | None]) -> None:
        self.tokenizer = tokenizer
        self.sentences = list(sentences)
        self.active = any(n is not None and n > 0 for n in self.sentences)
        self.lengths: list[int | None] = [None] * len(self.sentences)
        self.start: int | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self.start is None:
            self.start = input_ids.shape[1] - 1  # called first after the first new token
        new = input_ids.shape[1] - self.start
        done = []
        for row, wanted in enumerate(self.sentences):
            if self.lengths[row] is None and wanted:
                text = self.tokenizer.decode(input_ids[row, self.start :].tolist(), skip_special_tokens=True)
                if len(_SENTENCE_STOP.findall(text)) >= wanted:
                    self.lengths[row] = new
            done.append(self.lengths[row] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


_SENTENCE_STOP = re.compile(r"[.!?]\s")


__all__ = ["Explainer", "ExplainerLike", "Generation", "PreVerdictExplainer", "tidy"]
