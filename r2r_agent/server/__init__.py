"""``r2r serve``: the Cohere-compatible rerank HTTP API, with reasons (the ``server`` extra).

Routes: ``POST /v1/rerank`` and ``POST /v2/rerank`` (Cohere's shapes), ``POST /rerank`` (Hugging Face TEI's),
``GET /health``, ``GET /ready``, ``GET /v1/models``, ``GET /metrics`` (Prometheus), and with a trace folder
``GET /ui`` (the trace page of the recent requests). Every result also carries r2r's
own fields (``verdict``, ``evidence``, ``evidence_span``, ``explanation``, ``rank``, ``input_rank``) and every
response ``answerable``, ``comparison`` and ``stages``; any :class:`~r2r_agent.RerankConfig` setting may be sent as
an extra request field. docs/serve.md has the API, the limits and the operator's notes.

Why Starlette (with uvicorn), not FastAPI: the request checks are the project's own (the limits, the Cohere and TEI
field rules, and :class:`~r2r_agent.RerankConfig`'s checks with their "did you mean" errors, which are the one place
a rerank setting is validated), and every refusal is ``{"message": ...}`` naming the field. FastAPI would validate
through pydantic models that repeat those rules and answer in its own ``{"detail": [...]}`` shape; it is built on
Starlette anyway, so nothing is lost: the app is a plain ASGI app that mounts in any Starlette or FastAPI app.
uvicorn is the common ASGI server, with graceful shutdown on SIGTERM and ``--workers``.

Example:
    >>> from r2r_agent import Reranker
    >>> from r2r_agent.server import ServerSettings, create_app
    >>> app = create_app(Reranker(explain="evidence"), ServerSettings(max_documents=200))  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ServerSettings, read_api_keys

if TYPE_CHECKING:
    from ..reranker import Reranker


def create_app(reranker: Reranker | None = None, settings: ServerSettings | None = None, **options: Any) -> Any:
    """The ASGI app (a Starlette app) serving ``reranker``.

    The models load, and one warm-up rerank runs, when the app starts (its lifespan; when mounted in another app,
    whose lifespan does not reach it, on the first request); ``GET /ready`` is 503 until then. The reranker's
    :attr:`~r2r_agent.Reranker.config` is the default of every request, and its student runs every request; its own
    ``trace=`` is not used (``ServerSettings.trace_dir`` records the server's requests).

    Args:
        reranker: What to serve (default: ``Reranker()``, the embedded default student).
        settings: The limits and the rest (default: ``ServerSettings()``).
        **options: :class:`ServerSettings` fields applied over ``settings`` (e.g. ``max_documents=200``).

    Raises:
        MissingExtraError: the ``server`` extra is not installed.
        InvalidInputError: a setting out of range.
    """
    import dataclasses

    from .._optional import require

    require("starlette", "server", "r2r serve")
    require("prometheus_client", "server", "r2r serve")
    from ..errors import InvalidInputError
    from ..reranker import Reranker
    from .app import ServerState, build_app

    known = [item.name for item in dataclasses.fields(ServerSettings)]
    for name in options:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInputError(f"create_app: ServerSettings has no setting {name!r}{hint}; the settings are "
                                    f"{', '.join(known)}")
    settings = dataclasses.replace(settings or ServerSettings(), **options)
    return build_app(ServerState(reranker if reranker is not None else Reranker(), settings))


__all__ = ["ServerSettings", "create_app", "read_api_keys"]
