"""Helpers for optional dependencies (extras), imported lazily."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingExtraError


def is_available(module: str) -> bool:
    """Whether ``module`` can be imported, checked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra_error(module: str, extra: str, purpose: str) -> MissingExtraError:
    """The error to raise when ``module`` (part of the ``extra`` extra) is needed for ``purpose``."""
    return MissingExtraError(
        f"{purpose} needs the optional dependency {module!r}, which is not installed. "
        f'Install it with: pip install "r2r-agent[{extra}]"'
    )


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra_error(module, extra, purpose) from exc
