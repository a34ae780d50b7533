"""First stages: retrieve candidates for a query from a corpus ``{docid: text}``.

- :class:`BM25FirstStage`: lexical BM25 with ``bm25s`` (extra ``evals``);
- :class:`DenseFirstStage`: a persistent chromadb collection embedded with the bundled all-MiniLM-L6-v2
  (extra ``chromadb``; no hub download);
- :class:`ReasonThenRetrieve`: a writer (a teacher, or the student's explainer via :func:`explainer_writer`) writes
  reasoning about the query, and the query plus that reasoning is sent to another first stage (BRIGHT's
  reasoning-query setting).

:func:`candidate_lists` turns any first stage into the ``{qid: CandidateList}`` a runner reranks.

Example:
    >>> corpus = {"d1": "Adult fleas live two to three months.", "d2": "Cats sleep a lot."}
    >>> bm25 = BM25FirstStage(corpus)                                     # doctest: +SKIP
    >>> [c.id for c in bm25.retrieve("how long do fleas live", k=10)]     # doctest: +SKIP
    ['d1']
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from r2r_agent import Passage
from r2r_agent._optional import require
from r2r_agent.errors import InvalidInputError

from .checks import check_count
from .records import CandidateList, candidate

logger = logging.getLogger(__name__)

#: A reasoning writer: ``writer(query) -> reasoning text`` (a teacher, the student's explainer, a fake in tests).
Writer = Callable[[str], str]

#: The instruction of :func:`reasoning_messages` (eval-only; not part of the teacher/student training prompts).
REASONING_INSTRUCTION = (
    "Think about what this search query is really asking. In a few sentences, name the concepts, facts, terms "
    "and related topics that a document answering it would contain. Do not answer with a list of links."
)


@runtime_checkable
class FirstStage(Protocol):
    """Anything that retrieves candidates for a query: ``retrieve(query, k) -> list[Passage]``, best first."""

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """The top ``k`` candidates of ``query`` (fewer when fewer documents match), best first, with texts."""
        ...


def _check_corpus(owner: str, corpus: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(corpus, Mapping):
        raise InvalidInputError(f"{owner}: corpus must be a mapping {{docid: text}}, got {type(corpus).__name__}.")
    if not corpus:
        raise InvalidInputError(f"{owner}: the corpus is empty; pass at least one {{docid: text}} entry.")
    bad = [d for d, t in corpus.items() if not isinstance(d, str) or not d or not isinstance(t, str)]
    if bad:
        raise InvalidInputError(f"{owner}: corpus keys must be non-empty str doc ids and values str texts; "
                                f"{len(bad)} entries are not (e.g. {bad[0]!r}).")
    return dict(corpus)


def _check_query(owner: str, query: str, k: int) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError(f"{owner}.retrieve: query must be a non-empty str, got {query!r}; "
                                "skip queries without text before retrieving.")
    check_count(f"{owner}.retrieve: k", k, hint=" (candidates per query)")


class CorpusFirstStage:
    """A first stage over an in-memory corpus ``{docid: text}``: :meth:`retrieve` checks the query and ``k``, asks
    :meth:`search` for the best ``(docid, score)`` pairs and returns them as candidates with their texts."""

    _corpus: dict[str, str]

    def __len__(self) -> int:
        return len(self._corpus)

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """The top ``k`` documents of ``query`` (fewer when fewer match), best first (see the class for the score).

        Raises:
            InvalidInputError: for an empty query or ``k < 1``.
        """
        _check_query(type(self).__name__, query, k)
        return [candidate(d, s, self._corpus[d]) for d, s in self.search(query, k)]

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The best ``(docid, score)`` pairs of a checked query, best first."""
        raise NotImplementedError


def _top_k(scores: Any, docids: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` best ``(docid, score)`` pairs of positive scores; ties broken by docid (deterministic)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        # Every document scoring at least the k-th best score, ties at the boundary included, then an exact sort.
        kth = np.partition(scores[positive], positive.size - k)[positive.size - k]
        positive = positive[scores[positive] >= kth]
    # docids are sorted, so the index order is the docid order: lexsort by (-score, index).
    order = positive[np.lexsort((positive, -scores[positive]))][:k]
    return [(docids[i], float(scores[i])) for i in order]


class BM25FirstStage(CorpusFirstStage):
    """BM25 over an in-memory corpus with ``bm25s``.

    Documents are tokenized with ``bm25s.tokenize`` (lowercase, ``\\w\\w+`` tokens, English stopwords removed;
    optional stemmer). Only documents sharing at least one term with the query are returned (as Lucene does), so a
    query may get fewer than ``k`` candidates. Equal scores are ordered by docid, so runs are reproducible.

    Args:
        corpus: Doc id -> text.
        k1: BM25 ``k1``.
        b: BM25 ``b``.
        method: The ``bm25s`` scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
        stopwords: ``"english"``, a list of words, or ``None`` to keep every token.
        stemmer: Optional callable on a list of tokens (e.g. ``Stemmer.Stemmer("english").stemWords``).

    Raises:
        MissingExtraError: without ``bm25s`` (``pip install "r2r-agent[evals]"``).
        InvalidInputError: for an empty corpus or non-string ids/texts.
    """

    def __init__(self, corpus: Mapping[str, str], *, k1: float = 0.9, b: float = 0.4, method: str = "lucene",
                 stopwords: str | list[str] | None = "english",
                 stemmer: Callable[[list[str]], list[str]] | None = None) -> None:
        bm25s = require("bm25s", "evals", "BM25FirstStage")
        self._corpus = _check_corpus("BM25FirstStage", corpus)
        self._docids = sorted(self._corpus)
        self._stopwords = stopwords
        self._stemmer = stemmer
        self._bm25s = bm25s
        tokens = self._tokenize([self._corpus[d] for d in self._docids])
        self._retriever = bm25s.BM25(k1=k1, b=b, method=method)
        self._retriever.index(tokens, show_progress=False)
        logger.info("BM25FirstStage: indexed %d documents (%d terms)", len(self._docids),
                    len(self._retriever.vocab_dict))

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        return self._bm25s.tokenize(texts, return_ids=False, stopwords=self._stopwords, stemmer=self._stemmer,
                                    show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The top ``k`` documents by BM25 score (only those sharing a term with the query)."""
        vocab = self._retriever.vocab_dict
        terms = [t for t in self._tokenize([query])[0] if t and t in vocab]
        if not terms:
            logger.warning("BM25FirstStage: no term of query %r is in the corpus vocabulary; no candidates", query)
            return []
        return _top_k(self._retriever.get_scores(terms), self._docids, k)


class DenseFirstStage(CorpusFirstStage):
    """Dense retrieval from a persistent chromadb collection (cosine space) embedded with the bundled MiniLM.

    The collection is built (or reused) with :func:`r2r_agent.integrations.chroma.persistent_collection`: on a
    folder that already holds it, only the doc ids it lacks are embedded. Scores are cosine similarities
    (``1 - cosine distance``); equal scores are ordered by docid. Only ids of ``corpus`` are returned, even when the
    reused collection holds more.

    Args:
        corpus: Doc id -> text.
        path: The chromadb folder; ``None`` uses a temporary folder removed with this object.
        collection: The collection name (chromadb's rule: 3-512 characters of ``[a-zA-Z0-9._-]``).
        embedding_function: A chromadb embedding function; default the bundled all-MiniLM-L6-v2
            (:func:`r2r_agent.integrations.chroma.minilm_embedding_function`).
        batch_size: Passages embedded per ``add`` call.
        progress: Show a progress bar while the missing passages are embedded.

    Raises:
        MissingExtraError: without chromadb (``pip install "r2r-agent[chromadb]"``).
        InvalidInputError: for an empty corpus or non-string ids/texts.
    """

    def __init__(self, corpus: Mapping[str, str], path: str | os.PathLike[str] | None = None, *,
                 collection: str = "r2r_first_stage", embedding_function: Any | None = None,
                 batch_size: int = 256, progress: bool = False) -> None:
        require("chromadb", "chromadb", "DenseFirstStage")
        from r2r_agent.integrations.chroma import persistent_collection

        self._corpus = _check_corpus("DenseFirstStage", corpus)
        self._tmp = tempfile.TemporaryDirectory(prefix="r2r-dense-") if path is None else None
        folder = self._tmp.name if self._tmp is not None else path
        self.collection = persistent_collection(folder, self._corpus, name=collection,
                                                embedding_function=embedding_function, batch_size=batch_size,
                                                progress=progress)
        # A reused collection may hold ids outside this corpus; ask for that many more results and drop them.
        self._extra = max(0, self.collection.count() - len(self._corpus))

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The top ``k`` documents by cosine similarity to the query embedding."""
        n = min(k + self._extra, self.collection.count())
        found = self.collection.query(query_texts=[query], n_results=n, include=["distances"])
        pairs = [(d, 1.0 - float(dist)) for d, dist in zip(found["ids"][0], found["distances"][0], strict=True)
                 if d in self._corpus]
        pairs.sort(key=lambda p: (-p[1], p[0]))
        return pairs[:k]


class ReasonThenRetrieve:
    """Expand the query with written reasoning, then retrieve with another first stage.

    ``writer(query)`` returns reasoning text (a teacher, or :func:`explainer_writer` on the student's explainer);
    the first stage is asked for ``query + "\\n" + reasoning`` (BRIGHT's reasoning-query setting, where the
    expansion mostly helps lexical BM25). Each query's reasoning is written once and kept in :attr:`reasonings`
    for reports.

    Args:
        first_stage: The first stage that retrieves with the expanded query (usually :class:`BM25FirstStage`).
        writer: ``writer(query) -> reasoning text``.
    """

    def __init__(self, first_stage: FirstStage, writer: Writer) -> None:
        if not callable(getattr(first_stage, "retrieve", None)):
            raise InvalidInputError(f"ReasonThenRetrieve: first_stage must have retrieve(query, k), got "
                                    f"{type(first_stage).__name__}; e.g. BM25FirstStage(corpus).")
        if not callable(writer):
            raise InvalidInputError(f"ReasonThenRetrieve: writer must be a callable (query) -> reasoning text, got "
                                    f"{type(writer).__name__}; e.g. explainer_writer(student.explainer).")
        self.first_stage = first_stage
        self.writer = writer
        #: ``{query: reasoning}`` written so far.
        self.reasonings: dict[str, str] = {}

    def expand(self, query: str) -> str:
        """The expanded query: ``query``, a newline, then the writer's reasoning (just ``query`` when it is empty)."""
        if query not in self.reasonings:
            reasoning = self.writer(query)
            if not isinstance(reasoning, str):
                raise InvalidInputError(f"ReasonThenRetrieve: the writer must return a str, got "
                                        f"{type(reasoning).__name__} for query {query!r}.")
            self.reasonings[query] = reasoning.strip()
        reasoning = self.reasonings[query]
        return f"{query}\n{reasoning}" if reasoning else query

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """The first stage's top ``k`` for the expanded query.

        Raises:
            InvalidInputError: for an empty query or ``k < 1`` (checked before the writer is called).
        """
        _check_query("ReasonThenRetrieve", query, k)
        return self.first_stage.retrieve(self.expand(query), k)


def reasoning_messages(query: str) -> list[dict[str, str]]:
    """Chat messages asking a model to reason about what a document answering ``query`` contains."""
    return [
        {"role": "system", "content": "You are a helpful research assistant."},
        {"role": "user", "content": f"Query: {query}\n\n{REASONING_INSTRUCTION}"},
    ]


def explainer_writer(explainer: Any, max_new_tokens: int = 128) -> Writer:
    """A writer that generates reasoning with an :class:`r2r_agent.explainer.Explainer` (e.g. the student's).

    Args:
        explainer: An ``Explainer`` (anything with ``tokenizer`` and ``generate(prompts, max_new_tokens=...)``).
        max_new_tokens: The reasoning length bound, in tokens.

    Returns:
        ``writer(query) -> reasoning text`` (greedy, one prompt per call).
    """
    check_count("explainer_writer: max_new_tokens", max_new_tokens)
    if not callable(getattr(explainer, "generate", None)) or not hasattr(explainer, "tokenizer"):
        raise InvalidInputError(f"explainer_writer: expected an r2r_agent.explainer.Explainer (with tokenizer and "
                                f"generate), got {type(explainer).__name__}; e.g. Student.default().explainer.")
    from r2r_agent import prompts

    def write(query: str) -> str:
        rendered = prompts.render(explainer.tokenizer, reasoning_messages(query))
        return explainer.generate([rendered], max_new_tokens=max_new_tokens).texts[0]

    return write


def candidate_lists(first_stage: FirstStage, queries: Mapping[str, str], k: int) -> dict[str, CandidateList]:
    """Retrieve the top ``k`` of every query: ``{qid: CandidateList}`` in the order of ``queries``.

    Args:
        first_stage: Any :class:`FirstStage`.
        queries: Query id -> query text.
        k: Candidates per query.

    Raises:
        InvalidInputError: for ``k < 1`` or a query without text (naming its id).
    """
    check_count("candidate_lists: k", k, hint=" (candidates per query)")
    empty = [q for q, text in queries.items() if not isinstance(text, str) or not text.strip()]
    if empty:
        raise InvalidInputError(f"candidate_lists: {len(empty)} queries have no text (e.g. qid {empty[0]!r}); "
                                "drop them before retrieving.")
    out: dict[str, CandidateList] = {}
    for qid, query in queries.items():
        out[str(qid)] = CandidateList(str(qid), query, tuple(first_stage.retrieve(query, k)))
    logger.info("candidate_lists: %d queries, top %d", len(out), k)
    return out


__all__ = [
    "REASONING_INSTRUCTION",
    "BM25FirstStage",
    "DenseFirstStage",
    "FirstStage",
    "ReasonThenRetrieve",
    "Writer",
    "candidate_lists",
    "explainer_writer",
    "reasoning_messages",
]
