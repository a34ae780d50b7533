"""Resumable checkpoints of both trainers: write atomically, prune, find, read safely, restore, fall back.

A checkpoint is a folder ``OUTPUT/checkpoints/checkpoint-<step>`` with the trainer's weights (safetensors) and
``trainer_state.pt``: the optimizer, scheduler and generator states, the step, the logs and the config. 
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DistillError
from .rng import rng_state, set_rng_state

if TYPE_CHECKING:
    from .trainer_loop import TrainerLoop

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.pt"
_PREFIX = "checkpoint-"
_STATE_KEYS = ("step", "optimizer", "scheduler", "rng", "history", "validation", "config")


def _step_of(path: Path) -> int:
    return int(path.name[len(_PREFIX):])


def checkpoint_folders(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints under ``output_dir/checkpoints`` (those with a state file), newest first."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
            and p.name[len(_PREFIX):].isdigit() and (p / STATE_FILE).is_file()]
    return sorted(done, key=_step_of, reverse=True)


def find_latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The most recent complete checkpoint under ``output_dir/checkpoints``, or ``None``."""
    folders = checkpoint_folders(output_dir)
    return folders[0] if folders else None


def save_trainer_checkpoint(trainer: TrainerLoop, write_weights: Callable[[Path], None]) -> Path:
    """Write ``checkpoints/checkpoint-<step>`` of ``trainer`` atomically (temporary folder, then rename); prune old.

    ``write_weights(folder)`` writes the trainer's weights; the state holds only tensors and plain data.
    """
    import torch

    root = trainer.output_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{trainer.step:07d}"
    temporary = root / f".tmp-{final.name}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    write_weights(temporary)
    state = {"step": int(trainer.step), "optimizer": trainer.optimizer.state_dict(),
             "scheduler": trainer.scheduler.state_dict(), "rng": rng_state(), "history": list(trainer.history),
             "validation": list(trainer.validation), "config": trainer.config.to_dict(),
             "base_model": str(trainer.base_model)}
    torch.save(state, temporary / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    keep = trainer.config.keep_checkpoints
    if keep:
        done = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
                       and p.name[len(_PREFIX):].isdigit()), key=_step_of)
        for old in done[:-keep]:
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


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a checkpoint's weights file."""
    from safetensors.torch import load_file

    return load_file(str(path))


def restore_trainer_state(trainer: TrainerLoop, state: Mapping[str, Any]) -> None:
    """Put the optimizer, scheduler, RNG states, step, history and validation of a checkpoint back into ``trainer``."""
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    trainer.step = int(state["step"])
    trainer.history = list(state["history"])
    trainer.validation = list(state["validation"])


def checkpoint_to_resume(output_dir: Path, resume: bool | str | os.PathLike[str]) -> Path | None:
    """The checkpoint a trainer's ``train(resume=...)`` continues from: the latest (``True``), a folder, or none."""
    if resume is True:
        checkpoint = find_latest_checkpoint(output_dir)
        if checkpoint is None:
            logger.info("no checkpoint under %s; starting fresh", output_dir / CHECKPOINTS_DIR)
        return checkpoint
    return Path(resume) if resume else None


__all__ = ["CHECKPOINTS_DIR", "STATE_FILE", "checkpoint_folders", "checkpoint_to_resume", "find_latest_checkpoint",
           "load_trainer_state", "read_safetensors", "restore_trainer_state", "save_trainer_checkpoint"]
