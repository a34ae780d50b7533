"""Where a training run executes: one local process, or ``accelerate`` (mixed precision, several processes).

Both runtimes offer the same small interface (``device``, ``prepare``, ``backward``, ``clip_grad_norm_``,
``no_sync``, ``unwrap_model``, ``wait_for_everyone``, ``num_processes``, ``process_index``, ``is_main_process``):

* :class:`LocalRuntime`: one process on ``config.device``, plain PyTorch. The default; no ``accelerate`` needed.
* ``accelerate.Accelerator``: with ``use_accelerate=True``, with ``mixed_precision`` set, or when the process was
  started by ``accelerate launch`` / ``torchrun`` with more than one process (``WORLD_SIZE > 1``). Under several
  processes each one trains on its own micro-batches and the gradients are averaged (DDP), so an optimizer step sees
  ``num_processes`` times the examples, and ``epochs`` counts that; checkpoints and the output are written by the
  main process only.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from .errors import DistillError

if TYPE_CHECKING:
    from .loop_config import LoopConfig


class LocalRuntime:
    """One process, plain PyTorch on one device: the subset of ``accelerate.Accelerator`` the trainers call."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    mixed_precision = "no"

    def __init__(self, device: str) -> None:
        import torch

        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise DistillError(f"unknown torch device {device!r}: expected e.g. cpu, cuda, cuda:1 or mps") from exc

    def prepare(self, *objects: Any) -> Any:
        return objects[0] if len(objects) == 1 else objects

    def backward(self, loss: Any) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters: Any, max_norm: float) -> Any:
        import torch

        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def no_sync(self, model: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def unwrap_model(self, model: Any) -> Any:
        return model

    def wait_for_everyone(self) -> None:
        pass


def launched_distributed() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` or ``torchrun``."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_main_launched_process() -> bool:
    """``False`` in the processes other than the first of a multi-process launch (they should not print reports)."""
    return not launched_distributed() or os.environ.get("RANK", "0") == "0"


def make_runtime(config: LoopConfig) -> Any:
    """:class:`LocalRuntime`, or an ``accelerate.Accelerator`` where the config or the launcher asks for one.

    Under ``accelerate``, ``device="cpu"`` keeps every process on the CPU and any other device lets ``accelerate`` give
    each process its own (e.g. one GPU per process).
    """
    if not (config.use_accelerate or config.mixed_precision != "no" or launched_distributed()):
        return LocalRuntime(config.device)
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise DistillError("use_accelerate, mixed_precision and multi-process runs need the accelerate package: "
                           "pip install 'r2r-agent[training]'") from exc
    try:
        return Accelerator(mixed_precision=config.mixed_precision, cpu=config.device == "cpu")
    except (ValueError, RuntimeError) as exc:
        raise DistillError(f"accelerate could not start with mixed_precision={config.mixed_precision!r} on "
                           f"device={config.device!r}: {exc}") from exc


__all__ = ["LocalRuntime", "is_main_launched_process", "launched_distributed", "make_runtime"]
