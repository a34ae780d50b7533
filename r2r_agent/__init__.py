"""r2r-agent: rerank with reasons.

A small distilled student scores every retrieved passage for a query and explains, in words, why a passage is or is
not relevant and why the top passages are ordered as they are (Reason-to-Rank).

Example:
    >>> from r2r_agent import Reranker
    >>> ranking = Reranker().rerank("how long do fleas live", passages, top_n=5)   # doctest: +SKIP
    >>> for j in ranking:                                                            # doctest: +SKIP
    ...     print(j.rank, j.score, j.explanation)

Importing this package is light: torch and transformers load only when a model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import RerankConfig
from .errors import (
    AdapterError,
    InvalidInputError,
    InvalidPassageError,
    InvalidTypeError,
    MissingExtraError,
    ModelPreparationError,
    R2RError,
)
from .prompts import PROMPT_VERSION
from .types import Judgment, Passage, Ranking, StageCost

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .cross_encoder import CrossEncoderScorer
    from .explainer import Explainer
    from .openai_student import OpenAIExplainer, OpenAIScorer
    from .reranker import Reranker
    from .score_cache import with_score_cache
    from .scorers import EncoderScorer, LMScorer, Scorer, Scores
    from .student import Student

_LAZY = {
    "Reranker": "reranker",
    "Student": "student",
    "Explainer": "explainer",
    "EncoderScorer": "scorers",
    "LMScorer": "scorers",
    "Scorer": "scorers",
    "Scores": "scorers",
    "CrossEncoderScorer": "cross_encoder",
    "OpenAIScorer": "openai_student",
    "OpenAIExplainer": "openai_student",
    "with_score_cache": "score_cache",
}


def __getattr__(name: str) -> Any:
    # PEP 562: these modules pull in the model runtime's helpers; load them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROMPT_VERSION",
    "AdapterError",
    "CrossEncoderScorer",
    "EncoderScorer",
    "Explainer",
    "InvalidInputError",
    "InvalidPassageError",
    "InvalidTypeError",
    "Judgment",
    "LMScorer",
    "MissingExtraError",
    "ModelPreparationError",
    "OpenAIExplainer",
    "OpenAIScorer",
    "Passage",
    "R2RError",
    "Ranking",
    "RerankConfig",
    "Reranker",
    "Scorer",
    "Scores",
    "StageCost",
    "Student",
    "with_score_cache",
]
