"""``r2r calibrate``: fit the relevance calibrator of a scorer (what relevance and verdicts mean) on labelled pairs.

    r2r calibrate --r2r-data ../shared/data/r2r-train/msmarco_500.jsonl.gz -o calibrator.json   # the teacher's verdicts
    r2r calibrate --labelled my-judgments.jsonl --scorer encoder:models/my-encoder -o mine.json     # your own labels

Use the result with ``Student(scorer=..., calibrator=Calibrator.load("mine.json"))``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from r2r_agent.errors import InvalidInputError
from r2r_agent.registry import Registry

#: The scorers ``--scorer`` names, by exact kind.
SCORERS: Registry[Any] = Registry("scorer")
SCORERS.register("default", lambda arg: _default_scorer(), description="the bundled all-MiniLM-L6-v2 (as the "
                 "default student runs it)")
SCORERS.register("encoder", lambda arg: _encoder(arg), argument="PATH",
                 description="a sentence-embedding encoder folder (EncoderScorer.from_pretrained)")


def _default_scorer() -> Any:
    from r2r_agent.scorers import EncoderScorer

    return EncoderScorer.default(dtype="auto")


def _encoder(path: str) -> Any:
    from r2r_agent.scorers import EncoderScorer

    return EncoderScorer.from_pretrained(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``r2r calibrate`` options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--r2r-data", action="append", type=Path, metavar="FILE",
                        help="R2R teacher files (repeatable): every passage labelled with the teacher's verdict")
    source.add_argument("--labelled", type=Path, metavar="FILE",
                        help="your JSON Lines: {\"query\", \"text\", \"label\": 0-3 or relevant/partial/not_relevant}")
    parser.add_argument("--scorer", default="default", metavar="KIND",
                        help=f"the scorer to calibrate: {', '.join(SCORERS.usages())} (default: default)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="the calibrator JSON to write")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of queries held out to measure it (default 0.1, the split of r2r distill)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 penalty of the logistic model (default 0.01)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Fit, write and summarise the calibrator."""
    from r2r_agent.student import Student

    from .calibrate import fit_calibrator, jsonl_pairs, measure, r2r_pairs

    entry, argument = SCORERS.parse(args.scorer)
    if args.r2r_data:
        missing = [str(p) for p in args.r2r_data if not p.is_file()]
        if missing:
            raise InvalidInputError(f"--r2r-data: no such file {missing[0]}")
        pairs = r2r_pairs(args.r2r_data)
        source = "R2R teacher annotations " + ", ".join(p.name for p in args.r2r_data) + \
            " (labels: the teacher's verdict read from its direct reason)"
    else:
        pairs = jsonl_pairs(args.labelled)
        source = f"labelled pairs {args.labelled.name}"
    scorer = entry.value(argument)
    measured = measure(Student(scorer=scorer, name=scorer.name), pairs, progress=not args.no_progress)
    calibrator, report = fit_calibrator(
        measured, scorer=scorer.name, validation_fraction=args.validation_fraction, seed=args.split_seed,
        l2=args.l2, fitted_on=f"{source}; training split of r2r distill's query split (fraction "
                               f"{args.validation_fraction}, seed {args.split_seed})")
    calibrator.save(args.output)
    print(f"wrote {args.output} for the scorer {scorer.name!r}")
    print(f"relevance = sigmoid({calibrator.bias:.3f} + " + " + ".join(
        f"{w:.3f}*{f}" for f, w in zip(calibrator.features, calibrator.weights)) + ")")
    print(f"verdicts: relevant at >= {calibrator.relevant_at:.3f}, partial at >= {calibrator.partial_at:.3f}")
    print(json.dumps(report, indent=2))
    return 0
