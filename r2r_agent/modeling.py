"""Loading and preparing Hugging Face models for the student (torch and transformers are imported lazily)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelPreparationError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Quantisation modes for CPU inference. ``"int8"`` applies PyTorch dynamic int8 quantisation to every linear layer:
#: on this project's 2-core reference machine it makes batched generation ≈2.8× faster than float32.
QUANTIZE_MODES = ("none", "int8")

# A token is rarely longer than this many characters; cutting text first keeps tokenising a 100 kB passage cheap.
_MAX_CHARS_PER_TOKEN = 16


#: Weight dtypes. ``"auto"`` is bfloat16 where the CPU computes it natively (AVX512-BF16/AMX; there it halves the
#: memory traffic that bounds generation: 1.8× faster explanations, 1.7× faster MiniLM scoring on the reference
#: machine) and float32 elsewhere, where bfloat16 would be emulated and slower.
DTYPES = ("auto", "float32", "bfloat16")


def resolve_dtype(name: str) -> torch.dtype:
    """The ``torch.dtype`` for a :data:`DTYPES` name (``"auto"`` checks the CPU)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    if name == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    return getattr(torch, name)


def native_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (oneDNN's own check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


def check_quantize(value: str) -> str:
    """Validate a ``quantize`` argument."""
    if value not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {value!r}")
    return value


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of the linear layers, in place, for CPU inference.

    Falls back to the float model (with a warning) where this torch build has no dynamic quantisation.
    """
    import torch

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - depends on the torch build
        logger.warning("this torch build has no dynamic quantisation; running in float32")
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def fit_tokens(tokenizer: Any, text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_tokens`` tokens of ``tokenizer``.

    Lone surrogates become U+FFFD first (:func:`r2r_agent.types.model_text`): tokenizers reject them.

    Returns:
        The (possibly shortened) text and whether it was shortened.
    """
    from .types import model_text

    text = model_text(text)
    limit = max_tokens * _MAX_CHARS_PER_TOKEN
    clipped = len(text) > limit
    candidate = text[:limit] if clipped else text
    ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens and not clipped:
        return text, False
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True), True


def visible_chars(tokenizer: Any, text: str, max_tokens: int) -> int:
    """How many leading characters of ``text`` its first ``max_tokens`` tokens cover (``len(text)`` when it fits).

    Uses the tokenizer's character offsets where it has them (fast tokenizers); otherwise the length of the decoded
    cut text, an estimate.
    """
    from .types import model_text

    if max_tokens <= 0:
        return 0
    cleaned = model_text(text)
    limit = max_tokens * _MAX_CHARS_PER_TOKEN
    while True:
        candidate = cleaned[:limit]
        try:
            encoded = tokenizer(candidate, add_special_tokens=False, return_offsets_mapping=True)
            offsets = encoded["offset_mapping"]
        except (NotImplementedError, TypeError, ValueError, KeyError):
            cut, truncated = fit_tokens(tokenizer, text, max_tokens)
            return len(cut) if truncated else len(text)
        if len(offsets) > max_tokens:
            return int(offsets[max_tokens - 1][1])
        if len(candidate) == len(cleaned):
            return len(text)
        # Fewer tokens than characters/16 allow: one very long "word" is a single unknown token in WordPiece; look
        # further (at most doubling up to the whole text).
        limit *= 2


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as one left-padded batch: ``(input_ids, attention_mask)``, both ``[len, longest]`` longs.

    Left padding puts every sequence's last token in the last column, where scoring reads its logits and generation
    continues.
    """
    import torch

    width = max((len(seq) for seq in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids, mask


def left_padding_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids for a left-padded batch, so padded rows score exactly as they would alone."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def load_tokenizer(path: str | os.PathLike[str], *, local_files_only: bool = True, **kwargs: Any) -> Any:
    """Load a tokenizer, turning loader failures into :class:`ModelPreparationError`."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=local_files_only, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(f"could not load a tokenizer from {path}: {exc}") from exc


def load_causal_lm(
    path: str | os.PathLike[str],
    *,
    adapter: str | os.PathLike[str] | None = None,
    quantize: str = "none",
    dtype: str = "float32",
    device: str | None = None,
    local_files_only: bool = True,
) -> tuple[Any, Any]:
    """Load a causal LM (and optional PEFT LoRA adapter) for inference.

    Args:
        path: A local model folder (or a hub name already in the local cache).
        adapter: A PEFT adapter folder; merged into the weights for speed.
        quantize: ``"none"`` or ``"int8"`` (see :data:`QUANTIZE_MODES`; int8 implies float32 weights).
        dtype: One of :data:`DTYPES`.
        device: A torch device (``"cuda"``, ``"cuda:1"``...) to move the model to; CPU when ``None``.
        local_files_only: Never reach the network (the default).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_quantize(quantize)
    tokenizer = load_tokenizer(adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else path,
                               local_files_only=local_files_only)
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(f"could not load a causal LM from {path}: {exc}") from exc
    if adapter is not None:
        model = merge_adapter(model, adapter)
    model.eval()
    if quantize == "int8":
        model = quantize_int8(model)
    else:
        model = model.to(resolve_dtype(dtype))
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def merge_adapter(model: Any, adapter: str | os.PathLike[str]) -> Any:
    """Apply a PEFT adapter folder to ``model`` and merge it into the weights."""
    from .errors import MissingExtraError

    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - peft is a core dependency
        raise MissingExtraError('loading an adapter needs peft: pip install "r2r-agent"') from exc
    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelPreparationError(
            f"{adapter} is not a PEFT adapter folder (no adapter_config.json); pass the folder written by `r2r distill`"
        )
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


#: File name of R2R's rank head inside an adapter folder (a ``Linear(hidden_size, 1)`` state dict).
RANK_HEAD_FILE = "rank_head.safetensors"


def load_rank_head(adapter: str | os.PathLike[str]) -> Any | None:
    """The rank head saved next to a distilled adapter, or ``None`` if the adapter has none."""
    path = Path(adapter) / RANK_HEAD_FILE
    if not path.is_file():
        return None
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path))
    weight = state["weight"]
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict(state)
    return head.eval()
