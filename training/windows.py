"""Sliding windows over a candidate list, processed back to front so the best passages rise to the top.

With ``n`` candidates, window ``size`` and ``stride``, the first window covers the last ``size`` positions, each
next window starts ``stride`` positions earlier, and the last one starts at position 0 (as in RankGPT and R2R).
With ``stride < size`` windows overlap, so a strong passage found low in the list is carried up window by window.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from r2r_agent.errors import InvalidInputError


def sliding_windows(num_candidates: int, size: int = 20, stride: int = 10) -> list[range]:
    """The windows (ranges of positions in the current order), in the order they are processed.

    Args:
        num_candidates: How many candidates there are (0 gives no windows).
        size: Passages per window (>= 1).
        stride: How far each window moves towards the top (1 <= stride <= size, so no position is skipped).

    Example:
        >>> sliding_windows(10, size=4, stride=3)
        [range(6, 10), range(3, 7), range(0, 4)]
        >>> sliding_windows(3, size=4, stride=2)
        [range(0, 3)]
        >>> sliding_windows(0)
        []
    """
    if size < 1:
        raise InvalidInputError(f"window size must be >= 1, got {size}")
    if not 1 <= stride <= size:
        raise InvalidInputError(f"window stride must be between 1 and the window size ({size}), got {stride}; "
                                "a stride larger than the window would skip passages")
    if num_candidates < 0:
        raise InvalidInputError(f"num_candidates must be >= 0, got {num_candidates}")
    if num_candidates == 0:
        return []
    windows = []
    end = num_candidates
    while True:
        start = max(0, end - size)
        windows.append(range(start, end))
        if start == 0:
            return windows
        end -= stride


def window_hash(query: str, passages: Sequence[str]) -> str:
    """A content hash of a window as shown to the teacher (the query and the passages in their order).

    Example:
        >>> window_hash("q", ["a", "b"]) != window_hash("q", ["b", "a"])
        True
    """
    payload = json.dumps([query, list(passages)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


__all__ = ["sliding_windows", "window_hash"]
