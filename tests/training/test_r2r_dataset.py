from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import keyword_reply

from r2r_agent import prompts
from r2r_agent.training import (
    AnnotationConfig,
    AnnotationFormatError,
    DatasetConfig,
    DistillationDataset,
    ScriptedTeacher,
    SplitLeakageError,
    annotate_query,
    build_dataset,
    load_r2r_annotations,
    r2r_row_to_annotation,
    split_query_ids,
)
from r2r_agent.training.dataset import DatasetSplit, ExplanationExample, RankingExample
from r2r_agent.training.r2r_import import R2R_PROMPT_VERSION, R2R_TEACHER


def row(qid: str = "1", n: int = 3) -> dict:
    order = list(range(n, 0, -1))  # the teacher put the last passage first
    return {
        "query": f"query {qid}",
        "qid": qid,
        "unsorted_docs": [f"doc {i} of {qid}" for i in range(1, n + 1)],
        "re_rank_id": order,
        "sorted_docids": [f"d{qid}-{i}" for i in order],
        "scores": ["1" if i == n else "0" for i in range(1, n + 1)],
        "reason": {"ranked_passages": [
            {"identifier": i, "direct_reason": f"direct {i}", "listwise_reason": f"listwise {i}",
             "direct_answer_sentence": "s"} for i in order]},
    }


def test_row_becomes_a_teacher_style_annotation():
    annotation = r2r_row_to_annotation(row("7"))
    assert annotation.query_id == "7" and annotation.source == "r2r-import"
    assert annotation.order == (2, 1, 0)  # 0-based
    assert [c.id for c in annotation.candidates] == ["d7-1", "d7-2", "d7-3"]
    assert annotation.labels == (0, 0, 1)
    window = annotation.windows[0]
    assert window.teacher == R2R_TEACHER and window.prompt_version == R2R_PROMPT_VERSION and window.ok
    assert window.answer.direct_reasons == ("direct 1", "direct 2", "direct 3")
    assert window.answer.comparison_reasons == ("listwise 1", "listwise 2", "listwise 3")


@pytest.mark.parametrize("change, match", [
    (lambda r: r.pop("qid"), "missing fields \\['qid'\\]"),
    (lambda r: r.update(re_rank_id=[1, 1, 2]), "permutation of 1..3"),
    (lambda r: r.update(unsorted_docs="text"), "list of strings"),
    (lambda r: r.update(scores=["1", "x", "0"]), "integer labels"),
    (lambda r: r["reason"]["ranked_passages"][0].update(identifier=9), "identifier must be in 1..3"),
    (lambda r: r.update(reason={}), "ranked_passages"),
])
def test_bad_rows_name_the_field(change, match):
    bad = row()
    change(bad)
    with pytest.raises(AnnotationFormatError, match=match):
        r2r_row_to_annotation(bad, where="file.jsonl:3")


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(AnnotationFormatError, match="rows.jsonl:2"):
        load_r2r_annotations(path)


def test_dataset_targets_use_the_core_prompts():
    data = build_dataset([r2r_row_to_annotation(row("1"))], DatasetConfig(validation_fraction=0.0, compare_top=2,
                                                                          judged=False))
    direct = [e for e in data.train.explanations if e.kind == "direct"]
    assert [e.target for e in direct] == ["direct 3", "direct 2", "direct 1"]  # teacher order
    assert direct[0].messages() == prompts.direct_explanation_messages("query 1", "doc 3 of 1")
    comparison = [e for e in data.train.explanations if e.kind == "comparison"]
    assert len(comparison) == 1
    assert comparison[0].messages() == prompts.comparison_messages("query 1", ["doc 3 of 1", "doc 2 of 1"])
    assert comparison[0].target == "[1] listwise 3 [2] listwise 2"
    chat = comparison[0].to_chat_example()
    assert chat == {"messages": comparison[0].messages(), "target": comparison[0].target}
    ranking = data.train.rankings[0]
    assert ranking.teacher_order == (2, 1, 0) and ranking.labels == (0, 0, 1)
    assert ranking.teacher_ranks() == (2, 1, 0)


def test_judged_targets_show_the_teachers_verdict_and_sentence_and_are_balanced():
    annotation = r2r_row_to_annotation(row("1"))
    data = build_dataset([annotation], DatasetConfig(validation_fraction=0.0, compare_top=2, balance_verdicts=False))
    direct = [e for e in data.train.explanations if e.kind == "direct"]
    verdicts = annotation.verdicts()
    assert [e.verdict for e in direct] == [verdicts[2], verdicts[1], verdicts[0]]
    assert direct[0].messages() == prompts.direct_explanation_messages("query 1", "doc 3 of 1", verdicts[2],
                                                                       annotation.evidence().get(2))
    comparison = [e for e in data.train.explanations if e.kind == "comparison"][0]
    assert comparison.messages() == prompts.grounded_comparison_messages(
        "query 1", [annotation.evidence().get(i) for i in (2, 1)], [verdicts[i] for i in (2, 1)])
    from r2r_agent.training.dataset import balance_verdicts

    examples = [e for e in data.train.explanations if e.kind == "direct"]
    assert len(balance_verdicts(examples)) == len(examples) or {e.verdict for e in examples} != {"partial"}


def test_explain_top_and_disabled_comparison():
    config = DatasetConfig(validation_fraction=0.0, explain_top=1, compare_top=0)
    data = build_dataset([r2r_row_to_annotation(row())], config)
    assert [(e.kind, e.target) for e in data.train.explanations] == [("direct", "direct 3")]


def test_teacher_run_feeds_the_same_builder():
    annotation = annotate_query(ScriptedTeacher(default=keyword_reply), "q", [f"p score {s}" for s in (1, 5, 3)],
                                query_id="t1", config=AnnotationConfig(window_size=3, stride=1))
    config = DatasetConfig(validation_fraction=0.0, comparison_target="teacher")
    data = build_dataset([annotation], config)
    assert data.train.rankings[0].teacher_order == (1, 2, 0)
    comparison = [e for e in data.train.explanations if e.kind == "comparison"][0]
    assert comparison.target == "higher scores first"
    assert comparison.passages == ("p score 5", "p score 3", "p score 1")


def test_all_failed_windows_give_no_ranking_target():
    annotation = annotate_query(ScriptedTeacher(default=lambda m: "no"), "q", ["a", "b"], query_id="f",
                                config=AnnotationConfig(max_attempts=1))
    data = build_dataset([annotation], DatasetConfig(validation_fraction=0.0))
    assert data.train.rankings == () and data.train.explanations == ()


def test_split_by_query_is_deterministic_and_disjoint():
    annotations = [r2r_row_to_annotation(row(str(q))) for q in range(40)]
    annotations.append(r2r_row_to_annotation(row("3")))  # the same query twice stays on one side
    first = build_dataset(annotations, DatasetConfig(validation_fraction=0.25, seed=3))
    second = build_dataset(list(reversed(annotations)), DatasetConfig(validation_fraction=0.25, seed=3))
    assert first.validation.query_ids == second.validation.query_ids
    assert len(first.validation.query_ids) == 10 and len(first.train.query_ids) == 30
    assert not first.train.query_ids & first.validation.query_ids
    other = build_dataset(annotations, DatasetConfig(validation_fraction=0.25, seed=4))
    assert other.validation.query_ids != first.validation.query_ids


def test_split_query_ids_edges():
    assert split_query_ids(["a"], 0.5) == (["a"], [])
    assert split_query_ids(["a", "b"], 0.01)[1] != []
    assert split_query_ids(["a", "b"], 0.0) == (["a", "b"], [])


def test_validation_with_a_training_query_is_rejected():
    train = [r2r_row_to_annotation(row(q)) for q in ("1", "2")]
    with pytest.raises(SplitLeakageError, match=r"1 queries are in both.*\['2'\]"):
        build_dataset(train, validation=[r2r_row_to_annotation(row("2"))])
    example = RankingExample("x", "q", ("a", "b"), (0, 1))
    with pytest.raises(SplitLeakageError, match="both the training and the validation"):
        DistillationDataset(train=DatasetSplit(rankings=(example,)), validation=DatasetSplit(rankings=(example,)))


def test_save_and_load_round_trip(tmp_path):
    data = build_dataset([r2r_row_to_annotation(row(str(q))) for q in range(5)],
                         DatasetConfig(validation_fraction=0.4))
    assert DistillationDataset.load(data.save(tmp_path / "ds")) == data


def test_example_validation():
    with pytest.raises(ValueError, match="exactly 1 passage"):
        ExplanationExample("direct", "q", "query", ("a", "b"), "t")
    with pytest.raises(ValueError, match="kind"):
        ExplanationExample("other", "q", "query", ("a",), "t")


def _shared_data() -> Path:
    root = Path(os.environ.get("R2R_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
    path = root / "r2r-train" / "msmarco_500.jsonl.gz"
    if not path.exists():
        pytest.skip(f"shared R2R training data not found at {path}")
    return path


def test_shared_r2r_file_imports():
    annotations = load_r2r_annotations(_shared_data())
    assert len(annotations) == 500 and len({a.query_id for a in annotations}) == 500
    assert all(len(a.candidates) == 5 and len(a.order) == 5 and len(a.labels) == 5 for a in annotations)
    assert all(a.windows[0].answer.ranking == a.order for a in annotations)
    # the shared README: 114 rows with one positive and 5 with two
    assert sum(sum(a.labels) for a in annotations) == 114 + 2 * 5
    data = build_dataset(annotations, DatasetConfig(validation_fraction=0.1, seed=0))
    assert len(data.train.rankings) + len(data.validation.rankings) == 500
    assert len(data.validation.rankings) == 50
    direct = [e for e in data.train.explanations + data.validation.explanations if e.kind == "direct"]
    held = {e.query_id for e in data.validation.explanations}
    assert len([e for e in direct if e.query_id in held]) == sum(len(a.direct_reasons()) for a in annotations
                                                                   if a.query_id in held)  # validation: unbalanced
    train_verdicts = [e.verdict for e in direct if e.query_id not in held]
    assert train_verdicts.count("relevant") == train_verdicts.count("partial") == train_verdicts.count("not_relevant")
