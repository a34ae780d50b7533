"""Training queries kept apart: the split by query and the guard against evaluating on training queries.

One concern in one place: a query the student was trained on must never be used to validate it
(:func:`split_query_ids`, :func:`check_disjoint`) nor to evaluate it (:func:`load_training_queries`,
:func:`check_not_training`). ``r2r distill`` splits with the first two; ``r2r eval`` refuses a dataset holding any
training query with the last two, using the same split, so queries held out for validation are not training queries.

Example:
    >>> train, validation = split_query_ids(["a", "b", "c", "d"], 0.25, seed=0)
    >>> len(train), len(validation)
    (3, 1)
    >>> find_training_queries({"q1": "How long do fleas live?"}, TrainingQueries({"7": "how long do fleas live"}))
    ['q1']
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from r2r_agent.errors import InvalidInputError

from .errors import SplitLeakageError

#: The share of queries ``r2r distill`` holds out for validation, and the seed of its split (DatasetConfig's defaults).
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 0

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------------------------
# Training and validation never share a query
# ---------------------------------------------------------------------------------------------------------------


def split_query_ids(query_ids: Iterable[str], validation_fraction: float = 0.1,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """Split query ids into (train, validation), deterministically for a seed.

    Each id's place comes from a hash of ``seed`` and the id, so the split of a query does not depend on which other
    queries are present or on their order. At least one query is held out when the fraction is positive and there
    are two or more queries.

    Example:
        >>> train, validation = split_query_ids([str(i) for i in range(10)], 0.2, seed=1)
        >>> len(train), len(validation), set(train) & set(validation)
        (8, 2, set())
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise InvalidInputError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    unique = sorted(set(map(str, query_ids)))
    ranked = sorted(unique, key=lambda q: hashlib.sha256(f"{seed}\x00{q}".encode()).hexdigest())
    count = round(validation_fraction * len(ranked))
    if validation_fraction > 0 and len(ranked) >= 2:
        count = min(max(count, 1), len(ranked) - 1)
    held = set(ranked[:count])
    return [q for q in unique if q not in held], [q for q in unique if q in held]


def check_disjoint(train_ids: Iterable[str], validation_ids: Iterable[str]) -> None:
    """Raise :class:`SplitLeakageError` if any query id is in both splits."""
    shared = sorted(set(map(str, train_ids)) & set(map(str, validation_ids)))
    if shared:
        raise SplitLeakageError(f"{len(shared)} queries are in both the training and the validation split (e.g. "
                                f"{shared[:5]}); validation must hold out whole queries. Split by query id with "
                                "split_query_ids() or remove them from one side.")


# ---------------------------------------------------------------------------------------------------------------
# Never evaluate on training queries
# ---------------------------------------------------------------------------------------------------------------


class TrainingQueryError(SplitLeakageError):
    """A dataset to evaluate on contains queries of the training data."""


def normalize_query(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced text: the form queries are compared in.

    Example:
        >>> normalize_query(" What IS  a flea? ")
        'what is a flea'
    """
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class TrainingQueries:
    """The queries a student may have been trained on.

    Attributes:
        queries: ``{qid: query text}`` of the training split.
        source: Where they came from (for messages).
    """

    queries: Mapping[str, str]
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "queries", dict(self.queries))  # a copy: the caller's mapping is never shared

    def __len__(self) -> int:
        return len(self.queries)


def load_training_queries(path: PathLike, *, validation_fraction: float | None = None,
                          seed: int | None = None) -> TrainingQueries:
    """The training-split queries of the R2R training data (``r2r-train/*.jsonl[.gz]``, or one such file).

    The split is :func:`split_query_ids` with :data:`VALIDATION_FRACTION` and :data:`SPLIT_SEED` unless given (as
    ``r2r distill`` splits): queries it holds out for validation are not training queries.

    Raises:
        InvalidInputError: when ``path`` holds no R2R file.
    """
    # Imported here: the R2R reader is only needed to load.
    from .r2r_import import iter_r2r_annotations

    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.glob("*.jsonl*") if p.suffix in (".jsonl", ".gz"))
    if not files:
        raise InvalidInputError(
            f"No R2R training file found at {root}; expected msmarco_*.jsonl(.gz) files (the shared r2r-train/ "
            "folder) or one such file."
        )
    texts: dict[str, str] = {}
    for file in files:
        for annotation in iter_r2r_annotations(file):
            texts[annotation.query_id] = annotation.query
    train, _ = split_query_ids(texts, VALIDATION_FRACTION if validation_fraction is None else validation_fraction,
                               SPLIT_SEED if seed is None else seed)
    return TrainingQueries({q: texts[q] for q in train}, source=str(root))


def find_training_queries(queries: Mapping[str, str], training: TrainingQueries) -> list[str]:
    """The qids of ``queries`` that are training queries.

    A query counts as a training query when its text equals a training query's (after :func:`normalize_query`),
    whatever its id. A shared id with a different text is a different query from another id space (BRIGHT numbers
    its queries from 0): it is logged, not counted.
    """
    by_text = {normalize_query(t) for t in training.queries.values()}
    hits = []
    for qid, text in queries.items():
        if normalize_query(text) in by_text:
            hits.append(qid)
        elif qid in training.queries:
            logger.info("query id %s is also a training id, but with another text; not a training query", qid)
    return hits


def check_not_training(dataset_name: str, queries: Mapping[str, str], training: TrainingQueries) -> None:
    """Refuse to evaluate on training queries.

    Raises:
        TrainingQueryError: listing the overlapping query ids.
    """
    hits = find_training_queries(queries, training)
    if hits:
        raise TrainingQueryError(
            f"Dataset {dataset_name!r} has {len(hits)} queries from the training data ({training.source}), e.g. "
            f"{hits[:5]}; figures on them would be inflated. Evaluate on held-out queries only (remove these "
            "queries, or hold them out of training)."
        )


__all__ = ["TrainingQueries", "TrainingQueryError", "check_disjoint", "check_not_training", "find_training_queries",
           "load_training_queries", "normalize_query", "split_query_ids"]
