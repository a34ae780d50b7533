"""A cache of scores: the same (scorer, query, passage) is scored by the model once.

An agent asks again and again about the passages it already retrieved; an eval reruns the same lists. Wrap any
scorer in :class:`CachedScorer` and a repeated (query, passage) pair costs a hash and a lookup. The judging stage
scores sentences through the same scorer, so evidence and verdicts are cached with the same keys.

* The key is a SHA-256 of the scorer's identity (:func:`scorer_identity`: its class, name, budgets and a fingerprint
  of its weights), the query and the passage, as the model reads them. The texts themselves are never stored.
* :class:`LRUScoreCache` (in process, bounded, thread-safe) is the default; :class:`SQLiteScoreCache` keeps scores
  on disk for evals and servers, safe to share between processes (SQLite's locking, write-ahead log).
* A cached score is the score the model gave: a cache never changes a result (tested against the model itself).
  ``Scores.cache_hits`` (and the ``score`` stage's ``StageCost.cache_hits``) says how many came from it.

Example:
    >>> from r2r_agent.score_cache import CachedScorer
    >>> class Length:
    ...     name = "length"
    ...     def score(self, query, passages):
    ...         return [float(len(p)) for p in passages]
    >>> scorer = CachedScorer(Length())
    >>> scorer.score("q", ["ab", "abc"]).cache_hits, scorer.score("q", ["abc", "x"]).cache_hits
    (0, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import InvalidInputError
from .scorers import Scorer, Scores, as_scores
from .validation import check_count

if TYPE_CHECKING:
    from .student import Student

#: Entries the default in-process cache keeps (about 200 bytes each: ~13 MB when full).
DEFAULT_LRU_SIZE = 65_536
#: The settings of a scorer that change its scores, read into its identity where it has them.
_SETTINGS = ("max_tokens", "max_tokens_per_passage", "window_rule", "max_query_tokens", "max_passage_tokens",
             "labels", "model")


@dataclass(frozen=True)
class CachedScore:
    """What the cache keeps of one (query, passage) score: the model's answer, nothing of the texts."""

    value: float
    truncated: bool = False
    query_truncated: bool = False
    windows: tuple[tuple[int, int, float], ...] = ()


@runtime_checkable
class ScoreCache(Protocol):
    """Where :class:`CachedScorer` keeps scores: look up many keys, store many."""

    def get_many(self, keys: Sequence[str]) -> list[CachedScore | None]:
        """The stored score of each key (``None`` where there is none)."""
        ...

    def put_many(self, items: Sequence[tuple[str, CachedScore]]) -> None:
        """Store each (key, score)."""
        ...


class LRUScoreCache:
    """An in-process, least-recently-used cache of at most ``maxsize`` scores (thread-safe).

    Args:
        maxsize: Entries kept (the least recently used go first).
    """

    def __init__(self, maxsize: int = DEFAULT_LRU_SIZE) -> None:
        check_count("LRUScoreCache: maxsize", maxsize)
        self.maxsize = maxsize
        self._entries: OrderedDict[str, CachedScore] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, keys: Sequence[str]) -> list[CachedScore | None]:
        out: list[CachedScore | None] = []
        with self._lock:
            for key in keys:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                out.append(found)
        return out

    def put_many(self, items: Sequence[tuple[str, CachedScore]]) -> None:
        with self._lock:
            for key, score in items:
                self._entries[key] = score
                self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every score."""
        with self._lock:
            self._entries.clear()


class SQLiteScoreCache:
    """Scores on disk in one SQLite file, shared safely by threads and processes (an eval's reruns, server workers).

    Only the keys (hashes) and the scores are written, never a query or a passage.

    Args:
        path: The database file (created with its folder when missing).
        timeout: Seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL, "
                               "truncated INTEGER NOT NULL, query_truncated INTEGER NOT NULL, windows TEXT)")

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=self.timeout)
                connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            except sqlite3.DatabaseError as exc:
                raise InvalidInputError(f"SQLiteScoreCache: {self.path} is not a usable SQLite file ({exc}); pass "
                                        "a new path or remove it") from exc
            self._local.connection = connection
        return connection

    def get_many(self, keys: Sequence[str]) -> list[CachedScore | None]:
        found: dict[str, CachedScore] = {}
        connection = self._connection()
        for start in range(0, len(keys), 500):  # SQLite limits the parameters of one statement
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, value, truncated, query_truncated, windows in connection.execute(
                    f"SELECT key, value, truncated, query_truncated, windows FROM scores WHERE key IN ({marks})",
                    chunk):
                found[key] = CachedScore(float(value), bool(truncated), bool(query_truncated),
                                         tuple(tuple(w) for w in json.loads(windows)) if windows else ())
        return [found.get(key) for key in keys]

    def put_many(self, items: Sequence[tuple[str, CachedScore]]) -> None:
        if not items:
            return
        with self._connection() as connection:  # one transaction
            connection.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                [(key, s.value, int(s.truncated), int(s.query_truncated),
                  json.dumps([list(w) for w in s.windows]) if s.windows else None) for key, s in items])

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _weights_fingerprint(model: Any) -> str:
    """A cheap fingerprint of a torch model's weights: their count, dtypes and the bytes of the first and last."""
    try:
        tensors = list(model.state_dict().values())
    except Exception:  # noqa: BLE001 - not a torch module: its type stands for it
        return type(model).__name__
    digest = hashlib.sha256(f"{type(model).__name__}:{len(tensors)}".encode())
    for tensor in tensors[:2] + tensors[-2:]:
        try:
            digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
        except Exception:  # noqa: BLE001 - packed (quantised) params and the like: their repr stands for them
            digest.update(repr(type(tensor)).encode())
    return digest.hexdigest()[:16]


def scorer_identity(scorer: Scorer) -> str:
    """What makes a scorer's scores its own: class, name, the budgets that change its scores, and a fingerprint of
    its model's weights (two scorers with one identity give the same score to the same pair)."""
    parts = [f"{type(scorer).__module__}.{type(scorer).__qualname__}", str(scorer.name)]
    for setting in _SETTINGS:
        value = getattr(scorer, setting, None)
        if setting == "model" and value is not None and not isinstance(value, str):
            parts.append(f"weights={_weights_fingerprint(value)}")
        elif value is not None:
            parts.append(f"{setting}={value}")
    return "|".join(parts)


class CachedScorer:
    """Any :class:`~r2r_agent.scorers.Scorer` behind a score cache: only the pairs not seen before reach the model.

    It is a scorer itself (same ``name``; ``visible_chars`` and every other attribute are the wrapped scorer's), so
    a :class:`~r2r_agent.Student` takes it as its scorer and the judging stage's sentence scores are cached too.

    Args:
        scorer: The scorer to wrap.
        cache: Where scores are kept (default: a new :class:`LRUScoreCache`).
        identity: The scorer's part of every key (default: :func:`scorer_identity`); give two processes sharing a
            :class:`SQLiteScoreCache` the same one only when their scorers are the same model.
    """

    def __init__(self, scorer: Scorer, cache: ScoreCache | None = None, *, identity: str | None = None) -> None:
        if not callable(getattr(scorer, "score", None)):
            raise InvalidInputError(f"CachedScorer: expected a scorer (with score(query, passages)), got "
                                    f"{type(scorer).__name__}")
        if cache is not None and not isinstance(cache, ScoreCache):
            raise InvalidInputError(f"CachedScorer: cache must have get_many and put_many (LRUScoreCache, "
                                    f"SQLiteScoreCache), got {type(cache).__name__}")
        self.scorer = scorer
        self.cache: ScoreCache = cache if cache is not None else LRUScoreCache()
        self._identity = identity
        self._identity_lock = threading.Lock()
        self.name = scorer.name

    @property
    def identity(self) -> str:
        """The scorer's part of every key, read on first use (a lazily built scorer is not built for it early)."""
        if self._identity is None:
            with self._identity_lock:
                if self._identity is None:
                    self._identity = scorer_identity(self.scorer)
        return self._identity

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes this wrapper lacks: the wrapped scorer's (visible_chars, tokenizer...).
        if name in ("scorer", "_identity", "_identity_lock", "cache"):
            raise AttributeError(name)
        return getattr(self.scorer, name)

    def __repr__(self) -> str:
        return f"CachedScorer({self.scorer!r}, {type(self.cache).__name__})"

    def key(self, query: str, passage: str) -> str:
        """The cache key of one pair: a hash of the identity, the query and the passage."""
        digest = hashlib.sha256()
        identity = self.identity
        for part in (identity, query, passage):
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.hexdigest()

    def score(self, query: str, passages: Sequence[str]) -> Scores:
        """The cached scores of pairs seen before, the wrapped scorer's for the rest (each new passage once)."""
        if not passages:
            return Scores(values=[])
        if not isinstance(query, str) or not all(isinstance(p, str) for p in passages):
            raise InvalidInputError("CachedScorer.score: expected a query string and a sequence of passage strings")
        keys = [self.key(query, p) for p in passages]
        found = self.cache.get_many(keys)
        missing = list(dict.fromkeys(k for k, hit in zip(keys, found) if hit is None))
        computed: dict[str, CachedScore] = {}
        if missing:
            first = {k: p for k, p in zip(keys, passages)}
            texts = [first[k] for k in missing]
            fresh = as_scores(self.scorer.score(query, texts), len(texts), self.scorer.name)
            windows = fresh.windows or [[] for _ in texts]
            computed = {k: CachedScore(v, t, fresh.query_truncated, tuple(tuple(w) for w in own))  # type: ignore[misc]
                        for k, v, t, own in zip(missing, fresh.values, fresh.truncated, windows)}
            self.cache.put_many(list(computed.items()))
        rows = [hit if hit is not None else computed[k] for k, hit in zip(keys, found)]
        return Scores(values=[r.value for r in rows], truncated=[r.truncated for r in rows],
                      query_truncated=any(r.query_truncated for r in rows),
                      cache_hits=sum(h is not None for h in found),
                      windows=[list(r.windows) for r in rows] if any(r.windows for r in rows) else [])


_EXPLAINER_SETTINGS = ("max_new_tokens", "max_passage_tokens", "max_query_tokens", "max_comparison_passage_tokens")


class CachedExplainer:
    """An explainer whose reasons and comparisons are kept in process (an LRU of ``maxsize`` texts): a repeated
    (query, passage, verdict, evidence) is not written again. Generation is greedy, so the kept text is the text the
    LM wrote for that input. Texts are never written to disk.

    Args:
        explainer: Any :class:`~r2r_agent.explainer.ExplainerLike`.
        maxsize: Texts kept (the least recently used go first).
    """

    def __init__(self, explainer: Any, maxsize: int = 4096) -> None:
        if not callable(getattr(explainer, "explain", None)):
            raise InvalidInputError(f"CachedExplainer: expected an explainer (with explain(query, passages, ...)), "
                                    f"got {type(explainer).__name__}")
        check_count("CachedExplainer: maxsize", maxsize)
        self.explainer = explainer
        self.name: str = explainer.name
        self.maxsize = maxsize
        self._texts: OrderedDict[str, tuple[str, bool, bool]] = OrderedDict()
        self._lock = threading.Lock()
        self._identity: str | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("explainer", "_texts", "_lock", "_identity"):
            raise AttributeError(name)
        return getattr(self.explainer, name)

    def __repr__(self) -> str:
        return f"CachedExplainer({self.explainer!r})"

    def _key(self, *parts: object) -> str:
        if self._identity is None:  # on first use: a lazy explainer's model is loaded by then
            pieces = [f"{type(self.explainer).__module__}.{type(self.explainer).__qualname__}", str(self.name)]
            pieces += [f"{s}={getattr(self.explainer, s, None)}" for s in _EXPLAINER_SETTINGS]
            model = getattr(self.explainer, "model", None)
            if model is not None and not isinstance(model, str):
                pieces.append(f"weights={_weights_fingerprint(model)}")
            self._identity = "|".join(pieces)
        return hashlib.sha256(json.dumps([self._identity, *parts], ensure_ascii=False).encode("utf-8",
                                                                                              "surrogatepass")
                              ).hexdigest()

    def _get(self, keys: Sequence[str]) -> list[tuple[str, bool, bool] | None]:
        with self._lock:
            found = [self._texts.get(k) for k in keys]
            for key, hit in zip(keys, found):
                if hit is not None:
                    self._texts.move_to_end(key)
            return found

    def _put(self, items: Sequence[tuple[str, tuple[str, bool, bool]]]) -> None:
        with self._lock:
            for key, value in items:
                self._texts[key] = value
                self._texts.move_to_end(key)
            while len(self._texts) > self.maxsize:
                self._texts.popitem(last=False)

    def explain(self, query: str, passages: Sequence[str], *, verdicts: Sequence[str | None] | None = None,
                evidence: Sequence[str | None] | None = None) -> Any:
        """The kept reason of each input seen before; the wrapped explainer writes the rest in one batch."""
        import time

        from .explainer import Generation

        start = time.perf_counter()
        verdict_list = list(verdicts) if verdicts is not None else [None] * len(passages)
        evidence_list = list(evidence) if evidence is not None else [None] * len(passages)
        keys = [self._key("explain", query, p, v, e) for p, v, e in zip(passages, verdict_list, evidence_list)]
        found = self._get(keys)
        missing = [i for i, hit in enumerate(found) if hit is None]
        tokens = 0
        if missing:
            result = self.explainer.explain(query, [passages[i] for i in missing],
                                            verdicts=None if verdicts is None else [verdict_list[i] for i in missing],
                                            evidence=None if evidence is None else [evidence_list[i] for i in missing])
            cut = list(result.truncated) or [False] * len(missing)
            fresh = [(keys[i], (text, flag, result.query_truncated))
                     for i, text, flag in zip(missing, result.texts, cut)]
            self._put(fresh)
            for (_, value), i in zip(fresh, missing):
                found[i] = value
            tokens = result.generated_tokens
        rows = [hit for hit in found if hit is not None]
        return Generation([r[0] for r in rows], [r[1] for r in rows], tokens, time.perf_counter() - start,
                          any(r[2] for r in rows))

    def compare_grounded(self, query: str, evidences: Sequence[str | None], verdicts: Sequence[str | None]) -> Any:
        """The kept comparison of these evidences and verdicts, or the wrapped explainer's."""
        import time

        from .explainer import Generation

        start = time.perf_counter()
        key = self._key("compare", query, list(evidences), list(verdicts))
        hit = self._get([key])[0]
        if hit is not None:
            return Generation([hit[0]], [False] * len(evidences), 0, time.perf_counter() - start, hit[2])
        result = self.explainer.compare_grounded(query, evidences, verdicts)
        if result.texts:
            self._put([(key, (result.texts[0], False, result.query_truncated))])
        return result


def with_score_cache(student: Student, cache: ScoreCache | str | os.PathLike[str] | None = None, *,
                     explanations: bool = True) -> Student:
    """A copy of ``student`` whose scorer (and LM re-scorer) read and fill a score cache: the simple way to turn
    the cache on. The models are shared, not copied; ``student`` itself is left as it was.

    A repeated call then scores nothing it scored before: the candidates' scores, and the sentences the judging
    stage scores for evidence and verdicts, come from the cache (``ranking.stages``: the ``score`` stage's
    ``cache_hits``). Explanations written by the LM are not cached.

    Args:
        student: The student to wrap (e.g. :meth:`Student.default() <r2r_agent.Student.default>`).
        cache: ``None``: an in-process :class:`LRUScoreCache` (one, shared by the scorer and the re-scorer, whose
            keys differ by scorer); a path: a :class:`SQLiteScoreCache` there (kept across runs, shared by
            processes); or any :class:`ScoreCache`.
        explanations: Also keep the explainer's texts in process (:class:`CachedExplainer`).

    Example:
        >>> from r2r_agent import Reranker, Student
        >>> from r2r_agent.score_cache import with_score_cache
        >>> reranker = Reranker(with_score_cache(Student.default()))            # doctest: +SKIP
        >>> reranker = Reranker(with_score_cache(Student.default(), "scores.sqlite"))   # doctest: +SKIP
    """
    import dataclasses

    from .student import Student

    if not isinstance(student, Student):
        raise InvalidInputError(f"with_score_cache: expected an r2r_agent.Student, got {type(student).__name__}; "
                                "to cache one scorer, wrap it: CachedScorer(scorer, cache)")
    if isinstance(cache, (str, os.PathLike)):
        store: ScoreCache = SQLiteScoreCache(cache)
    elif cache is None:
        store = LRUScoreCache()
    elif isinstance(cache, ScoreCache):
        store = cache
    else:
        raise InvalidInputError(f"with_score_cache: cache must be None (in memory), a path (SQLite) or a "
                                f"ScoreCache, got {type(cache).__name__}")

    def wrap(scorer: Scorer | None) -> Any:
        if scorer is None or isinstance(scorer, CachedScorer):
            return scorer
        return CachedScorer(scorer, store)

    explainer = student.explainer
    if explanations and explainer is not None and not isinstance(explainer, CachedExplainer):
        explainer = CachedExplainer(explainer)
    return dataclasses.replace(student, scorer=wrap(student.scorer), rescorer=wrap(student.rescorer),
                               explainer=explainer)


__all__ = ["DEFAULT_LRU_SIZE", "CachedExplainer", "CachedScore", "CachedScorer", "LRUScoreCache", "SQLiteScoreCache",
           "ScoreCache", "scorer_identity", "with_score_cache"]
