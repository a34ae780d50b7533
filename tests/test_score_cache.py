"""The score cache (issue 20 item 2): an in-process LRU and an SQLite file keyed by hashes of the scorer, the query
and the passage; a repeated call scores nothing it scored before; a cache never changes a result."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import random
import sqlite3

import pytest

from r2r_agent import EncoderScorer, InvalidInputError, Reranker, Student
from r2r_agent.calibration import shipped_calibrator
from r2r_agent.score_cache import (
    CachedScore,
    CachedScorer,
    LRUScoreCache,
    SQLiteScoreCache,
    scorer_identity,
    with_score_cache,
)
from r2r_agent.scorers import Scores

QUERY = "how long do adult fleas live"
SENTENCES = ["Adult fleas live two to three months on a host.", "The Eiffel Tower is in Paris.",
             "Fleas bite dogs and cats. They lay eggs in carpets.", "What is a flea? A flea is an insect.",
             "Concrete costs about 100 dollars per cubic yard.", "Cats sleep most of the day."]


def passages(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(SENTENCES, rng.randint(1, 4))) + f" Note {i}." for i in range(n)]


class Counting:
    """A scorer that counts the texts it scores: length-based scores, one flag per text over 40 characters."""

    name = "counting"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score(self, query, texts):
        self.seen.extend(texts)
        return Scores(values=[float(len(t) % 7) + len(query) / 100 for t in texts],
                      truncated=[len(t) > 40 for t in texts])


def test_a_repeated_pair_is_scored_once():
    inner = Counting()
    scorer = CachedScorer(inner)
    first = scorer.score("q", ["a", "bb", "a"])
    assert inner.seen == ["a", "bb"] and first.cache_hits == 0 and first.values[0] == first.values[2]
    again = scorer.score("q", ["bb", "ccc", "a"])
    assert inner.seen == ["a", "bb", "ccc"] and again.cache_hits == 2
    assert again.values == [first.values[1], inner.score("q", ["ccc"]).values[0], first.values[0]]
    other_query = scorer.score("q2", ["a"])
    assert other_query.cache_hits == 0 and other_query.values != [first.values[0]]
    long = "x" * 50
    assert scorer.score("q", [long]).truncated == scorer.score("q", [long]).truncated == [True]
    assert scorer.score("q", []).values == []


def test_keys_are_hashes_that_separate_scorer_query_and_passage():
    scorer = CachedScorer(Counting())
    key = scorer.key("ab", "c")
    assert len(key) == 64 and all(ch in "0123456789abcdef" for ch in key)
    assert key != scorer.key("a", "bc")  # the parts are length-prefixed: no ambiguity where one ends
    assert key != CachedScorer(Counting(), identity="another model").key("ab", "c")


def test_the_scorers_identity_holds_what_changes_its_scores(tiny_encoder):
    model, tokenizer = tiny_encoder
    a = EncoderScorer(model, tokenizer, name="enc", max_tokens=64)
    assert scorer_identity(a) == scorer_identity(EncoderScorer(model, tokenizer, name="enc", max_tokens=64))
    assert scorer_identity(a) != scorer_identity(EncoderScorer(model, tokenizer, name="enc", max_tokens=32))
    assert scorer_identity(a) != scorer_identity(EncoderScorer(model, tokenizer, name="enc", max_tokens=64,
                                                               max_tokens_per_passage=None))
    assert scorer_identity(a) != scorer_identity(EncoderScorer(model, tokenizer, name="enc", max_tokens=64,
                                                               window_rule="mean"))
    import copy

    import torch

    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(iter(changed.parameters())).add_(1.0)  # the first tensor: same name and settings, other weights
    assert scorer_identity(a) != scorer_identity(EncoderScorer(changed, tokenizer, name="enc", max_tokens=64))


def test_the_lru_keeps_the_most_recently_used():
    cache = LRUScoreCache(maxsize=2)
    cache.put_many([("a", CachedScore(1.0)), ("b", CachedScore(2.0))])
    assert cache.get_many(["a"]) == [CachedScore(1.0)]  # "a" is now the most recent
    cache.put_many([("c", CachedScore(3.0))])
    assert cache.get_many(["a", "b", "c"]) == [CachedScore(1.0), None, CachedScore(3.0)] and len(cache) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_a_bad_lru_size_is_refused(bad):
    with pytest.raises(InvalidInputError, match="maxsize must be an int >= 1"):
        LRUScoreCache(maxsize=bad)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(InvalidInputError, match="expected a scorer"):
        CachedScorer(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cache must have get_many and put_many"):
        CachedScorer(Counting(), cache={})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="expected a query string"):
        CachedScorer(Counting()).score("q", [b"bytes"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="expected an r2r_agent.Student"):
        with_score_cache(Counting())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cache must be None"):
        with_score_cache(Student(scorer=Counting()), cache=42)  # type: ignore[arg-type]


def test_sqlite_keeps_scores_and_windows_and_never_the_texts(tmp_path):
    path = tmp_path / "sub" / "scores.sqlite"
    secret = "the passage text that must not be written " * 3
    scores = Scores(values=[0.25, 0.5], truncated=[True, False], windows=[[(0, 10, 0.1), (8, 30, 0.25)],
                                                                          [(0, 5, 0.5)]])

    class Windowed:
        name = "windowed"

        def score(self, query, texts):
            return scores

    first = CachedScorer(Windowed(), SQLiteScoreCache(path)).score("secret query words", [secret, "short"])
    reopened = CachedScorer(Windowed(), SQLiteScoreCache(path))
    again = reopened.score("secret query words", [secret, "short"])
    assert again.cache_hits == 2 and again.values == first.values == scores.values
    assert again.truncated == [True, False] and again.windows == scores.windows
    assert len(reopened.cache) == 2  # type: ignore[arg-type]
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("sub/scores.sqlite-*"))
    assert b"secret" not in raw and b"passage text" not in raw


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(InvalidInputError, match="is not a usable SQLite file"):
        SQLiteScoreCache(path)


def _fill(path: str, start: int, queue) -> None:
    cache = SQLiteScoreCache(path, timeout=60)
    for round_ in range(20):
        cache.put_many([(f"key-{start + round_}-{i}", CachedScore(float(i))) for i in range(50)])
        cache.get_many([f"key-{start}-{i}" for i in range(50)])
    queue.put(len(cache))


def test_sqlite_is_safe_across_processes(tmp_path):
    # Two processes write overlapping keys at once: no lock error, every row whole.
    path = str(tmp_path / "shared.sqlite")
    SQLiteScoreCache(path)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_fill, args=(path, start, queue)) for start in (0, 10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with sqlite3.connect(path) as connection:
        count, = connection.execute("SELECT COUNT(*) FROM scores").fetchone()
    assert count == 30 * 50  # rounds 0..29 of keys, shared between the two
    assert SQLiteScoreCache(path).get_many(["key-29-49"]) == [CachedScore(49.0)]


def _minilm_named(tiny_encoder, **kwargs) -> EncoderScorer:
    # The tiny encoder under the shipped calibrator's scorer name, so judgments get relevance and verdicts.
    model, tokenizer = tiny_encoder
    return EncoderScorer(model, tokenizer, name="all-MiniLM-L6-v2", max_tokens=32, **kwargs)


def _outcome(ranking):
    return [(j.id, j.rank, j.verdict, j.evidence, j.evidence_span, j.truncated, j.explanation) for j in ranking]


def test_the_cache_never_changes_a_result(tiny_encoder):
    plain = Student(scorer=_minilm_named(tiny_encoder), calibrator=shipped_calibrator("all-MiniLM-L6-v2"))
    cached = with_score_cache(plain)
    assert plain.scorer is not cached.scorer and plain.scorer is cached.scorer.scorer  # the model is shared
    settings = {"explain": "evidence", "compare_top": 0}
    rng = random.Random(3)
    pool = passages(30) + [" ".join(SENTENCES * 6)]  # one long passage, read in windows
    hits = []
    for call in range(6):  # overlapping lists, shuffled: hits and misses mixed in one call
        chosen = rng.sample(pool, 12)
        query = QUERY if call % 3 else "where is the eiffel tower"
        want = Reranker(plain, **settings).rerank(query, chosen)
        got = Reranker(cached, **settings).rerank(query, chosen)
        assert _outcome(got) == _outcome(want)
        assert [j.score for j in got] == pytest.approx([j.score for j in want], abs=1e-5)
        assert [j.relevance for j in got] == pytest.approx([j.relevance for j in want], abs=1e-5)
        assert any(j.verdict for j in got)
        hits.append(next(s for s in got.stages if s.stage == "score").cache_hits)
    assert hits[0] == 0 and sum(hits) > 0


def test_a_repeated_call_scores_nothing_again(tiny_encoder):
    inner = _minilm_named(tiny_encoder)
    seen: list[int] = []
    original = inner.score

    def counting(query, texts):
        seen.append(len(texts))
        return original(query, texts)

    inner.score = counting  # type: ignore[method-assign]
    student = with_score_cache(Student(scorer=inner, calibrator=shipped_calibrator("all-MiniLM-L6-v2")))
    reranker = Reranker(student, explain="evidence", compare_top=0)
    texts = passages(20)
    first = reranker.rerank(QUERY, texts, top_n=5)
    scored_first = sum(seen)
    second = reranker.rerank(QUERY, texts, top_n=5)
    assert scored_first > 20 and sum(seen) == scored_first  # passages and the judged sentences: all from the cache
    assert next(s for s in second.stages if s.stage == "score").cache_hits == 20
    judged = next(s for s in second.stages if s.stage == "judge")
    assert judged.cache_hits == judged.items > 0  # the judged sentences' hits are shown too
    assert next(s for s in first.stages if s.stage == "judge").cache_hits == 0
    assert _outcome(second) == _outcome(first)


def test_the_student_given_is_left_as_it_was_and_lazy_parts_stay_unbuilt(tiny_encoder):
    from r2r_agent.lazy import LazyScorer

    built = []

    def build():
        built.append(1)
        return Counting()

    plain = Student(scorer=_minilm_named(tiny_encoder), rescorer=LazyScorer("lazy", build))
    cached = with_score_cache(plain, LRUScoreCache(10))
    assert isinstance(cached.scorer, CachedScorer) and isinstance(cached.rescorer, CachedScorer)
    assert not isinstance(plain.scorer, CachedScorer) and built == []
    assert cached.rescorer.cache is cached.scorer.cache and with_score_cache(cached).scorer is cached.scorer
    assert cached.scorer.visible_chars("abc") == plain.scorer.visible_chars("abc")  # the wrapped scorer's


@pytest.mark.slow
def test_the_default_student_gives_the_same_ranking_from_the_cache(dl19_candidates, tmp_path):
    with gzip.open(dl19_candidates, "rt", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    texts = [c["text"] for c in row["candidates"][:30]]
    plain = Student.default()
    cached = with_score_cache(plain, tmp_path / "scores.sqlite")
    want = Reranker(plain, explain="evidence").rerank(row["query"], texts, top_n=10)
    for _ in range(2):  # filled, then read
        got = Reranker(cached, explain="evidence").rerank(row["query"], texts, top_n=10)
        assert _outcome(got) == _outcome(want) and got.comparison == want.comparison
    assert next(s for s in got.stages if s.stage == "score").cache_hits == 30


def test_explanations_are_kept_so_a_repeated_full_call_writes_nothing(tiny_student):
    from r2r_agent.score_cache import CachedExplainer

    calls: list[int] = []
    inner = tiny_student.explainer
    original_explain, original_compare = inner.explain, inner.compare_grounded

    def explain(query, texts, **kwargs):
        calls.append(len(texts))
        return original_explain(query, texts, **kwargs)

    def compare(*args, **kwargs):
        calls.append(-1)
        return original_compare(*args, **kwargs)

    inner.explain, inner.compare_grounded = explain, compare  # type: ignore[method-assign]
    cached = with_score_cache(tiny_student)
    assert isinstance(cached.explainer, CachedExplainer) and cached.explainer.max_new_tokens == 8
    settings = {"explain": "full", "comparison": "lm", "explain_top": 3, "compare_top": 2}
    texts = passages(8)
    want = Reranker(tiny_student, **settings).rerank(QUERY, texts)
    calls.clear()
    first = Reranker(cached, **settings).rerank(QUERY, texts)
    written = list(calls)
    second = Reranker(cached, **settings).rerank(QUERY, texts)
    assert written and calls == written  # the repeated call wrote nothing
    for got in (first, second):
        assert _outcome(got) == _outcome(want) and got.comparison == want.comparison
    explained = next(s for s in second.stages if s.stage == "explain")
    assert explained.generated_tokens == 0
    # Part seen, part new: only the new passages are written, in input order.
    alone = cached.explainer.explain(QUERY, [texts[0]], verdicts=["relevant"], evidence=["Fleas."])
    calls.clear()
    mixed = cached.explainer.explain(QUERY, ["A new passage about fleas.", texts[0]], verdicts=["partial", "relevant"],
                                     evidence=[None, "Fleas."])
    assert calls == [1] and mixed.texts[1] == alone.texts[0] and len(mixed.texts) == 2
