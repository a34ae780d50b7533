"""A served student on a real HTTP server gives the in-process student's numbers: the same scores and ranking as
``LMScorer`` and the same greedy explanations as ``Explainer``, on the same model."""

from __future__ import annotations

import copy
import logging

import pytest
from openai_server import OpenAITestServer

from r2r_agent import Explainer, LMScorer, Reranker, Student
from r2r_agent.openai_student import OpenAIExplainer, OpenAIScorer

from .served_helpers import MODEL, PASSAGES, QUERY, bounded, served

# JSON carries the server's float32 logprobs exactly; the sums differ from torch's float32 logsumexp by ~1e-7, and the
# random model's scores differ by ~1e-3 from passage to passage.
CLOSE = 1e-5


def order(values):
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def test_scores_and_ranking_equal_the_in_process_lm_scorer(server, lm):
    model, tokenizer = lm
    expected = LMScorer(model, tokenizer).score(QUERY, PASSAGES)
    got = bounded(lambda: served(server, tokenizer).scorer.score(QUERY, PASSAGES))
    assert got.values == pytest.approx(expected.values, abs=CLOSE)
    assert order(got.values) == order(expected.values)
    assert len(set(order(expected.values))) == len(PASSAGES) and max(expected.values) - min(expected.values) > 1e-3
    assert max(server.batches) > 1  # the server batched requests that were in flight together
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and "authorization" not in {k.lower() for k in headers}
    assert body["max_tokens"] == 1 and body["temperature"] == 0.0 and body["logprobs"] is True
    from r2r_agent import prompts

    assert body["messages"] in [prompts.relevance_messages(QUERY, p) for p in PASSAGES]


def test_the_completions_endpoint_gives_the_same_scores(server, lm):
    model, tokenizer = lm
    expected = LMScorer(model, tokenizer).score(QUERY, PASSAGES).values
    student = served(server, tokenizer)
    scorer = OpenAIScorer(student.scorer.client, MODEL, endpoint="completions", tokenizer=tokenizer,
                          top_logprobs=len(tokenizer))
    assert bounded(lambda: scorer.score(QUERY, PASSAGES)).values == pytest.approx(expected, abs=CLOSE)
    assert server.requests[-1][0] == "/v1/completions"


@pytest.mark.parametrize("spell", [str.upper, lambda t: t.replace(" ", "Ġ")], ids=["upper", "byte-level-marker"])
def test_servers_that_spell_tokens_their_way_give_the_same_scores(answer_lm, lm, spell):
    model, tokenizer = lm
    expected = LMScorer(model, tokenizer).score(QUERY, PASSAGES).values
    with OpenAITestServer(copy.deepcopy(answer_lm[0]), copy.deepcopy(answer_lm[1]), model_name=MODEL,
                          spell=spell) as other:
        got = bounded(lambda: served(other, tokenizer).scorer.score(QUERY, PASSAGES)).values
    assert got == pytest.approx(expected, abs=CLOSE)


def test_with_the_tokenizer_the_budgets_and_truncation_flags_are_the_in_process_ones(server, lm):
    model, tokenizer = lm
    long_passages = [PASSAGES[0] * 8, "Fleas live on a cat."]
    expected = LMScorer(model, tokenizer, max_passage_tokens=20).score(QUERY, long_passages)
    scorer = OpenAIScorer(served(server, tokenizer).scorer.client, MODEL, tokenizer=tokenizer,
                          max_passage_tokens=20, top_logprobs=len(tokenizer))
    got = bounded(lambda: scorer.score(QUERY, long_passages))
    assert got.truncated == expected.truncated == [True, False]
    assert got.values == pytest.approx(expected.values, abs=CLOSE)
    assert scorer.visible_chars(long_passages[0]) == LMScorer(model, tokenizer, max_passage_tokens=20).visible_chars(
        long_passages[0])


def test_explanations_equal_greedy_in_process_generation(server, lm):
    model, tokenizer = lm
    local = Explainer(model, tokenizer, max_new_tokens=8, batch_size=1)
    remote = served(server, tokenizer).explainer
    assert isinstance(remote, OpenAIExplainer)
    verdicts, evidence = ["relevant", None, "not_relevant"], [PASSAGES[0][:20], None, None]
    for call in (lambda e: e.explain(QUERY, PASSAGES[:3]),
                 lambda e: e.explain(QUERY, PASSAGES[:3], verdicts=verdicts, evidence=evidence),
                 lambda e: e.compare_grounded(QUERY, evidence, verdicts)):
        expected, got = call(local), bounded(lambda call=call: call(remote))
        assert got.texts == expected.texts
        assert got.generated_tokens == expected.generated_tokens
        assert got.truncated == expected.truncated
    assert any(text.strip() for text in local.explain(QUERY, PASSAGES[:3]).texts)  # the comparison means something
    bodies = [body for _, _, body in server.requests]
    assert all(body["temperature"] == 0.0 for body in bodies)
    assert {body["max_tokens"] for body in bodies} == {8, 16}  # comparisons get twice max_new_tokens


def test_a_served_reranker_equals_the_in_process_one_end_to_end(server, lm):
    model, tokenizer = lm
    local = Student(scorer=LMScorer(model, tokenizer), name="local",
                    explainer=Explainer(model, tokenizer, max_new_tokens=8, batch_size=1))
    settings = {"explain_top": 3, "compare_top": 3, "comparison": "lm", "top_n": 4}
    expected = Reranker(local, trace=False, **settings).rerank(QUERY, PASSAGES)
    got = bounded(lambda: Reranker(served(server, tokenizer), trace=False, **settings).rerank(QUERY, PASSAGES))
    assert [j.input_rank for j in got] == [j.input_rank for j in expected]
    assert [j.score for j in got] == pytest.approx([j.score for j in expected], abs=CLOSE)
    assert [j.explanation for j in got] == [j.explanation for j in expected]
    assert [j.evidence for j in got] == [j.evidence for j in expected]
    assert got.comparison == expected.comparison
    assert got.model == f"{MODEL} @ {server.url}"
    assert [(s.stage, s.items, s.generated_tokens) for s in got.stages] == \
        [(s.stage, s.items, s.generated_tokens) for s in expected.stages]


def test_few_top_logprobs_still_score_and_warn_once_when_neither_answer_shows(answer_lm, lm, caplog):
    _, tokenizer = lm
    with OpenAITestServer(copy.deepcopy(answer_lm[0]), copy.deepcopy(answer_lm[1]), model_name=MODEL,
                          max_top_logprobs=20) as capped:
        scorer = served(capped, tokenizer, top_logprobs=2).scorer
        with caplog.at_level(logging.WARNING, logger="r2r_agent.openai_student"):
            first = bounded(lambda: scorer.score(QUERY, PASSAGES))
            bounded(lambda: scorer.score(QUERY, PASSAGES))
        too_many = served(capped, tokenizer, top_logprobs=21).scorer
        with pytest.raises(Exception, match="HTTP 400.*max-logprobs"):
            bounded(lambda: too_many.score(QUERY, PASSAGES[:1]))
    assert len(first.values) == len(PASSAGES)
    warnings = [r for r in caplog.records if "top_logprobs" in r.getMessage()]
    assert len(warnings) == 1 and "score 0" in warnings[0].getMessage()


def test_an_empty_call_sends_nothing(server, lm):
    student = served(server, lm[1])
    assert student.scorer.score(QUERY, []).values == []
    assert student.explainer.explain(QUERY, []).texts == []
    assert server.requests == []


def test_log_odds_from_logits_is_the_scorers_reading_and_the_old_name_warns(lm):
    # Issue 18 item 6: relevance_from_logits returned log-odds, not a relevance; renamed, the old name kept one release.
    import torch

    model, tokenizer = lm
    scorer = LMScorer(model, tokenizer)
    logits = torch.randn(3, len(tokenizer), generator=torch.Generator().manual_seed(0))
    log_odds = scorer.log_odds_from_logits(logits)
    logprobs = torch.log_softmax(logits, dim=-1)
    expected = (torch.logsumexp(logprobs[:, scorer.yes_token_ids], -1)
                - torch.logsumexp(logprobs[:, scorer.no_token_ids], -1))
    assert torch.allclose(log_odds, expected)
    with pytest.warns(DeprecationWarning, match="renamed log_odds_from_logits"):
        assert torch.equal(scorer.relevance_from_logits(logits), log_odds)
