"""Resumable checkpoints of both trainers: write atomically, prune, find, read safely, restore, fall back.

A checkpoint is a folder ``OUTPUT/checkpoints/checkpoint-<step>`` with the trainer's weights (safetensors) and
``trainer_state.pt``: the optimizer, scheduler and generator states, the step, the logs and the config. The state
holds only tensors and plain data and is read with ``torch.load(..., weights_only=True)``, so a planted file cannot
run code; one that holds anything else is refused (:class:`~r2r_agent.training.errors.UnsafeCheckpointError`).

Resuming from the latest checkpoint skips a damaged one (a truncated or corrupt file) with a warning naming the file
and takes the previous one; when none is usable it raises
:class:`~r2r_agent.training.errors.DamagedCheckpointError` saying what to do. Damaged files are never deleted: when
the run writes that step again, the damaged folder is moved aside to ``damaged-checkpoint-<step>``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import DamagedCheckpointError, DistillError, UnsafeCheckpointError
from .loop_config import LoopConfig
from .rng import rng_state, set_rng_state

logger = logging.getLogger(__name__)


class Checkpointed(Protocol):
    """What a checkpoint saves and restores of a trainer (:class:`~r2r_agent.training.trainer_loop.TrainerLoop`
    has it); declared here so this module does not import the loop that imports it."""

    output_dir: Path
    base_model: str
    config: LoopConfig
    step: int
    optimizer: Any
    scheduler: Any
    history: list[dict[str, float]]
    validation: list[dict[str, float | None]]
    damaged_checkpoints: set[Path]

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


def save_trainer_checkpoint(trainer: Checkpointed, write_weights: Callable[[Path], None]) -> Path:
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
    if final.resolve() in trainer.damaged_checkpoints:
        _move_aside(final)
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


def _move_aside(folder: Path) -> None:
    target = folder.with_name(f"damaged-{folder.name}")
    number = 1
    while target.exists():
        number += 1
        target = folder.with_name(f"damaged-{folder.name}-{number}")
    folder.rename(target)
    logger.warning("the damaged checkpoint %s was moved to %s (kept for you to inspect or delete)", folder, target)


def load_trainer_state(folder: Path, kind: str, hint: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """The saved trainer state of the checkpoint ``folder``, read without running code.

    Raises:
        DistillError: when ``folder`` has no state file (it is not ``kind`` checkpoint); the message ends in ``hint``.
        DamagedCheckpointError: when the state file or a ``required`` weights file is missing or cannot be read.
        UnsafeCheckpointError: when the state file holds objects beyond tensors and plain data.
    """
    import torch

    path = folder / STATE_FILE
    if not path.is_file():
        missing = [name for name in (STATE_FILE, *required) if not (folder / name).is_file()]
        raise DistillError(f"{folder} is not {kind} checkpoint (no {' and '.join(missing)}); {hint}")
    for name in required:
        if not (folder / name).is_file():
            raise DamagedCheckpointError(f"{folder / name} is missing", folder / name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise DamagedCheckpointError(f"{path} cannot be read ({type(exc).__name__}: {exc})", path) from exc
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        detail = f"it refers to {found.group(1)}" if found else "objects torch does not allow"
        raise UnsafeCheckpointError(
            f"{path} holds Python objects other than tensors, numbers, strings, lists and dicts ({detail}); it was "
            "not loaded, because unpickling them could run code. r2r-agent's checkpoints hold none: if you did not "
            f"write this file, delete {folder}; otherwise start without --resume (resume=False) in another output "
            "folder") from None
    except Exception as exc:  # truncated or corrupt: torch raises RuntimeError, EOFError, ... depending on where
        raise DamagedCheckpointError(f"{path} cannot be read ({type(exc).__name__}: {str(exc)[:160]})", path) from exc
    if not isinstance(state, dict) or any(key not in state for key in _STATE_KEYS):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise DamagedCheckpointError(f"{path} is not a trainer state (it has {keys}; expected {list(_STATE_KEYS)})",
                                     path)
    return state


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a checkpoint's weights file; :class:`DamagedCheckpointError` naming it when it cannot be read."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError (truncated header or data), OSError
        raise DamagedCheckpointError(f"{path} cannot be read ({type(exc).__name__}: {exc})", path) from exc


def restore_trainer_state(trainer: Checkpointed, state: Mapping[str, Any]) -> None:
    """Put the optimizer, scheduler, RNG states, step, history and validation of a checkpoint back into ``trainer``."""
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    trainer.step = int(state["step"])
    trainer.history = list(state["history"])
    trainer.validation = list(state["validation"])


def resume_checkpoint(output_dir: Path, resume: bool | str | os.PathLike[str],
                      load: Callable[[Path], None]) -> tuple[Path | None, list[Path]]:
    """Load the checkpoint a ``train(resume=...)`` continues from with ``load(folder)``.

    ``resume=True``: the latest usable checkpoint; a damaged one is skipped with a warning naming its file. A path:
    that checkpoint. ``False``: none.

    Returns:
        The folder loaded (``None``: start fresh) and the damaged checkpoint folders skipped.

    Raises:
        DamagedCheckpointError: when the named checkpoint, or every checkpoint, is damaged.
    """
    if not resume:
        return None, []
    if resume is not True:
        folder = Path(resume)
        try:
            load(folder)
        except DamagedCheckpointError as exc:
            raise DamagedCheckpointError(f"cannot resume from {folder}: {exc}. Pass another checkpoint folder, "
                                         "resume=True (--resume) to take the latest usable one, or start without "
                                         "resuming", exc.path) from exc
        return folder, []
    folders = checkpoint_folders(output_dir)
    if not folders:
        logger.info("no checkpoint under %s; starting fresh", output_dir / CHECKPOINTS_DIR)
        return None, []
    damaged: list[DamagedCheckpointError] = []
    for index, folder in enumerate(folders):
        try:
            load(folder)
        except DamagedCheckpointError as exc:
            damaged.append(exc)
            following = f"trying the previous one, {folders[index + 1].name}" if index + 1 < len(folders) else \
                "no older checkpoint is left"
            logger.warning("checkpoint %s is damaged and is skipped: %s; %s (the damaged files are kept)", folder,
                           exc, following)
            continue
        return folder, [f.resolve() for f in folders[:index]]
    named = "; ".join(str(exc) for exc in damaged)
    raise DamagedCheckpointError(
        f"cannot resume from {output_dir / CHECKPOINTS_DIR}: every checkpoint is damaged ({named}). Start afresh "
        "without --resume (resume=False) in another output folder (a fresh run here would replace these "
        "checkpoints), or restore the damaged files from a backup (or delete those checkpoint folders) and resume "
        "again", damaged[0].path)


__all__ = ["CHECKPOINTS_DIR", "STATE_FILE", "checkpoint_folders", "find_latest_checkpoint", "load_trainer_state",
           "read_safetensors", "restore_trainer_state", "resume_checkpoint", "save_trainer_checkpoint"]
