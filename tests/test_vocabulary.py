"""The one vocabulary: verdict labels, the one reader of verdict phrases (the union of the three it replaced: the
explainer's contradiction check, the teacher's verdict, the evals' stated verdict), words and content words."""

from __future__ import annotations

import pytest

from r2r_agent.calibration import content_words as calibrator_words
from r2r_agent.calibration import query_coverage
from r2r_agent.vocabulary import (
    QUERY_STOP_WORDS,
    VERDICT_LABELS,
    VERDICTS,
    content_words,
    contradicts,
    graded_verdict,
    stated_verdict,
    stem,
    tokenize,
    verdict_from_label,
    verdict_phrases,
)


def test_labels_cover_the_verdicts_and_read_back():
    assert tuple(VERDICT_LABELS) == VERDICTS
    assert all(verdict_from_label(label) == verdict for verdict, label in VERDICT_LABELS.items())
    assert [verdict_from_label(w) for w in ("Highly relevant.", "not-relevant", "irrelevant", "maybe")] == \
        ["relevant", "not_relevant", "not_relevant", None]


@pytest.mark.parametrize("text, verdict", [
    # what only the evals' reader knew: leading yes/no, isn't, cannot, fails to, no mention
    ("Yes, it gives the number of months.", "relevant"),
    ("No, it is about cats.", "not_relevant"),
    ("This passage isn't relevant at all.", "not_relevant"),
    ("It cannot answer the question.", "not_relevant"),
    ("It fails to address the cost.", "not_relevant"),
    # what only the teacher's reader knew: directly states/defines, a clear definition, not applicable
    ("This passage directly defines a flail chest.", "relevant"),
    ("It provides a clear definition of the term.", "relevant"),
    ("The rule is not applicable to the query.", "not_relevant"),
    ("The passage does not define the term.", "not_relevant"),
    # fixed in the union: comparatives and a negation's object are not affirmations
    ("This passage is less relevant than the others because it does not answer the query.", "not_relevant"),
    ("This passage is the least relevant.", None),
    ("It does not provide any information relevant to the query.", "not_relevant"),
    ("It does not mention prices, but it is relevant to the query.", "not_relevant"),  # the earliest phrase
])
def test_stated_verdict_reads_the_union_of_phrases(text, verdict):
    assert stated_verdict(text) == verdict


@pytest.mark.parametrize("reason, verdict", [
    ("The passage isn't relevant: it is about a different city.", "not_relevant"),
    ("It does not provide any information relevant to the query.", "not_relevant"),
    ("This passage is the least relevant as it does not provide any information about cars.", "not_relevant"),
    ("It directly discusses the disorder, even though it does not give the dose.", "partial"),
    ("The passage addresses the cost of flooring.", "relevant"),
    ("The passage mentions the weather in May.", "partial"),
])
def test_graded_verdict(reason, verdict):
    assert graded_verdict(reason) == verdict


@pytest.mark.parametrize("reason, verdict, expected", [
    ("The passage is not relevant to the query.", "relevant", True),
    ("It gives the rate, which is not directly related to the query.", "relevant", True),
    ("It gives the rate but does not directly answer the query.", "relevant", True),
    ("It is about cats, which is unrelated.", "relevant", True),
    ("It gives the adult lifespan.", "relevant", False),
    ("It directly answers the question.", "not_relevant", True),
    ("The passage is relevant to the query.", "not_relevant", True),
    ("It mentions fleas but does not answer the question.", "not_relevant", False),
    ("It indirectly addresses fleas.", "not_relevant", False),
    ("It is not related to the query.", "partial", False),
    ("It is not related to the query.", None, False),
])
def test_contradicts(reason, verdict, expected):
    assert contradicts(reason, verdict) is expected


def test_an_affirmation_inside_a_negation_is_dropped():
    found = verdict_phrases("The passage does not answer the query.")
    assert found.lacks and found.unanswered and not found.affirmations and not found.denials
    assert verdict_phrases("It does not directly answer the query.").direct_lacks


def test_words_and_content_words():
    assert tokenize("It doesn’t say 2-3 months, Zürich.") == ["it", "doesn't", "say", "2", "3", "months", "z", "rich"]
    assert tokenize("Zürich isn't", split_apostrophes=True) == ["zürich", "isn", "t"]
    assert content_words("The fleas don't live for two classes") == ["flea", "live", "two", "classe"]
    assert [stem(w) for w in ("walking", "started", "classes", "fleas", "lived")] == \
        ["walk", "start", "class", "flea", "lived"]


def test_the_calibrators_content_words_are_frozen():
    # The shipped calibrator's query_coverage weights were fitted with exactly these words: they must not drift.
    assert calibrator_words("What's the definition of a living cell's walls?") == {"s", "living", "cell", "wall"}
    assert "define" in QUERY_STOP_WORDS and "long" not in QUERY_STOP_WORDS
    assert query_coverage("how long do fleas live", "Fleas lived long.") == pytest.approx(2 / 3)
