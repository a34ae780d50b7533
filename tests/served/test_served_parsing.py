"""The pure parts of the served student: reading logprobs and replies in every shape servers send, and budgets."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest

from r2r_agent.logprobs import LOG_ODDS_LIMIT, answer_log_odds, answer_word, first_token_logprobs
from r2r_agent.openai_client import MalformedResponse, ServerError, display_url, parse_retry_after
from r2r_agent.openai_student import TextBudget, _reply


def chat(top, token="Yes", logprob=-0.1):
    return {"choices": [{"message": {"content": token}, "logprobs": {"content": [
        {"token": token, "logprob": logprob, "top_logprobs": [{"token": t, "logprob": v} for t, v in top]}]}}]}


def completions(top, token=" yes", logprob=-0.2):
    return {"choices": [{"text": token, "logprobs": {"tokens": [token], "token_logprobs": [logprob],
                                                     "top_logprobs": [dict(top)]}}]}


@pytest.mark.parametrize("name", ["r2r_agent.logprobs", "r2r_agent.openai_client", "r2r_agent.openai_student",
                                  "r2r_agent.aio"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("token, word", [("yes", "yes"), (" Yes", "yes"), ("YES", "yes"), ("Ġyes", "yes"),
                                         ("▁No", "no"), ("\nno ", "no"), ("yes.", "yes."), ("nope", "nope")])
def test_answer_words_ignore_case_spaces_and_space_markers(token, word):
    assert answer_word(token) == word


def test_chat_and_completions_shapes_read_the_same():
    top = [("Yes", -0.3), (" yes", -1.9), ("No", -2.2), ("Maybe", -3.0)]
    from_chat = first_token_logprobs(chat(top, token="Yes", logprob=-0.3))
    from_completions = first_token_logprobs(completions(top, token="Yes", logprob=-0.3))
    assert from_chat == top  # the generated token is already listed: not counted twice
    assert sorted(from_completions) == sorted(top)


def test_every_spelling_of_an_answer_counts():
    score, seen = answer_log_odds([("Yes", -1.0), (" yes", -1.0), ("YES", -1.0), ("ĠNo", -2.0), (" no", -2.0)])
    assert seen == "both"
    assert score == pytest.approx(math.log(3 * math.exp(-1.0)) - math.log(2 * math.exp(-2.0)))


def test_the_generated_token_counts_when_the_list_lacks_it():
    pairs = first_token_logprobs(chat([("No", -1.5)], token="Yes", logprob=-0.4))
    assert ("Yes", -0.4) in pairs
    assert answer_log_odds(pairs)[0] == pytest.approx(1.1)


def test_a_missing_answer_takes_the_floor_so_the_score_is_a_bound():
    # Only "yes" seen: "no" is at most the lowest returned logprob and at most the mass left over.
    top = [("Yes", math.log(0.5)), ("Sure", math.log(0.3)), ("The", math.log(0.1))]
    score, seen = answer_log_odds(top)
    assert seen == "yes"
    assert score == pytest.approx(math.log(0.5) - math.log(0.1))  # the floor: min(0.1, 1 - 0.9 = 0.1)
    score, seen = answer_log_odds([("No", -0.05), ("Nope", -4.0)])
    assert seen == "no"
    assert score == pytest.approx(-4.0 + 0.05)  # the lowest returned is lower than the leftover mass here
    assert score < 0


def test_neither_answer_scores_zero():
    assert answer_log_odds([("The", -0.5), ("A", -1.5)]) == (0.0, "neither")


def test_minus_infinity_is_a_probability_of_zero_for_a_token_not_generated():
    pairs = first_token_logprobs(chat([("Yes", -0.1), ("No", -math.inf)]))
    assert [t for t, _ in pairs] == ["Yes", "No"]
    assert answer_log_odds(pairs) == (LOG_ODDS_LIMIT, "both")  # finite: the reranker refuses infinite scores
    assert answer_log_odds([("No", -math.inf), ("The", -0.1)]) == (LOG_ODDS_LIMIT, "no")  # p(no) = 0


@pytest.mark.parametrize("body", [
    chat([("Yes", -0.5)], token="No", logprob=math.nan),  # the attack: scored 100.0
    chat([("Yes", -math.inf), ("No", -math.inf)], token="No", logprob=-math.inf),  # also 100.0
    chat([("Yes", -0.5), ("No", math.nan)]),
    chat([("Yes", -0.1), ("No", 800)]),  # OverflowError before
    chat([("Yes", 1e308), ("No", -1.0)]),
    chat([("Yes", -0.1), ("No", 10**400)]),
    completions([(" yes", math.nan)]),
    completions([("Yes", -0.1)], token=" no", logprob=-math.inf),
], ids=["sampled-nan", "all-minus-inf", "listed-nan", "800", "1e308", "huge-int", "completions-nan",
        "completions-sampled-minus-inf"])
def test_nan_and_impossible_logprobs_are_malformed_never_a_top_score(body):
    # Issue 19 item 4: NaN on the sampled "No" with "Yes" at -0.5 scored 100.0 (min(100, nan) is 100).
    with pytest.raises(MalformedResponse):
        answer_log_odds(first_token_logprobs(body))


def test_both_answers_at_minus_infinity_are_malformed_and_a_slightly_positive_logprob_is_zero():
    with pytest.raises(MalformedResponse, match="both 'yes' and 'no' have logprob -inf"):
        answer_log_odds(first_token_logprobs(chat([("Yes", -math.inf), ("No", -math.inf), ("The", -0.01)],
                                                  token="The", logprob=-0.01)))
    with pytest.raises(MalformedResponse):
        answer_log_odds([("Yes", math.nan), ("No", -1.0)])
    assert first_token_logprobs(chat([("Yes", 1e-7)], token="Yes", logprob=1e-7)) == [("Yes", 0.0)]


@pytest.mark.parametrize("logprobs", [
    {"tokens": 5, "token_logprobs": [-0.1], "top_logprobs": [{}]},
    {"tokens": ["Yes"], "token_logprobs": 5, "top_logprobs": [{}]},
    {"tokens": {"a": 1}, "top_logprobs": [{"Yes": -0.1}]},
    {"tokens": ["Yes"], "token_logprobs": [-0.1], "top_logprobs": {"0": {}}},
    {"tokens": ["Yes"], "token_logprobs": [-0.1], "top_logprobs": [5]},
    {"content": [{"token": "Yes", "logprob": "x", "top_logprobs": []}]},
], ids=["tokens-5", "token-logprobs-5", "tokens-object", "top-object", "top-item-5", "sampled-text"])
def test_completions_and_chat_logprobs_of_another_shape_are_malformed(logprobs):
    # Issue 19 item 5: these raised TypeError/KeyError out of the client.
    with pytest.raises(MalformedResponse):
        first_token_logprobs({"choices": [{"logprobs": logprobs}]})


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": "x"}, {"choices": [None]}])
def test_a_body_without_choices_is_malformed_and_retried(body):
    with pytest.raises(MalformedResponse, match="no choices"):
        first_token_logprobs(body)


@pytest.mark.parametrize("logprobs", [None, {}, {"content": None}, {"content": []}, {"other": 1}])
def test_an_answer_without_logprobs_is_a_clear_error(logprobs):
    body = {"choices": [{"message": {"content": "Yes"}, "logprobs": logprobs}]}
    with pytest.raises(ServerError) as info:
        first_token_logprobs(body)
    assert not isinstance(info.value, MalformedResponse)  # not retried: the server does not give them
    message = str(info.value)
    assert "expected choices[0].logprobs" in message and "vLLM" in message and "local scorer" in message


@pytest.mark.parametrize("top", ["yes", [{"token": 1, "logprob": -1.0}], [{"token": "yes", "logprob": "-1"}],
                                 [{"token": "yes", "logprob": True}]])
def test_garbled_top_logprobs_are_malformed(top):
    body = {"choices": [{"logprobs": {"content": [{"token": "yes", "logprob": -1.0, "top_logprobs": top}]}}]}
    with pytest.raises(MalformedResponse):
        first_token_logprobs(body)


def test_llama_cpp_completion_style_with_a_list_of_top_logprobs():
    body = {"choices": [{"logprobs": {"tokens": ["Yes"], "token_logprobs": [-0.2],
                                      "top_logprobs": [[{"token": "Yes", "logprob": -0.2},
                                                        {"token": "No", "logprob": -1.8}]]}}]}
    assert answer_log_odds(first_token_logprobs(body))[0] == pytest.approx(1.6)


def test_replies_read_text_parts_usage_and_reject_garbage():
    assert _reply({"choices": [{"message": {"content": "Relevant."}}], "usage": {"completion_tokens": 3}}) == \
        ("Relevant.", 3)
    assert _reply({"choices": [{"message": {"content": [{"type": "text", "text": "A"}, {"text": "B"}]}}]}) == \
        ("AB", 0)
    assert _reply({"choices": [{"message": {"content": None}}], "usage": {"completion_tokens": True}}) == ("", 0)
    for body in ({}, {"choices": [{}]}, {"choices": [{"message": {"content": 3}}]},
                 {"choices": [{"message": {"content": [{"text": 5}]}}]}):  # TypeError out of the client before
        with pytest.raises(MalformedResponse):
            _reply(body)


def test_character_budgets_cut_at_a_space_and_flag_it():
    budget = TextBudget(chars=20)
    assert budget.cut("short") == ("short", False)
    assert budget.cut("fleas live two to three months") == ("fleas live two to", True)
    assert budget.cut("x" * 30) == ("x" * 20, True)
    assert budget.visible("fleas live two to three months") == len("fleas live two to")
    assert budget.visible("short") == 5


def test_token_budgets_are_the_in_process_students(lm):
    from r2r_agent.modeling import fit_tokens

    _, tokenizer = lm
    text = "adult fleas live two to three months on a cat " * 5
    assert TextBudget(chars=5, tokens=7, tokenizer=tokenizer).cut(text) == fit_tokens(tokenizer, text, 7)


def test_retry_after_and_urls():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after(None) is None
    assert display_url("https://me:pw@host:1/v1/") == "https://host:1/v1"


def test_a_served_student_is_built_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys\n"
            "from r2r_agent import OpenAIExplainer, OpenAIScorer, Reranker, Student\n"
            "from r2r_agent.scorers import OpenAIScorer as Again\n"
            "student = Student.from_openai('http://127.0.0.1:9/v1', 'm', api_key='k')\n"
            "print(sorted(m for m in ('torch', 'transformers', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"  # httpx loads with the first request, torch never
