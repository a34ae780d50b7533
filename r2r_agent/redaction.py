"""Secrets that show themselves nowhere: :class:`Secret` holds one, :class:`Redactor` removes it from text and JSON.

A server may echo a credential back in an error body or a reply, and not always as it was sent: JSON-escaped
(``sk-proj\\/...``, ``\\u0073k-...``), URL-encoded, inside the base64 of a ``Basic`` header, or cut short. The
redactor replaces every encoding it knows of *before* anything is cut or shown, and scrubs decoded JSON value by value
(so no escape can hide a secret from it).
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

#: What a secret is replaced with.
MASK = "***"
#: Secrets shorter than this are not searched for inside base64 (a few characters would match by chance).
_MIN_BASE64 = 6


class Secret:
    """A string that never shows itself: ``repr``/``str`` print ``'***'``; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself (only for the request header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __copy__(self) -> Secret:  # immutable: copies (deep ones too, e.g. pydantic's) share it
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (the key would travel in the bytes); build the client where it runs")


def _lower_hex(quoted: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that encode only ``data``, at each of the three byte alignments it can start at
    inside a longer encoded text (the characters shared with what surrounds it differ, so they are left out)."""
    cores = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        core = encoded[-(-4 * shift // 3): (8 * (shift + len(data))) // 6]
        if len(core) >= 4:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def encodings(secret: str) -> set[str]:
    """The spellings of ``secret`` a server may echo: as is, JSON-escaped, Python-escaped, URL-encoded (either hex
    case), HTML-escaped, and inside base64.

    Example:
        >>> forms = encodings("sk-a/b")
        >>> all(f in forms for f in ["sk-a/b", "sk-a\\\\/b", "sk-a%2Fb", "sk-a%2fb", "c2stYS9i"])
        True
    """
    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"), html.escape(secret)}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    for quoted in (urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), urllib.parse.quote_plus(secret)):
        forms |= {quoted, _lower_hex(quoted)}
    if len(secret) >= _MIN_BASE64:
        forms |= _base64_cores(secret.encode())
    return {form for form in forms if form}


class Redactor:
    """Replaces each secret, in every spelling of :func:`encodings`, with ``***``.

    Args:
        secrets: The secrets (empty ones are ignored).
        basic: A ``(user, password)`` pair sent as HTTP basic auth: its ``Basic`` token is a secret too.

    Example:
        >>> redact = Redactor(["sk-SECRET-1"], basic=("user", "pw-42"))
        >>> redact('{"echo": "Bearer sk-SECRET-1", "auth": "Basic dXNlcjpwdy00Mg=="}')
        '{"echo": "Bearer ***", "auth": "Basic ***"}'
    """

    def __init__(self, secrets: Iterable[str], *, basic: tuple[str, str] | None = None) -> None:
        forms = {form for secret in secrets if secret for form in encodings(secret)}
        if basic is not None:
            forms |= _base64_cores(f"{basic[0]}:{basic[1]}".encode())
        self._pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) \
            if forms else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        """``text`` without any secret (redact *before* cutting a text short: a cut can leave part of one)."""
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def scrub(self, data: Any) -> Any:
        """A decoded JSON value with every string in it (object keys too) redacted; iterative, so any depth works."""
        if self._pattern is None:
            return data
        root: list[Any] = [data]
        stack: list[tuple[Any, Any]] = [(root, 0)]
        while stack:
            holder, key = stack.pop()
            value = holder[key]
            if isinstance(value, str):
                holder[key] = self(value)
            elif isinstance(value, list):
                stack.extend((value, index) for index in range(len(value)))
            elif isinstance(value, dict):
                renamed = {self(k) if isinstance(k, str) else k: v for k, v in value.items()}
                value.clear()
                value.update(renamed)
                stack.extend((value, k) for k in value)
        return root[0]


__all__ = ["MASK", "Redactor", "Secret", "encodings"]
