"""Errors raised by r2r-agent.

Every error derives from :class:`R2RError`. Input errors also derive from the matching built-in (``ValueError``,
``TypeError``) so callers that already catch those keep working.
"""

from __future__ import annotations


class R2RError(Exception):
    """Base class of every error raised by r2r-agent."""


class InvalidInputError(R2RError, ValueError):
    """An argument has the right type but an unusable value (an empty query, ``top_n <= 0``, ...)."""


class InvalidTypeError(R2RError, TypeError):
    """An argument has the wrong type (a vector store where a retriever is expected, ...); the message says what to
    pass instead."""


class InvalidPassageError(InvalidTypeError):
    """A passage is not a string, a :class:`~r2r_agent.Passage` or a mapping with a string ``text``."""


class ModelPreparationError(R2RError, RuntimeError):
    """A model could not be located, prepared or loaded."""


class MissingExtraError(R2RError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` command that adds it."""


class AdapterError(ModelPreparationError):
    """A LoRA adapter folder is unusable (not JSON, unknown target modules, a rank its weights do not have...).

    Raised before the base model is touched: the base model's prepared copy is never rebuilt for it.
    """
