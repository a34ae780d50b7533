"""Long documents: does the scorer find an answer wherever it sits in a long document? (issue 20 item 1)

A synthetic set built from the R2R training split (MS MARCO train queries; never DL19/DL20): for each query, its
best passage (the teacher's first) is placed at the ``start``, ``middle`` or ``end`` of a document of about ``L``
characters padded with passages of *other* queries (the same padding for the three positions: only where the answer
sits changes); ``distractors`` more documents of the same length hold passages of other queries only. A case is right
when the answer's document scores strictly highest (a tie is wrong). Chance is ``1 / (1 + distractors)``. It asks
one thing: does the scorer see the answer where it is? (How well it tells a best passage from a near miss is what
the DL19/DL20 and teacher-agreement evaluations measure.)

Run it (on this 2-core machine 20 queries take minutes; the window cost is reported)::

    python -m evals.long_documents ../shared/data/r2r-train/msmarco_500.jsonl.gz --queries 20 \\
        --lengths 2000,5000,10000,20000 -o long_documents.json

It scores each case with the bundled MiniLM twice, reading the first window only (``max_tokens_per_passage=None``,
the scorer before windows) and in windows up to 4,096 tokens, and prints top-1 accuracy by position and length.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POSITIONS = ("start", "middle", "end")
DEFAULT_LENGTHS = (2000, 5000, 10000, 20000)
#: Between the passages of a synthetic document: a paragraph break, as in a web page or a PDF's text.
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class LongDocumentCase:
    """One query and its candidate documents.

    Attributes:
        qid: The R2R (MS MARCO train) query id.
        query: The query.
        documents: The candidates; ``documents[target]`` holds the best passage.
        target: Which document holds it.
        position: ``"start"``, ``"middle"`` or ``"end"``: where the best passage sits in its document.
        length: The documents' length in characters, as asked (each is at least this long, or the padding ran out).
        answer_span: ``(start, end)`` of the best passage in ``documents[target]``.
    """

    qid: str
    query: str
    documents: tuple[str, ...]
    target: int
    position: str
    length: int
    answer_span: tuple[int, int]


def _document(inserted: str, padding: Iterable[str], length: int, position: str) -> tuple[str, tuple[int, int]]:
    """Passages of ``padding`` around ``inserted`` (at ``position``) until the text reaches ``length`` characters."""
    pieces: list[str] = []
    size = len(inserted)
    for passage in padding:
        if size >= length:
            break
        pieces.append(passage)
        size += len(passage) + len(SEPARATOR)
    at = {"start": 0, "middle": len(pieces) // 2, "end": len(pieces)}[position]
    before = SEPARATOR.join(pieces[:at])
    start = len(before) + (len(SEPARATOR) if before else 0)
    text = SEPARATOR.join([*pieces[:at], inserted, *pieces[at:]])
    return text, (start, start + len(inserted))


def build_cases(annotations: Sequence[Any], *, queries: int = 20, lengths: Sequence[int] = DEFAULT_LENGTHS,
                positions: Sequence[str] = POSITIONS, distractors: int = 4, seed: int = 0) -> list[LongDocumentCase]:
    """The long-document cases of ``queries`` queries drawn (seeded) from R2R annotations.

    Args:
        annotations: :class:`r2r_agent.training.QueryAnnotation` records (``iter_r2r_annotations``).
        queries: How many queries (each gives ``len(lengths) * len(positions)`` cases).
        lengths: Document lengths in characters.
        positions: Where the best passage sits.
        distractors: Documents without it per case.
        seed: Picks the queries, the padding and the candidates' order.
    """
    from r2r_agent.errors import InvalidInputError

    bad = [p for p in positions if p not in POSITIONS]
    if bad or queries < 1 or distractors < 1 or not lengths or min(lengths) < 1:
        raise InvalidInputError(f"build_cases: positions must be among {POSITIONS}, queries, distractors and lengths "
                                f">= 1; got positions={list(positions)}, queries={queries}, distractors={distractors}, "
                                f"lengths={list(lengths)}")
    rng = random.Random(seed)
    usable = [a for a in annotations if len(a.candidates) >= 2]
    chosen = rng.sample(usable, min(queries, len(usable)))
    cases = []
    for annotation in chosen:
        own = {p.text for p in annotation.candidates}
        pool = [p.text for a in usable if a.query_id != annotation.query_id for p in a.candidates
                if p.text not in own]
        best = annotation.candidates[annotation.order[0]].text
        for length in lengths:
            padding = rng.sample(pool, min(len(pool), 80))
            others = [_document(SEPARATOR.join(rng.sample(pool, 2)), rng.sample(pool, min(len(pool), 80)), length,
                                "start") for _ in range(distractors)]
            for position in positions:
                docs = [_document(best, padding, length, position), *others]
                order = list(range(len(docs)))
                rng.shuffle(order)
                target = order.index(0)
                cases.append(LongDocumentCase(annotation.query_id, annotation.query,
                                              tuple(docs[i][0] for i in order), target, position, length,
                                              docs[0][1]))
    return cases


@dataclass(frozen=True)
class CaseResult:
    """How one scorer did on one case: right or not, the windows it encoded and its seconds."""

    position: str
    length: int
    correct: bool
    windows: int
    seconds: float


def run_cases(scorer: Any, cases: Sequence[LongDocumentCase]) -> list[CaseResult]:
    """Score every case's documents with ``scorer``; right when the answer's document scores strictly highest.

    A document shared by cases (the distractors of one query and length) is scored once; each case is charged the
    windows and seconds of scoring all its documents (what a caller would pay).
    """
    seen: dict[tuple[str, str], tuple[float, int, float]] = {}
    out = []
    for case in cases:
        new = [d for d in dict.fromkeys(case.documents) if (case.query, d) not in seen]
        if new:
            start = time.perf_counter()
            scores = scorer.score(case.query, new)
            each = (time.perf_counter() - start) / len(new)
            windows = [len(w) for w in scores.windows] if scores.windows else [1] * len(new)
            for doc, value, count in zip(new, scores.values, windows):
                seen[(case.query, doc)] = (value, count, each)
        rows = [seen[(case.query, d)] for d in case.documents]
        best = rows[case.target][0]
        correct = all(best > row[0] for i, row in enumerate(rows) if i != case.target)
        out.append(CaseResult(case.position, case.length, correct, sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return out


def accuracy_table(results: dict[str, list[CaseResult]]) -> dict[str, Any]:
    """Top-1 accuracy by system, position and length (and overall), with windows and seconds per document."""
    table: dict[str, Any] = {}
    for system, rows in results.items():
        cells: dict[str, dict[str, float]] = {}
        for key in sorted({(r.position, r.length) for r in rows}, key=lambda k: (POSITIONS.index(k[0]), k[1])):
            chosen = [r for r in rows if (r.position, r.length) == key]
            cells[f"{key[0]}@{key[1]}"] = {"top1": sum(r.correct for r in chosen) / len(chosen), "n": len(chosen)}
        by_length = {}
        for length in sorted({r.length for r in rows}):
            chosen = [r for r in rows if r.length == length]
            by_length[str(length)] = {
                "top1": sum(r.correct for r in chosen) / len(chosen),
                "windows_per_case": sum(r.windows for r in chosen) / len(chosen),
                "seconds_per_case": sum(r.seconds for r in chosen) / len(chosen)}
        table[system] = {"cells": cells, "by_length": by_length,
                         "top1": sum(r.correct for r in rows) / len(rows), "cases": len(rows)}
    return table


def markdown(table: dict[str, Any], *, distractors: int) -> str:
    """The results as a Markdown table: one row per position and length, one column per system."""
    systems = list(table)
    cells = list(next(iter(table.values()))["cells"])
    lines = [f"| answer at | length (chars) | {' | '.join(systems)} |", "|---|---:|" + "---:|" * len(systems)]
    for cell in cells:
        position, length = cell.split("@")
        values = " | ".join(f"{table[s]['cells'][cell]['top1']:.2f}" for s in systems)
        lines.append(f"| {position} | {int(length):,} | {values} |")
    overall = " | ".join(f"**{table[s]['top1']:.3f}**" for s in systems)
    lines.append(f"| **all** | | {overall} |")
    lines.append("")
    lines.append(f"Chance: {1 / (1 + distractors):.2f}. Cost (windows encoded and seconds per case of "
                 f"{1 + distractors} documents, noisy, shared 2-core CPU):")
    lines.append("")
    lines.append("| length (chars) | " + " | ".join(f"{s} windows | {s} s" for s in systems) + " |")
    lines.append("|---:|" + "---:|---:|" * len(systems))
    for length in next(iter(table.values()))["by_length"]:
        row = " | ".join(f"{table[s]['by_length'][length]['windows_per_case']:.1f} | "
                         f"{table[s]['by_length'][length]['seconds_per_case']:.2f}" for s in systems)
        lines.append(f"| {int(length):,} | {row} |")
    return "\n".join(lines)


def short_passage_check(run_path: str | Path, qrels_path: str | Path, scorer: Any, first: Any) -> dict[str, Any]:
    """nDCG@10 of ``scorer`` (windows) vs ``first`` (first window only) on a TREC DL run of short passages.

    Only a query with a passage longer than one window can score differently (the others give both scorers the same
    texts in the same batches: the same floats), so only those queries are scored, with both, and the mean changes by
    the sum of their differences over the number of judged queries. Two other queries are scored with both as a check
    that they are bit-identical.
    """
    import gzip

    from evals.metrics import evaluate
    from evals.trec import read_trec_qrels

    qrels: dict[str, dict[str, int]] = {}
    for q in read_trec_qrels(qrels_path):
        qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    with gzip.open(run_path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows = [r for r in rows if r["qid"] in qrels]
    window = scorer.max_tokens - 2
    tokens = {r["qid"]: max(len(scorer.tokenizer(c["text"], add_special_tokens=False, verbose=False)["input_ids"])
                            for c in r["candidates"]) for r in rows}
    affected = [r for r in rows if tokens[r["qid"]] > window]
    controls = [r for r in rows if tokens[r["qid"]] <= window][:2]
    per_query = {}
    for row in affected + controls:
        texts = [c["text"] for c in row["candidates"]]
        new, old = scorer.score(row["query"], texts).values, first.score(row["query"], texts).values
        runs = [{row["qid"]: {c["docid"]: v for c, v in zip(row["candidates"], values)}} for values in (old, new)]
        ndcg = [evaluate(qrels, run, ["nDCG@10"], backend="python").values("nDCG@10")[row["qid"]] for run in runs]
        per_query[row["qid"]] = {"windowed_passages": sum(
            len(scorer.tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"]) > window for t in texts),
            "identical_scores": old == new, "ndcg10_first_window": ndcg[0], "ndcg10_windows": ndcg[1]}
    delta = sum(q["ndcg10_windows"] - q["ndcg10_first_window"] for q in per_query.values())
    return {"run": str(run_path), "judged_queries": len(rows), "affected_queries": len(affected),
            "mean_ndcg10_change": delta / len(rows), "queries": per_query}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.long_documents", description=__doc__.split("\n")[0])
    parser.add_argument("r2r", nargs="*", help="R2R training files (msmarco_*.jsonl.gz)")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)))
    parser.add_argument("--distractors", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens-per-passage", type=int, default=4096)
    parser.add_argument("-o", "--output", type=Path, help="write the table (JSON) here")
    parser.add_argument("--dl-check", nargs=2, action="append", metavar=("RUN", "QRELS"),
                        help="instead: nDCG@10 with and without windows on a TREC DL run (.jsonl.gz) and its qrels")
    args = parser.parse_args(argv)

    from r2r_agent.scorers import EncoderScorer
    from r2r_agent.training.r2r_import import iter_r2r_annotations

    if args.dl_check:
        windowed = EncoderScorer.default(max_tokens_per_passage=args.max_tokens_per_passage)
        first = EncoderScorer(windowed.model, windowed.tokenizer, name=windowed.name, max_tokens=windowed.max_tokens,
                              max_tokens_per_passage=None)
        checks = [short_passage_check(run, qrels, windowed, first) for run, qrels in args.dl_check]
        sys.stdout.write(json.dumps(checks, indent=2) + "\n")
        return 0
    annotations = [a for path in args.r2r for a in iter_r2r_annotations(path)]
    cases = build_cases(annotations, queries=args.queries, lengths=[int(x) for x in args.lengths.split(",")],
                        distractors=args.distractors, seed=args.seed)
    windowed = EncoderScorer.default(max_tokens_per_passage=args.max_tokens_per_passage)
    first = EncoderScorer(windowed.model, windowed.tokenizer, name=windowed.name, max_tokens=windowed.max_tokens,
                          max_tokens_per_passage=None)
    results = {"first window (before)": run_cases(first, cases),
               f"windows ≤{args.max_tokens_per_passage} tokens": run_cases(windowed, cases)}
    table = accuracy_table(results)
    sys.stdout.write(markdown(table, distractors=args.distractors) + "\n")
    if args.output:
        args.output.write_text(json.dumps({"settings": vars(args) | {"output": str(args.output)}, "table": table},
                                          indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
