"""Progress bars that the library shows only when asked (the CLI asks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


@contextmanager
def maybe_progress(enabled: bool, **kwargs: Any) -> Iterator[Any]:
    """A ``tqdm`` bar when ``enabled``, else an object with the same no-op methods."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(**kwargs) as bar:
        yield bar
