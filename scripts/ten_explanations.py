"""Print the ten explanations docs/results.md quotes, by the rule stated there before any was read.

The first query of the DL19 and of the DL20 BM25 top-100 files (their order in the shared files), reranked by
``Reranker(Student.default())`` with its defaults and top_n=5 (explain_top=5, compare_top=3); every explanation of each,
with the passage's verdict, relevance, evidence, unsupported claims and NIST label, and the comparison.

    R2R_DATA_DIR=../shared/data python scripts/ten_explanations.py > ten.md
    R2R_DATA_DIR=../shared/data python scripts/ten_explanations.py ADAPTER_FOLDER   # another adapter, same rule
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

from r2r_agent import Passage, Reranker, Student


def first_query(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return json.loads(next(lines))


def labels(path: Path, qid: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == qid:
            found[parts[2]] = int(parts[3])
    return found


def main() -> int:
    data = Path(os.environ.get("R2R_DATA_DIR", "../shared/data")) / "trec-dl"
    if not data.is_dir():
        print(f"no TREC DL data at {data}; set R2R_DATA_DIR to the shared data folder", file=sys.stderr)
        return 2
    adapter = sys.argv[1] if len(sys.argv) > 1 else "shipped"
    reranker = Reranker(Student.default(adapter=adapter))
    for name in ("dl19", "dl20"):
        record = first_query(data / f"{name}.bm25.top100.jsonl.gz")
        qrels = labels(data / f"qrels.{name}-passage.txt", record["qid"])
        passages = [Passage(c["text"], id=c["docid"], first_stage_score=c["score"]) for c in record["candidates"]]
        started = time.perf_counter()
        ranking = reranker.rerank(record["query"], passages, top_n=5)
        seconds = time.perf_counter() - started
        print(f"### {name.upper()} query {record['qid']}: \"{record['query']}\"\n")
        print(f"answerable: {ranking.answerable}; {seconds:.1f} s on this machine\n")
        for judgment in ranking:
            label = qrels.get(judgment.id, "unjudged")
            relevance = "n/a" if judgment.relevance is None else f"{judgment.relevance:.2f}"
            print(f"{judgment.rank}. passage {judgment.id} (NIST label {label}; verdict {judgment.verdict}, "
                  f"relevance {relevance})")
            print(f"   - evidence: \"{judgment.evidence}\"")
            print(f"   - explanation: \"{judgment.explanation}\"")
            if judgment.unsupported:
                print(f"   - unsupported claims removed: {list(judgment.unsupported)}")
        print(f"\ncomparison: \"{ranking.comparison}\"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
