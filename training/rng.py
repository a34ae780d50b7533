"""Randomness in training: seeding, the data order, and the generator states a checkpoint stores.

The data order is a pure function of the seed and the position in an endless stream (:func:`stream_indices`), so a
resumed run needs no sampler state. The generator states are stored as plain lists, numbers, strings and tensors only,
so a checkpoint loads with ``torch.load(..., weights_only=True)`` (no code runs while reading it).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def stream_indices(count: int, start: int, size: int, seed: int, salt: int) -> list[int]:
    """Items ``start .. start + size - 1`` of an endless stream of epochs over ``count`` examples.

    Each epoch is a fresh permutation from ``(seed, salt, epoch)``, so the items at any position are a pure function
    of the position: resuming at a step needs no saved sampler state.

    Example:
        >>> stream_indices(3, 0, 6, seed=0, salt=0)[:3] == stream_indices(3, 0, 3, seed=0, salt=0)
        True
    """
    import torch

    out: list[int] = []
    cache: dict[int, list[int]] = {}
    for position in range(start, start + size):
        epoch, offset = divmod(position, count)
        if epoch not in cache:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + salt * 7_919 + epoch)
            cache[epoch] = torch.randperm(count, generator=generator).tolist()
        out.append(cache[epoch][offset])
    return out


def seed_everything(seed: int) -> None:
    """Seed Python's, torch's and numpy's generators."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch in practice
        pass


def rng_state() -> dict[str, Any]:
    """Every generator's state as plain data: lists, numbers, strings and tensors (``weights_only``-loadable)."""
    import torch

    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # pragma: no cover - GPU only
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    try:
        import numpy

        kind, keys, pos, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    except ImportError:  # pragma: no cover
        pass
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state` output (lists or the tuples older checkpoints hold)."""
    import torch

    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # pragma: no cover - GPU only
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy

        kind, keys, pos, has_gauss, cached = state["numpy"]
        numpy.random.set_state((kind, numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached))


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


__all__ = ["rng_state", "seed_everything", "set_rng_state", "stream_indices"]
