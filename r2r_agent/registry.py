"""One explicit registry for things users pick by name, written ``name`` or ``name:ARG``.

Three lists use it: the evaluated systems (``adapter:PATH``), the datasets (``beir:PATH``) and the teachers
(``openai:MODEL``). Names are looked up exactly, never by a part of a name; a duplicate name is refused.

Example:
    >>> kinds = Registry[str]("teacher")
    >>> _ = kinds.register("openai", "chat endpoint", argument="MODEL", description="an OpenAI-compatible server")
    >>> entry, arg = kinds.parse("openai:gpt-4o-mini")
    >>> entry.value, arg
    ('chat endpoint', 'gpt-4o-mini')
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import InvalidInputError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name.

    Attributes:
        name: The exact name (before ``:`` for an entry that takes an argument).
        value: What the name stands for (a builder, a loader...).
        argument: The name of the argument after ``name:`` (``"PATH"``), or ``None`` when it takes none.
        description: One line for listings and ``--help``.
    """

    name: str
    value: T
    argument: str | None = None
    description: str = ""

    @property
    def usage(self) -> str:
        """How users write it: ``"beir:PATH"`` or ``"dl19"``."""
        return f"{self.name}:{self.argument}" if self.argument else self.name


class Registry(Generic[T]):
    """Names (``name`` or ``name:ARG``) mapped to values, in registration order.

    Args:
        kind: What the entries are (``"system"``, ``"dataset"``), used in error messages.
        hint: A sentence appended to the unknown-name error (e.g. how to bring your own).
        forbidden: Characters a name may not contain besides ``':'`` (e.g. ``","`` for comma-separated lists).
    """

    def __init__(self, kind: str, *, hint: str = "", forbidden: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self.forbidden = ":" + forbidden
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, value: T, *, argument: str | None = None, description: str = "") -> Entry[T]:
        """Add ``name``.

        Raises:
            InvalidInputError: when the name is taken, empty, or contains ``':'`` or a forbidden character.
        """
        if not name or any(c in name for c in self.forbidden):
            raise InvalidInputError(f"A {self.kind} name must be non-empty and contain none of "
                                    f"{list(self.forbidden)}, got {name!r}.")
        if name in self._entries:
            raise InvalidInputError(f"The {self.kind} {name!r} is already registered; pick another name.")
        entry = Entry(name, value, argument, description)
        self._entries[name] = entry
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def usages(self) -> list[str]:
        """Every entry as users write it, e.g. ``["dl19", "beir:PATH"]``."""
        return [entry.usage for entry in self]

    def get(self, name: str) -> Entry[T]:
        """The entry named exactly ``name`` (without an argument).

        Raises:
            InvalidInputError: for an unknown name, listing the known ones (and the closest, if any).
        """
        entry = self._entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            guess = f" Did you mean {self._entries[close[0]].usage!r}?" if close else ""
            raise InvalidInputError(f"Unknown {self.kind} {name!r}.{guess} Known: {', '.join(self.usages())}."
                                    + (f" {self.hint}" if self.hint else ""))
        return entry

    def parse(self, text: str) -> tuple[Entry[T], str | None]:
        """Split ``"name"`` or ``"name:ARG"`` at the first colon and look the name up exactly.

        Raises:
            InvalidInputError: for an unknown name, a missing argument or an argument the entry does not take.

        Example:
            >>> r = Registry[int]("dataset")
            >>> _ = r.register("beir", 1, argument="PATH")
            >>> r.parse("beir:data/scifact:v2")[1]
            'data/scifact:v2'
        """
        base, sep, argument = text.strip().partition(":")
        entry = self.get(base)
        argument = argument.strip()
        if entry.argument and not argument:
            raise InvalidInputError(f"The {self.kind} {base!r} needs an argument: write {entry.usage}, got {text!r}.")
        if not entry.argument and sep:
            raise InvalidInputError(f"The {self.kind} {base!r} takes no argument; write {base!r}, got {text!r}.")
        return entry, (argument or None)


__all__ = ["Entry", "Registry"]
