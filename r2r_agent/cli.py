"""The ``r2r`` command line.

    r2r rerank --query "how long do fleas live" --passages passages.jsonl   # rank a file (or - for stdin)
    r2r demo                                                                # real DL19 queries, with reasons
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .cli_flags import add_config_arguments, config_from_args
from .config import RerankConfig
from .errors import R2RError
from .types import Passage, to_passage

DESCRIPTION = """\
r2r-agent: rerank retrieved passages with reasons.

A small "student" model scores every passage for your query, puts the best first, and writes a short explanation
of why each top passage is (or is not) relevant, plus one explanation of why the top passages are ordered as they
are. Everything runs locally and offline. The first run prepares the embedded model once (about 30 s).
"""

EPILOG = """\
examples:
  r2r demo                                           rank a few real TREC DL19 queries and show the reasons
  r2r rerank -q "how long do fleas live" -p passages.jsonl
  cat passages.jsonl | r2r rerank -q "..." -p - --json
  r2r rerank -q "..." -p passages.jsonl --server http://localhost:8000/v1 --server-model r2r   # a served student

passages file: JSON Lines, one passage per line, either a JSON string or an object such as
  {"id": "d1", "text": "Fleas live 2-3 months.", "score": 12.3, "metadata": {...}}
"""


def _add_student_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("student")
    group.add_argument("--model", help="a local causal-LM folder that both scores and explains, or 'default' for "
                       "the embedded SmolLM2-135M alone (without --model: the embedded MiniLM scorer + SmolLM2 "
                       "explainer)")
    group.add_argument("--adapter", help="a distilled adapter folder (from `r2r distill`) for --model or for the "
                       "default SmolLM2; 'none': the zero-shot default without the shipped adapter")
    group.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default=None,
                       help="weight dtype (default: auto for the embedded student = bfloat16 where the CPU has "
                       "native bfloat16, else float32; float32 for --model)")
    group.add_argument("--device", default=None, help="torch device for --model, e.g. cuda (default: CPU)")
    group.add_argument("--quantize", choices=("int8", "none"), default=None,
                       help="int8 dynamic quantisation for CPU speed (default none; for the embedded student it "
                       "applies to the MiniLM scorer only: 2.4x faster, -0.012 nDCG@10 on DL19)")
    group.add_argument("--server", metavar="URL", help="a served student: an OpenAI-compatible server (vLLM, "
                       "llama.cpp...) such as http://localhost:8000/v1 that scores (yes/no logprobs) and explains "
                       "(see docs/scale-out.md; needs the served extra)")
    group.add_argument("--server-model", metavar="NAME", help="the model name --server serves (e.g. the "
                       "--lora-modules name given to vllm serve)")
    group.add_argument("--server-api-key-env", metavar="VAR", help="the environment variable that holds the "
                       "--server's API key (the key itself never goes on the command line)")
    # Every rerank setting (--explain-top, --first-stage-weight...) comes from RerankConfig, with its help and default.
    add_config_arguments(group, RerankConfig, skip=("top_n",))


#: The entry-point group through which the layers above the core (and other packages) add ``r2r`` commands. Each entry
#: point names a module with a docstring (its first line is the command's summary), ``add_arguments(parser)`` and
#: ``run(args) -> int``, that imports
#: nothing heavy at module level. The core names none of them: a command whose extra is missing is still listed, and
#: running it says which ``pip install`` adds it.
COMMAND_GROUP = "r2r_agent.commands"


def _command_entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name)}


class _UnavailableCommand:
    """Stands in for a command whose module cannot be imported (an extra is missing): it says how to get it."""

    def __init__(self, name: str, error: ImportError) -> None:
        self.SUMMARY = f"(unavailable: {error})"
        self._name = name
        self._error = error

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        raise R2RError(f"`r2r {self._name}` cannot run here: {self._error}")


def _summary(docstring: str | None) -> str:
    """A module docstring's first line without its ``r2r NAME``: prefix."""
    first = (docstring or "").strip().splitlines()[0] if (docstring or "").strip() else ""
    return (first.split("``: ", 1)[-1] if first.startswith("``r2r ") else first).rstrip(".")


def _load_command(name: str, entry_point: Any) -> Any:
    try:
        return entry_point.load()
    except ImportError as exc:  # its extra is not installed: keep the command listed, with the fix
        return _UnavailableCommand(name, exc)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="r2r", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is happening")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    rerank = commands.add_parser("rerank", help="rerank passages for a query and explain the order",
                                 description="Rerank the passages in a JSON Lines file for a query.")
    rerank.add_argument("-q", "--query", required=True, help="the search query")
    rerank.add_argument("-p", "--passages", required=True, metavar="FILE",
                        help="JSON Lines file of passages (strings or objects with 'text'); - reads standard input")
    rerank.add_argument("-n", "--top-n", type=int, default=None, metavar="N",
                        help=RerankConfig.help("top_n"))
    rerank.add_argument("--json", action="store_true", help="print the ranking as JSON instead of a table")
    _add_student_options(rerank)

    demo = commands.add_parser("demo", help="rank real TREC DL19 queries with explanations, with nDCG@10 vs BM25",
                               description="Rerank the BM25 top-100 of a few TREC DL19 queries (from ../shared/data "
                               "or $R2R_DATA_DIR; a small bundled example otherwise), print the top passages with "
                               "explanations and compare nDCG@10 with BM25.")
    demo.add_argument("--queries", type=int, default=3, metavar="N", help="how many queries (default 3)")
    demo.add_argument("-n", "--top-n", dest="shown", type=int, default=5, metavar="N",
                      help="passages shown per query (default 5)")
    demo.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (holds trec-dl/)")
    _add_student_options(demo)

    for name, entry_point in _command_entry_points().items():
        command = _load_command(name, entry_point)
        summary = getattr(command, "SUMMARY", None) or _summary(command.__doc__)
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(plugin=command)
        command.add_arguments(sub)
    return parser


def read_passages(source: str, stdin: TextIO | BinaryIO | None = None) -> list[Passage]:
    """Read passages from a JSON Lines file (or ``-`` for standard input).

    Each line is a JSON string or an object with a ``text`` (see :func:`r2r_agent.types.to_passage`); blank lines
    are skipped.

    Raises:
        R2RError: for a missing, unreadable or folder path, or a line that is not UTF-8, not JSON, nested too deeply
            or not a passage, naming the line.
    """
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        raw = stream.read()
        where = "standard input"
    else:
        path = Path(source)
        if path.is_dir():
            raise R2RError(f"passages file {source!r} is a folder; pass a JSON Lines file")
        if not path.is_file():
            raise R2RError(f"passages file {source!r} not found")
        try:
            raw = path.read_bytes()
        except OSError as exc:  # unreadable (permissions, I/O error): say so, not a PermissionError traceback
            raise R2RError(f"passages file {source!r} cannot be read: {exc.strerror or exc}") from None
        where = source
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    passages: list[Passage] = []
    for number, line_bytes in enumerate(data.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise R2RError(f"{where}, line {number}: not UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
                           ) from None
        if not line.strip():
            continue
        try:
            item: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise R2RError(f"{where}, line {number}: not JSON ({exc.msg}); each line must be a JSON string or an "
                           'object like {"id": "d1", "text": "..."}') from None
        except RecursionError:
            raise R2RError(f"{where}, line {number}: nested too deeply to be a passage") from None
        try:
            passages.append(to_passage(item, len(passages)))
        except R2RError as exc:
            raise R2RError(f"{where}, line {number}: {exc}") from None
    return passages


def _served_student(args: argparse.Namespace) -> Any:
    """The student behind ``--server`` (``Student.from_openai``)."""
    import os

    from .student import Student

    if not args.server or not args.server_model:
        raise R2RError("--server URL and --server-model NAME go together: the server's URL (e.g. "
                       "http://localhost:8000/v1) and the model name it serves")
    if args.model or args.adapter:
        raise R2RError("--server runs the student on the server: drop --model/--adapter (serve the adapter there, "
                       "e.g. vllm serve BASE --enable-lora --lora-modules r2r=ADAPTER)")
    key = None
    if args.server_api_key_env:
        key = os.environ.get(args.server_api_key_env)
        if not key:
            raise R2RError(f"--server-api-key-env {args.server_api_key_env}: that environment variable is not set "
                           f"or empty; export {args.server_api_key_env}=<the server's key> first")
    return Student.from_openai(args.server, args.server_model, api_key=key)


def _build_reranker(args: argparse.Namespace) -> Any:
    from .reranker import Reranker
    from .student import SHIPPED, Student

    if getattr(args, "server", None) or getattr(args, "server_model", None):
        return Reranker(_served_student(args), config=rerank_config(args))

    try:  # transformers' own per-load bars would bury the output; we show ours while preparing the default model
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    no_adapter = args.adapter is not None and args.adapter.lower() == "none"
    if args.model:
        model = args.model
        if model == "default":  # the embedded SmolLM2, e.g. with an adapter distilled from it
            from .default_models import prepare_smollm2

            model = prepare_smollm2(progress=True)
        student = Student.from_pretrained(model, adapter=None if no_adapter else args.adapter,
                                          quantize=args.quantize or "none", dtype=args.dtype or "float32",
                                          device=args.device)
    else:
        adapter = SHIPPED if args.adapter is None else None if no_adapter else args.adapter
        student = Student.default(dtype=args.dtype or "auto", quantize=args.quantize or "none", progress=True,
                                  adapter=adapter)
    return Reranker(student, config=rerank_config(args))


def rerank_config(args: argparse.Namespace) -> RerankConfig:
    """The :class:`RerankConfig` the flags describe (flags not given keep its defaults)."""
    return config_from_args(RerankConfig, args)


def _color() -> bool:
    """Colour and bold on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _cmd_rerank(args: argparse.Namespace) -> int:
    from .render import format_ranking

    passages = read_passages(args.passages)
    reranker = _build_reranker(args)
    ranking = reranker.rerank(args.query, passages)
    print(ranking.to_json(indent=2) if args.json else format_ranking(ranking, color=_color()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import load_demo_queries
    from .metrics import ndcg_at_k
    from .render import format_ranking

    queries, source = load_demo_queries(args.queries, args.data_dir)
    print(f"Demo on {len(queries)} queries from {source}\n")
    reranker = _build_reranker(args)
    rows: list[tuple[str, float, float, float]] = []
    for item in queries:
        passages = [Passage(c["text"], id=c["docid"], first_stage_score=c.get("score")) for c in item.candidates]
        # nDCG@10 reads only the top 10: judging (and returning) more would cost ~4 s a query for nothing shown
        ranking = reranker.rerank(item.query, passages, top_n=max(args.shown, 10))
        shown = dataclasses.replace(ranking, judgments=ranking.judgments[: args.shown])
        print(format_ranking(shown, color=_color()))
        print()
        first_stage = [p.id or "" for p in passages]
        student = [j.id or "" for j in ranking]
        rows.append((item.qid, ndcg_at_k(first_stage, item.qrels), ndcg_at_k(student, item.qrels), ranking.seconds))
    print(f"nDCG@10 on these {len(rows)} queries (first stage = BM25 order; student = {reranker.student.name}):")
    print(f"{'qid':>12} {'first stage':>12} {'student':>8} {'seconds':>8}")
    for qid, base, ours, seconds in rows:
        print(f"{qid:>12} {base:>12.4f} {ours:>8.4f} {seconds:>8.2f}")
    if rows:
        mean = [math.fsum(column) / len(rows) for column in list(zip(*rows))[1:]]
        print(f"{'mean':>12} {mean[0]:>12.4f} {mean[1]:>8.4f} {mean[2]:>8.2f}")
    print("\nA few queries make a noisy estimate; `r2r eval` (evals extra) measures all of DL19/DL20.")
    return 0


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``r2r`` console script: exit 0 on success, 2 on an error (one line on stderr), 130 when
    interrupted with Ctrl-C (one line, no traceback)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        command = next((a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")), "")
        print(f"r2r{' ' + command if command else ''}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:  # text with lone surrogates (from JSON escapes) prints as \udc80 instead of failing the command
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # pragma: no cover - a replaced stdout without reconfigure
        pass
    handlers = {"rerank": _cmd_rerank, "demo": _cmd_demo}
    try:
        if args.command in handlers:
            return handlers[args.command](args)
        return int(args.plugin.run(args))
    except R2RError as exc:
        print(f"r2r {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
