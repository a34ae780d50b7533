"""Loading and preparing Hugging Face models for the student (torch and transformers are imported lazily)."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AdapterError, ModelPreparationError
from .progress import quiet_loading

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
    # The adapter is checked before anything is loaded, so a bad adapter is reported as an adapter error (never as
    # a damaged base model, which Student.default would prepare again).
    spec = check_adapter(adapter) if adapter is not None else None
    if adapter is not None and (Path(adapter) / "tokenizer_config.json").exists():
        try:
            tokenizer = load_tokenizer(adapter, local_files_only=local_files_only)
        except ModelPreparationError as exc:
            raise AdapterError(f"adapter {str(adapter)!r}: {exc}") from exc
    else:
        tokenizer = load_tokenizer(path, local_files_only=local_files_only)
    model: Any
    try:
        with quiet_loading():  # no per-load bars (r2r_agent.progress)
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32,
                                                         local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(f"could not load a causal LM from {path}: {exc}") from exc
    if adapter is not None:
        model = merge_adapter(model, adapter, spec=spec)
    model.eval()
    if quantize == "int8":
        model = quantize_int8(model)
    else:
        model = model.to(resolve_dtype(dtype))
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def merge_adapter(model: Any, adapter: str | os.PathLike[str], *, spec: AdapterSpec | None = None) -> Any:
    """Apply a PEFT LoRA adapter folder to ``model`` and merge it into the weights.

    The adapter is checked first (:func:`check_adapter`, then :func:`check_adapter_fits`): every problem with it is an
    :class:`~r2r_agent.errors.AdapterError`, raised before PEFT allocates anything.
    """
    from .errors import MissingExtraError

    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - peft is a core dependency
        raise MissingExtraError('loading an adapter needs peft: pip install "r2r-agent"') from exc
    spec = spec or check_adapter(adapter)
    check_adapter_fits(spec, model)
    try:
        with quiet_loading():  # PEFT reads a deprecated transformers attribute and warns on every merge
            return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise AdapterError(f"adapter {str(adapter)!r} could not be applied: {exc}") from exc


#: The largest LoRA rank an adapter may declare. Distilled adapters use 8-64; a rank in the thousands only costs
#: memory (a declared ``r`` of 100000 allocated until memory ran out).
MAX_ADAPTER_RANK = 1024
#: The largest ``adapter_config.json`` read (a real one is ~1-2 kB).
MAX_ADAPTER_CONFIG_BYTES = 1 << 20
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class AdapterSpec:
    """What :func:`check_adapter` read from a LoRA adapter folder.

    Attributes:
        folder: The adapter folder.
        rank: The declared LoRA rank ``r``.
        modules: For each adapted module path (as in the base model, e.g. ``model.layers.0.mlp.up_proj``): its
            ``(in_features, out_features, rank)`` from the weights' shapes.
    """

    folder: Path
    rank: int
    modules: dict[str, tuple[int, int, int]]


def _adapter_error(folder: Path, problem: str) -> AdapterError:
    return AdapterError(f"adapter {str(folder)!r}: {problem}; pass a folder written by `r2r distill` (or PEFT's "
                        f"save_pretrained) for this base model")


def _positive_rank(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ADAPTER_RANK


def check_adapter(adapter: str | os.PathLike[str]) -> AdapterSpec:
    """Check a LoRA adapter folder without loading any model: its files, its config and its weights' shapes.

    ``adapter_config.json`` must be a regular file (a link to one is fine) of at most
    :data:`MAX_ADAPTER_CONFIG_BYTES` holding a JSON object: a LoRA config whose rank ``r`` is an int in
    ``1..MAX_ADAPTER_RANK``; ``adapter_model.safetensors`` must hold LoRA weights whose shapes agree with that rank
    (or the config's ``rank_pattern``), and every ``target_modules`` name must be among the modules the weights adapt.

    Raises:
        AdapterError: Naming the file and field at fault.
    """
    import stat

    from .files import read_text_bounded

    folder = Path(adapter)
    config_path = folder / ADAPTER_CONFIG_FILE
    try:
        mode = config_path.stat().st_mode
    except OSError:
        raise _adapter_error(folder, f"no {ADAPTER_CONFIG_FILE}") from None
    if not stat.S_ISREG(mode):
        raise _adapter_error(folder, f"{ADAPTER_CONFIG_FILE} is not a regular file")
    try:
        config = json.loads(read_text_bounded(config_path, MAX_ADAPTER_CONFIG_BYTES))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _adapter_error(folder, f"{ADAPTER_CONFIG_FILE} is not a JSON file ({type(exc).__name__}: "
                                     f"{str(exc)[:120]})") from None
    if not isinstance(config, dict):
        raise _adapter_error(folder, f"{ADAPTER_CONFIG_FILE} must hold a JSON object, got {type(config).__name__}")
    if config.get("peft_type", "LORA") != "LORA":
        raise _adapter_error(folder, f"peft_type must be 'LORA', got {config.get('peft_type')!r}")
    rank = config.get("r", 8)
    if not _positive_rank(rank):
        raise _adapter_error(folder, f"r must be an int in 1..{MAX_ADAPTER_RANK}, got {rank!r}")
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict) or not all(_positive_rank(v) for v in pattern.values()):
        raise _adapter_error(folder, f"rank_pattern must map module names to ints in 1..{MAX_ADAPTER_RANK}")
    targets = config.get("target_modules")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise _adapter_error(folder, f"target_modules must be a non-empty list of module names, got {targets!r}")
    modules = _adapter_weight_shapes(folder)
    ranks = {rank, *pattern.values()}
    for module, (_, _, module_rank) in modules.items():
        if module_rank not in ranks:
            raise _adapter_error(folder, f"the weights of {module} have rank {module_rank} but the config declares "
                                         f"r={rank}" + (f" and rank_pattern {sorted(set(pattern.values()))}"
                                                        if pattern else ""))
    for target in targets:
        if not any(_names_module(target, module) for module in modules):
            raise _adapter_error(folder, f"target module {target!r} is adapted by none of the weights in "
                                         f"{ADAPTER_WEIGHTS_FILE} (they adapt {_module_kinds(modules)})")
    return AdapterSpec(folder=folder, rank=rank, modules=modules)


def _names_module(target: str, module: str) -> bool:
    """Whether a ``target_modules`` entry names ``module``: a dotted suffix (PEFT's rule) or a full regex match."""
    if module == target or module.endswith("." + target):
        return True
    try:
        return re.fullmatch(target, module) is not None
    except re.error:
        return False


def _module_kinds(modules: dict[str, tuple[int, int, int]]) -> str:
    return ", ".join(sorted({name.rsplit(".", 1)[-1] for name in modules}))


def _adapter_weight_shapes(folder: Path) -> dict[str, tuple[int, int, int]]:
    """``{module: (in_features, out_features, rank)}`` from the safetensors header (no tensor is read)."""
    from safetensors import safe_open

    path = folder / ADAPTER_WEIGHTS_FILE
    if not path.is_file():
        raise _adapter_error(folder, f"no {ADAPTER_WEIGHTS_FILE} (adapters saved as .bin are not read: save them "
                                     f"again with safe_serialization=True)")
    parts: dict[str, dict[str, list[int]]] = {}
    try:
        # "np": the header is read the same way, and checking an adapter does not import torch (issue 20 item 6)
        with safe_open(str(path), "np") as handle:  # type: ignore[no-untyped-call]
            for key in handle.keys():
                match = _LORA_KEY.match(key)
                if match:
                    shape = list(handle.get_slice(key).get_shape())
                    parts.setdefault(match["module"], {})[match["part"]] = shape
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged header
        raise _adapter_error(folder, f"{ADAPTER_WEIGHTS_FILE} is not a readable safetensors file "
                                     f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if not parts:
        raise _adapter_error(folder, f"{ADAPTER_WEIGHTS_FILE} holds no LoRA weights (lora_A/lora_B)")
    modules = {}
    for module, shapes in parts.items():
        a, b = shapes.get("A"), shapes.get("B")
        if a is None or b is None or len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            raise _adapter_error(folder, f"the weights of {module} are not a LoRA pair (lora_A {a}, lora_B {b}: "
                                         f"expected [r, in] and [out, r])")
        if not 1 <= a[0] <= min(MAX_ADAPTER_RANK, a[1], b[0]):
            raise _adapter_error(folder, f"the weights of {module} have rank {a[0]}, more than their own size "
                                         f"{a[1]}x{b[0]} allows")
        modules[module] = (a[1], b[0], a[0])
    return modules


def check_adapter_fits(spec: AdapterSpec, model: Any) -> None:
    """Check that every module an adapter adapts is a linear layer of ``model`` with the weights' shapes.

    Raises:
        AdapterError: Naming the first module that is missing or has another shape.
    """
    for module, (in_features, out_features, _) in spec.modules.items():
        try:
            layer = model.get_submodule(module)
        except AttributeError:
            raise _adapter_error(spec.folder, f"it adapts {module}, which this base model does not have") from None
        shape = (getattr(layer, "in_features", None), getattr(layer, "out_features", None))
        if shape != (in_features, out_features):
            raise _adapter_error(spec.folder, f"its weights for {module} are {in_features}->{out_features} but the "
                                              f"base model's layer is {shape[0]}->{shape[1]}")


#: File name of R2R's rank head inside an adapter folder (a ``Linear(hidden_size, 1)`` state dict).
RANK_HEAD_FILE = "rank_head.safetensors"


def check_rank_head(adapter: str | os.PathLike[str]) -> bool:
    """Whether a distilled adapter has a rank head, checked from its safetensors header (no tensor is read, torch
    is not imported): the checks of :func:`load_rank_head`, for a student that loads the head later.

    Raises:
        AdapterError: The file is damaged or is not a rank head.
    """
    from safetensors import safe_open

    path = Path(adapter) / RANK_HEAD_FILE
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), "np") as handle:  # type: ignore[no-untyped-call]
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise AdapterError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from None
    weight = shapes.get("weight")
    if set(shapes) - {"weight", "bias"} or weight is None or len(weight) != 2 or weight[0] != 1 \
            or shapes.get("bias", [1]) != [1]:
        raise AdapterError(f"{path} is not a rank head (expected 'weight' [1, hidden] and 'bias' [1], got "
                           f"{shapes})")
    return True


def load_rank_head(adapter: str | os.PathLike[str]) -> Any | None:
    """The rank head saved next to a distilled adapter, or ``None`` if the adapter has none."""
    path = Path(adapter) / RANK_HEAD_FILE
    if not path.is_file():
        return None
    import torch
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise AdapterError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from None
    weight = state.get("weight")
    if set(state) - {"weight", "bias"} or weight is None or weight.ndim != 2 or weight.shape[0] != 1 \
            or not state.get("bias", torch.zeros(1)).shape == (1,):
        raise AdapterError(f"{path} is not a rank head (expected 'weight' [1, hidden] and 'bias' [1], got "
                           f"{ {k: list(v.shape) for k, v in state.items()} })")
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict(state, strict="bias" in state)
    return head.eval()
