"""Explanations that can be trusted: verdicts, unsupported claims (the evaluation's own check, apart from the guard),
quoted evidence, and evidence against the teacher's best sentence; on inline rankings and fake students."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_judgments import CALIBRATOR, CountingScorer
from test_evals_runner import tiny_dataset  # same folder (pytest puts it on sys.path)
from test_evals_teacher import EchoExplainer, r2r_row

from r2r_agent.evals.claims import normalise, quotes_evidence, unsupported_claims
from r2r_agent.evals.evidence_agreement import (
    EvidenceAgreement,
    best_covering_sentence,
    evidence_agreement,
    first_sentence,
    has_sentence,
    same_sentence,
)
from r2r_agent.evals.explanation_quality import ExplanationQuality, explanation_quality
from r2r_agent.evals.report import write_report
from r2r_agent.evals.runner import run_eval
from r2r_agent.evals.systems import FirstStageSystem, RerankerSystem
from r2r_agent.evals.teacher_agreement import ValidationQuery, load_validation_split
from r2r_agent.reranker import Reranker
from r2r_agent.student import Student
from r2r_agent.types import Judgment, Ranking

FLEA = "Adult fleas live two to three months. A female lays 1,200 eggs. Fleas bite."


# --- the claims check ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("explanation", "claims"), [
    ("Relevant: adults live 2 to 3 months.", ()),  # number words in the passage
    ("Relevant: a female lays 1200 eggs, or 1,200.", ()),  # thousands separators either way
    ("Relevant: she lays 1,200.0 eggs.", ()),  # compared by value
    ("Partly relevant: fleas live 4 months.", ("4",)),
    ("Relevant: it says \"adult fleas live two to three months\".", ()),
    ("Relevant: it says “adult fleas live 2 to 3 months”.", ()),
    ("Relevant: it says \"fleas live a year\".", ('"fleas live a year"',)),
    ("Relevant: unlike passage [2], it gives the lifespan.", ()),  # a citation claims nothing
    ("Relevant: 5 and 5 and \"cats\" and \"cats\".", ("5", '"cats"')),  # each once
    ("Relevant: the query's 7 words.", ()),  # stated in the query
])
def test_unsupported_claims(explanation: str, claims: tuple[str, ...]) -> None:
    assert unsupported_claims(explanation, FLEA, "the 7 words of fleas") == claims


def test_normalise_and_quotes_evidence() -> None:
    assert normalise("Twenty-One and 12,345,678") == "20-1 and 12345678"
    evidence = "Adult fleas live two to three months."
    assert quotes_evidence('Relevant: the passage says "Adult fleas live two to three months."', evidence)
    assert quotes_evidence('Relevant: "adult fleas live 2..."', evidence)  # cut, number words normalised
    assert quotes_evidence("It states adult fleas live two to three months, plainly.", evidence)  # whole, unquoted
    assert not quotes_evidence('Relevant: "fleas live"', evidence)  # too short to be a quote of it
    assert not quotes_evidence('Relevant: "fleas bite all day long"', evidence)
    assert quotes_evidence('Relevant: "Fleas bite."', "Fleas bite.")  # a short evidence, quoted whole
    assert not quotes_evidence(None, evidence) and not quotes_evidence("x", None)


def _judgment(rank: int, text: str, explanation: str, *, verdict: str | None = "relevant",
              evidence: str | None = None, unsupported: tuple[str, ...] = ()) -> Judgment:
    return Judgment(id=f"d{rank}", text=text, score=1.0 / rank, rank=rank, input_rank=rank, explanation=explanation,
                    verdict=verdict, evidence=evidence, unsupported=unsupported)


def test_explanation_quality_counts_verdicts_claims_and_quotes() -> None:
    evidence = "Adult fleas live two to three months."
    ranking = Ranking(query="how long do fleas live", judgments=(
        _judgment(1, FLEA, f'Relevant: the passage says "{evidence}"', evidence=evidence),
        _judgment(2, FLEA, "Not relevant: it says fleas live 4 months and \"9 weeks\".", evidence=evidence,
                  verdict="relevant"),  # opens with another verdict's words, two claims unsupported
        _judgment(3, FLEA, "Partly relevant: it mentions eggs.", verdict="partial", unsupported=("25 days",)),
        _judgment(4, FLEA, "The passage is relevant.", verdict=None),
        _judgment(5, FLEA, None, verdict="relevant"),  # type: ignore[arg-type]  # not explained: not counted
    ))
    q = explanation_quality({"q1": ranking}, {"q1": {"d1": 2}})
    assert q.n_explained == 4 and (q.n_with_verdict, q.n_opens_with_verdict) == (3, 2)
    assert (q.n_guard_removed, q.n_unsupported, q.n_with_evidence, q.n_quotes_evidence) == (1, 1, 2, 1)
    (case,) = q.unsupported_cases
    assert case.passage_id == "d2" and case.note == 'not in the passage or query: 4, 9, "9 weeks"'
    assert ExplanationQuality.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    old = {k: v for k, v in q.to_dict().items() if not k.startswith("n_") or k in ("n_queries", "n_judgments",
                                                                                   "n_explained", "n_empty",
                                                                                   "n_grounded",
                                                                                   "n_specificity_queries")}
    assert ExplanationQuality.from_dict(old).n_with_verdict == 0  # reports written before these measures


class EvidenceScorer:
    """Scores a text by the number of the query's words it holds."""

    name = "overlap-scorer"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        words = set(query.lower().split())
        return [float(len(words & set(p.lower().rstrip(".").split()))) for p in passages]


def test_report_shows_the_trust_table_and_unsupported_cases(tmp_path: Path) -> None:
    def factory() -> Reranker:  # explain="evidence": verdict, evidence, quotes; the fake scorer's calibrator
        return Reranker(Student(scorer=CountingScorer(), calibrator=CALIBRATOR, explainer=EchoExplainer(),  # type: ignore
                                name="fake"), explain="evidence", trace=False)

    system = RerankerSystem("evidence-student", factory, {"e": 1}, explains=True)
    results = run_eval([tiny_dataset()], [FirstStageSystem(), system], explain_queries=2, explain_top=2)
    q = results.explanations[0].quality
    assert (q.n_explained, q.n_with_verdict, q.n_opens_with_verdict, q.n_quotes_evidence, q.n_unsupported) == (
        4, 4, 4, 4, 0)
    md = write_report(results, tmp_path, plots=False).markdown.read_text(encoding="utf-8")
    section = md.split("## Explanation quality")[1]
    assert "| dataset | system | explained | with verdict [100%] | opens with it [100%] | guard removed | " \
           "unsupported (own check) [<= 2%] | quotes evidence |" in section
    assert "| tiny | `evidence-student` | 4 | 100.0% (4/4) | 100.0% (4/4) | 0.0% (0/4) | 0.0% (0/4) | 100.0% (4/4) |" \
        in section
    assert section.index("| quotes evidence |") < section.index("### Worst cases")


# --- evidence against the teacher's sentence ----------------------------------------------------------------------


def test_same_sentence_and_baselines() -> None:
    sentence = "Adult fleas live two to three months on a host."
    assert same_sentence(sentence, "adult fleas live two to three months on a host")
    assert same_sentence(sentence, "Adult fleas live two to three months")  # cut short: 7 of 7, 7 of 10
    assert not same_sentence(sentence, "Adult fleas live")  # 3 of 10 < half the larger
    assert not same_sentence(sentence, "Cats sleep two to three hours on a sofa.")
    assert not same_sentence(None, sentence) and not same_sentence("", "")
    assert first_sentence("  ") is None and best_covering_sentence("fleas", "") is None
    passage = "Cats sleep. Fleas live two months. Fleas live long."
    assert best_covering_sentence("how long do fleas live", passage) == "Fleas live long."
    assert best_covering_sentence("fleas", passage) == "Fleas live two months."  # ties: the earliest
    assert [has_sentence(t) for t in (None, "", "N/A", "Not applicable.", "None", "Fleas live.")] == [
        False, False, False, False, False, True]


def test_evidence_agreement_counts() -> None:
    items = [("q", "fleas live", "a", "Cats. Fleas live long.", "Fleas live long.", "Fleas live long."),
             ("q", "fleas live", "b", "Fleas live long. Cats.", "Cats.", "Fleas live long."),
             ("q", "fleas live", "c", "Cats.", None, "Cats."),
             ("q", "fleas live", "d", "Cats.", "Cats.", "Not applicable")]
    a = evidence_agreement(items, worst_k=1)
    assert (a.n, a.n_skipped, a.n_without_evidence, a.n_system, a.n_first_sentence, a.n_query_coverage) == (
        3, 1, 1, 1, 2, 3)
    assert [m.passage_id for m in a.misses] == ["b"] and a.rate(a.n_system) == pytest.approx(1 / 3)
    assert EvidenceAgreement.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert evidence_agreement([]).rate(0) is None


def r2r_row_with_sentences(qid: str) -> dict:
    row = r2r_row(qid)
    row["unsorted_docs"] = [f"Fleas are pests. Fleas live three months {qid}.", f"cats sleep all day {qid}"]
    first, second = row["reason"]["ranked_passages"]
    first["direct_answer_sentence"] = f"Fleas live three months {qid}."
    second["direct_answer_sentence"] = "Not applicable"
    return row


def test_teacher_agreement_measures_evidence(tmp_path: Path) -> None:
    path = tmp_path / "r2r.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r2r_row_with_sentences(str(100 + q))) + "\n" for q in range(20))
    split = load_validation_split(path, validation_fraction=0.2, seed=0, max_queries=2)
    first = split.queries[0]
    assert first.teacher_evidence == (f"Fleas live three months {first.qid}.", "Not applicable")
    assert split.describe()["teacher_sentences"] == 4
    assert ValidationQuery("q", "x", ("a",), ("p",), ("t",)).teacher_evidence == (None,)  # none known

    def factory() -> Reranker:
        return Reranker(Student(scorer=EvidenceScorer(), explainer=EchoExplainer(), name="fleas"),  # type: ignore
                        trace=False)

    results = run_eval([], [RerankerSystem("flea-student", factory, {"f": 1}, explains=True)], agreement=split)
    evidence = results.agreements[0].evidence
    assert evidence is not None and (evidence.n, evidence.n_skipped, evidence.n_system) == (2, 2, 2)
    assert (evidence.n_first_sentence, evidence.n_query_coverage) == (0, 2)
    md = write_report(results, tmp_path / "report", plots=False).markdown.read_text(encoding="utf-8")
    assert "| system | passages (n) | skipped | evidence matches | first sentence | best query coverage |" in md
    assert "| `flea-student` | 2 | 2 | 100.0% (2/2) | 0.0% (0/2) | 100.0% (2/2) | 0 |" in md
    data = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert data["teacher_agreement"]["runs"][0]["evidence"]["system_rate"] == 1.0
