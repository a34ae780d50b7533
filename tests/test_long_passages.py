"""Long and hostile passages: linear sentence splitting of only the part read (issue 19 item 6), a cap on the
sentences judged per passage (issue 19 item 7), and windows over a passage longer than the scorer's budget
(issue 20 item 1)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r2r_agent import Reranker, Student
from r2r_agent.evidence import (
    _INITIALS,
    ABBREVIATIONS,
    MAX_SENTENCES_PER_PASSAGE,
    _after_abbreviation,
    best_window_spans,
    candidate_spans,
    sentence_spans,
)
from r2r_agent.scorers import Scores


def _old_after_abbreviation(text: str, boundary: int) -> bool:
    """The quadratic original (it copied ``text[:boundary]``): the reference the bounded look back must match."""
    if boundary == 0 or text[boundary - 1] != ".":
        return False
    word = text[:boundary].rsplit(None, 1)[-1]
    return bool(_INITIALS.match(word)) or word[:-1].lower().lstrip("([\"'") in ABBREVIATIONS


_PIECES = ["Dr.", "approx.", "U.S.", "e.g.", "Fleas", "live", "3", "(St.", "months.", "Then", "\n", "  ",
           "x" * 40 + "."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_the_bounded_look_back_decides_every_boundary_as_before(pieces):
    text = " ".join(pieces)
    for boundary in (i + 1 for i, c in enumerate(text) if c == "."):
        expected = _old_after_abbreviation(text, boundary)
        if len(text[:boundary].rsplit(None, 1)[-1]) <= 32:  # a longer word is no abbreviation: never a difference
            assert _after_abbreviation(text, boundary) == expected


def test_splitting_stops_where_the_model_stopped_reading():
    text = "First one. Second one. " + "Third one is long. " * 1000
    assert sentence_spans(text, end=25) == sentence_spans(text[:25])
    visible = len("First one. Second on")
    assert [text[s:e] for s, e in candidate_spans(text, visible)] == ["First one.", "Second"]


class CountingScorer:
    """Counts the texts it scores; reads ``visible`` characters of each passage (all when ``None``)."""

    name = "counting"

    def __init__(self, visible: int | None = None) -> None:
        self.visible = visible
        self.calls = 0
        self.texts = 0

    def score(self, query, passages):
        self.calls += 1
        self.texts += len(passages)
        return Scores([float(len(p) % 7) for p in passages])

    def visible_chars(self, text):
        return len(text) if self.visible is None else min(self.visible, len(text))


def test_a_four_megabyte_document_is_judged_on_the_part_read_only():
    # Issue 19 item 6: one 4 MB retrieved document made a rerank take 44 s while holding the student's lock; the
    # sentences judged now come from the first ``visible`` characters alone.
    document = "The flea lives three months. Dr. Smith agrees. " * 90_000
    scorer = CountingScorer(visible=1_000)
    ranking = Reranker(Student(scorer=scorer), explain="evidence", compare_top=0).rerank(
        "how long do fleas live", [document, "Cats purr."])
    judged = next(stage for stage in ranking.stages if stage.stage == "judge")
    assert judged.items == len(candidate_spans(document, 1_000)) + 1 <= 50
    assert ranking[0].evidence_span is not None and ranking[0].evidence_span[1] <= 1_000


def test_sentences_judged_per_passage_are_capped():
    # Issue 19 item 7: ten passages of "Ok! " * 2000 made a served student send 2,570 requests (ten normal passages:
    # 20). Every sentence is one scorer input (one request when served): at most MAX_SENTENCES_PER_PASSAGE each.
    hostile = ["Ok! " * 2000] * 10
    scorer = CountingScorer()  # reads every character: the worst case
    Reranker(Student(scorer=scorer), explain="evidence", compare_top=0).rerank("ok", hostile)
    assert scorer.texts == 10 + 10 * MAX_SENTENCES_PER_PASSAGE
    spans = candidate_spans(hostile[0])
    assert len(spans) == MAX_SENTENCES_PER_PASSAGE
    assert spans[0][0] == 0 and spans[-1][1] == len(hostile[0].rstrip())  # the groups still cover every sentence
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))

    normal = CountingScorer()
    Reranker(Student(scorer=normal), explain="evidence", compare_top=0).rerank(
        "fleas", ["Fleas live two to three months. They bite."] * 10)
    assert normal.texts == 10 + 20


@pytest.mark.parametrize("limit", [1, 2, 5, 63])
def test_the_cap_joins_neighbours_into_exact_groups(limit):
    rng = random.Random(limit)
    text = " ".join(f"Sentence {i} has {rng.randint(1, 9)} words." for i in range(100))
    sentences = candidate_spans(text, max_sentences=1000)
    groups = candidate_spans(text, max_sentences=limit)
    assert len(groups) == limit
    assert {s for s, _ in groups} <= {s for s, _ in sentences} and {e for _, e in groups} <= {e for _, e in sentences}
    assert groups[0][0] == sentences[0][0] and groups[-1][1] == sentences[-1][1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_a_bad_cap_is_refused(bad):
    with pytest.raises(ValueError, match="max_sentences"):
        candidate_spans("One. Two.", max_sentences=bad)


# -- windows over a passage longer than the scorer's budget (issue 20 item 1) ----------------------------------------

SENTENCES = ["The sun is hot in summer.", "A cat sleeps on the floor.", "The price of concrete is a cost.",
             "Earth has a tilt on its axis.", "Adult fleas live two to three months on a host."]


def long_text(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(SENTENCES) for _ in range(n))


def test_windows_cover_the_text_in_overlapping_sentence_aligned_pieces(tiny_encoder):
    from r2r_agent.windows import plan_windows

    _, tokenizer = tiny_encoder
    text = long_text(60)
    plan = plan_windows(tokenizer, text, window_tokens=30, max_tokens=10_000, overlap=8)
    assert not plan.truncated and plan.covered == len(text) and len(plan.spans) > 3
    assert plan.spans[0][0] == 0 and plan.spans[-1][1] == len(text)
    starts = {s for s, _ in sentence_spans(text)}
    for (a, b), (c, d) in zip(plan.spans, plan.spans[1:]):
        assert a < c < d and b < d and not text[b:c].strip()  # overlapping or adjacent: nothing is skipped
        assert c in starts     # and at a sentence (every boundary here is within reach)
        assert len(tokenizer(text[c:b], add_special_tokens=False)["input_ids"]) <= 8
    for a, b in plan.spans:
        assert len(tokenizer(text[a:b], add_special_tokens=False)["input_ids"]) <= 30
    assert plan_windows(tokenizer, "fleas live", 30, 10_000).spans == [(0, len("fleas live"))]


def test_windows_stop_at_the_bound_and_flag_it(tiny_encoder):
    from r2r_agent.windows import plan_windows

    _, tokenizer = tiny_encoder
    text = long_text(200)
    plan = plan_windows(tokenizer, text, window_tokens=30, max_tokens=100)
    assert plan.truncated and plan.covered < len(text)
    assert len(tokenizer(text[:plan.covered], add_special_tokens=False)["input_ids"]) == 100
    assert plan.spans[-1][1] == plan.covered


def test_a_long_passage_scores_as_its_best_window(tiny_encoder):
    from r2r_agent import EncoderScorer

    model, tokenizer = tiny_encoder
    scorer = EncoderScorer(model, tokenizer, max_tokens=32)
    first_window = EncoderScorer(model, tokenizer, max_tokens=32, max_tokens_per_passage=None)
    text = long_text(40)
    got = scorer.score("how long do adult fleas live", [text, "fleas bite"])
    (windows, short) = got.windows
    assert len(windows) > 2 and short == [(0, len("fleas bite"), got.values[1])]
    alone = scorer.score("how long do adult fleas live", [text[a:b] for a, b, _ in windows]).values
    assert [v for _, _, v in windows] == pytest.approx(alone, abs=1e-5)
    assert got.values[0] == pytest.approx(max(alone), abs=1e-6) and got.truncated == [False, False]
    # A passage within one window scores as before windows (padded in another batch: float noise at most).
    assert got.values[1] == pytest.approx(first_window.score("how long do adult fleas live", ["fleas bite"]).values[0],
                                          abs=1e-6)
    assert first_window.score("q", [text]).truncated == [True]
    assert scorer.visible_chars(text) == len(text) and first_window.visible_chars(text) < len(text)
    mean = EncoderScorer(model, tokenizer, max_tokens=32, window_rule="mean").score("how long", [text])
    assert mean.values[0] == pytest.approx(sum(v for _, _, v in mean.windows[0]) / len(mean.windows[0]))


def test_evidence_may_come_from_any_window(tiny_encoder):
    from r2r_agent import EncoderScorer

    model, tokenizer = tiny_encoder
    scorer = EncoderScorer(model, tokenizer, max_tokens=32)
    text = long_text(30)
    ranking = Reranker(Student(scorer=scorer), explain="evidence", compare_top=0).rerank("fleas", [text])
    judged = next(stage for stage in ranking.stages if stage.stage == "judge")
    windows = scorer.score("fleas", [text]).windows[0]
    # The sentences of the two best-scoring windows are judged one by one (not all 30 joined into groups, and not
    # only those of the first 32 tokens): wherever those windows lie in the passage.
    assert judged.items == len(best_window_spans(text, windows, scorer.visible_chars(text))) < 30
    assert len(candidate_spans(text)) == 30
    start, end = ranking[0].evidence_span
    assert text[start:end] == ranking[0].evidence


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "4096"])
def test_a_bad_bound_is_refused(tiny_encoder, bad):
    from r2r_agent import EncoderScorer, InvalidInputError

    model, tokenizer = tiny_encoder
    with pytest.raises(InvalidInputError, match="max_tokens_per_passage must be an int >= 1"):
        EncoderScorer(model, tokenizer, max_tokens_per_passage=bad)
    with pytest.raises(InvalidInputError, match="window_rule must be one of"):
        EncoderScorer(model, tokenizer, window_rule="best")


def test_a_cross_encoder_reads_a_long_passage_in_windows(tmp_path, _tiny_encoder):
    import copy

    from r2r_agent.cross_encoder import CrossEncoderScorer
    from tests.test_cross_encoder import save_reranker

    tokenizer = copy.deepcopy(_tiny_encoder[1])
    tokenizer.model_max_length = 48
    scorer = CrossEncoderScorer.from_pretrained(save_reranker(tmp_path, tokenizer))
    text = long_text(40)
    got = scorer.score("how long do fleas live", [text, "fleas bite"])
    windows = got.windows[0]
    assert len(windows) > 2 and got.truncated == [False, False]
    alone = scorer.score("how long do fleas live", [text[a:b] for a, b, _ in windows]).values
    assert got.values[0] == pytest.approx(max(alone), abs=1e-5)
    old = CrossEncoderScorer.from_pretrained(tmp_path, max_tokens_per_passage=None)
    assert got.values[1] == pytest.approx(old.score("how long do fleas live", ["fleas bite"]).values[0], abs=1e-6)
    assert old.score("how long do fleas live", [text]).truncated == [True]


# -- the long-document evaluation (evals/long_documents.py) ----------------------------------------------------------


def _annotations(n: int = 6):
    from types import SimpleNamespace

    return [SimpleNamespace(query_id=f"q{i}", query=f"topic{i} question",
                            candidates=[SimpleNamespace(text=f"Answer about topic{i} number {k}. " * 3)
                                        for k in range(3)], order=[1, 0, 2]) for i in range(n)]


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_long_documents_place_the_best_passage_where_asked(position):
    from evals.long_documents import build_cases

    cases = build_cases(_annotations(), queries=3, lengths=[300, 900], positions=[position], distractors=2)
    assert len(cases) == 6
    for case in cases:
        doc = case.documents[case.target]
        a, b = case.answer_span
        assert doc[a:b] == f"Answer about topic{case.query.split()[0][5:]} number 1. " * 3
        assert len(doc) >= case.length and len(case.documents) == 3
        own = case.query.split()[0]
        assert sum(own in d for d in case.documents) == 1  # the distractors hold other queries' passages only
        if position == "start":
            assert a == 0
        elif position == "end":
            assert b == len(doc)
        else:
            assert 0 < a and b < len(doc)


def test_long_documents_count_a_tie_as_wrong_and_charge_windows():
    from evals.long_documents import accuracy_table, build_cases, run_cases

    cases = build_cases(_annotations(), queries=2, lengths=[400], distractors=2)

    class Finds:  # scores a document by whether it holds the query's own topic word
        def score(self, query, texts):
            return Scores(values=[float(query.split()[0] in t) for t in texts],
                          windows=[[(0, 1, 0.0), (1, 2, 0.0)] for _ in texts])

    class Blind:
        def score(self, query, texts):
            return Scores(values=[0.0] * len(texts))

    table = accuracy_table({"finds": run_cases(Finds(), cases), "blind": run_cases(Blind(), cases)})
    assert table["finds"]["top1"] == 1.0 and table["blind"]["top1"] == 0.0
    assert table["finds"]["by_length"]["400"]["windows_per_case"] == 6.0  # 3 documents, 2 windows each
    assert table["blind"]["by_length"]["400"]["windows_per_case"] == 3.0


def test_long_documents_refuse_bad_settings():
    from evals.long_documents import build_cases
    from r2r_agent import InvalidInputError

    with pytest.raises(InvalidInputError, match="positions must be among"):
        build_cases(_annotations(), positions=["top"])
    with pytest.raises(InvalidInputError, match="distractors"):
        build_cases(_annotations(), distractors=0)


def test_truncated_means_cut_at_the_bound_and_evidence_stays_before_it(tiny_encoder):
    from r2r_agent import EncoderScorer

    model, tokenizer = tiny_encoder
    text = long_text(200)
    bounded = EncoderScorer(model, tokenizer, max_tokens=32, max_tokens_per_passage=100)
    whole = EncoderScorer(model, tokenizer, max_tokens=32, max_tokens_per_passage=100_000)
    cut = Reranker(Student(scorer=bounded), explain="evidence", compare_top=0).rerank("fleas", [text, "fleas bite"])
    read = Reranker(Student(scorer=whole), explain="evidence", compare_top=0).rerank("fleas", [text, "fleas bite"])
    by_text = {j.text: j for j in cut}
    assert by_text[text].truncated and not by_text["fleas bite"].truncated
    assert not any(j.truncated for j in read)
    assert by_text[text].evidence_span[1] <= bounded.visible_chars(text) < len(text)


def test_evidence_candidates_of_a_long_passage_come_from_its_best_windows(tiny_encoder):
    from r2r_agent import EncoderScorer
    from r2r_agent.evidence import best_window_spans

    model, tokenizer = tiny_encoder
    text = long_text(300)
    windows = EncoderScorer(model, tokenizer, max_tokens=32).score("fleas", [text]).windows[0]
    assert len(candidate_spans(text)) == MAX_SENTENCES_PER_PASSAGE  # 300 sentences joined into groups
    spans = best_window_spans(text, windows, keep=2)
    best = sorted(windows, key=lambda w: -w[2])[:2]
    assert 0 < len(spans) < MAX_SENTENCES_PER_PASSAGE
    assert all(any(a <= s and e <= b for a, b, _ in best) for s, e in spans)
    assert all(text[s:e] in SENTENCES for s, e in spans)  # whole single sentences, not groups
    assert spans == sorted(spans)
    assert best_window_spans(text, windows[:1]) == candidate_spans(text)
    with pytest.raises(ValueError, match="keep must be an int >= 1"):
        best_window_spans(text, windows, keep=0)
