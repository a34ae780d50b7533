"""Evidence that answers rather than echoes (issue 20 item 7): how often the student's evidence is the teacher's
best-answering sentence, and how often it is a question, a title or a near-copy of the query.

The R2R teacher named each passage's best-answering sentence (``direct_answer_sentence``). On the held-out
validation queries (the split ``r2r distill`` holds out, :func:`evals.teacher_agreement.load_validation_split`; the
same 20 queries and 91 passages as the 57.1% of docs/results.md), the default student judges every passage in
evidence mode (no LM) and its evidence is matched to the teacher's sentence
(:func:`evals.evidence_agreement.same_sentence`). ``--split train`` measures on training-split queries instead: the
set to look at while changing the rule, so the held-out figure stays a measurement.

Run it::

    python -m evals.evidence_quality ../shared/data/r2r-train/msmarco_500.jsonl.gz --queries 20 -o evidence.json

Example:
    >>> echo_kind("how long do fleas live", "How long do fleas live?")
    'question'
    >>> echo_kind("how long do fleas live", "How Long Do Fleas Live")
    'near-copy of the query'
    >>> echo_kind("how long do fleas live", "Adult fleas live two to three months.") is None
    True
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r2r_agent.evidence import statement_problem

from .evidence_agreement import evidence_agreement, has_sentence, same_sentence


def echo_kind(query: str, evidence: str | None) -> str | None:
    """Why ``evidence`` states nothing (:func:`r2r_agent.evidence.statement_problem`: ``"question"``,
    ``"near-copy of the query"``, ``"title"``), or ``None`` when it is a statement."""
    if not evidence:
        return None
    return statement_problem(evidence, query)


def training_queries(paths: Sequence[Path], n: int, seed: int = 0) -> list[Any]:
    """The first ``n`` training-split queries (never validation ones), in the validation split's shape."""
    from r2r_agent.training.dataset import DatasetConfig, build_dataset
    from r2r_agent.training.r2r_import import iter_r2r_annotations

    from .teacher_agreement import ValidationQuery

    annotations = [a for p in paths for a in iter_r2r_annotations(p)]
    dataset = build_dataset(annotations, DatasetConfig(explain_top=None, compare_top=0, validation_fraction=0.1,
                                                       seed=seed))
    grouped: dict[str, list[Any]] = {}
    for example in dataset.train.explanations:
        if example.kind == "direct" and example.target.strip():
            grouped.setdefault(example.query_id, []).append(example)
    return [ValidationQuery(qid, ex[0].query, tuple(e.passage_ids[0] if e.passage_ids else None for e in ex),
                            tuple(e.passages[0] for e in ex), tuple(e.target for e in ex),
                            tuple(e.evidence[0] if e.evidence else None for e in ex))
            for qid, ex in list(grouped.items())[:n]]


def measure(reranker: Any, queries: Sequence[Any]) -> dict[str, Any]:
    """Evidence of every passage of ``queries`` (evidence mode, every passage judged), matched to the teacher's."""
    from r2r_agent import Passage

    items, rows = [], []
    for q in queries:
        passages = [Passage(text, id=pid or str(i)) for i, (pid, text) in enumerate(zip(q.passage_ids, q.passages))]
        ranking = reranker.rerank(q.query, passages, top_n=None, explain="evidence", compare_top=0)
        by_id = {j.id: j for j in ranking.judgments}
        for passage, teacher in zip(passages, q.teacher_evidence):
            judgment = by_id[passage.id]
            items.append((q.qid, q.query, passage.id, passage.text, judgment.evidence, teacher))
            if has_sentence(teacher):
                rows.append({"qid": q.qid, "query": q.query, "passage_id": passage.id, "evidence": judgment.evidence,
                             "teacher": teacher, "match": same_sentence(judgment.evidence, teacher),
                             "echo": echo_kind(q.query, judgment.evidence),
                             "teacher_echo": echo_kind(q.query, teacher)})
    agreement = evidence_agreement(items)
    echoes: dict[str, int] = {}
    for row in rows:
        if row["echo"]:
            echoes[row["echo"]] = echoes.get(row["echo"], 0) + 1
    return {"queries": len(queries), "agreement": agreement.to_dict(), "echoes": echoes,
            "teacher_echoes": sum(1 for r in rows if r["teacher_echo"]), "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.evidence_quality", description=__doc__.split("\n")[0])
    parser.add_argument("r2r", nargs="+", type=Path, help="R2R training files (msmarco_*.jsonl.gz)")
    parser.add_argument("--split", choices=("validation", "train"), default="validation")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("-o", "--output", type=Path, help="write every passage's evidence and match (JSON) here")
    args = parser.parse_args(argv)

    from r2r_agent import Reranker, Student

    from .teacher_agreement import load_validation_split

    if args.split == "validation":
        queries = list(load_validation_split(args.r2r, max_queries=args.queries).queries)
    else:
        queries = training_queries(args.r2r, args.queries)
    result = measure(Reranker(Student.default()), queries)
    agreement = result["agreement"]
    sys.stdout.write(f"{args.split}: {agreement['n_system']}/{agreement['n']} = {agreement['system_rate']:.1%} match "
                     f"the teacher's sentence (first sentence {agreement['first_sentence_rate']:.1%}, query coverage "
                     f"{agreement['query_coverage_rate']:.1%}); evidence that states nothing: {result['echoes']}; "
                     f"teacher sentences that would: {result['teacher_echoes']}\n")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
