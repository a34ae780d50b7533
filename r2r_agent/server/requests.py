"""Reading one rerank request (Cohere v1/v2 or TEI shape) into a checked :class:`RerankRequest`.

Every refusal is a :class:`RequestError` with the HTTP status, a message that names the field and what is accepted,
and the field. Nothing here runs a model; the checks cost time linear in the body.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import RerankConfig
from ..errors import R2RError
from ..types import Passage, to_passage
from .settings import ServerSettings

#: The APIs a request may come in: Cohere's two and Hugging Face TEI's.
APIS = ("v1", "v2", "tei")

_COHERE_V2 = ("model", "query", "documents", "top_n", "return_documents", "max_tokens_per_doc", "relevant_spans",
              "priority")
#: Fields each API accepts besides the rerank settings (:class:`~r2r_agent.RerankConfig`), which all accept.
FIELDS: dict[str, tuple[str, ...]] = {
    "v2": _COHERE_V2,
    "v1": (*_COHERE_V2, "rank_fields", "max_chunks_per_doc"),
    "tei": ("query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"),
}
_SPAN_FIELDS = ("mode", "threshold", "max_spans")
#: Cohere's default ``relevant_spans.threshold``.
DEFAULT_SPAN_THRESHOLD = 0.1


class RequestError(R2RError):
    """A request the server refuses: ``status`` (400, 413, 422...), a message for the client, the ``field``."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class SpanOptions:
    """Cohere's ``relevant_spans``: spans scoring at least ``threshold``, at most ``max_spans`` per document."""

    threshold: float = DEFAULT_SPAN_THRESHOLD
    max_spans: int | None = None


@dataclass(frozen=True)
class RerankRequest:
    """One checked rerank request.

    Attributes:
        api: ``"v1"``, ``"v2"`` or ``"tei"``.
        query: The query.
        passages: The documents, in input order (cut to ``max_tokens_per_doc`` words).
        model: The model the client named (any name is accepted; the server runs its one student).
        return_documents: Include each document's text in its result.
        spans: The ``relevant_spans`` options, or ``None`` when not enabled.
        priority: Lower goes first when requests queue.
        settings: The rerank settings sent (``top_n`` included), checked against :class:`~r2r_agent.RerankConfig`.
        raw_scores: TEI's ``raw_scores``: the scorer's raw score instead of the 0-1 relevance.
    """

    api: str
    query: str
    passages: tuple[Passage, ...]
    model: str | None = None
    return_documents: bool = False
    spans: SpanOptions | None = None
    priority: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    raw_scores: bool = False


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        RequestError: 400 for a body that is not UTF-8 JSON, 422 for JSON that is not an object.
    """
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not UTF-8 (byte {exc.start + 1}); send JSON in UTF-8") from None
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; send a "
                           'JSON object such as {"query": "...", "documents": ["..."]}') from None
    except RecursionError:
        raise RequestError(400, "the body is nested too deeply to be a rerank request") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"the body must be a JSON object, got a JSON {_json_type(data)}")
    return data


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _unknown(name: str, known: tuple[str, ...], api: str) -> RequestError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    api_fields = FIELDS[api]
    settings = [n for n in RerankConfig.names() if n not in api_fields]
    return RequestError(422, f"unknown field {name!r}{hint}; this endpoint accepts {', '.join(api_fields)} and the "
                        f"rerank settings {', '.join(settings)}", name)


def _int(data: Mapping[str, Any], name: str, minimum: int, default: Any = None) -> Any:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(422, f"{name} must be an integer >= {minimum}, got {_json_type(value)} {value!r}"[:300],
                           name)
    return value


def _bool(data: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(422, f"{name} must be true or false, got {_json_type(value)}", name)
    return value


def _cut_words(text: str, limit: int) -> str:
    """``text`` up to the end of its ``limit``-th whitespace-separated word (what ``max_tokens_per_doc`` means
    here: the student reads subword tokens, fewer than a word's worth per word only rarely, and cuts further to its
    own budget)."""
    if len(text) <= limit:  # fewer characters than the limit: fewer words too
        return text
    for count, match in enumerate(re.finditer(r"\S+", text), start=1):
        if count == limit:
            return text[: match.end()]
    return text


def _spans(data: Mapping[str, Any]) -> SpanOptions | None:
    value = data.get("relevant_spans")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RequestError(422, 'relevant_spans must be an object such as {"mode": "enabled", "threshold": 0.1, '
                           f'"max_spans": 3}}, got {_json_type(value)}', "relevant_spans")
    for key in value:
        if key not in _SPAN_FIELDS:
            raise RequestError(422, f"relevant_spans has no field {key!r}; it accepts {', '.join(_SPAN_FIELDS)}",
                               f"relevant_spans.{key}")
    mode = value.get("mode")
    if mode not in ("enabled", "disabled"):
        raise RequestError(422, f"relevant_spans.mode must be 'enabled' or 'disabled', got {mode!r}"[:200],
                           "relevant_spans.mode")
    threshold = value.get("threshold")
    if threshold is None:
        threshold = DEFAULT_SPAN_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise RequestError(422, f"relevant_spans.threshold must be a number in [0, 1], got {threshold!r}"[:200],
                           "relevant_spans.threshold")
    max_spans = _int(value, "max_spans", 1)
    if mode == "disabled":
        return None
    return SpanOptions(float(threshold), max_spans)


def _document(item: Any, index: int, api: str, rank_fields: list[str] | None, where: str) -> Passage:
    if isinstance(item, str):
        return Passage(item)
    if isinstance(item, Mapping) and api != "tei":
        if rank_fields:
            missing = [name for name in rank_fields if name not in item]
            if missing:
                raise RequestError(422, f"{where}[{index}] has no field {missing[0]!r} named in rank_fields", where)
            text = "\n".join(f"{name}: {item[name]}" for name in rank_fields)
            return Passage(text, id=str(item["id"]) if item.get("id") is not None else None)
        try:
            return to_passage(item, index)
        except R2RError as exc:
            raise RequestError(422, f"{where}[{index}]: {exc}", f"{where}[{index}]") from None
    accepted = "a string" if api == "tei" else 'a string or an object with a string "text"'
    raise RequestError(422, f"{where}[{index}] must be {accepted}, got {_json_type(item)}", f"{where}[{index}]")


def parse_request(data: Mapping[str, Any], api: str, limits: ServerSettings, base: RerankConfig) -> RerankRequest:
    """Check one request's fields and build the :class:`RerankRequest`.

    Args:
        data: The JSON object sent.
        api: ``"v1"``, ``"v2"`` or ``"tei"``.
        limits: The server's limits.
        base: The server's rerank defaults (the per-request settings are checked over them).

    Raises:
        RequestError: 422 naming the first unusable field and what it accepts.
    """
    known = (*FIELDS[api], *RerankConfig.names())
    for name in data:
        if name not in known:
            raise _unknown(str(name), known, api)
    query = data.get("query")
    if not isinstance(query, str):
        raise RequestError(422, f"query must be a string, got {_json_type(query)}", "query")
    if not query.strip():
        raise RequestError(422, "query is empty or whitespace; send the user's search text", "query")
    if len(query) > limits.max_query_chars:
        raise RequestError(422, f"query has {len(query):,} characters, at most {limits.max_query_chars:,} (server "
                           "setting max_query_chars)", "query")
    where = "texts" if api == "tei" else "documents"
    documents = data.get(where)
    if not isinstance(documents, list):
        raise RequestError(422, f"{where} must be an array of strings, got {_json_type(documents)}", where)
    if len(documents) > limits.max_documents:
        raise RequestError(422, f"{where} has {len(documents):,} items, at most {limits.max_documents:,} per request "
                           "(server setting max_documents); send several requests", where)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(422, f"model must be a string, got {_json_type(model)}", "model")
    rank_fields = data.get("rank_fields")
    if rank_fields is not None and (not isinstance(rank_fields, list)
                                    or not all(isinstance(name, str) for name in rank_fields)):
        raise RequestError(422, "rank_fields must be an array of field names", "rank_fields")
    _int(data, "max_chunks_per_doc", 1)  # accepted for v1 clients; a document is judged whole here
    limit = _int(data, "max_tokens_per_doc", 1, limits.default_max_tokens_per_doc)
    passages = []
    for index, item in enumerate(documents):
        passage = _document(item, index, api, rank_fields, where)
        if len(passage.text) > limits.max_document_chars:
            raise RequestError(422, f"{where}[{index}] has {len(passage.text):,} characters, at most "
                               f"{limits.max_document_chars:,} (server setting max_document_chars); split it into "
                               "passages", f"{where}[{index}]")
        cut = _cut_words(passage.text, limit)
        passages.append(passage if cut is passage.text else Passage(cut, id=passage.id, metadata=passage.metadata,
                                                                    first_stage_score=passage.first_stage_score))
    settings = {name: data[name] for name in RerankConfig.names() if name in data}
    try:
        base.replace(**settings)
    except R2RError as exc:
        named = next((n for n in settings if str(exc).startswith(n)), None)
        raise RequestError(422, str(exc), named) from None
    if api == "tei":
        _bool(data, "truncate")
        direction = data.get("truncation_direction", "right")
        if direction not in ("right", "left", "Right", "Left"):
            raise RequestError(422, "truncation_direction must be 'right' or 'left'", "truncation_direction")
        return RerankRequest(api, query, tuple(passages), return_documents=_bool(data, "return_text"),
                             settings=settings, raw_scores=_bool(data, "raw_scores"))
    return RerankRequest(api, query, tuple(passages), model=model,
                         return_documents=_bool(data, "return_documents"),
                         spans=_spans(data), priority=_int(data, "priority", 0, 0), settings=settings)


__all__ = ["APIS", "DEFAULT_SPAN_THRESHOLD", "FIELDS", "RequestError", "RerankRequest", "SpanOptions", "parse_json",
           "parse_request"]
