"""``r2r serve``: the Cohere-compatible rerank HTTP API with reasons (needs the server extra).

    r2r serve                                   # the embedded student on http://127.0.0.1:8000
    r2r serve --explain evidence --port 9000    # rerank defaults are RerankConfig flags; requests may override them
    r2r serve --server http://gpu:8000/v1 --server-model r2r      # a student served by vLLM
    R2R_KEYS=k1,k2 r2r serve --host 0.0.0.0 --api-key-env R2R_KEYS --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from typing import Any

from ..cli_flags import add_config_arguments
from ..errors import R2RError
from .settings import ServerSettings, read_api_keys

#: With ``--workers N`` the options reach each worker process through this environment variable (never the keys:
#: each worker reads them itself from ``--api-key-env``/``--api-key-file``).
OPTIONS_ENV = "R2R_SERVE_OPTIONS"

EPILOG = """\
examples:
  r2r serve
  curl -s localhost:8000/v2/rerank -H 'content-type: application/json' \\
       -d '{"query": "how long do fleas live", "documents": ["Fleas live 2-3 months.", "Cats purr."]}'
  r2r serve --cross-encoder models/ms-marco-MiniLM-L-6-v2 --explain evidence
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``r2r serve`` flags: where to listen, the student, the rerank defaults, the limits and the keys."""
    from ..cli import _add_student_options

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    listen = parser.add_argument_group("listening")
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    listen.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    listen.add_argument("--workers", type=int, default=1, help="worker processes, each with its own copy of the "
                        "models (default 1; see docs/serve.md)")
    listen.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="log level of the server and uvicorn (default info: one line per request)")
    _add_student_options(parser)
    parser.add_argument("--cross-encoder", metavar="FOLDER", help="score with a local sequence-classification "
                        "reranker folder (ms-marco MiniLM, bge-reranker...) instead of the student; explanations are "
                        "the evidence sentence (no LM)")
    limits = parser.add_argument_group("limits and operation")
    add_config_arguments(limits, ServerSettings, skip=("api_keys",))
    keys = parser.add_argument_group("API keys (default: none, no auth)")
    keys.add_argument("--api-key-env", metavar="VAR", help="an environment variable holding the accepted keys "
                      "(comma-separated); clients send Authorization: Bearer KEY")
    keys.add_argument("--api-key-file", metavar="FILE", help="a file of accepted keys, one per line")


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """The :class:`ServerSettings` the flags describe, with the keys read from their variable or file."""
    values = {name: getattr(args, name) for name in ServerSettings.names() if getattr(args, name, None) is not None}
    if "cors_origins" in values:
        values["cors_origins"] = tuple(values["cors_origins"])
    api_keys: tuple[str, ...] = ()
    if args.api_key_env or args.api_key_file:
        api_keys = read_api_keys(env=args.api_key_env, file=args.api_key_file)
    return ServerSettings(**values, api_keys=api_keys)


def _student(args: argparse.Namespace) -> Any:
    """The student the flags name (loaded when called: at the server's start-up)."""
    from ..cli import _build_reranker

    if args.cross_encoder:
        if args.model or args.server:
            raise R2RError("--cross-encoder is the scorer: drop --model/--server")
        from ..cross_encoder import CrossEncoderScorer
        from ..student import Student

        scorer = CrossEncoderScorer.from_pretrained(args.cross_encoder)
        return Student(scorer=scorer, name=scorer.name)
    return _build_reranker(args).student


def build_app(args: argparse.Namespace) -> Any:
    """The app the flags describe; the student loads when the app starts (so ``/health`` answers meanwhile)."""
    from ..cli import rerank_config
    from ..reranker import Reranker
    from . import create_app

    settings = server_settings(args)
    if args.server and not args.server_model:
        raise R2RError("--server URL and --server-model NAME go together")
    reranker = Reranker(config=rerank_config(args), student_factory=lambda: _student(args), trace=False)
    return create_app(reranker, settings)


def _log_setup(level: str) -> None:
    logging.getLogger("r2r_agent.server").setLevel(level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def app_from_environment() -> Any:
    """The app of one ``--workers`` process, from the options the parent put in ``$R2R_SERVE_OPTIONS``."""
    args = argparse.Namespace(**json.loads(os.environ[OPTIONS_ENV]))
    _log_setup(args.log_level)
    return build_app(args)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C (in-flight requests get ``--shutdown-timeout-s`` to finish), then exit 0."""
    from .._optional import require

    uvicorn = require("uvicorn", "server", "r2r serve")
    if args.workers < 1:
        raise R2RError(f"--workers must be >= 1, got {args.workers}")
    _log_setup(args.log_level)
    settings = server_settings(args)  # bad limits or keys fail here, before anything loads
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that was there before
    # it started: with Python's defaults that is death by the signal (exit -15) or a KeyboardInterrupt traceback. A
    # graceful stop is a success for an operator's supervisor, so the handlers it finds do nothing: exit 0.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: None)
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                  timeout_graceful_shutdown=int(max(1, settings.shutdown_timeout_s)))
    if args.workers == 1:
        uvicorn.run(build_app(args), **common)
    else:
        options = {k: v for k, v in vars(args).items() if k != "plugin"}
        os.environ[OPTIONS_ENV] = json.dumps(options)
        uvicorn.run("r2r_agent.server.cli:app_from_environment", factory=True, workers=args.workers, **common)
    return 0
