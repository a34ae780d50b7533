"""A cross-encoder scorer: any local Hugging Face sequence-classification reranker reads each (query, passage) pair.

Works with the folders of ``cross-encoder/ms-marco-MiniLM-L-6-v2``, ``BAAI/bge-reranker-base``/``-large``/``-v2-m3``
(XLM-RoBERTa), ``mixedbread-ai/mxbai-rerank-*-v1`` (DeBERTa-v2) and any sentence-transformers ``CrossEncoder`` saved
with ``save()``: each is a ``*ForSequenceClassification`` model with its tokenizer. LLM-based rerankers that are
causal LMs (``bge-reranker-v2-gemma``, ``mxbai-rerank-*-v2``) are not sequence classifiers: load them with
:class:`~r2r_agent.LMScorer` or serve them (:meth:`Student.from_openai <r2r_agent.Student.from_openai>`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import aio
from .errors import InvalidInputError, ModelPreparationError
from .modeling import fit_tokens, load_tokenizer, resolve_dtype, visible_chars
from .progress import quiet_loading
from .scorers import Scores, _length_sorted_batches, windowed_scores
from .types import model_text
from .validation import check_count
from .windows import (
    DEFAULT_MAX_TOKENS_PER_PASSAGE,
    check_max_tokens_per_passage,
    check_window_rule,
    plan_windows,
    window_texts,
)

#: Model types whose position ids start after the padding index (``max_position_embeddings`` counts 2 more).
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert"})
#: A tokenizer's ``model_max_length`` above this means "not set" (transformers' sentinel is ~1e30).
_UNSET_LENGTH = 100_000


def _max_tokens(path: Path, tokenizer: Any, config: Any) -> int:
    """The pair's token budget: sentence-transformers' ``max_seq_length``, else the tokenizer's
    ``model_max_length``, else the model's positions."""
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    length = getattr(tokenizer, "model_max_length", None)
    if isinstance(length, int) and 0 < length < _UNSET_LENGTH:
        return length
    positions = int(getattr(config, "max_position_embeddings", 512))
    offset = (int(getattr(config, "pad_token_id", 1) or 0) + 1) if config.model_type in _OFFSET_POSITIONS else 0
    return positions - offset


class CrossEncoderScorer:
    """Scores (query, passage) pairs with a sequence-classification reranker, batched and length-sorted.

    The score is the model's own output, higher = more relevant:

    * one logit (ms-marco MiniLM, bge-reranker, mxbai-rerank-v1): the **raw logit**. sentence-transformers applies a
      sigmoid on top; it is monotone, so the order is the same, and the logit keeps the differences a sigmoid
      squashes near 0 and 1 (mixing with ``first_stage_weight`` standardises scores; calibrators fit any scale);
    * two labels: the softmax **probability of the positive class** (label 1), in float64.

    Pairs fit ``max_tokens`` keeping the query: the query is cut only beyond ``max_query_tokens`` (flagged in
    ``Scores.query_truncated``), the passage takes the rest of the budget. A longer passage is read in overlapping
    windows of that budget up to ``max_tokens_per_passage`` tokens (:mod:`r2r_agent.windows`), each window scored,
    the passage scored by ``window_rule`` (default: its best window); a passage cut at that bound is flagged in
    ``Scores.truncated``.

    Args:
        model: A loaded ``*ForSequenceClassification`` model in eval mode.
        tokenizer: Its tokenizer.
        name: An identifier recorded in rankings and calibrators.
        max_tokens: Token budget of a pair, special tokens included.
        max_query_tokens: Token budget of the query (at most half of ``max_tokens``).
        batch_size: Pairs per forward pass.
        max_tokens_per_passage: Tokens of a passage read at most, in windows; ``None``: the first window only.
        window_rule: ``"max"`` (the best window, default) or ``"mean"`` (:data:`r2r_agent.windows.WINDOW_RULES`).

    Example:
        >>> scorer = CrossEncoderScorer.from_pretrained("models/ms-marco-MiniLM-L-6-v2")   # doctest: +SKIP
        >>> scorer.score("how long do fleas live", ["Fleas live 2-3 months.", "Cats purr."]).values  # doctest: +SKIP
        [8.1..., -11.2...]
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "cross-encoder", max_tokens: int = 512,
                 max_query_tokens: int = 64, batch_size: int = 16,
                 max_tokens_per_passage: int | None = DEFAULT_MAX_TOKENS_PER_PASSAGE, window_rule: str = "max") -> None:
        labels = int(getattr(model.config, "num_labels", 1))
        if labels not in (1, 2):
            raise InvalidInputError(f"CrossEncoderScorer: {name!r} has {labels} labels; a reranker has 1 (a relevance "
                                    "logit) or 2 (not relevant, relevant). Load a reranker checkpoint")
        self.special_tokens = int(tokenizer.num_special_tokens_to_add(pair=True))
        if max_tokens < self.special_tokens + 2:
            raise InvalidInputError(f"CrossEncoderScorer: max_tokens must be >= {self.special_tokens + 2}, got "
                                    f"{max_tokens}")
        for label, value in (("max_query_tokens", max_query_tokens), ("batch_size", batch_size)):
            check_count(f"CrossEncoderScorer: {label}", value)
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.labels = labels
        self.max_tokens = max_tokens
        self.max_query_tokens = min(max_query_tokens, (max_tokens - self.special_tokens) // 2)
        self.batch_size = batch_size
        self.max_tokens_per_passage = check_max_tokens_per_passage("CrossEncoderScorer", max_tokens_per_passage)
        self.window_rule = check_window_rule("CrossEncoderScorer", window_rule)
        # Models trained without segment ids (XLM-R, DeBERTa-v2 rerankers) have at most one token type.
        self._token_types = int(getattr(model.config, "type_vocab_size", 2) or 0) > 1

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], *, name: str | None = None, max_tokens: int | None = None,
                        dtype: str = "float32", device: str | None = None, local_files_only: bool = True,
                        **kwargs: Any) -> CrossEncoderScorer:
        """Load a reranker folder (``config.json``, weights, tokenizer files), offline by default.

        Args:
            path: The folder (or a hub name already in the local cache).
            name: The scorer's name (default: the folder's name).
            max_tokens: Token budget of a pair (default: the folder's ``max_seq_length`` or the tokenizer's
                ``model_max_length`` or the model's positions).
            dtype: Weight dtype (see :data:`r2r_agent.modeling.DTYPES`).
            device: Where to run (``"cuda"``...); CPU when ``None``.
            local_files_only: Never reach the network (the default).
            **kwargs: ``max_query_tokens``, ``batch_size``, ``max_tokens_per_passage``, ``window_rule``.

        Raises:
            ModelPreparationError: the folder holds no sequence-classification model or tokenizer.
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        tokenizer = load_tokenizer(path, local_files_only=local_files_only)
        try:
            with quiet_loading():
                model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32,
                                                                           local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            raise ModelPreparationError(f"could not load a sequence-classification reranker from {path}: {exc}; "
                                        "pass a folder with config.json, the weights and the tokenizer files (a "
                                        "causal-LM reranker loads with LMScorer instead)") from exc
        model = model.to(resolve_dtype(dtype)).eval()
        if device is not None:
            model = model.to(device)
        budget = max_tokens if max_tokens is not None else _max_tokens(Path(path), tokenizer, model.config)
        return cls(model, tokenizer, name=name or Path(path).name, max_tokens=budget, **kwargs)

    def _passage_budget(self, query_tokens: int) -> int:
        return max(1, self.max_tokens - self.special_tokens - query_tokens)

    def _bound(self, window: int) -> int:
        """Tokens of a passage read with windows of ``window`` tokens (one window when not windowing)."""
        return window if self.max_tokens_per_passage is None else self.max_tokens_per_passage

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def visible_chars(self, text: str) -> int:
        """How many leading characters of a passage the model reads with any query within ``max_query_tokens``:
        up to ``max_tokens_per_passage`` tokens in windows (else a lower bound: a shorter query leaves it more)."""
        return visible_chars(self.tokenizer, text, self._bound(self._passage_budget(self.max_query_tokens)))

    @aio.guarded_by_model()  # one call at a time per tokenizer/model, whoever holds it (H1: issue 19.13)
    def score(self, query: str, passages: Sequence[str]) -> Scores:
        """Score each (query, passage) pair, batched and length-sorted."""

        if not passages:
            return Scores(values=[])
        query, query_cut = fit_tokens(self.tokenizer, query, self.max_query_tokens)
        query_tokens = len(self.tokenizer(query, add_special_tokens=False)["input_ids"])
        window = self._passage_budget(query_tokens)
        bound = self._bound(window)
        if bound > window:
            plans = [plan_windows(self.tokenizer, model_text(p), window, bound) for p in passages]
            pieces = window_texts(passages, plans)
            flat = self._score_pairs(query, [fit_tokens(self.tokenizer, piece, window)[0] for piece in pieces])
            return windowed_scores(flat, plans, self.window_rule, query_cut)
        fitted = [fit_tokens(self.tokenizer, p, bound) for p in passages]
        values = self._score_pairs(query, [text for text, _ in fitted])
        return Scores(values=values, truncated=[cut for _, cut in fitted], query_truncated=query_cut)

    def _score_pairs(self, query: str, texts: Sequence[str]) -> list[float]:
        """The model's score of each (query, already-fitted passage) pair, in input order."""
        import torch

        values: list[float] = [0.0] * len(texts)
        with torch.inference_mode():
            for batch in _length_sorted_batches([len(t) for t in texts], self.batch_size):
                # The cut passage re-encodes to its budget; truncation here only guards against a rare re-encoding
                # that comes out a token longer.
                encoded = self.tokenizer([query] * len(batch), [texts[i] for i in batch], padding=True,
                                         truncation="only_second", max_length=self.max_tokens, return_tensors="pt")
                if not self._token_types:
                    encoded.pop("token_type_ids", None)
                logits = self.model(**encoded.to(self.model.device)).logits
                if self.labels == 1:
                    batch_scores = logits[:, 0].float()
                else:
                    batch_scores = torch.softmax(logits.double(), dim=-1)[:, 1]
                for value, i in zip(batch_scores.tolist(), batch):
                    values[i] = float(value)
        return values


__all__ = ["CrossEncoderScorer"]
