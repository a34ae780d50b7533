"""A teacher that runs a local Hugging Face causal LM (any folder, optionally with a PEFT adapter) in-process.

Useful when no endpoint is at hand: a larger instruct model on a GPU box, or a small one to try the pipeline. The
model is loaded on the first call (or :meth:`TransformersTeacher.load`) with
:func:`r2r_agent.modeling.load_causal_lm`, never from the network; prompts are rendered with the tokenizer's chat
template (:func:`r2r_agent.prompts.render`, the same rendering the student sees).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.validation import check_count

from .errors import TeacherError

logger = logging.getLogger(__name__)


@dataclass
class TransformersTeacher:
    """A :class:`~r2r_agent.training.Teacher` backed by a local ``transformers`` causal LM.

    Decoding is greedy by default (``temperature=0``), so the same window always gets the same answer. With
    ``temperature > 0`` it samples, seeded per call from ``seed`` (and the global torch RNG is left untouched), so
    answers are still reproducible call by call.

    Args:
        model_path: A local model folder (``config.json``, weights and tokenizer files).
        adapter: An optional PEFT adapter folder, merged into the weights at load time.
        max_new_tokens: Upper bound on the answer's length in tokens (a listwise answer with reasons for 20
            passages needs about 1,500). Lowered automatically when the prompt leaves less room in the context.
        temperature: 0 for greedy decoding; above 0 samples at this temperature.
        seed: Seed of each sampled call (unused when greedy).
        dtype: Weight dtype, one of :data:`r2r_agent.modeling.DTYPES`.
        device: A torch device (``"cuda"``...); CPU when ``None``.
        context_length: Tokens the model can attend to (default: its config's ``max_position_embeddings``).
        name: The teacher's name in the annotation cache (default: built from the folder names and the decoding
            settings, see :meth:`default_name`). Set it when two folders share a name or a folder's weights change.

    Example:
        >>> teacher = TransformersTeacher("models/Qwen2.5-7B-Instruct", device="cuda")  # doctest: +SKIP
        >>> teacher.name                                                                  # doctest: +SKIP
        'transformers:Qwen2.5-7B-Instruct[greedy,max_new_tokens=2048,dtype=float32]'
    """

    model_path: str | os.PathLike[str]
    adapter: str | os.PathLike[str] | None = None
    max_new_tokens: int = 2048
    temperature: float = 0.0
    seed: int = 0
    dtype: str = "float32"
    device: str | None = None
    context_length: int | None = None
    name: str = ""
    _model: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        from r2r_agent.modeling import DTYPES

        path = Path(self.model_path)
        if not (path / "config.json").is_file():
            raise InvalidInputError(
                f"TransformersTeacher.model_path must be a local model folder with a config.json, got {str(path)!r}; "
                "download the model once (e.g. `huggingface-cli download NAME --local-dir DIR`) and pass DIR"
            )
        if self.adapter is not None and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise InvalidInputError(f"TransformersTeacher.adapter must be a PEFT adapter folder (with "
                                    f"adapter_config.json), got {str(self.adapter)!r}")
        check_count("TransformersTeacher.max_new_tokens", self.max_new_tokens)
        if self.temperature < 0:
            raise InvalidInputError(f"TransformersTeacher.temperature must be >= 0 (0: greedy), got "
                                    f"{self.temperature}")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"TransformersTeacher.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.context_length is not None and self.context_length < 2:
            raise InvalidInputError(f"TransformersTeacher.context_length must be >= 2 or None, got "
                                    f"{self.context_length}")
        self.name = self.name or self.default_name()

    def default_name(self) -> str:
        """``transformers:FOLDER[+ADAPTER][DECODING,max_new_tokens=N,dtype=D]``: what changes the answers."""
        model = Path(self.model_path).resolve().name
        adapter = f"+{Path(self.adapter).resolve().name}" if self.adapter is not None else ""
        decoding = "greedy" if self.temperature == 0 else f"sample,temperature={self.temperature:g},seed={self.seed}"
        return f"transformers:{model}{adapter}[{decoding},max_new_tokens={self.max_new_tokens},dtype={self.dtype}]"

    def load(self) -> TransformersTeacher:
        """Load the model now (it is otherwise loaded on the first call); returns ``self``.

        Raises:
            TeacherError: when the folder cannot be loaded as a causal LM (the message says why).
        """
        with self._lock:
            self._load_locked()
        return self

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        from r2r_agent.errors import MissingExtraError, ModelPreparationError
        from r2r_agent.modeling import load_causal_lm

        try:
            self._model, self._tokenizer = load_causal_lm(self.model_path, adapter=self.adapter, dtype=self.dtype,
                                                          device=self.device, local_files_only=True)
        except (ModelPreparationError, MissingExtraError, OSError, ValueError) as exc:
            raise TeacherError(f"teacher {self.name!r}: could not load a causal LM from {str(self.model_path)!r}: "
                               f"{exc}") from exc
        logger.info("teacher %s loaded from %s", self.name, self.model_path)

    def _context(self) -> int | None:
        if self.context_length is not None:
            return self.context_length
        value = getattr(self._model.config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Render ``messages`` with the chat template, generate, and return the reply text.

        Raises:
            TeacherError: when the model cannot be loaded, the prompt does not fit the model's context, or
                generation fails.
        """
        import torch
        from transformers import GenerationConfig

        from r2r_agent import prompts

        with self._lock:  # one generation at a time: threads would only compete for the same cores or GPU
            self._load_locked()
            tokenizer = self._tokenizer
            text = prompts.render(tokenizer, [dict(m) for m in messages])
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            context = self._context()
            new_tokens = self.max_new_tokens
            if context is not None:
                if len(ids) >= context:
                    raise TeacherError(
                        f"teacher {self.name!r}: the prompt is {len(ids)} tokens but the model's context is "
                        f"{context} tokens; use smaller windows (--window-size), fewer or shorter passages, or a "
                        "model with a longer context"
                    )
                if len(ids) + new_tokens > context:
                    # Room for a shorter answer is better than none; a cut answer fails parsing and is recorded.
                    logger.debug("teacher %s: max_new_tokens lowered from %d to %d to fit the %d-token context",
                                 self.name, new_tokens, context - len(ids), context)
                    new_tokens = context - len(ids)
            eos_id = tokenizer.eos_token_id
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
            sample = self.temperature > 0
            config = GenerationConfig(max_new_tokens=new_tokens, do_sample=sample,
                                      temperature=self.temperature if sample else None, top_p=None, top_k=None,
                                      pad_token_id=pad_id, eos_token_id=eos_id)
            device = self._model.device
            input_ids = torch.tensor([ids], dtype=torch.long, device=device)
            try:
                with torch.inference_mode(), torch.random.fork_rng(devices=_cuda_devices(device)):
                    torch.manual_seed(self.seed)
                    output = self._model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                                  generation_config=config)
            except (RuntimeError, ValueError) as exc:
                raise TeacherError(f"teacher {self.name!r}: generation failed: {type(exc).__name__}: {exc}") from exc
            tokens = output[0, len(ids):].tolist()
            if eos_id is not None and eos_id in tokens:
                tokens = tokens[: tokens.index(eos_id)]
            return str(tokenizer.decode(tokens, skip_special_tokens=True)).strip()


def _cuda_devices(device: Any) -> list[int]:
    # fork_rng must be told which CUDA devices' RNG to save and restore; none for CPU.
    return [device.index or 0] if getattr(device, "type", "cpu") == "cuda" else []


__all__ = ["TransformersTeacher"]
