"""Errors raised by the distillation tools (all derive from :class:`r2r_agent.errors.R2RError`)."""

from __future__ import annotations

from pathlib import Path

from r2r_agent.errors import InvalidInputError, R2RError


class ParseError(R2RError, ValueError):
    """A teacher's answer could not be turned into a :class:`~r2r_agent.training.TeacherAnswer`, even with repairs."""


class TeacherError(R2RError, RuntimeError):
    """A teacher backend failed to answer (timeouts, HTTP errors, retries exhausted)."""


class CacheError(R2RError, RuntimeError):
    """An annotation cache file is corrupt, foreign or from an incompatible version."""


class AnnotationFormatError(InvalidInputError):
    """An annotation file (e.g. the R2R training data) does not have the expected fields."""


class DistillError(R2RError, RuntimeError):
    """Distillation cannot run as configured (nothing to train on, a checkpoint that does not match, ...)."""


class CheckpointError(DistillError):
    """A checkpoint cannot be resumed from: a file in it is damaged, or holds objects that loading could run."""


class DamagedCheckpointError(CheckpointError):
    """A file of a checkpoint cannot be read (truncated, corrupt or missing).

    Attributes:
        path: The damaged file.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's ``trainer_state.pt`` holds Python objects beyond tensors and plain data; it is not loaded."""


class SplitLeakageError(InvalidInputError):
    """A validation split contains a query that also appears in the training split."""


__all__ = ["AnnotationFormatError", "CacheError", "CheckpointError", "DamagedCheckpointError", "DistillError",
           "ParseError", "SplitLeakageError", "TeacherError", "UnsafeCheckpointError"]
