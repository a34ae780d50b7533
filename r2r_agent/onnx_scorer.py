"""The MiniLM scorer in ONNX Runtime: the same bi-encoder without torch on the scoring path.

:class:`OnnxEncoderScorer` is an :class:`~r2r_agent.EncoderScorer` (same settings, windows, truncation flags and
cosine scores) whose encoder runs in ONNX Runtime, and whose tokenizer is the Rust ``tokenizers`` one read from the
model's ``tokenizer.json`` (:class:`FastTokenizer`), so a process that only scores never imports torch or
transformers: that is most of what the first call of an evidence-mode adapter paid (issue 20 item 6).

The ONNX graph is made from the installed all-MiniLM-L6-v2 the first time it is asked for
(:func:`prepare_onnx_minilm`: torch's exporter, then ``onnxruntime.quantization.quantize_dynamic`` for int8) and kept
in the user cache beside the prepared SmolLM2 (``$R2R_CACHE_DIR``), written to a temporary folder and renamed into
place under a file lock, like :func:`~r2r_agent.default_models.prepare_smollm2`. Preparing needs torch and the
``onnx`` package once; using the prepared graph needs ``onnxruntime`` and ``tokenizers`` only
(``pip install 'r2r-agent[onnx]'``).

The graph includes the mean pooling and normalisation, so it returns what :meth:`EncoderScorer.pooled
<r2r_agent.EncoderScorer.pooled>` returns. Float32 agrees with torch to ~1e-6; int8 (dynamic, weights of the
``MatMul`` layers per output channel) changes scores by ~0.01 (see docs/performance.md for its nDCG@10 and speed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, ModelPreparationError
from .scorers import EncoderScorer, _length_sorted_batches
from .windows import DEFAULT_MAX_TOKENS_PER_PASSAGE

logger = logging.getLogger(__name__)

#: The ONNX variants :func:`prepare_onnx_minilm` makes: float32 (the torch model's own numbers) and dynamic int8.
ONNX_QUANTIZE = ("none", "int8")
MINILM_ID = "all-MiniLM-L6-v2"
# Bump when the prepared graph changes (inputs, pooling, quantisation settings), so stale copies are rebuilt.
_ONNX_FORMAT = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INSTALL_HINT = "pip install 'r2r-agent[onnx]' (onnxruntime, and onnx to prepare the graph once)"


class FastTokenizer:
    """The subset of a Hugging Face fast tokenizer that the scorers use, on a ``tokenizers.Tokenizer`` alone.

    ``tokenizer(text, add_special_tokens=..., return_offsets_mapping=...)`` gives ``input_ids`` (and
    ``offset_mapping``) as a fast tokenizer does; :meth:`decode` and :meth:`encode_batch` (padded numpy arrays) the
    rest. It reads the same ``tokenizer.json`` as ``transformers.AutoTokenizer``, without importing transformers.

    Args:
        path: A ``tokenizer.json`` file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - the Rust side raises a plain Exception for a bad file
            raise ModelPreparationError(f"could not read the tokenizer {path}: {exc}") from exc
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        padding = self._tokenizer.token_to_id("[PAD]")
        self.pad_token_id = 0 if padding is None else padding

    def __call__(self, text: str | Sequence[str], *, add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False, **_: Any) -> dict[str, Any]:
        """``{"input_ids": ..., "offset_mapping": ...}`` for one text (lists) or several (lists of lists)."""
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return {key: value[0] for key, value in out.items()} if single else out

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (WordPiece pieces joined, as the fast tokenizer decodes)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def encode_batch(self, texts: Sequence[str], max_length: int) -> dict[str, Any]:
        """Model inputs for ``texts`` (special tokens added, cut to ``max_length``, right-padded): int64 arrays."""
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        rows = [e.ids[: max_length - 1] + e.ids[-1:] if len(e.ids) > max_length else e.ids for e in encodings]
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def onnx_cache_dir(quantize: str = "int8", root: Path | None = None) -> Path:
    """Where the prepared ONNX MiniLM of ``quantize`` lives (under :func:`~r2r_agent.default_models.cache_root`)."""
    from .default_models import cache_root

    return (root or cache_root()) / "models" / f"{MINILM_ID}-onnx-{quantize}-v{_ONNX_FORMAT}"


def _check_quantize(quantize: str) -> str:
    if quantize not in ONNX_QUANTIZE:
        raise InvalidInputError(f"the ONNX scorer's quantize must be one of {ONNX_QUANTIZE}, got {quantize!r}")
    return quantize


def _export(source: Path, target: Path, quantize: str) -> None:
    """Write ``model.onnx`` (pooled, normalised embeddings) and the tokenizer of ``source`` into ``target``."""
    try:
        import onnx  # noqa: F401 - torch's exporter and the quantiser need it; fail with the hint before exporting
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelPreparationError(f"preparing the ONNX scorer needs torch and onnx ({exc}); {_INSTALL_HINT}") \
            from exc

    from .progress import quiet_loading

    class Pooled(torch.nn.Module):
        """The encoder plus EncoderScorer.pooled's mean pooling and normalisation, as one graph."""

        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    with quiet_loading():
        encoder = AutoModel.from_pretrained(str(source), dtype=torch.float32, local_files_only=True).eval()
    example = torch.ones(2, 8, dtype=torch.long)
    float_path = target / ("model.onnx" if quantize == "none" else "model.float32.onnx")
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on advanced indexing (no negative indices)
        torch.onnx.export(Pooled(encoder), (example, example, torch.zeros_like(example)), str(float_path),
                          input_names=list(_INPUTS), output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in _INPUTS},
                                        "embedding": {0: "batch"}})
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Only the MatMul weights (per output channel): quantising the embedding tables (Gather) as well cost more
        # nDCG@10 for no speed (docs/performance.md).
        quantize_dynamic(str(float_path), str(target / "model.onnx"), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)
        float_path.unlink()
    for name in ("tokenizer.json", "sentence_bert_config.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def prepare_onnx_minilm(quantize: str = "int8", *, root: Path | None = None, force: bool = False) -> Path:
    """The folder of the ONNX all-MiniLM-L6-v2 (``model.onnx``, ``tokenizer.json``), preparing it first if needed.

    The first call exports the installed model (a few seconds, once); later calls return the cached folder. Safe
    for processes starting at once (a file lock; the folder appears whole or not at all).

    Args:
        quantize: ``"int8"`` (dynamic int8 weights) or ``"none"`` (float32).
        root: Cache root (default ``$R2R_CACHE_DIR`` or the user cache folder).
        force: Prepare again even if a complete copy exists (used after a copy failed to load).
    """
    from .default_models import _MARKER, minilm_path, prepare_once

    def build(staging: Path) -> None:
        source = minilm_path()
        _export(source, staging, quantize)
        files = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}
        (staging / _MARKER).write_text(json.dumps({"source": str(source), "format": _ONNX_FORMAT,
                                                   "quantize": quantize, "files": files}))

    return prepare_once(onnx_cache_dir(_check_quantize(quantize), root), build, what=f"prepared ONNX {MINILM_ID}",
                        force=force)


def _session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelPreparationError(f"the ONNX scorer needs onnxruntime; {_INSTALL_HINT}") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per physical core
    options.inter_op_num_threads = 1
    # No busy-waiting between calls: the scorer's threads would spin on the cores the explainer (torch) needs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: it keeps the largest batch's activations (attention of 32 x 256 tokens) resident after the call.
    options.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoderScorer(EncoderScorer):
    """:class:`~r2r_agent.EncoderScorer` with its encoder in ONNX Runtime (see the module's docs).

    Args:
        session: An ``onnxruntime.InferenceSession`` of a graph made by :func:`prepare_onnx_minilm` (inputs
            ``input_ids``, ``attention_mask``, ``token_type_ids``; output: normalised embeddings).
        tokenizer: Its :class:`FastTokenizer` (or a Hugging Face fast tokenizer).
        name: An identifier recorded in rankings; the default keeps MiniLM's, so its shipped calibrator applies.
        weights: What the graph holds (``"int8"``, ``"float32"``), for the score cache's identity and reprs.
        **settings: :class:`~r2r_agent.EncoderScorer`'s ``max_tokens``, ``batch_size``, ``max_tokens_per_passage``,
            ``window_rule``.
    """

    def __init__(self, session: Any, tokenizer: Any, *, name: str = MINILM_ID, weights: str = "int8",
                 **settings: Any) -> None:
        # Batches of 8, not torch's 32: less padding and a smaller peak. Scoring 100 DL19 passages (int8, best of
        # 3, busy machine): 1.37 CPU s at 8 vs 2.27 at 32; peak RSS of the scorer alone 422 vs 553 MB.
        settings.setdefault("batch_size", 8)
        super().__init__(None, tokenizer, name=name, **settings)
        self.session = session
        self.weights = weights
        # What the score cache's identity reads as "the model" (a torch module's weights are fingerprinted instead).
        self.model = f"onnx-{weights}"

    @classmethod
    def default(cls, *, quantize: str = "int8", dtype: str = "float32",
                max_tokens_per_passage: int | None = DEFAULT_MAX_TOKENS_PER_PASSAGE,
                cache_dir: str | os.PathLike[str] | None = None, threads: int | None = None) -> OnnxEncoderScorer:
        """The installed all-MiniLM-L6-v2 in ONNX Runtime, prepared in the user cache on first use.

        Args:
            quantize: ``"int8"`` (default) or ``"none"`` (float32, the torch model's scores).
            dtype: Accepted for :meth:`EncoderScorer.default` compatibility; only ``"float32"``/``"auto"``.
            max_tokens_per_passage: As :class:`~r2r_agent.EncoderScorer`.
            cache_dir: Cache root (default ``$R2R_CACHE_DIR`` or the user cache folder).
            threads: ONNX Runtime's intra-op threads (default: one per physical core).
        """
        if dtype not in ("float32", "auto"):
            raise InvalidInputError(f"OnnxEncoderScorer runs in float32 or int8 (quantize=); got dtype={dtype!r}")
        root = Path(cache_dir) if cache_dir is not None else None
        folder = prepare_onnx_minilm(quantize, root=root)
        try:
            session = _session(folder / "model.onnx", threads)
            tokenizer = FastTokenizer(folder / "tokenizer.json")
        except ModelPreparationError as exc:
            if "needs onnxruntime" in str(exc):
                raise  # nothing wrong with the prepared copy
            session = None
            problem: Exception = exc
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a damaged graph
            session, problem = None, exc
        if session is None:
            logger.warning("could not load the prepared ONNX %s from %s (%s); preparing it again", MINILM_ID,
                           folder, problem)
            folder = prepare_onnx_minilm(quantize, root=root, force=True)
            session, tokenizer = _session(folder / "model.onnx", threads), FastTokenizer(folder / "tokenizer.json")
        return cls(session, tokenizer, weights="int8" if quantize == "int8" else "float32",
                   max_tokens_per_passage=max_tokens_per_passage)

    def pooled(self, cut_texts: Sequence[str]) -> Any:
        """Normalised embeddings of already-fitted texts in one run (``[n, dim]`` float32 numpy array)."""
        if isinstance(self.tokenizer, FastTokenizer):
            inputs = self.tokenizer.encode_batch(cut_texts, self.max_tokens)
        else:
            inputs = dict(self.tokenizer(list(cut_texts), padding=True, truncation=True, max_length=self.max_tokens,
                                         return_tensors="np"))
            inputs.setdefault("token_type_ids", inputs["input_ids"] * 0)
        wanted = {i.name for i in self.session.get_inputs()}
        return self.session.run(None, {k: v.astype("int64") for k, v in inputs.items() if k in wanted})[0]

    def embed(self, texts: Sequence[str]) -> tuple[Any, list[bool]]:
        """Normalised embeddings (a numpy array ``[len(texts), dim]``) and truncation flags."""
        import numpy as np

        cut_texts, truncated = self.fit(texts)
        if not cut_texts:
            return np.zeros((0, 0), dtype=np.float32), []
        lengths = [len(t) for t in cut_texts]
        rows: list[Any] = [None] * len(texts)
        for batch in _length_sorted_batches(lengths, self.batch_size):
            for row, i in zip(self.pooled([cut_texts[i] for i in batch]), batch):
                rows[i] = row
        return np.stack(rows), truncated

    def __repr__(self) -> str:
        return f"OnnxEncoderScorer({self.name!r}, {self.weights})"


__all__ = ["FastTokenizer", "ONNX_QUANTIZE", "OnnxEncoderScorer", "onnx_cache_dir", "prepare_onnx_minilm"]
