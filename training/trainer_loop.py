"""What both trainers share: the step loop, validation cadence, checkpoints, exact resume and the output folder.

:class:`~r2r_agent.training.Distiller` (LoRA on a causal LM) and :class:`~r2r_agent.training.EncoderDistiller` (the
bi-encoder) differ only in their models, losses, validation and output files; :class:`TrainerLoop` runs the rest, on
the runtime :func:`~r2r_agent.training.runtime.make_runtime` picks (local or ``accelerate``), with the checkpoints of
:mod:`~r2r_agent.training.checkpoints`.

Data order is a pure function of the seed and the position in an endless stream
(:func:`~r2r_agent.training.rng.stream_indices`), so a resumed run needs no sampler state and ends with the same
weights as an uninterrupted one (one process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from r2r_agent.files import atomic_write_text

from .checkpoints import (
    CHECKPOINTS_DIR,
    load_trainer_state,
    restore_trainer_state,
    resume_checkpoint,
    save_trainer_checkpoint,
)
from .dataset import DistillationDataset, RankingExample
from .loop_config import LoopConfig
from .rng import seed_everything, stream_indices
from .runtime import make_runtime

logger = logging.getLogger(__name__)

#: Training metadata written next to the trained weights.
TRAINING_FILE = "r2r_training.json"

#: Called as ``callback(step, record)`` after every optimizer step (e.g. to stop early by raising).
Callback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What a training run produced (each trainer's result adds its own fields).

    Attributes:
        output_dir: The output folder.
        steps: Optimizer steps done in total (including those before a resume).
        history: One record per step: ``step``, ``loss`` (and its parts), ``lr``.
        validation: One record per validation: ``step`` and the trainer's metrics.
        seconds: Wall-clock seconds of this call (not counting earlier runs before a resume).
        resumed_from: The step of the checkpoint the run resumed from (``None``: started fresh).
    """

    output_dir: Path
    steps: int
    history: list[dict[str, float]]
    validation: list[dict[str, float | None]]
    seconds: float
    resumed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"output_dir": str(self.output_dir), "steps": self.steps, "history": self.history,
                "validation": self.validation, "seconds": self.seconds, "resumed_from": self.resumed_from}


ResultT = TypeVar("ResultT", bound=TrainResult)


class TrainerLoop(Generic[ResultT]):
    """The step loop both trainers run: micro-batches, gradient accumulation, clipping, validation cadence,
    checkpoints, exact resume and the runtime (local or ``accelerate``).

    A subclass passes its base model, dataset, output folder and config on, and implements the hooks below.
    """

    progress_desc = "train"
    #: What the checkpoints are, for error messages ("a distillation").
    checkpoint_kind: ClassVar[str] = "a training"
    config: LoopConfig

    def __init__(self, base_model: str | os.PathLike[str], dataset: DistillationDataset,
                 output_dir: str | os.PathLike[str], config: LoopConfig) -> None:
        self.base_model = str(base_model)
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.config = config
        self.runtime: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.validation: list[dict[str, float | None]] = []
        #: Checkpoint folders found damaged when resuming (moved aside, never deleted, if this run rewrites them).
        self.damaged_checkpoints: set[Path] = set()
        self._prepared: tuple[Any, ...] = ()

    # ---- hooks --------------------------------------------------------------------------------------------------
    def _result(self, seconds: float, resumed_from: int | None) -> ResultT:
        """The trainer's result of a finished :meth:`train`."""
        raise NotImplementedError

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

    def _weight_files(self) -> tuple[str, ...]:
        """The files :meth:`_write_weights` writes into a checkpoint."""
        raise NotImplementedError

    def _write_weights(self, folder: Path) -> None:
        """Write the trained weights into a checkpoint folder."""
        raise NotImplementedError

    def _read_weights(self, folder: Path) -> Any:
        """Read a checkpoint's weights without touching the model (a damaged file raises, naming it)."""
        raise NotImplementedError

    def _apply_weights(self, folder: Path, weights: Any, state: dict[str, Any]) -> None:
        """Put weights read by :meth:`_read_weights` into the model."""
        raise NotImplementedError

    def _write_model(self, folder: Path) -> None:
        """Write the output folder's model files (weights, tokenizer, ...)."""
        raise NotImplementedError

    def training_info(self) -> dict[str, Any]:
        """The metadata written to ``r2r_training.json``."""
        raise NotImplementedError

    def _model_card(self, info: dict[str, Any]) -> str:
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

    def _ranking_micro_batch(self, examples: Sequence[RankingExample], position: int) -> list[RankingExample]:
        """The ranking examples of micro-batch ``position`` of their endless stream (one order for both trainers)."""
        c = self.config
        picks = stream_indices(len(examples), position * c.ranking_batch_size, c.ranking_batch_size, c.seed, 2)
        return [examples[i] for i in picks]

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

    def train(self, *, resume: bool | str | os.PathLike[str] = False, progress: bool = False,
              callback: Callback | None = None) -> ResultT:
        """Run (or continue) training to ``total_steps`` and write the output folder.

        Args:
            resume: ``True``: continue from the latest usable checkpoint in ``output_dir/checkpoints`` (start fresh if
                there is none; a damaged one is skipped with a warning); a path: continue from that checkpoint
                folder; ``False``: start fresh.
            progress: Show a tqdm bar.
            callback: Called as ``callback(step, record)`` after every optimizer step (e.g. to stop early by raising).
        """
        seconds, resumed_from = self._run(resume, progress, callback)
        return self._result(seconds, resumed_from)

    def _run(self, resume: bool | str | os.PathLike[str], progress: bool,
             callback: Callback | None) -> tuple[float, int | None]:
        """Train (or continue) to ``total_steps`` and write the output; ``(seconds, resumed_from)``."""
        from r2r_agent.progress import maybe_progress

        start_time = time.perf_counter()
        c = self.config
        self._setup()
        resumed_from = None
        checkpoint, damaged = resume_checkpoint(self.output_dir, resume, self.load_checkpoint)
        self.damaged_checkpoints.update(damaged)
        if checkpoint is not None:
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

    # ---- checkpoints and output ---------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/checkpoint-<step>`` atomically (temporary folder, then rename) and prune old ones."""
        return save_trainer_checkpoint(self, self._write_weights)

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Restore the weights, optimizer, scheduler, RNG states and history from a checkpoint folder.

        Every file is read before anything is restored, so a damaged checkpoint leaves the trainer as it was.

        Raises:
            DistillError: when ``folder`` is not a checkpoint of this trainer, or was written with other settings.
            DamagedCheckpointError: when one of its files cannot be read (the message names it).
            UnsafeCheckpointError: when its state file holds objects beyond tensors and plain data.
        """
        folder = Path(folder)
        state = load_trainer_state(folder, self.checkpoint_kind, f"pass a folder under "
                                   f"{self.output_dir / CHECKPOINTS_DIR} or resume=True to find the latest",
                                   required=self._weight_files())
        self.config.check_resumable_from(type(self.config).from_dict(state["config"]), folder)
        weights = self._read_weights(folder)
        self._apply_weights(folder, weights, state)
        restore_trainer_state(self, state)

    def save_final(self) -> Path:
        """Write the output folder: the model files, ``r2r_training.json`` and the model card ``README.md``."""
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        self._write_model(out)
        info = self.training_info()
        atomic_write_text(out / TRAINING_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(out / "README.md", self._model_card(info))
        return out

    def _run_info(self) -> dict[str, Any]:
        """The parts of :meth:`training_info` every trainer writes: config, steps, runtime, curves."""
        return {"config": self.config.to_dict(), "steps": self.step, "runtime": self.runtime_info(),
                "loss_curve": self.history, "validation": self.validation}

    def runtime_info(self) -> dict[str, Any]:
        """How the run was executed (for the output's metadata)."""
        return {"runtime": type(self.runtime).__name__, "processes": self.num_processes,
                "mixed_precision": str(getattr(self.runtime, "mixed_precision", "no")), "device": str(self.device)}


__all__ = ["TRAINING_FILE", "Callback", "TrainResult", "TrainerLoop"]
