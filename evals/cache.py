"""The old name of :mod:`.result_cache` (``r2r eval``'s per-query result cache), kept through 0.2; import from there.

Renamed because three modules were called ``cache`` (this one, :mod:`r2r_agent.training.cache`, the teacher's answer
cache, and the core's score cache).
"""

from .result_cache import PAYLOADS, ResultCache, input_hash

__all__ = ["PAYLOADS", "ResultCache", "input_hash"]
