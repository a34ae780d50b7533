"""Sanity anchors: the published nDCG@10 figures reproduced exactly from the shared data (skipped when absent).

Reference values: ../shared/data/README.md ("Verified figures"), themselves equal to Anserini's and trec_eval's.
"""

from __future__ import annotations

import json
import math

import pytest

from r2r_agent.evals import BRIGHT_SUBSETS, evaluate, load_dataset
from r2r_agent.evals.bright import SharedBrightPaths, excluded_from_examples, read_bright_queries
from r2r_agent.evals.trec import read_trec_qrels, read_trec_run

DL_ANCHORS = {"dl19": (43, 0.5058), "dl20": (54, 0.4796), "dl19-splade": (43, 0.7308), "dl20-splade": (54, 0.7197)}

BRIGHT_ANCHORS = {  # subset: (queries, nDCG@10), from the shared data README
    "biology": (103, 0.4349), "earth_science": (116, 0.4300), "economics": (103, 0.3265),
    "psychology": (101, 0.3957), "robotics": (101, 0.2082), "stackoverflow": (117, 0.3096),
    "sustainable_living": (108, 0.2734), "leetcode": (142, 0.3168), "pony": (112, 0.1955), "aops": (111, 0.0737),
    "theoremqa_questions": (194, 0.3393), "theoremqa_theorems": (76, 0.3668),
}


def _rounds_to(value: float, expected: float) -> bool:
    return math.isclose(round(value, 4), expected, abs_tol=1e-9)


@pytest.mark.parametrize("name", list(DL_ANCHORS))
def test_trec_dl_anchor(data_dir, name):
    n_queries, expected = DL_ANCHORS[name]
    ds = load_dataset(name, data_dir)
    assert ds.has_texts and all(len(c) == 100 for c in ds.candidates.values())
    ev = ds.evaluate_first_stage(["nDCG@10"])
    assert ev.n_queries == n_queries and ev.issues.ok
    assert _rounds_to(ev["nDCG@10"], expected), ev["nDCG@10"]


@pytest.fixture(scope="module")
def bright_scores(data_dir):
    return {s: load_dataset(f"bright-{s}", data_dir).evaluate_first_stage(["nDCG@10"]) for s in BRIGHT_SUBSETS}


def test_bright_reasonir_anchors(bright_scores):
    for subset, (n_queries, expected) in BRIGHT_ANCHORS.items():
        ev = bright_scores[subset]
        assert ev.n_queries == n_queries, subset
        assert _rounds_to(ev["nDCG@10"], expected), (subset, ev["nDCG@10"])
    average = sum(ev["nDCG@10"] for ev in bright_scores.values()) / len(bright_scores)
    assert len(bright_scores) == 12 and _rounds_to(average, 0.3059), average


def test_bright_from_raw_files_with_space_ids(data_dir):
    """The file-level API alone (reader, %20 decoding, excluded ids) gives the same stackoverflow figure."""
    paths = SharedBrightPaths.for_subset(data_dir, "stackoverflow")
    run = read_trec_run(paths.run)
    spaced = {sd.doc_id for sd in run if " " in sd.doc_id}
    assert spaced == {f"pytorch_torch_tensor_functions/Memory Management_{i}_0.txt" for i in range(1, 6)}
    examples = read_bright_queries(paths.queries)
    ev = evaluate(read_trec_qrels(paths.qrels), run, ["nDCG@10"], excluded=excluded_from_examples(examples))
    assert _rounds_to(ev["nDCG@10"], 0.3096) and ev.issues.ok


def test_bright_excluded_ids_are_applied(data_dir):
    """leetcode has real excluded ids; injecting one at rank 1 must not change the score."""
    ds = load_dataset("bright-leetcode", data_dir)
    assert ds.excluded
    qid = next(q for q in ds.excluded if q in ds.candidates)
    bad = sorted(ds.excluded[qid])[0]
    run = ds.first_stage_run()
    run[qid] = {bad: 1e9, **run[qid]}
    assert ds.evaluate(run, ["nDCG@10"])["nDCG@10"] == ds.evaluate_first_stage(["nDCG@10"])["nDCG@10"]


def test_manifest_values_to_six_decimals(data_dir, bright_scores):
    """Every nDCG@10 the data folder's MANIFEST records (more digits than the README) is matched to 1e-6."""
    manifest = json.loads((data_dir / "MANIFEST.json").read_text())
    checks = {c["run"]: c["ndcg@10"] for c in manifest.get("checks", [])}
    if not checks:
        pytest.skip("MANIFEST has no checks")
    names = {
        "trec-dl/dl19.bm25.top100.jsonl.gz": "dl19",
        "trec-dl/dl20.bm25.top100.jsonl.gz": "dl20",
        "trec-dl/dl19.splade.top100.jsonl.gz": "dl19-splade",
        "trec-dl/dl20.splade.top100.jsonl.gz": "dl20-splade",
    }
    names.update({f"bright/{s}.reasonir.top100.trec": f"bright-{s}" for s in BRIGHT_SUBSETS})
    assert set(checks) <= set(names)
    for run_path, expected in checks.items():
        name = names[run_path]
        if name.startswith("bright-"):
            value = bright_scores[name.removeprefix("bright-")]["nDCG@10"]
        else:
            value = load_dataset(name, data_dir).evaluate_first_stage(["nDCG@10"])["nDCG@10"]
        assert value == pytest.approx(expected, abs=1e-6), (run_path, value, expected)
