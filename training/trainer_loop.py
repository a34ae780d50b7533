"""What both trainers share: the step loop, exact resume, checkpoints and the ``accelerate`` runtime.

:class:`~r2r_agent.training.Distiller` (LoRA on a causal LM) and :class:`~r2r_agent.training.EncoderDistiller` (the
bi-encoder) differ only in their models, losses, validation and output folders; :class:`TrainerLoop` runs the rest.

Runtimes. A run uses one of two runtimes with the same small interface (``device``, ``prepare``, ``backward``,
``clip_grad_norm_``, ``no_sync``, ``unwrap_model``, ``wait_for_everyone``, ``num_processes``, ``process_index``,
``is_main_process``):

* :class:`LocalRuntime`: one process on ``config.device``, plain PyTorch. The default; no ``accelerate`` needed.
* ``accelerate.Accelerator``: with ``use_accelerate=True``, with ``mixed_precision`` set, or when the process was
  started by ``accelerate launch`` / ``torchrun`` with more than one process (``WORLD_SIZE > 1``). Under several
  processes each one trains on its own micro-batches and the gradients are averaged (DDP), so an optimizer step sees
  ``num_processes`` times the examples, and ``epochs`` counts that; checkpoints and the output are written by the
  main process only.

Data order is a pure function of the seed and the position in an endless stream (:func:`stream_indices`), so a
resumed run needs no sampler state and ends with the same weights as an uninterrupted one (one process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import DistillError

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.pt"
_CHECKPOINT_PREFIX = "checkpoint-"
#: Values of the configs' ``mixed_precision`` field.
MIXED_PRECISION = ("no", "fp16", "bf16")
#: Config fields a resumed run may change: they do not alter the training trajectory.
RUNTIME_FIELDS = frozenset({"checkpoint_every", "keep_checkpoints", "eval_every", "log_every", "device",
                            "max_steps", "epochs", "use_accelerate"})


# ---- data order and checkpoints -----------------------------------------------------------------------------------
def stream_indices(count: int, start: int, size: int, seed: int, salt: int) -> list[int]:
    """Items ``start .. start + size - 1`` of an endless stream of epochs over ``count`` examples.

    Each epoch is a fresh permutation from ``(seed, salt, epoch)``, so the items at any position are a pure function
    of the position: resuming at a step needs no saved sampler state.

    Example:
        >>> stream_indices(3, 0, 6, seed=0, salt=0)[:3] == stream_indices(3, 0, 3, seed=0, salt=0)
        True
    """
    import torch

    out: list[int] = []
    cache: dict[int, list[int]] = {}
    for position in range(start, start + size):
        epoch, offset = divmod(position, count)
        if epoch not in cache:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + salt * 7_919 + epoch)
            cache[epoch] = torch.randperm(count, generator=generator).tolist()
        out.append(cache[epoch][offset])
    return out


def _checkpoint_step(path: Path) -> int:
    return int(path.name[len(_CHECKPOINT_PREFIX):])


def find_latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The most recent complete checkpoint under ``output_dir/checkpoints``, or ``None``."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_CHECKPOINT_PREFIX)
            and p.name[len(_CHECKPOINT_PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return max(done, key=_checkpoint_step) if done else None


def checkpoint_to_resume(output_dir: Path, resume: bool | str | os.PathLike[str]) -> Path | None:
    """The checkpoint a trainer's ``train(resume=...)`` continues from: the latest (``True``), a folder, or none."""
    if resume is True:
        checkpoint = find_latest_checkpoint(output_dir)
        if checkpoint is None:
            logger.info("no checkpoint under %s; starting fresh", output_dir / CHECKPOINTS_DIR)
        return checkpoint
    return Path(resume) if resume else None


def save_trainer_checkpoint(trainer: Any, write_weights: Callable[[Path], None]) -> Path:
    """Write ``checkpoints/checkpoint-<step>`` of ``trainer`` atomically (temporary folder, then rename); prune old.

    ``trainer`` has ``output_dir``, ``step``, ``config`` (with ``keep_checkpoints`` and ``to_dict``), ``optimizer``,
    ``scheduler``, ``history``, ``validation`` and ``base_model``; ``write_weights(folder)`` writes its weights.
    """
    import torch

    root = trainer.output_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_CHECKPOINT_PREFIX}{trainer.step:07d}"
    temporary = root / f".tmp-{final.name}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    write_weights(temporary)
    state = {"step": trainer.step, "optimizer": trainer.optimizer.state_dict(),
             "scheduler": trainer.scheduler.state_dict(), "rng": _rng_state(), "history": trainer.history,
             "validation": trainer.validation, "config": trainer.config.to_dict(), "base_model": trainer.base_model}
    torch.save(state, temporary / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    if trainer.config.keep_checkpoints:
        done = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(_CHECKPOINT_PREFIX)),
                      key=_checkpoint_step)
        for old in done[: -trainer.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint written: %s", final)
    return final


def load_trainer_state(folder: Path, kind: str, hint: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """The saved trainer state of the checkpoint ``folder``; a clear :class:`DistillError` if it is not one."""
    import torch

    missing = [name for name in (STATE_FILE, *required) if not (folder / name).is_file()]
    if missing:
        raise DistillError(f"{folder} is not {kind} checkpoint (no {' and '.join(missing)}); {hint}")
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)


def check_resumable_settings(saved: Any, current: Any, free: set[str] | frozenset[str], folder: Path) -> None:
    """Raise :class:`DistillError` when a checkpoint's config differs from ``current`` outside the ``free`` fields.

    Only settings that change the trajectory must match; logging, eval and checkpoint cadence may change.
    """
    differing = sorted(f.name for f in dataclasses.fields(current)
                       if f.name not in free and getattr(saved, f.name) != getattr(current, f.name))
    if differing:
        raise DistillError(f"checkpoint {folder} was written with other settings for {differing}; resume with "
                           "the same configuration (or start a fresh run in another output folder)")


def restore_trainer_state(trainer: Any, state: Mapping[str, Any]) -> None:
    """Put the optimizer, scheduler, RNG states, step, history and validation of a checkpoint back into ``trainer``."""
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    trainer.step = int(state["step"])
    trainer.history = list(state["history"])
    trainer.validation = list(state["validation"])


def seed_everything(seed: int) -> None:
    """Seed Python's, torch's and numpy's generators."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch in practice
        pass


def _rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # pragma: no cover - GPU only
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy

        kind, keys, pos, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = (kind, keys.tolist(), pos, has_gauss, cached)
    except ImportError:  # pragma: no cover
        pass
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import torch

    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # pragma: no cover - GPU only
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy

        kind, keys, pos, has_gauss, cached = state["numpy"]
        numpy.random.set_state((kind, numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached))


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def device_field() -> Any:
    """The configs' ``device`` field."""
    return dataclasses.field(default="cpu", metadata={
        "help": "torch device (cpu, cuda, cuda:1, mps); under accelerate: cpu, or cuda for one GPU per process"})


def use_accelerate_field() -> Any:
    """The configs' ``use_accelerate`` field."""
    return dataclasses.field(default=False, metadata={
        "help": "run under accelerate (on by itself with --mixed-precision or under `accelerate launch` with "
                "several processes)"})


def mixed_precision_field() -> Any:
    """The configs' ``mixed_precision`` field."""
    return dataclasses.field(default="no", metadata={"help": "no, fp16 or bf16 (through accelerate)"})


def check_loop_settings(config: Any) -> None:
    """The checks of the fields both trainers' configs share; raises :class:`InvalidInputError` naming the field."""
    from r2r_agent.errors import InvalidInputError

    from .losses import RANKING_LOSSES

    kind = type(config).__name__
    for name in ("ranking_batch_size", "grad_accum", "max_rank_passages", "eval_k", "log_every"):
        if getattr(config, name) < 1:
            raise InvalidInputError(f"{kind}.{name} must be >= 1, got {getattr(config, name)}")
    for name in ("weight_decay", "warmup_steps", "max_grad_norm", "label_weight", "checkpoint_every",
                 "keep_checkpoints", "eval_every"):
        if getattr(config, name) < 0:
            raise InvalidInputError(f"{kind}.{name} must be >= 0, got {getattr(config, name)}")
    if config.max_steps is not None and config.max_steps < 1:
        raise InvalidInputError(f"{kind}.max_steps must be >= 1 or None, got {config.max_steps}")
    for name in ("epochs", "learning_rate", "target_temperature"):
        if getattr(config, name) <= 0:
            raise InvalidInputError(f"{kind}.{name} must be > 0, got {getattr(config, name)}")
    if config.scheduler not in ("linear", "constant"):
        raise InvalidInputError(f"{kind}.scheduler must be 'linear' or 'constant', got {config.scheduler!r}")
    if config.ranking_loss not in RANKING_LOSSES:
        raise InvalidInputError(f"{kind}.ranking_loss must be one of {sorted(RANKING_LOSSES)}, got "
                                f"{config.ranking_loss!r}")
    if config.mixed_precision not in MIXED_PRECISION:
        raise InvalidInputError(f"{kind}.mixed_precision must be one of {list(MIXED_PRECISION)}, got "
                                f"{config.mixed_precision!r}")


def config_from_dict(cls: Any, data: Mapping[str, Any]) -> Any:
    """``cls(**data)`` for a trainer config read back from ``to_dict`` output; unknown keys are rejected by name."""
    from r2r_agent.errors import InvalidInputError

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidInputError(f"{cls.__name__}: unknown fields {unknown}; expected some of {sorted(names)}")
    return cls(**data)


# ---- runtimes -----------------------------------------------------------------------------------------------------
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


def make_runtime(config: Any) -> Any:
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


# ---- the loop -----------------------------------------------------------------------------------------------------
class TrainerLoop:
    """The step loop both trainers run: micro-batches, gradient accumulation, clipping, validation cadence,
    checkpoints, exact resume and the runtime (local or ``accelerate``).

    A subclass sets ``config`` (with the shared fields: ``seed``, ``grad_accum``, ``max_grad_norm``, ``max_steps``,
    ``epochs``, ``learning_rate``, ``weight_decay``, ``warmup_steps``, ``scheduler``, ``eval_every``,
    ``checkpoint_every``, ``log_every``, ``device``, ``use_accelerate``, ``mixed_precision``), ``output_dir`` and
    ``base_model``, and implements the hooks below.
    """

    progress_desc = "train"
    config: Any
    output_dir: Path
    base_model: str

    def _init_loop(self) -> None:
        self.runtime: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.validation: list[dict[str, float | None]] = []
        self._prepared: tuple[Any, ...] = ()

    # ---- hooks --------------------------------------------------------------------------------------------------
    def _build(self) -> list[Any]:
        """Load the models onto :attr:`device` and return the modules to train (their trainable parameters)."""
        raise NotImplementedError

    def _use_modules(self, modules: Sequence[Any] | None) -> None:
        """Run forward passes through ``modules`` (the prepared ones, in :meth:`_build`'s order), or, with
        ``None``, through the plain ones again (validation, saving, callers' own use)."""
        raise NotImplementedError

    def _micro_batches_per_epoch(self) -> int:
        raise NotImplementedError

    def _micro_batch_loss(self, position: int) -> tuple[Any, dict[str, float]]:
        """The loss of micro-batch ``position`` of the data stream and its parts for the log (``loss`` first)."""
        raise NotImplementedError

    def _validate_at_start(self) -> bool:
        return True

    def evaluate(self) -> dict[str, float | None]:
        raise NotImplementedError

    def save_checkpoint(self) -> Path:
        raise NotImplementedError

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        raise NotImplementedError

    def save_final(self) -> Path:
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        """The torch device this process trains on."""
        return self.runtime.device if self.runtime is not None else None

    @property
    def num_processes(self) -> int:
        return self.runtime.num_processes if self.runtime is not None else 1

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        c = self.config
        if c.max_steps is not None:
            return c.max_steps
        return max(1, math.ceil(c.epochs * self._micro_batches_per_epoch() / (c.grad_accum * self.num_processes)))

    def _setup(self) -> None:
        import torch

        c = self.config
        seed_everything(c.seed)
        self.runtime = make_runtime(c)
        modules = self._build()
        params = [p for module in modules for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=c.weight_decay)
        *prepared, self.optimizer = self.runtime.prepare(*modules, optimizer)
        self._prepared = tuple(prepared)
        total, warmup = self.total_steps, c.warmup_steps

        def schedule(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if c.scheduler == "constant":
                return 1.0
            return max(0.0, (total - step) / max(1, total - warmup))

        # Not prepared: accelerate would step it once per process, and total_steps already counts processes.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)

    def _trainable_parameters(self) -> list[Any]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _validate(self) -> None:
        # Every process validates the same examples through the plain modules: no collective calls, same records.
        result = self.evaluate()
        self.validation.append(result)
        logger.info("validation at step %d: %s", self.step, result)

    def _on_main(self, write: Callable[[], Any]) -> None:
        if self.runtime.is_main_process:
            write()
        self.runtime.wait_for_everyone()

    def _run(self, resume: bool | str | os.PathLike[str], progress: bool,
             callback: Callable[[int, dict[str, float]], None] | None) -> tuple[float, int | None]:
        """Train (or continue) to ``total_steps`` and write the output; ``(seconds, resumed_from)``."""
        from r2r_agent.progress import maybe_progress

        start_time = time.perf_counter()
        c = self.config
        self._setup()
        resumed_from = None
        checkpoint = checkpoint_to_resume(self.output_dir, resume)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
            resumed_from = self.step
            logger.info("resumed from %s at step %d", checkpoint, self.step)
        total = self.total_steps
        if self.step == 0 and resumed_from is None and self._validate_at_start():
            self._validate()
        show = progress and self.runtime.is_main_process
        with maybe_progress(show, total=total, initial=self.step, unit="step", desc=self.progress_desc) as bar:
            while self.step < total:
                record = self._train_step()
                self.history.append(record)
                bar.update(1)
                bar.set_postfix_str(f"loss={record['loss']:.3f}")
                if self.step % c.log_every == 0:
                    logger.info("step %d/%d %s", self.step, total,
                                " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step"))
                if (c.eval_every and self.step % c.eval_every == 0) or self.step == total:
                    self._validate()
                if c.checkpoint_every and (self.step % c.checkpoint_every == 0 or self.step == total):
                    self._on_main(self.save_checkpoint)  # the last step too, so a run can be extended
                if callback is not None:
                    callback(self.step, record)
        if not self.validation or self.validation[-1]["step"] != self.step:
            self._validate()
        self._on_main(self.save_final)
        return time.perf_counter() - start_time, resumed_from

    @contextlib.contextmanager
    def _through_prepared(self) -> Iterator[None]:
        self._use_modules(self._prepared)
        try:
            yield
        finally:
            self._use_modules(None)

    def _train_step(self) -> dict[str, float]:
        c, runtime = self.config, self.runtime
        sums: dict[str, float] = {}
        with self._through_prepared():
            for module in self._prepared:
                module.train()
            for micro in range(c.grad_accum):
                # Each process takes its own micro-batches of the one stream; with one process this is the position.
                position = (self.step * c.grad_accum + micro) * runtime.num_processes + runtime.process_index
                with contextlib.ExitStack() as stack:
                    if micro < c.grad_accum - 1:  # gradients are averaged across processes once per step
                        for module in self._prepared:
                            stack.enter_context(runtime.no_sync(module))
                    loss, parts = self._micro_batch_loss(position)
                    runtime.backward(loss / c.grad_accum)
                for name, value in parts.items():
                    sums[name] = sums.get(name, 0.0) + value
        if runtime.num_processes > 1:  # the log shows the step's loss over all processes, the same on each
            import torch

            names = sorted(sums)
            mean = runtime.reduce(torch.tensor([sums[n] for n in names], device=self.device), reduction="mean")
            sums = dict(zip(names, mean.tolist(), strict=True))
        if c.max_grad_norm > 0:
            runtime.clip_grad_norm_(self._trainable_parameters(), c.max_grad_norm)
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"step": self.step, **{name: value / c.grad_accum for name, value in sums.items()}, "lr": lr}

    def runtime_info(self) -> dict[str, Any]:
        """How the run was executed (for the output's metadata)."""
        return {"runtime": type(self.runtime).__name__, "processes": self.num_processes,
                "mixed_precision": str(getattr(self.runtime, "mixed_precision", "no")), "device": str(self.device)}


__all__ = ["CHECKPOINTS_DIR", "MIXED_PRECISION", "RUNTIME_FIELDS", "STATE_FILE", "LocalRuntime", "TrainerLoop",
           "check_loop_settings", "check_resumable_settings", "checkpoint_to_resume", "config_from_dict",
           "find_latest_checkpoint", "is_main_launched_process", "launched_distributed", "load_trainer_state",
           "make_runtime", "restore_trainer_state", "save_trainer_checkpoint", "seed_everything", "stream_indices"]
