"""``r2r teach``: annotate queries and candidates with a teacher LLM (resumable, cached).

    r2r teach --candidates runs/train.top20.jsonl.gz --base-url http://localhost:8000/v1 --model qwen2.5-72b \\
        --cache runs/teacher.sqlite --output runs/teach.annotations.jsonl.gz --window-size 20 --stride 10
    r2r teach --r2r-data ../shared/data/r2r-train/msmarco_100.jsonl.gz --teacher openai:gpt-4o-mini \\
        --teacher-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY --cache runs/gpt4o-mini.sqlite
    r2r teach --candidates runs/train.top20.jsonl.gz --teacher transformers:/models/Qwen2.5-7B-Instruct \\
        --teacher-device cuda --cache runs/qwen7b.sqlite

The teacher is any OpenAI-compatible chat-completions endpoint (``--teacher openai:MODEL``, or the older
``--base-url URL --model MODEL``) or a local causal-LM folder run in-process (``--teacher transformers:PATH``).
Re-running the same command continues where an interrupted run stopped (finished windows are read from ``--cache``):
Ctrl-C stops a run within ``--interrupt-wait`` seconds (exit status 130). A run where fewer than
``--min-success-share`` of the windows succeeded exits with status 1 and writes no annotations file. The annotations
file feeds ``r2r distill --annotations``. Imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2r_agent.cli_flags import DefaultsHelpFormatter, add_config_arguments, config_from_args

from .teacher_choice import add_teacher_arguments, teacher_settings_from_args

if TYPE_CHECKING:
    from .annotate import AnnotationRequest

# The flags `r2r teach` had before teachers other than OpenAI-compatible endpoints existed keep working.
_TEACHER_ALIASES = {"teacher_url": ["--base-url"], "teacher_temperature": ["--temperature"],
                    "teacher_timeout": ["--timeout"], "teacher_max_retries": ["--max-retries"],
                    "teacher_max_concurrency": ["--max-concurrency"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``r2r teach`` flags to ``parser``."""
    from .annotate import AnnotationConfig

    parser.formatter_class = DefaultsHelpFormatter
    data = parser.add_argument_group("queries and candidates (one of)")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--candidates", type=Path, metavar="FILE",
                        help='candidate lists, one JSON object per line: {"qid", "query", "candidates": [{"docid", '
                             '"text", "score"}, ...]} (.jsonl or .jsonl.gz, the shared trec-dl format)')
    source.add_argument("--r2r-data", type=Path, metavar="FILE",
                        help="the R2R rows (msmarco_*.jsonl.gz): re-annotate their passages with your teacher")
    data.add_argument("--max-queries", type=int, default=None, metavar="N", help="annotate only the first N queries")
    teacher = parser.add_argument_group(
        "teacher (--teacher openai:MODEL with --teacher-url, or --teacher transformers:PATH; see TeacherSettings)")
    add_teacher_arguments(teacher, aliases=_TEACHER_ALIASES)
    teacher.add_argument("--model", default=None, metavar="MODEL",
                         help="older spelling of --teacher openai:MODEL (with --base-url)")
    run_group = parser.add_argument_group("annotation run (see AnnotationConfig)")
    add_config_arguments(run_group, AnnotationConfig)
    parser.add_argument("--cache", required=True, type=Path, help="the resumable SQLite cache of teacher answers")
    parser.add_argument("--output", type=Path, default=None,
                        help="annotations file for `r2r distill --annotations` (default: CACHE.annotations.jsonl.gz)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")


def read_candidates(path: Path, max_queries: int | None = None) -> list[AnnotationRequest]:
    """Annotation requests from a candidate-list file (the shared ``trec-dl/*.jsonl.gz`` format)."""
    from r2r_agent.errors import R2RError

    from .jsonl import read_json_lines

    if not path.is_file():
        raise R2RError(f"candidates file {str(path)!r} not found")
    return read_json_lines(path, _candidate_list, what="a candidate list", limit=max_queries, expected=(
        '{"qid": "...", "query": "...", "candidates": [{"docid": "...", "text": "...", "score": 1.0}]}'))


def _candidate_list(row: Any) -> AnnotationRequest:
    from r2r_agent.types import Passage

    from .annotate import AnnotationRequest

    candidates = [Passage(text=c["text"], id=str(c["docid"]) if c.get("docid") is not None else None,
                          first_stage_score=c.get("score")) for c in row["candidates"]]
    return AnnotationRequest(str(row["qid"]), row["query"], candidates)


def r2r_requests(path: Path, max_queries: int | None = None) -> list[AnnotationRequest]:
    """Annotation requests from the R2R rows: each row's passages (teacher's input order) and MS MARCO labels."""
    from .annotate import AnnotationRequest
    from .r2r_import import iter_r2r_annotations

    requests: list[AnnotationRequest] = []
    for annotation in iter_r2r_annotations(path):
        if max_queries is not None and len(requests) >= max_queries:
            break
        requests.append(AnnotationRequest(annotation.query_id, annotation.query, annotation.candidates,
                                          annotation.labels))
    return requests


def build_teacher(args: argparse.Namespace) -> Any:
    """The teacher the flags describe (see :class:`~r2r_agent.training.teacher_choice.TeacherSettings`).

    ``--teacher openai:MODEL`` (or the older ``--model MODEL``) with ``--teacher-url``/``--base-url`` gives an
    :class:`~r2r_agent.training.OpenAIChatTeacher` (its key read from ``--api-key-env``); ``--teacher
    transformers:PATH`` a :class:`~r2r_agent.training.TransformersTeacher`.
    """
    return teacher_settings_from_args(args, legacy_model=getattr(args, "model", None)).build()


def default_output(cache: Path) -> Path:
    """``runs/teacher.sqlite`` -> ``runs/teacher.annotations.jsonl.gz``."""
    return cache.with_name(cache.stem + ".annotations.jsonl.gz")


def run(args: argparse.Namespace) -> int:
    """Annotate, write the annotations file, and print the counts.

    Returns:
        0; 1 when fewer than ``--min-success-share`` of the windows succeeded (or none did): the summary goes to
        stderr and no annotations file is written; 130 after Ctrl-C: finished windows are in the cache.
    """
    from .annotate import AnnotationConfig
    from .annotation_run import AnnotationInterrupted, AnnotationStop, annotate
    from .cache import AnnotationCache
    from .jsonl import write_json_lines

    config = config_from_args(AnnotationConfig, args)
    if args.candidates is not None:
        requests = read_candidates(args.candidates, args.max_queries)
    else:
        requests = r2r_requests(args.r2r_data, args.max_queries)
    teacher = build_teacher(args)
    output = args.output or default_output(args.cache)
    stop = AnnotationStop()
    left_in_flight = False
    try:
        load = getattr(teacher, "load", None)
        if callable(load):  # a local model that cannot load should fail now, not once per window
            load()
        # While annotating, Ctrl-C asks the run to stop instead of raising wherever the program is (tracebacks, a
        # cache or a connection closed under running threads), up to the interruption summary.
        with _ctrl_c_requests(stop):
            try:
                with AnnotationCache(args.cache) as cache:
                    result = annotate(teacher, requests, config=config, cache=cache, progress=args.progress,
                                      stop=stop)
            except AnnotationInterrupted as interrupted:
                left_in_flight = interrupted.abandoned > 0
                done = interrupted.run
                print(f"r2r teach: interrupted: {len(done.annotations)} of {interrupted.queries} queries finished "
                      f"({done.windows} windows, all saved in the cache {args.cache}); {interrupted.abandoned} "
                      "queries left in flight. Run the same command again to continue: finished windows are read "
                      f"from the cache. No annotations file was written ({output} is written when a run finishes).",
                      file=sys.stderr)
                return 130
    except KeyboardInterrupt:  # while a local teacher loaded: nothing was asked yet
        print("r2r teach: interrupted before the first request; nothing was annotated", file=sys.stderr)
        return 130
    finally:
        close = getattr(teacher, "close", None)
        if callable(close) and not left_in_flight:  # threads left in flight may still use it; the process ends
            close()
    print(f"annotated {len(result.annotations)} queries with {teacher.name}: {result.windows} windows "
          f"({result.cached} from the cache, {result.failed} failed) in {result.seconds:.1f}s")
    if result.windows and (result.failed == result.windows or result.success_share < config.min_success_share):
        print(f"r2r teach: error: {result.failed} of {result.windows} windows failed ({result.failed_queries} of "
              f"{len(result.annotations)} queries have a failed window); the first error: {result.first_error}. "
              f"That is fewer than {config.min_success_share:.0%} succeeding (--min-success-share), so no "
              "annotations file was written. Check the teacher (an endpoint: is the server up, are the model name "
              "and API key right?) and run the same command again: windows that succeeded are read from the cache, "
              "failed ones are asked again.", file=sys.stderr)
        return 1
    write_json_lines(output, (annotation.to_dict() for annotation in result.annotations))
    print(f"annotations written to {output}; train with `r2r distill --annotations {output} -o ADAPTER_DIR`")
    if result.failed:
        print(f"{result.failed} windows failed (recorded in the cache); run the same command again to retry them")
    return 0


@contextlib.contextmanager
def _ctrl_c_requests(stop: Any) -> Iterator[None]:
    """While annotating, SIGINT (Ctrl-C) calls ``stop.request()`` instead of raising ``KeyboardInterrupt`` at a random
    place: the first stops the run, the second stops waiting for the requests in flight, later ones do nothing."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.request())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["add_arguments", "build_teacher", "default_output", "r2r_requests", "read_candidates", "run"]
