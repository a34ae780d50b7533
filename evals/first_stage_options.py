"""Which first stage retrieves a dataset's candidates (``r2r eval --first-stage NAME``), with which settings, and
how it is built.

The first stages by exact name (:data:`FIRST_STAGES`): ``bm25``, ``dense`` and ``reason-then-retrieve`` (see
:mod:`.first_stage`). :func:`stage_config` gives the settings that change a run (the run cache's key besides the
corpus) and :func:`build_first_stage` builds one over a corpus.

Example:
    >>> FirstStageOptions("bm25", depth=50).description
    'BM25 (bm25s, Lucene variant, k1=0.9, b=0.4, English stopwords) over the corpus'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError

from .checks import check_count
from .dataset import Corpus
from .first_stage import REASONING_INSTRUCTION, FirstStage, Writer
from .records import PathLike

#: The first stages by exact name, with one line for help texts and reports.
FIRST_STAGES: Mapping[str, str] = {
    "bm25": "BM25 (bm25s, Lucene variant, k1=0.9, b=0.4, English stopwords) over the corpus",
    "dense": "the bundled all-MiniLM-L6-v2 bi-encoder, cosine similarity in a persistent chromadb collection",
    "reason-then-retrieve": "a reasoner LM writes about the query, then BM25 retrieves with the query and that "
                            "reasoning (BRIGHT's reasoning-query setting)",
}
#: How reports name each first stage's candidates.
LABELS: Mapping[str, str] = {"bm25": "BM25", "dense": "dense MiniLM", "reason-then-retrieve": "reason-then-BM25"}
#: The BM25 settings of :class:`~r2r_agent.evals.first_stage.BM25FirstStage`'s defaults (part of the cache key).
BM25_SETTINGS: Mapping[str, Any] = {"k1": 0.9, "b": 0.4, "method": "lucene", "stopwords": "english"}
#: The reasoner used when none is named: the default student's explainer (SmolLM2-135M-Instruct).
DEFAULT_REASONER = "student"


@dataclass(frozen=True)
class FirstStageOptions:
    """Which first stage retrieves the candidates, and how (the ``r2r eval --first-stage`` flags derive from it)."""

    name: str = field(metadata={"help": f"the first stage: {', '.join(FIRST_STAGES)}"})
    depth: int = field(default=100, metadata={"help": "candidates retrieved per query (default 100)"})
    index_dir: str | None = field(
        default=None,
        metadata={"help": "dense: the chromadb folder (reused across runs; default: a folder in the cache dir)"},
    )
    reasoner: str | None = field(
        default=None,
        metadata={"help": "reason-then-retrieve: 'student' (the default student's explainer) or a local causal-LM "
                          "folder"},
    )
    reasoning_tokens: int = field(
        default=128, metadata={"help": "reason-then-retrieve: the reasoning length bound, in tokens (default 128)"}
    )

    def __post_init__(self) -> None:
        if self.name not in FIRST_STAGES:
            raise InvalidInputError(f"FirstStageOptions.name: unknown first stage {self.name!r}; known first stages: "
                                    f"{', '.join(FIRST_STAGES)}.")
        check_count("FirstStageOptions.depth", self.depth)
        check_count("FirstStageOptions.reasoning_tokens", self.reasoning_tokens)
        if self.index_dir is not None and self.name != "dense":
            raise InvalidInputError(f"FirstStageOptions.index_dir is used by the 'dense' first stage only, got it "
                                    f"with {self.name!r}; drop it (--index-dir) or use dense.")
        if self.reasoner is not None and self.name != "reason-then-retrieve":
            raise InvalidInputError(f"FirstStageOptions.reasoner is used by 'reason-then-retrieve' only, got it with "
                                    f"{self.name!r}; drop it (--reasoner) or use reason-then-retrieve.")

    @property
    def description(self) -> str:
        """One line for reports."""
        return FIRST_STAGES[self.name]


def _function_name(function: Any) -> str:
    name = getattr(function, "name", None)
    if callable(name):
        try:
            return str(name())
        except TypeError:  # an instance method of another signature: fall back to the type
            pass
    return type(function).__name__


def stage_config(options: FirstStageOptions, *, embedding_function: Any | None = None,
                 writer: Writer | None = None) -> dict[str, Any]:
    """The settings that change a first stage's run (the cache key's part besides the corpus).

    Example:
        >>> stage_config(FirstStageOptions("bm25", depth=50))
        {'first_stage': 'bm25', 'depth': 50, 'k1': 0.9, 'b': 0.4, 'method': 'lucene', 'stopwords': 'english'}
    """
    config: dict[str, Any] = {"first_stage": options.name, "depth": options.depth}
    if options.name in ("bm25", "reason-then-retrieve"):
        config.update(BM25_SETTINGS)
    if options.name == "dense":
        config["model"] = "all-MiniLM-L6-v2" if embedding_function is None else _function_name(embedding_function)
    if options.name == "reason-then-retrieve":
        reasoner = options.reasoner or DEFAULT_REASONER
        if writer is None and reasoner == DEFAULT_REASONER:
            from r2r_agent.modeling import resolve_dtype

            # The default student's dtype is "auto": different weights (and reasoning) on different CPUs.
            reasoner = f"{DEFAULT_REASONER} ({str(resolve_dtype('auto')).removeprefix('torch.')})"
        elif reasoner != DEFAULT_REASONER and writer is None:
            reasoner = str(Path(reasoner).resolve())
        config.update(reasoner=reasoner, reasoning_tokens=options.reasoning_tokens,
                      instruction=hashlib.sha256(REASONING_INSTRUCTION.encode("utf-8")).hexdigest()[:8])
    return config


def reasoner_writer(reasoner: str | None, max_new_tokens: int, *, pool: Any | None = None) -> Writer:
    """The writer of ``reason-then-retrieve``: the default student's explainer, or a local causal LM's.

    Args:
        reasoner: ``"student"`` / ``None`` (the default student's explainer, shared through ``pool``), or a local
            causal-LM folder (loaded with :meth:`r2r_agent.explainer.Explainer.from_pretrained`).
        max_new_tokens: The reasoning length bound, in tokens.
        pool: A :class:`~r2r_agent.evals.systems.ModelPool`, so a ``student`` system of the same run shares the
            loaded student.

    Raises:
        InvalidInputError: when ``reasoner`` is neither ``"student"`` nor a folder.
    """
    from .first_stage import explainer_writer

    if reasoner in (None, DEFAULT_REASONER):
        if pool is not None:
            student = pool.default_student()
        else:
            from r2r_agent.student import Student

            student = Student.default()
        return explainer_writer(student.explainer, max_new_tokens)
    path = Path(str(reasoner))
    if not path.is_dir():
        raise InvalidInputError(f"The reasoner must be {DEFAULT_REASONER!r} (the default student's explainer) or a "
                                f"local causal-LM folder, got {reasoner!r}, which is not a folder.")
    from r2r_agent.explainer import Explainer

    return explainer_writer(Explainer.from_pretrained(path), max_new_tokens)


def build_first_stage(options: FirstStageOptions, corpus: Corpus, *, index_dir: PathLike | None = None,
                      embedding_function: Any | None = None, writer: Writer | None = None,
                      pool: Any | None = None, progress: bool = False) -> FirstStage:
    """Build the first stage ``options`` names over ``corpus`` (indexing it; loading the reasoner).

    Args:
        options: Which first stage.
        corpus: The documents.
        index_dir: ``dense``: the chromadb folder (``options.index_dir`` wins; ``None`` for both: a temporary
            folder). The collection is named after the corpus fingerprint and the model, so one folder holds the
            indexes of several corpora.
        embedding_function: ``dense``: a chromadb embedding function (default the bundled MiniLM).
        writer: ``reason-then-retrieve``: ``writer(query) -> reasoning`` (default :func:`reasoner_writer`).
        pool: Shares the default student with the systems of the same run.
        progress: Show a bar while a dense index embeds the corpus.
    """
    from .first_stage import BM25FirstStage, DenseFirstStage, ReasonThenRetrieve

    documents = corpus.documents
    if options.name == "bm25":
        return BM25FirstStage(documents)
    if options.name == "dense":
        folder = options.index_dir if options.index_dir is not None else index_dir
        model = stage_config(options, embedding_function=embedding_function)["model"]
        collection = "r2r-" + hashlib.sha256(f"{corpus.fingerprint} {model}".encode()).hexdigest()[:24]
        return DenseFirstStage(documents, folder, collection=collection, embedding_function=embedding_function,
                               progress=progress)
    chosen = writer if writer is not None else reasoner_writer(options.reasoner, options.reasoning_tokens, pool=pool)
    return ReasonThenRetrieve(BM25FirstStage(documents), chosen)


__all__ = ["BM25_SETTINGS", "DEFAULT_REASONER", "FIRST_STAGES", "LABELS", "FirstStageOptions", "build_first_stage",
           "reasoner_writer", "stage_config"]
