"""Command-line flags derived from config dataclasses (help from each field's ``help`` metadata).

Every generated flag defaults to ``None`` so that the dataclass stays the one source of defaults: only the flags the
user gave are passed to the config.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float,
                          "str | None": str}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows argparse defaults, except ``None``: config-derived flags default to ``None`` and name their real default
    (the dataclass's) in their help already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def flag_name(name: str) -> str:
    """``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def add_config_arguments(group: Any, cls: type, *, aliases: Mapping[str, Iterable[str]] | None = None,
                         skip: Iterable[str] = ()) -> None:
    """Add one flag per field of the dataclass ``cls`` to ``group`` (a parser or argument group)."""
    aliases = aliases or {}
    skipped = set(skip)
    defaults = cls()
    for item in dataclasses.fields(cls):
        if item.name in skipped:
            continue
        names = [*aliases.get(item.name, ()), flag_name(item.name)]
        default = getattr(defaults, item.name)
        text = f"{item.metadata.get('help', '')} (default: {default})"
        kind = str(item.type)
        if kind == "bool":
            group.add_argument(*names, dest=item.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind.startswith("tuple"):
            group.add_argument(*names, dest=item.name, nargs="+", default=None, metavar="NAME", help=text)
        else:
            group.add_argument(*names, dest=item.name, type=_TYPES.get(kind, str), default=None,
                               metavar=item.metadata.get("metavar") or item.name.split("_")[-1].upper(), help=text)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the flags the user gave (others keep the dataclass defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if getattr(args, f.name, None) is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)
