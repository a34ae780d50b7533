"""Runner, systems registry, cache/resume and the training-query check, on fake systems and tiny inline datasets."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from r2r_agent import Passage, Ranking, RerankConfig, StageCost
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals.records import candidate
from r2r_agent.evals.registry import Dataset
from r2r_agent.evals.results import CACHED_STAGE, SystemResult
from r2r_agent.evals.runner import ResultCache, input_hash, limit_dataset, run_eval
from r2r_agent.evals.systems import (
    FirstStageSystem,
    ModelPool,
    RerankerSystem,
    SystemOptions,
    build_system,
    build_systems,
    known_systems,
    parse_system,
    system_key,
)
from r2r_agent.training.splits import (
    TrainingQueries,
    TrainingQueryError,
    check_not_training,
    find_training_queries,
    load_training_queries,
)


def tiny_dataset(name: str = "tiny") -> Dataset:
    """Three queries, four candidates each; the relevant documents sit low in the first-stage order."""
    queries = {"q1": "how long do fleas live", "q2": "what is phototaxis", "q3": "who wrote hamlet"}
    candidates = {
        q: tuple(candidate(f"{q}-d{i}", 10.0 - i, f"text {i} of {q}") for i in range(4)) for q in queries
    }
    qrels = {"q1": {"q1-d3": 2, "q1-d0": 1}, "q2": {"q2-d2": 1}, "q3": {"q3-d0": 3}}
    return Dataset(name=name, queries=queries, candidates=candidates, qrels=qrels, description="a tiny test set")


class FakeSystem:
    """Ranks by a fixed preference (doc-id suffix order), counts calls, can fail after N calls."""

    def __init__(self, name: str, prefer: Sequence[int] = (3, 2, 1, 0), fail_after: int | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.config = dict(config or {"prefer": list(prefer)})
        self.prefer = list(prefer)
        self.calls: list[str] = []
        self.fail_after = fail_after

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # what an interrupted run looks like
        self.calls.append(query)
        order = sorted(range(len(candidates)),
                       key=lambda i: self.prefer.index(int(str(candidates[i].id).rsplit("d", 1)[1])))
        cost = StageCost("score", "fake", len(order), 0.01)
        return SystemResult(Ranking.from_order(query, candidates, order, stages=[cost]), seconds=0.01)


# --- systems registry ---------------------------------------------------------------------------------------------


def test_registry_names_are_exact() -> None:
    assert known_systems() == ["first-stage", "minilm", "student", "zero-shot-student", "zero-shot-lm", "adapter:PATH",
                               "teacher"]
    spec, arg = parse_system("adapter:runs/a 1")
    assert (spec.name, arg) == ("adapter", "runs/a 1")
    with pytest.raises(InvalidInputError, match="Unknown system 'mini'.* Known: first-stage, minilm"):
        parse_system("mini")  # no substring matching
    with pytest.raises(InvalidInputError, match="Known: first-stage, minilm"):
        parse_system("minilm-v2")
    with pytest.raises(InvalidInputError, match="needs an argument"):
        parse_system("adapter")
    with pytest.raises(InvalidInputError, match="takes no argument"):
        parse_system("minilm:x")


def test_build_systems_checks_names_and_loads_nothing(tmp_path: Path) -> None:
    systems = build_systems(["first-stage", "minilm", "student", "zero-shot-lm"], SystemOptions(lm_top=7))
    assert [s.name for s in systems] == ["first-stage", "minilm", "student", "zero-shot-lm"]
    assert dict(systems[3].config) == {"rescore_top": 7, "rescore_weight": 1.0}
    assert all(getattr(s, "_reranker", None) is None for s in systems[1:])  # models load on the first query
    with pytest.raises(InvalidInputError, match="more than once"):
        build_systems(["minilm", "minilm"])
    with pytest.raises(InvalidInputError, match="not a folder"):
        build_system("adapter:" + str(tmp_path / "absent"))
    adapter = build_system("adapter:" + str(tmp_path), SystemOptions(lm_top=5))
    assert adapter.name == f"adapter:{tmp_path}" and adapter.config["rescore_top"] == 5
    assert adapter.config["weights"] is None  # no weights in the folder yet
    (tmp_path / "adapter_model.safetensors").write_bytes(b"v1")
    first = build_system("adapter:" + str(tmp_path)).config["weights"]
    (tmp_path / "adapter_model.safetensors").write_bytes(b"v2")
    assert first is not None and build_system("adapter:" + str(tmp_path)).config["weights"] != first
    with pytest.raises(InvalidInputError, match="lm_top"):
        SystemOptions(lm_top=-1)


def test_system_key_includes_config() -> None:
    a = build_system("zero-shot-lm", SystemOptions(lm_top=10))
    b = build_system("zero-shot-lm", SystemOptions(lm_top=20))
    assert system_key(a) != system_key(b) and system_key(a).startswith("zero-shot-lm ")


def test_first_stage_keeps_order_and_result_round_trips() -> None:
    cands = [candidate("b", 3.0, "x"), candidate("a", 3.0, "y"), candidate("c", 1.0, "z")]
    result = FirstStageSystem().rank("q", cands)
    assert result.doc_ids == ("b", "a", "c") and result.by_score and result.scores == (3.0, 3.0, 1.0)
    assert [(j.text, j.input_rank, j.first_stage_score) for j in result.ranking][1] == ("y", 2, 3.0)
    stored = json.loads(json.dumps(result.to_dict()))
    assert set(stored) == {"doc_ids", "scores", "seconds", "passages", "generated_tokens", "stages", "by_score",
                           "failures"}  # no texts in the cache
    back = SystemResult.from_dict(stored, "q", cands)  # the texts come back from the candidates
    assert back.to_dict() == result.to_dict() and back.ranking[1].text == "y" and back.ranking[1].input_rank == 2
    assert {j.stage for j in back.ranking} == {CACHED_STAGE}
    with pytest.raises(InvalidInputError, match="one score per id"):
        SystemResult.from_dict({**stored, "scores": []}, "q", cands)
    with pytest.raises(InvalidInputError, match="not an order of the 2 candidates"):
        SystemResult.from_dict(stored, "q", cands[:2])
    with pytest.raises(InvalidInputError, match="Ranking.from_order"):
        SystemResult(stored, 0.0)  # type: ignore[arg-type]


def test_reranker_system_on_tiny_student(tiny_student) -> None:
    from r2r_agent import Reranker

    system = RerankerSystem("tiny", lambda: Reranker(tiny_student, rescore_top=2), {"rescore_top": 2})
    cands = [candidate(f"d{i}", 1.0, f"passage number {i}") for i in range(5)]
    result = system.rank("a query", cands)
    assert sorted(result.doc_ids) == [f"d{i}" for i in range(5)]
    assert [s.stage for s in result.stages] == ["score", "rescore"]  # explanations off
    assert result.passages == 5 + 2 and result.generated_tokens == 0 and not result.by_score
    assert system.load_seconds is not None
    assert [j.text for j in result.ranking] == [c.text for c in sorted(cands, key=lambda c: result.doc_ids.index(
        str(c.id)))]  # the reranker's own judgments, texts included
    textless = Dataset("textless", {"q": "a query"}, {"q": tuple(cands)}, {"q": {"d0": 1}},
                       missing_texts=frozenset({"d3"}))
    with pytest.raises(InvalidInputError, match="needs passage texts, but 1 candidates of query 'q'"):
        run_eval([textless], [system])
    assert run_eval([textless], [FirstStageSystem()]).runs[0].cost.queries == 1  # the first stage reads no text


def test_model_pool_is_lazy() -> None:
    pool = ModelPool()
    assert pool._encoder is None and pool._student is None


# --- runner -------------------------------------------------------------------------------------------------------


def test_run_eval_scores_and_compares(tmp_path: Path) -> None:
    ds = tiny_dataset()
    oracle = FakeSystem("oracle", prefer=(3, 2, 0, 1))
    results = run_eval([ds], [FirstStageSystem(), FakeSystem("minilm", prefer=(1, 0, 2, 3)), oracle],
                       cache_path=tmp_path / "cache.jsonl")
    first = results.run_for("tiny", "first-stage")
    assert first.evaluation.per_query == ds.evaluate_first_stage().per_query
    got = results.run_for("tiny", "oracle").evaluation.values("nDCG@10")
    expected = ds.evaluate({q: [f"{q}-d{i}" for i in (3, 2, 0, 1)] for q in ds.queries}).values("nDCG@10")
    assert got == expected
    assert results.run_for("tiny", "oracle").cost.seconds_per_query == pytest.approx(0.01)
    assert results.run_for("tiny", "oracle").cost.passages_per_second == pytest.approx(400.0)
    pairs = {(c.baseline, c.system) for c in results.comparisons}
    assert pairs == {("first-stage", "minilm"), ("first-stage", "oracle"), ("minilm", "oracle")}
    test = results.comparisons_for("tiny", "first-stage")["oracle"]
    assert test.randomization.n == 3 and test.randomization.exact
    assert test.randomization.delta == pytest.approx(
        sum(expected.values()) / 3 - first.evaluation["nDCG@10"])


def test_resume_uses_the_cache(tmp_path: Path) -> None:
    ds, cache = tiny_dataset(), tmp_path / "cache.jsonl"
    interrupted = FakeSystem("s", fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_eval([ds], [interrupted], cache_path=cache)
    assert len(ResultCache(cache)) == 2  # the two finished queries were saved at once

    resumed = FakeSystem("s")
    first = run_eval([ds], [resumed], cache_path=cache)
    assert resumed.calls == ["who wrote hamlet"]  # only the query that was not done
    assert first.run_for("tiny", "s").cost.computed == 1

    again = FakeSystem("s")
    second = run_eval([ds], [again], cache_path=cache)
    assert again.calls == []
    assert second.run_for("tiny", "s").evaluation.per_query == first.run_for("tiny", "s").evaluation.per_query
    assert second.run_for("tiny", "s").cost.peak_rss_mb == first.run_for("tiny", "s").cost.peak_rss_mb


def test_cache_is_invalidated_by_config_and_input(tmp_path: Path) -> None:
    ds, cache = tiny_dataset(), tmp_path / "cache.jsonl"
    run_eval([ds], [FakeSystem("s")], cache_path=cache)
    other_config = FakeSystem("s", prefer=(0, 1, 2, 3))
    run_eval([ds], [other_config], cache_path=cache)
    assert len(other_config.calls) == 3
    changed = Dataset(ds.name, {**ds.queries, "q2": "what is phototaxis in moths"}, ds.candidates, ds.qrels)
    same = FakeSystem("s")
    run_eval([changed], [same], cache_path=cache)
    assert same.calls == ["what is phototaxis in moths"]


def test_cache_skips_a_torn_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds, cache = tiny_dataset(), tmp_path / "cache.jsonl"
    run_eval([ds], [FakeSystem("s")], cache_path=cache)
    with cache.open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "result", "system": "s", "datas')
    assert len(ResultCache(cache)) == 3
    assert "unreadable" in caplog.text


def test_input_hash_depends_on_query_and_ids() -> None:
    cands = (candidate("a", 1.0, "x"), candidate("b", 0.5, "y"))
    assert input_hash("q", cands) == input_hash("q", tuple(candidate(str(c.id), 9.0, "other") for c in cands))
    assert input_hash("q", cands) != input_hash("q", cands[::-1])
    assert input_hash("q", cands) != input_hash("q2", cands)


def test_limit_queries(tmp_path: Path) -> None:
    ds = tiny_dataset()
    small = limit_dataset(ds, 2)
    assert list(small.candidates) == ["q1", "q2"] and set(small.qrels) == {"q1", "q2"}
    fake = FakeSystem("s")
    results = run_eval([ds], [fake], limit_queries=2)
    assert len(fake.calls) == 2 and results.run_for("tiny", "s").evaluation.n_queries == 2
    assert results.datasets[0].queries == 2 and results.datasets[0].total_queries == 3
    assert results.run_for("tiny", "s").evaluation.issues.ok  # the qrels were limited too
    with pytest.raises(InvalidInputError, match="limit_queries"):
        limit_dataset(ds, 0)


def test_a_system_must_return_every_candidate() -> None:
    class Lossy(FakeSystem):
        def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
            return SystemResult(Ranking.from_order(query, candidates[:1]), 0.0)

    with pytest.raises(InvalidInputError, match="every candidate exactly once"):
        run_eval([tiny_dataset()], [Lossy("lossy")])


def test_run_eval_rejects_duplicate_names_and_empty_input() -> None:
    with pytest.raises(InvalidInputError, match="share a name"):
        run_eval([tiny_dataset()], [FakeSystem("s"), FakeSystem("s")])
    with pytest.raises(InvalidInputError, match="at least one dataset"):
        run_eval([], [FakeSystem("s")])
    with pytest.raises(InvalidInputError, match="at least one system"):
        run_eval([tiny_dataset()], [])


# --- never on training queries ------------------------------------------------------------------------------------


def r2r_row(qid: str, query: str) -> dict[str, Any]:
    docs = ["p one", "p two"]
    return {"qid": qid, "query": query, "unsorted_docs": docs, "re_rank_id": [2, 1], "sorted_docids": ["7", "8"],
            "scores": ["0", "1"], "reason": {"ranked_passages": [
                {"identifier": 2, "direct_reason": "r", "listwise_reason": "l"},
                {"identifier": 1, "direct_reason": "r", "listwise_reason": "l"}]}}


def test_find_training_queries_matches_text_not_bare_ids() -> None:
    training = TrainingQueries({"100": "How long do fleas live?", "q3": "something else entirely"}, "train")
    queries = {"q1": "how long do  fleas live", "q2": "what is phototaxis", "q3": "who wrote hamlet"}
    # q1: same query under another id -> training; q3: same id, another text (another id space) -> not.
    assert find_training_queries(queries, training) == ["q1"]
    with pytest.raises(TrainingQueryError, match=r"1 queries from the training data \(train\), e.g. \['q1'\]"):
        check_not_training("tiny", queries, training)
    check_not_training("tiny", {"q2": "what is phototaxis"}, training)
    from r2r_agent.training import SplitLeakageError

    assert issubclass(TrainingQueryError, SplitLeakageError)  # one kind of leakage, one place (training.splits)


def test_run_eval_refuses_training_queries_before_running() -> None:
    fake = FakeSystem("s")
    with pytest.raises(TrainingQueryError, match="tiny"):
        run_eval([tiny_dataset()], [fake], training=TrainingQueries({"x": "who wrote Hamlet?"}, "t"))
    assert fake.calls == []


def test_load_training_queries_uses_the_training_split(tmp_path: Path) -> None:
    folder = tmp_path / "r2r-train"
    folder.mkdir()
    rows = [r2r_row(str(i), f"training query number {i}") for i in range(20)]
    with gzip.open(folder / "msmarco_20.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    from r2r_agent.training import split_query_ids

    train, held = split_query_ids([str(i) for i in range(20)])
    loaded = load_training_queries(folder)
    assert set(loaded.queries) == set(train) and len(held) == 2  # validation queries are not training queries
    assert load_training_queries(folder, validation_fraction=0.0).queries.keys() == {str(i) for i in range(20)}
    with pytest.raises(InvalidInputError, match="No R2R training file"):
        load_training_queries(tmp_path / "empty")


def test_shared_test_sets_hold_no_training_queries(data_dir: Path) -> None:
    from r2r_agent.evals import load_dataset

    training = load_training_queries(data_dir / "r2r-train")
    assert len(training) == 450  # 500 R2R queries, 10% held out for validation
    for name in ("dl19", "dl20"):
        check_not_training(name, load_dataset(name, data_dir).queries, training)


# --- first-stage score fusion (SystemOptions.first_stage_weight) --------------------------------------------------


class DigitScorer:
    """Scores "text N of q..." by N: the reverse of tiny_dataset's first-stage order."""

    name = "digit"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(p.split()[1]) for p in passages]


def test_first_stage_weight_names_and_keys_the_reranking_systems(tmp_path: Path) -> None:
    names = ["first-stage", "minilm", "student", "zero-shot-student", "zero-shot-lm", f"adapter:{tmp_path}"]
    plain = build_systems(names, SystemOptions())
    fused = build_systems(names, SystemOptions(rerank=RerankConfig(first_stage_weight=0.5)))
    assert [s.name for s in fused] == ["first-stage", "minilm+first-stage@0.5", "student+first-stage@0.5",
                                       "zero-shot-student+first-stage@0.5", "zero-shot-lm+first-stage@0.5",
                                       f"adapter:{tmp_path}+first-stage@0.5"]
    assert [s.name for s in plain] == names  # weight 0: names and keys as before the option existed
    assert dict(plain[1].config) == {"model": "all-MiniLM-L6-v2"}
    assert dict(fused[1].config) == {"model": "all-MiniLM-L6-v2", "first_stage_weight": 0.5}
    assert system_key(fused[0]) == system_key(plain[0])
    for a, b in zip(plain[1:], fused[1:], strict=True):
        assert system_key(a) != system_key(b) and b.config["first_stage_weight"] == 0.5
        assert {k: v for k, v in b.config.items() if k != "first_stage_weight"} == dict(a.config)
    other = build_system("minilm", SystemOptions(rerank=RerankConfig(first_stage_weight=0.25)))
    assert system_key(other) != system_key(fused[1])
    assert getattr(fused[1], "explains", False) is False and getattr(fused[2], "explains", False) is True


@pytest.mark.parametrize("weight", [-0.1, 1.5, True, float("nan")])
def test_system_options_first_stage_weight_is_checked(weight: float) -> None:
    with pytest.raises(InvalidInputError, match=r"first_stage_weight must be a number in \[0, 1\]"):
        SystemOptions(rerank=RerankConfig(first_stage_weight=weight))


def test_system_options_hold_one_rerank_config() -> None:
    with pytest.raises(InvalidInputError, match="SystemOptions.rerank must be an r2r_agent.RerankConfig, got dict"):
        SystemOptions(rerank={"first_stage_weight": 0.5})  # type: ignore[arg-type]
    options = SystemOptions(rerank=RerankConfig(rescore_top=3, rescore_weight=0.5, top_n=2, explain_top=4))
    student = build_system("student", options)
    assert student.config["rescore_top"] == 3 and student.config["rescore_weight"] == 0.5
    assert build_system("zero-shot-lm", options).config["rescore_top"] == 20  # --lm-top, not the student's


def test_minilm_with_first_stage_weight_feeds_the_candidate_scores() -> None:
    pool = ModelPool()
    pool._encoder = DigitScorer()  # no model is loaded
    cands = tiny_dataset().candidates["q1"]  # first-stage scores 10, 9, 8, 7
    assert build_system("minilm", SystemOptions(), pool).rank("q", cands).doc_ids == (
        "q1-d3", "q1-d2", "q1-d1", "q1-d0")
    fused = build_system("minilm", SystemOptions(rerank=RerankConfig(first_stage_weight=1.0)), pool)
    result = fused.rank("q", list(reversed(cands)))  # the input order does not matter, the scores do
    assert result.doc_ids == ("q1-d0", "q1-d1", "q1-d2", "q1-d3") and result.scores == (10.0, 9.0, 8.0, 7.0)
    assert [s.stage for s in result.stages] == ["score"]
    # equal standardised weights on exactly opposite scores: every mixed score is 0, ties keep the input order
    half = build_system("minilm", SystemOptions(rerank=RerankConfig(first_stage_weight=0.5)), pool).rank("q", cands)
    assert half.doc_ids == tuple(c.id for c in cands) and half.scores == (0.0, 0.0, 0.0, 0.0)


def test_a_dataset_keeps_its_own_copies() -> None:
    queries, qrels = {"q1": "fleas"}, {"q1": {"a": 1}}
    ds = Dataset("d", queries, {"q1": [candidate("a", 1.0, "x")]}, qrels)  # type: ignore[dict-item]
    queries["q2"], qrels["q1"]["b"] = "cats", 2
    assert ds.queries == {"q1": "fleas"} and ds.qrels == {"q1": {"a": 1}} and isinstance(ds.candidates["q1"], tuple)
