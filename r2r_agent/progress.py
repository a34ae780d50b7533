"""Progress bars that the library shows only when asked (the CLI asks), and quiet model loading."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_quiet_lock = threading.Lock()
_quiet_depth = 0
_bars_were_enabled = False


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


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Load models without transformers' per-load "Loading weights" bars and known third-party deprecation noise.

    Every load of every model printed a bar (and PEFT's merge a ``FutureWarning`` about
    ``is_gradient_checkpointing``, an attribute PEFT reads, not ours) on every command and adapter call; a library
    should be silent when it works. The bars are turned off only while a model loads and turned back on afterwards
    (when they were on), so the caller's own transformers loads keep theirs. Nests and is safe across threads: the
    last one out restores the setting. The one-time preparation of the default model shows its own bar when asked
    (:func:`maybe_progress`).
    """
    global _quiet_depth, _bars_were_enabled
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a core dependency
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _bars_were_enabled = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        _quiet_depth += 1
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _bars_were_enabled:
                hf_logging.enable_progress_bar()
