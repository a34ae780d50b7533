"""Choosing a teacher by name and settings: ``--teacher KIND:ARG``, shared by ``r2r teach`` and ``r2r eval``.

The kinds are an explicit registry (:data:`TEACHER_KINDS`, a core :class:`~r2r_agent.registry.Registry`), looked up
by exact name:

- ``openai:MODEL``: :class:`~r2r_agent.training.OpenAIChatTeacher`, any OpenAI-compatible endpoint at
  ``--teacher-url`` (vLLM, Ollama, llama.cpp server, hosted APIs);
- ``transformers:PATH``: :class:`~r2r_agent.training.TransformersTeacher`, a local causal-LM folder run in-process.

:class:`TeacherSettings` holds the flags (they derive from its fields); :meth:`TeacherSettings.build` makes the
teacher. Imports nothing heavy.

Example:
    >>> parse_teacher_spec("openai:gpt-4o-mini")
    ('openai', 'gpt-4o-mini')
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from r2r_agent.cli_flags import add_config_arguments, config_from_args
from r2r_agent.errors import InvalidInputError
from r2r_agent.registry import Registry


@dataclass(frozen=True)
class TeacherSettings:
    """Which teacher to use and how to run it (the ``--teacher*`` flags).

    Attributes:
        teacher: ``KIND:ARG``, e.g. ``openai:gpt-4o-mini`` or ``transformers:/models/Qwen2.5-7B-Instruct``.
        teacher_url: The API root for ``openai:`` teachers.
        api_key_env: Environment variable holding the API key (the key itself is never a flag).
        teacher_name: The name in caches (default: derived from the model and settings).
        teacher_temperature: Sampling temperature (0: greedy, reproducible).
        teacher_max_tokens: Upper bound on each answer's length in tokens.
        teacher_seed: Sampling seed of ``transformers:`` teachers (unused when greedy).
        teacher_adapter: A PEFT adapter folder for ``transformers:`` teachers.
        teacher_dtype: Weight dtype of ``transformers:`` teachers.
        teacher_device: Torch device of ``transformers:`` teachers (default CPU).
        teacher_timeout: Seconds per request of ``openai:`` teachers.
        teacher_max_retries: Retries of ``openai:`` teachers on timeouts, 429 and 5xx.
        teacher_max_concurrency: Requests in flight at most for ``openai:`` teachers.
    """

    teacher: str | None = field(default=None, metadata={
        "help": "KIND:ARG: openai:MODEL (an OpenAI-compatible endpoint at --teacher-url) or transformers:PATH "
                "(a local causal-LM folder)"})
    teacher_url: str | None = field(default=None, metadata={
        "help": "openai: API root, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "openai: environment variable holding the API key (unset or empty: no key is sent)"})
    teacher_name: str | None = field(default=None, metadata={
        "help": "name in the caches (default: from the model and settings); change it when answers may change"})
    teacher_temperature: float = field(default=0.0, metadata={"help": "sampling temperature (0: greedy)"})
    teacher_max_tokens: int = field(default=2048, metadata={"help": "longest answer, in tokens"})
    teacher_seed: int = field(default=0, metadata={"help": "transformers: sampling seed (unused when greedy)"})
    teacher_adapter: str | None = field(default=None, metadata={"help": "transformers: a PEFT adapter folder"})
    teacher_dtype: str = field(default="float32", metadata={"help": "transformers: auto, float32 or bfloat16"})
    teacher_device: str | None = field(default=None, metadata={"help": "transformers: torch device, e.g. cuda"})
    teacher_timeout: float = field(default=120.0, metadata={"help": "openai: seconds per request"})
    teacher_max_retries: int = field(default=4, metadata={"help": "openai: retries on timeouts, 429 and 5xx"})
    teacher_max_concurrency: int = field(default=4, metadata={"help": "openai: requests in flight at most"})

    def __post_init__(self) -> None:
        if self.teacher is not None:
            parse_teacher_spec(self.teacher)

    def build(self) -> Any:
        """The teacher these settings describe.

        Raises:
            InvalidInputError: when no teacher is named, the kind is unknown, or a required setting is missing.
        """
        if self.teacher is None:
            raise InvalidInputError(f"no teacher given: pass --teacher KIND:ARG ({', '.join(teacher_usages())})")
        kind, arg = parse_teacher_spec(self.teacher)
        return TEACHER_KINDS.get(kind).value(arg, self)

    def describe(self) -> dict[str, Any]:
        """The settings that matter for reproducing a run (no secrets: the key's variable name, not the key)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


#: Builds a teacher from the argument after ``KIND:`` and the settings.
TeacherBuilder = Callable[[str, TeacherSettings], Any]


def _openai(model: str, settings: TeacherSettings) -> Any:
    from .http_teacher import OpenAIChatTeacher

    if not settings.teacher_url:
        raise InvalidInputError(f"--teacher openai:{model} needs --teacher-url, the API root (e.g. "
                                "http://localhost:8000/v1 for vLLM, https://api.openai.com/v1 for OpenAI)")
    api_key = (os.environ.get(settings.api_key_env) or None) if settings.api_key_env else None
    return OpenAIChatTeacher(model, base_url=settings.teacher_url, api_key=api_key, name=settings.teacher_name or "",
                             temperature=settings.teacher_temperature, max_tokens=settings.teacher_max_tokens,
                             timeout=settings.teacher_timeout, max_retries=settings.teacher_max_retries,
                             max_concurrency=settings.teacher_max_concurrency)


def _transformers(path: str, settings: TeacherSettings) -> Any:
    from .local_teacher import TransformersTeacher

    return TransformersTeacher(path, adapter=settings.teacher_adapter, max_new_tokens=settings.teacher_max_tokens,
                               temperature=settings.teacher_temperature, seed=settings.teacher_seed,
                               dtype=settings.teacher_dtype, device=settings.teacher_device,
                               name=settings.teacher_name or "")


#: The teacher kinds ``--teacher KIND:ARG`` accepts, by exact name.
TEACHER_KINDS: Registry[TeacherBuilder] = Registry(
    "teacher", hint="Other teachers (a LangChain or LlamaIndex model, your own) plug in through the Python API: any "
                    "object with a name and complete(messages).")
TEACHER_KINDS.register("openai", _openai, argument="MODEL",
                       description="an OpenAI-compatible chat-completions endpoint at --teacher-url")
TEACHER_KINDS.register("transformers", _transformers, argument="PATH",
                       description="a local Hugging Face causal-LM folder, run in-process")


def teacher_usages() -> list[str]:
    """The accepted forms, e.g. ``["openai:MODEL", "transformers:PATH"]``."""
    return TEACHER_KINDS.usages()


def parse_teacher_spec(text: str) -> tuple[str, str]:
    """Split ``KIND:ARG`` at the first colon and check the kind (exactly) and that ``ARG`` is there.

    Raises:
        InvalidInputError: naming every accepted form.

    Example:
        >>> parse_teacher_spec("transformers:/models/qwen:7b")
        ('transformers', '/models/qwen:7b')
    """
    try:
        entry, arg = TEACHER_KINDS.parse(text)
    except InvalidInputError as exc:
        usages = ", ".join(teacher_usages())
        reason = str(exc) if usages in str(exc) else f"{exc} Accepted: {usages}."
        raise InvalidInputError(f"--teacher {text!r}: {reason}") from exc
    if arg is None:  # pragma: no cover - every kind takes an argument, so parse() already refused
        raise InvalidInputError(f"--teacher {text!r}: write {entry.usage}")
    return entry.name, arg


def add_teacher_arguments(group: Any, *, aliases: Mapping[str, Iterable[str]] | None = None) -> None:
    """Add the :class:`TeacherSettings` flags (``--teacher``, ``--teacher-url``, ...) to a parser or group."""
    add_config_arguments(group, TeacherSettings, aliases=aliases)


def teacher_settings_from_args(args: argparse.Namespace, *, legacy_model: str | None = None) -> TeacherSettings:
    """The :class:`TeacherSettings` of parsed flags (unset flags keep the defaults).

    Args:
        args: Parsed flags from a parser given :func:`add_teacher_arguments`.
        legacy_model: The value of ``r2r teach --model MODEL``, the older spelling of ``--teacher openai:MODEL``.

    Raises:
        InvalidInputError: when both ``--teacher`` and ``--model`` are given.
    """
    settings = config_from_args(TeacherSettings, args)
    if legacy_model:
        if settings.teacher is not None:
            raise InvalidInputError(f"--model {legacy_model} is the older spelling of --teacher openai:{legacy_model}; "
                                    f"pass one of them, not both (got --teacher {settings.teacher})")
        settings = replace(settings, teacher=f"openai:{legacy_model}")
    return settings


__all__ = ["TEACHER_KINDS", "TeacherBuilder", "TeacherSettings", "add_teacher_arguments", "parse_teacher_spec",
           "teacher_settings_from_args", "teacher_usages"]
