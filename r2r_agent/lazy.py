"""Models loaded the first time a call needs them.

:meth:`Student.default <r2r_agent.Student.default>` builds its SmolLM2 explainer and LM re-scorer on one
:class:`SharedCausalLM`: nothing is read from disk until an explanation is written with the LM (``explain="full"``,
``comparison="lm"``) or the re-scorer runs (``rescore_top``). The adapters' default (``explain="evidence"``) never
does, so it pays for the MiniLM scorer only (issue 20 item 6: 529 MB and no SmolLM2 load instead of 1,266 MB and
+7.4 s).

* :class:`LazyExplainer` is an :class:`~r2r_agent.Explainer` (same methods, settings and ``isinstance``) whose
  ``model`` and ``tokenizer`` come from the shared handle.
* :class:`LazyScorer` is a :class:`~r2r_agent.Scorer` built on first use; other attributes are read from the built
  scorer (which builds it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .explainer import Explainer
from .scorers import Scorer, Scores


@runtime_checkable
class ReportsLoading(Protocol):
    """A part that may load its model during a call says how long that took, once (the trace records it apart from
    the stages: the explain stage's time is the LM's generation only)."""

    def take_load_seconds(self) -> float:
        """Seconds spent loading since the last time this was asked (0.0 when nothing loaded)."""
        ...


def take_load_seconds(*parts: object) -> float:
    """The loading time the ``parts`` that report it (:class:`ReportsLoading`) have not reported yet, summed."""
    return sum(part.take_load_seconds() for part in parts if isinstance(part, ReportsLoading))


class SharedCausalLM:
    """A causal LM and its tokenizer, loaded once, the first time either is asked for, for everything sharing it.

    Thread-safe: concurrent first uses load once. A load that fails raises to the caller and is tried again on the
    next use (nothing half-loaded is kept).

    Args:
        load: Returns ``(model, tokenizer)``; called at most once successfully.
        name: What is loaded, for reprs and logs.
    """

    def __init__(self, load: Callable[[], tuple[Any, Any]], *, name: str = "causal LM") -> None:
        self._load = load
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._unreported_seconds = 0.0
        self.name = name

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (asking does not load it)."""
        return self._loaded is not None

    def get(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loading them first if needed."""
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    began = time.perf_counter()
                    self._loaded = self._load()
                    self._unreported_seconds += time.perf_counter() - began
                loaded = self._loaded
        return loaded

    def take_load_seconds(self) -> float:
        """Seconds spent loading since last asked (:class:`ReportsLoading`)."""
        with self._lock:
            seconds, self._unreported_seconds = self._unreported_seconds, 0.0
        return seconds

    def set(self, model: Any = None, tokenizer: Any = None) -> None:
        """Replace the model and/or tokenizer (the other is loaded first where it was not yet)."""
        current_model, current_tokenizer = self.get()
        self._loaded = (current_model if model is None else model,
                        current_tokenizer if tokenizer is None else tokenizer)

    @property
    def model(self) -> Any:
        """The model (loads it)."""
        return self.get()[0]

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loads it with the model)."""
        return self.get()[1]

    def __repr__(self) -> str:
        return f"SharedCausalLM({self.name!r}, loaded={self.loaded})"


class LazyExplainer(Explainer):
    """An :class:`~r2r_agent.Explainer` whose model loads from a :class:`SharedCausalLM` the first time it writes.

    Args:
        shared: The shared model handle.
        name: An identifier recorded in rankings (known without loading).
        **settings: The other :class:`~r2r_agent.Explainer` settings (``max_new_tokens``...).
    """

    def __init__(self, shared: SharedCausalLM, *, name: str = "explainer", **settings: Any) -> None:
        self.shared = shared
        super().__init__(None, None, name=name, **settings)  # the None model and tokenizer are ignored below

    @property  # type: ignore[override]
    def model(self) -> Any:
        """The explainer's LM (loads it)."""
        return self.shared.model

    @model.setter
    def model(self, value: Any) -> None:
        if value is not None:
            self.shared.set(model=value)

    @property  # type: ignore[override]
    def tokenizer(self) -> Any:
        """The LM's tokenizer (loads the LM)."""
        return self.shared.tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        if value is not None:
            self.shared.set(tokenizer=value)

    def take_load_seconds(self) -> float:
        """Seconds its shared model spent loading since last asked (:class:`ReportsLoading`)."""
        return self.shared.take_load_seconds()

    def __repr__(self) -> str:
        return f"LazyExplainer({self.name!r}, loaded={self.shared.loaded})"


class LazyScorer:
    """A :class:`~r2r_agent.Scorer` built the first time it scores (e.g. the default student's LM re-scorer).

    Args:
        name: The scorer's name (known without building it).
        build: Returns the scorer; called at most once successfully.
    """

    def __init__(self, name: str, build: Callable[[], Scorer]) -> None:
        self.name = name
        self._build = build
        self._lock = threading.Lock()
        self._scorer: Scorer | None = None

    @property
    def built(self) -> bool:
        """Whether the scorer has been built (asking does not build it)."""
        return self._scorer is not None

    def get(self) -> Scorer:
        """The scorer, built first if needed."""
        scorer = self._scorer
        if scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = self._build()
                scorer = self._scorer
        return scorer

    def score(self, query: str, passages: Sequence[str]) -> Scores | Sequence[float]:
        """Score with the built scorer."""
        return self.get().score(query, passages)

    def __getattr__(self, attribute: str) -> Any:
        # Only called for what this wrapper lacks (the built scorer's model, budgets...): those build it. Private and
        # special names never do, so copying, pickling or protocol probes of dunders stay cheap.
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.get(), attribute)

    def __repr__(self) -> str:
        return f"LazyScorer({self.name!r}, built={self.built})"


__all__ = ["LazyExplainer", "LazyScorer", "SharedCausalLM"]
