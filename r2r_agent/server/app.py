"""The ASGI app behind ``r2r serve``: routes, limits, auth, the queue, deadlines, disconnects, logs, metrics, traces.

See :func:`r2r_agent.server.create_app` and docs/serve.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import aio
from ..errors import InvalidInputError, InvalidTypeError, R2RError
from ..reranker import Reranker
from ..traces import JsonlTraceSink
from ..types import Ranking
from .metrics import Metrics
from .requests import RequestError, RerankRequest, parse_json, parse_request
from .responses import cohere_response, tei_response
from .scheduler import Admission, Cancelled, CancelToken, QueueFull, cancellable_student
from .settings import ServerSettings

logger = logging.getLogger("r2r_agent.server")

#: The response header (and accepted request header) that carries each request's id.
REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: The warm-up call run at start-up, before ``/ready`` says yes.
WARMUP = ("how long do fleas live", ["Adult fleas live for two to three months on a host.",
                                     "The Earth's axial tilt causes the seasons."])


class ClientGone(R2RError):
    """The client disconnected before its answer was ready; its work was stopped."""


class ServerState:
    """What one app holds: the reranker, its settings, the queue, the metrics, and whether the model is ready.

    Available as ``app.state.r2r``.
    """

    def __init__(self, reranker: Reranker, settings: ServerSettings) -> None:
        self.reranker = reranker
        self.settings = settings
        self.metrics = Metrics()
        self.admission = Admission(settings.max_concurrency or 1, settings.max_queue)
        self.metrics.queue_depth.set_function(lambda: self.admission.queued)
        self.metrics.running.set_function(lambda: self.admission.running)
        self.ready = False
        self.error: str | None = None
        self.model_name = settings.model_name
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loader: asyncio.Task[None] | None = None
        self._keys = tuple(key.encode() for key in settings.api_keys)
        self.trace_sink: JsonlTraceSink | None = None
        if settings.trace_dir is not None:
            path = Path(settings.trace_dir).expanduser() / f"serve-{os.getpid()}.jsonl"
            self.trace_sink = JsonlTraceSink(path)

    # -- start-up ---------------------------------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Load the models and warm up in the background (once); ``/ready`` turns true when done."""
        if self._loader is None:
            self._loader = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            student = await asyncio.to_thread(lambda: self.reranker.student)
            capacity = self.settings.max_concurrency or max(1, int(getattr(student, "concurrency", 1)))
            self.admission.capacity = capacity
            self.executor = concurrent.futures.ThreadPoolExecutor(capacity, thread_name_prefix="r2r-serve")
            self.model_name = self.model_name or student.name
            if self.settings.warmup:
                query, documents = WARMUP
                await asyncio.wrap_future(self.executor.submit(self.reranker.rerank, query, documents))
        except Exception as exc:  # noqa: BLE001 - reported by /ready and the log; the process stays up to say so
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("r2r serve: the student could not be loaded or warmed up: %s", self.error)
            return
        self.ready = True
        logger.info("r2r serve: ready (%s, %d at once, loaded and warmed up in %.1f s)", self.model_name,
                    self.admission.capacity, time.perf_counter() - started)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -- one rerank -------------------------------------------------------------------------------------------------
    def _rerank(self, request: RerankRequest, token: CancelToken) -> Ranking:
        """The work of one request, in a worker thread; stops at its next model call once ``token`` is cancelled."""
        token.check()
        student = cancellable_student(self.reranker.student, token)
        # The request's own Reranker writes its record itself, so the record carries what only the call sees: every
        # candidate's score and the verdicts (the trace page shows them), not just the returned ranking.
        trace: JsonlTraceSink | bool = self.trace_sink if self.trace_sink is not None else False
        reranker = Reranker(student, config=self.reranker.config, trace=trace)
        # The wrapped models stop at their next call; the reranker's own checkpoints stop it between stages too (a
        # request cancelled during its last model call would otherwise still be traced, as if it had been answered).
        try:
            with aio.cancelled_by(token.event):
                return reranker.rerank(request.query, list(request.passages), **request.settings)
        except asyncio.CancelledError:
            raise Cancelled(f"request cancelled: {token.reason}") from None

    async def _admit_and_run(self, request: RerankRequest, token: CancelToken) -> Ranking:
        await self.admission.acquire(request.priority)
        assert self.executor is not None  # ready implies loaded
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            future = self.executor.submit(self._rerank, request, token)
        except BaseException:
            self.admission.release()
            raise
        # The slot is freed when the work has really ended, not when the client stopped waiting for it.
        def release(_: object) -> None:
            try:
                loop.call_soon_threadsafe(self.admission.release, time.perf_counter() - started)
            except RuntimeError:  # the loop has closed (the server stopped): no queue is left to release
                pass

        future.add_done_callback(release)
        return await asyncio.wrap_future(future)

    async def run(self, request: RerankRequest, http: Request, deadline: float) -> Ranking:
        """Queue and run ``request``; 504 past ``deadline`` (monotonic), :class:`ClientGone` on a disconnect. Either
        way its work is stopped at the next model call."""
        token = CancelToken()
        work = asyncio.ensure_future(self._admit_and_run(request, token))
        gone = asyncio.ensure_future(_disconnected(http))
        self.metrics.in_flight.inc()
        try:
            done, _ = await asyncio.wait({work, gone}, timeout=max(0.0, deadline - time.monotonic()),
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the shutdown timeout ends: their work must stop too,
            # or the worker thread would keep the process alive until it finished.
            token.cancel("server shutting down")
            work.cancel()
            raise
        finally:
            gone.cancel()
            self.metrics.in_flight.dec()
        if work in done:
            return work.result()
        token.cancel("client disconnected" if gone in done else "deadline")
        work.cancel()
        if gone in done:
            raise ClientGone("the client disconnected; its work was stopped")
        raise RequestError(504, f"the request took longer than the server's deadline of {self.settings.deadline_s:g} s "
                           "(queueing included); its work was stopped. Send fewer documents, ask for less "
                           "(\"explain\": \"evidence\", a smaller explain_top) or retry later")

    def authorize(self, request: Request) -> None:
        """Raise 401 unless auth is off or the bearer key is one of the keys (compared in constant time)."""
        if not self._keys:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        supplied = given.strip().encode()
        matched = False
        for key in self._keys:  # every key is compared, so the time says nothing about which one nearly matched
            matched |= hmac.compare_digest(supplied, key)
        if scheme.lower() != "bearer" or not matched:
            raise RequestError(401, "missing or unknown API key; send the header Authorization: Bearer <key>",
                               headers={"WWW-Authenticate": "Bearer"})


async def _disconnected(request: Request) -> None:
    """Return when the client disconnects (the body has been read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole first)."""
    declared = request.headers.get("content-length", "")
    too_big = RequestError(413, f"the body is over the server's limit of {limit:,} bytes (server setting "
                           "max_body_bytes); send fewer or shorter documents")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex


def _error_body(route: str, message: str, field: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    if route == "/rerank":  # TEI's own error keys, for TEI clients
        body.update(error=message, error_type="Validation")
    return body


Handler = Callable[[Request, str, dict[str, Any]], Awaitable[Response]]


def _endpoint(state: ServerState, route: str, handler: Handler, *, auth: bool = True) -> Callable[..., Any]:
    """``handler`` with the request id, auth, error mapping, the log line and the metrics around it."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        info: dict[str, Any] = {"documents": 0}
        try:
            if auth:
                state.authorize(request)
            response = await handler(request, request_id, info)
        except RequestError as exc:
            response = JSONResponse(_error_body(route, exc.message, exc.field), exc.status, headers=exc.headers)
        except QueueFull as exc:
            response = JSONResponse(_error_body(route, str(exc), None), 429,
                                    headers={"Retry-After": str(exc.retry_after)})
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the shutdown timeout ends, and would answer them 500;
            # they are not the server's failure: 503, retry (elsewhere).
            response = JSONResponse(_error_body(route, "the server is shutting down; retry", None), 503,
                                    headers={"Retry-After": "1", "Connection": "close"})
        except (ClientGone, Cancelled, ClientDisconnect):
            response = Response(status_code=499)  # nobody reads it: nginx's code for "client closed request"
        except (InvalidInputError, InvalidTypeError) as exc:  # an input the reranker itself refused
            response = JSONResponse(_error_body(route, str(exc), None), 422)
        except Exception:  # noqa: BLE001 - a bug or a model failure: logged in full, never shown to the client
            logger.exception("request %s failed", request_id)
            response = JSONResponse(_error_body(route, f"internal error (request id {request_id}); the server log "
                                                "has the details", None), 500)
        response.headers[REQUEST_ID_HEADER] = request_id
        seconds = time.perf_counter() - started
        state.metrics.observe(route, response.status_code, seconds)
        query = f" query={info['query']!r}" if state.settings.log_texts and "query" in info else ""
        logger.info("request_id=%s %s %s status=%d documents=%d seconds=%.3f%s", request_id, request.method, route,
                    response.status_code, info["documents"], seconds, query)
        return response

    return endpoint


def build_app(state: ServerState) -> Starlette:
    """The Starlette app serving ``state``."""
    settings = state.settings

    def rerank(api: str) -> Handler:
        async def handle(request: Request, request_id: str, info: dict[str, Any]) -> Response:
            deadline = time.monotonic() + settings.deadline_s
            data = parse_json(await _read_body(request, settings.max_body_bytes))
            parsed = parse_request(data, api, settings, state.reranker.config)
            info.update(documents=len(parsed.passages), query=parsed.query)
            if not state.ready:
                state.start_loading()  # mounted in another app, whose lifespan did not start us
                detail = f": {state.error}" if state.error else "; retry when GET /ready says ready"
                raise RequestError(503, f"the model is not ready{detail}", headers={"Retry-After": "5"})
            ranking = await state.run(parsed, request, deadline)
            state.metrics.passages.inc(len(parsed.passages))
            if api == "tei":
                return JSONResponse(tei_response(ranking, parsed))
            return JSONResponse(cohere_response(ranking, parsed, request_id))

        return handle

    async def health(request: Request, request_id: str, info: dict[str, Any]) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request, request_id: str, info: dict[str, Any]) -> Response:
        if not state.ready:
            state.start_loading()
            body: dict[str, Any] = {"ready": False}
            if state.error:
                body["error"] = state.error
            return JSONResponse(body, 503)
        return JSONResponse({"ready": True, "model": state.model_name})

    async def models(request: Request, request_id: str, info: dict[str, Any]) -> Response:
        name = state.model_name or "r2r-agent"
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "r2r-agent"}],
                             "models": [{"name": name, "endpoints": ["rerank"]}]})

    async def metrics(request: Request, request_id: str, info: dict[str, Any]) -> Response:
        text, kind = state.metrics.render()
        return Response(text, media_type=kind)

    async def ui(request: Request, request_id: str, info: dict[str, Any]) -> Response:
        from .ui import DEFAULT_RECORDS, MAX_RECORDS, ui_page

        given = request.query_params.get("n", str(DEFAULT_RECORDS))
        if not given.isdigit() or not 1 <= int(given) <= MAX_RECORDS:
            raise RequestError(422, f"n must be a whole number of records from 1 to {MAX_RECORDS}, got {given!r:.40}",
                               "n")
        assert settings.trace_dir is not None  # the route exists only with a trace folder
        page, policy = await asyncio.to_thread(ui_page, settings.trace_dir, int(given))
        info["documents"] = 0
        return HTMLResponse(page, headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        routes = "POST /v1/rerank, /v2/rerank, /rerank; GET /health, /ready, /v1/models, /metrics" + (
            ", /ui" if settings.trace_dir is not None else "")
        response = JSONResponse({"message": f"{request.method} {request.url.path}: {status} "
                                 f"({'no such route' if status == 404 else 'method not allowed'}); routes: "
                                 f"{routes}"}, status)
        state.metrics.observe("other", status, 0.0)
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        state.start_loading()
        try:
            yield
        finally:
            state.close()

    routes = [
        Route("/v1/rerank", _endpoint(state, "/v1/rerank", rerank("v1")), methods=["POST"]),
        Route("/v2/rerank", _endpoint(state, "/v2/rerank", rerank("v2")), methods=["POST"]),
        Route("/rerank", _endpoint(state, "/rerank", rerank("tei")), methods=["POST"]),
        Route("/health", _endpoint(state, "/health", health, auth=False), methods=["GET"]),
        Route("/ready", _endpoint(state, "/ready", ready, auth=False), methods=["GET"]),
        Route("/v1/models", _endpoint(state, "/v1/models", models), methods=["GET"]),
        Route("/metrics", _endpoint(state, "/metrics", metrics), methods=["GET"]),
    ]
    if settings.trace_dir is not None:  # the trace page of the recent requests: only when they are recorded
        routes.append(Route("/ui", _endpoint(state, "/ui", ui), methods=["GET"]))
    middleware = []
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: not_found})
    app.state.r2r = state
    return app


__all__ = ["REQUEST_ID_HEADER", "WARMUP", "ClientGone", "ServerState", "build_app"]
