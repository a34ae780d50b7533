"""Metrics with trec_eval semantics (by ir_measures, checked against the semantics written out), bad-input reporting
and paired significance tests (scipy)."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import Evaluation, ScoredDoc, evaluate, paired_test, rank_order
from r2r_agent.evals.evaluation import parse_measure
from r2r_agent.evals.trec import read_trec_qrels, read_trec_run
from r2r_agent.metrics import ndcg_at_k

QRELS = """\
q1 0 a 1
q1 0 b 2
q1 0 c 0
q2 0 x 1
q3 0 y 1
"""
# q1: z (5.0, unjudged), c (3.0, label 0), then a/b tie at 2.0 -> trec_eval puts b (larger id) first.
RUN = """\
q1 Q0 c 1 3.0 t
q1 Q0 a 2 2.0 t
q1 Q0 b 3 2.0 t
q1 Q0 z 4 5.0 t
q2 Q0 w 1 1.0 t
q2 Q0 x 2 0.5 t
q4 Q0 y 1 1.0 t
"""


def _log2(i: int) -> float:
    return math.log2(i + 1)


def test_hand_computed_values():
    ev = evaluate(
        read_trec_qrels(QRELS.splitlines()),
        read_trec_run(RUN.splitlines()),
        ["nDCG@10", "MRR@10", "RR(rel=2)@10", "R@3", "R(rel=2)@3", "nDCG@3"],
    )
    assert ev.backend == "ir_measures"
    assert ev.measures == ("nDCG@10", "RR@10", "RR(rel=2)@10", "R@3", "R(rel=2)@3", "nDCG@3")
    ideal_q1 = 2 / _log2(1) + 1 / _log2(2)
    q1 = ev.per_query["q1"]
    assert q1["nDCG@10"] == pytest.approx((2 / _log2(3) + 1 / _log2(4)) / ideal_q1)
    assert q1["nDCG@3"] == pytest.approx((2 / _log2(3)) / ideal_q1)
    assert q1["RR@10"] == pytest.approx(1 / 3)
    assert q1["RR(rel=2)@10"] == pytest.approx(1 / 3)
    assert q1["R@3"] == pytest.approx(0.5)
    assert q1["R(rel=2)@3"] == pytest.approx(1.0)
    q2 = ev.per_query["q2"]
    assert q2["nDCG@10"] == pytest.approx(1 / _log2(2))
    assert q2["RR@10"] == pytest.approx(0.5)
    # mean over queries in both run and qrels (q1, q2); q3 missing from the run, q4 unjudged: reported.
    assert set(ev.per_query) == {"q1", "q2"}
    assert ev["nDCG@10"] == pytest.approx((q1["nDCG@10"] + q2["nDCG@10"]) / 2)
    assert ev.issues.missing_in_run == ("q3",)
    assert ev.issues.missing_in_qrels == ("q4",)
    assert not ev.issues.ok


def test_rank_order_is_trec_eval_order():
    assert rank_order({"a": 1.0, "b": 1.0, "c": 2.0, "B": 1.0}) == ["c", "b", "a", "B"]


def test_rr_cutoff():
    qrels = {"q": {"d11": 1}}
    run = {"q": {f"d{i:02d}" if i < 10 else f"d{i}": 100.0 - i for i in range(1, 20)}}
    ev = evaluate(qrels, run, ["RR@10", "RR@11", "R@10", "R@11"])
    assert ev["RR@10"] == 0.0
    assert ev["RR@11"] == pytest.approx(1 / 11)
    assert (ev["R@10"], ev["R@11"]) == (0.0, 1.0)


def reference_values(rels, docs, measures):
    """The semantics written out by hand (the core's nDCG over the trec_eval order), to check ir_measures' numbers."""
    order = rank_order(docs)
    out = {}
    for m in map(parse_measure, measures):
        top = order[: m.cutoff]
        if m.kind == "nDCG":
            out[m.name] = ndcg_at_k(top, rels, m.cutoff) if top else 0.0
        elif m.kind == "RR":
            out[m.name] = next((1.0 / (i + 1) for i, d in enumerate(top) if rels.get(d, 0) >= m.rel), 0.0)
        else:
            relevant = sum(1 for r in rels.values() if r >= m.rel)
            out[m.name] = sum(1 for d in top if rels.get(d, 0) >= m.rel) / relevant if relevant else 0.0
    return out


def test_ir_measures_agrees_with_the_semantics_on_random_runs():
    rng = random.Random(7)
    qrels, run = {}, {}
    for q in range(30):
        docs = [f"d{i}" for i in range(40)]
        qrels[f"q{q}"] = {d: rng.choice([0, 0, 1, 2, 3]) for d in rng.sample(docs, 15)}
        # coarse scores make many ties, which exercises the tie-breaking rule
        run[f"q{q}"] = {d: float(rng.randint(0, 8)) for d in rng.sample(docs, 30)}
    measures = ["nDCG@10", "nDCG@5", "RR@10", "RR(rel=2)@10", "R@20", "R(rel=3)@20"]
    ir = evaluate(qrels, run, measures)
    assert sorted(ir.per_query) == sorted(qrels)
    for q, values in ir.per_query.items():
        expected = reference_values(qrels[q], run[q], measures)
        for m in ir.measures:
            assert values[m] == pytest.approx(expected[m], abs=1e-9), (q, m)


def test_missing_zero_counts_absent_queries():
    ev = evaluate({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}}, ["nDCG@10"], missing="zero")
    assert ev.per_query == {"q1": {"nDCG@10": 1.0}, "q2": {"nDCG@10": 0.0}}
    assert ev["nDCG@10"] == 0.5
    assert ev.issues.missing_in_run == ("q2",)


def test_duplicates_keep_highest_and_are_reported(caplog):
    run = [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 2.0), ScoredDoc("q", "a", 3.0), ScoredDoc("q", "a", 0.1)]
    with caplog.at_level("WARNING"):
        ev = evaluate({"q": {"a": 1}}, run, ["RR@10"])
    assert ev["RR@10"] == 1.0  # a kept at its highest score 3.0 -> rank 1
    assert dict(ev.issues.duplicates) == {"q": ("a",)}
    assert "duplicate doc ids" in caplog.text


def test_ranked_lists_keep_first_position():
    ev = evaluate({"q": {"b": 1}}, {"q": ["a", "b", "a", "c"]}, ["RR@10"])
    assert ev["RR@10"] == 0.5
    assert dict(ev.issues.duplicates) == {"q": ("a",)}


@pytest.mark.parametrize("run", [{}, [], {"q1": {}}])
def test_empty_run_is_reported_not_raised(run):
    ev = evaluate({"q1": {"a": 1}}, run)
    assert ev.issues.empty_run
    assert ev.n_queries == 0
    assert all(v == 0.0 for v in ev.aggregates.values())
    assert "the run is empty" in ev.issues.messages()[0]


def test_excluded_ids_removed_before_scoring():
    run = {"q": {"x": 3.0, "a": 2.0}}
    excluded = {"q": ["x"]}
    ev = evaluate({"q": {"a": 1}}, run, ["RR@10"], excluded=excluded)
    assert ev["RR@10"] == 1.0
    assert run == {"q": {"x": 3.0, "a": 2.0}}  # caller's run untouched
    gone = evaluate({"q": {"a": 1}}, {"q": {"x": 1.0}}, ["RR@10"], excluded=excluded)
    assert gone.issues.empty_queries == ("q",) and gone.issues.missing_in_run == ("q",)


def test_measure_parsing():
    assert parse_measure("MRR@10").name == "RR@10"
    assert parse_measure("RR(rel=2)@10").rel == 2
    assert parse_measure("R(rel=1)@100").name == "R@100"
    for bad in ("P@10", "nDCG", "nDCG(rel=2)@10", "RR@0", "ndcg@10"):
        with pytest.raises(InvalidInputError, match="Accepted|graded"):
            parse_measure(bad)
    with pytest.raises(InvalidInputError, match="nDCG@k, RR@k"):
        evaluate({}, {}, ["MAP"])
    with pytest.raises(InvalidInputError, match="backend"):
        evaluate({}, {}, backend="trec")
    with pytest.warns(DeprecationWarning, match="backend='python'"):  # the pure-Python copy: same numbers, gone
        assert evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["RR@10"], backend="python").backend == "ir_measures"


def test_evaluation_roundtrip_and_values():
    ev = evaluate({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}, "q2": {"c": 1.0}})
    back = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert back == ev
    assert ev.values("nDCG@10") == {"q1": 1.0, "q2": 0.0}
    with pytest.raises(InvalidInputError, match="not computed"):
        ev.values("nDCG@5")


# --- significance -----------------------------------------------------------------------------------------------


def test_randomization_exact_small_case():
    a = {"q1": 0.0, "q2": 0.0, "q3": 0.0}
    b = {"q1": 1.0, "q2": 1.0, "q3": 1.0}
    res = paired_test(a, b, method="randomization")
    # 8 sign patterns; only all-plus and all-minus reach |sum| = 3
    assert res.exact and res.p_value == pytest.approx(2 / 8)
    assert (res.n, res.mean_a, res.mean_b, res.delta) == (3, 0.0, 1.0, 1.0)


def test_randomization_sampled_is_reproducible_and_sensible():
    rng = random.Random(3)
    a = {f"q{i}": rng.random() for i in range(60)}
    same = paired_test(a, dict(a), n_resamples=2000)
    assert same.p_value == 1.0 and not same.exact
    b = {q: v + 0.2 + 0.05 * rng.random() for q, v in a.items()}
    r1 = paired_test(a, b, n_resamples=2000, seed=1)
    r2 = paired_test(a, b, n_resamples=2000, seed=1)
    assert r1 == r2
    assert r1.p_value == pytest.approx(1 / 2001)


def test_t_test_is_scipys_paired_t_test():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    a = {f"q{i}": rng.random() for i in range(25)}
    b = {q: v + rng.gauss(0.05, 0.2) for q, v in a.items()}
    res = paired_test(a, b, method="t")
    ref = stats.ttest_rel([b[q] for q in a], [a[q] for q in a])
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_randomization_matches_a_brute_force_count():
    rng = random.Random(11)
    a = {f"q{i}": rng.random() for i in range(10)}
    b = {q: v + rng.gauss(0.05, 0.3) for q, v in a.items()}
    diffs = [b[q] - a[q] for q in a]
    observed = abs(sum(diffs))
    hits = sum(abs(sum(-d if mask >> i & 1 else d for i, d in enumerate(diffs))) >= observed - 1e-12
               for mask in range(2**10))
    res = paired_test(a, b, method="randomization", n_resamples=2**10)
    assert res.exact and res.p_value == pytest.approx(hits / 2**10)


def test_the_tests_need_scipy(monkeypatch):
    from r2r_agent.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails as if scipy were not installed
    for method in ("t", "randomization"):
        with pytest.raises(MissingExtraError, match="evals"):
            paired_test({"q1": 0.1, "q2": 0.3}, {"q1": 0.2, "q2": 0.5}, method=method)  # type: ignore[arg-type]


def test_t_test_degenerate_and_bad_input(caplog):
    a = {"q1": 0.25, "q2": 0.5}  # exact binary fractions: the differences are exactly equal
    assert paired_test(a, a, method="t").p_value == 1.0
    shifted = paired_test(a, {"q1": 0.5, "q2": 0.75, "q9": 1.0}, method="t")
    assert shifted.p_value == 0.0 and shifted.n_unpaired == 1
    assert "only one system" in caplog.text
    with pytest.raises(InvalidInputError, match="at least 2 queries"):
        paired_test({"q1": 0.1}, {"q1": 0.2})
    with pytest.raises(InvalidInputError, match="method"):
        paired_test(a, a, method="wilcoxon")  # type: ignore[arg-type]
