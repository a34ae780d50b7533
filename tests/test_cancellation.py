"""Cancelled aranks stop at the next stage boundary and free the lock (issue 19 item 12); the lock of an in-process
model is the model's, not the Student's (issue 19 item 13)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from r2r_agent import Reranker, Scores, Student, aio
from r2r_agent.explainer import Generation

PASSAGES = ["Adult fleas live two to three months.", "Fleas bite.", "The sun is hot."]


class GateScorer:
    """Scores passages by length; the first whole-list call (the one that holds the lock) waits at a gate."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.list_calls = 0  # calls scoring a whole passage list (the score stage), not sentences (judging)
        self.sentence_calls = 0

    def score(self, query, passages):
        if list(passages) == PASSAGES:
            self.list_calls += 1
            if self.list_calls == 1:
                self.entered.set()
                assert self.gate.wait(30), "the test never opened the gate"
        else:
            self.sentence_calls += 1
        return Scores([float(len(p)) for p in passages])


class CountingExplainer:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def explain(self, query, passages, *, verdicts=None, evidence=None):
        self.calls += 1
        return Generation(texts=["It says how long fleas live."] * len(passages))

    def compare_grounded(self, query, evidences, verdicts):
        self.calls += 1
        return Generation(texts=["[1] says it."])


def test_cancelled_aranks_stop_at_the_next_stage_and_release_the_lock():
    scorer, explainer = GateScorer(), CountingExplainer()
    student = Student(scorer=scorer, explainer=explainer, name="gated")
    reranker = Reranker(student, explain="full", comparison="lm", trace=False)

    async def scenario():
        # 1: a call that holds the lock (blocked inside its score stage) is cancelled
        first = asyncio.create_task(reranker.arerank("how long do fleas live", PASSAGES))
        assert await asyncio.to_thread(scorer.entered.wait, 30)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # 2: nine more time out while they wait for the lock (the reproduction: wait_for(..., 0.05))
        for _ in range(9):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reranker.arerank("how long do fleas live", PASSAGES), 0.05)
        scorer.gate.set()  # the first call's score stage returns now
        # 3: a normal call runs every stage
        return await reranker.arerank("how long do fleas live", PASSAGES)

    ranking = asyncio.run(scenario())
    assert [s.stage for s in ranking.stages] == ["score", "judge", "explain", "compare"]
    assert ranking[0].explained_by == "lm" and ranking.comparison == "[1] says it."
    # The abandoned calls ran nothing after the stage they were in: the cancelled holder finished its score stage
    # and stopped; the nine waiters never scored; nobody but the normal call judged (one sentence-scoring call) or
    # reached the explainer (one explain + one compare).
    assert scorer.list_calls == 2 and scorer.sentence_calls == 1 and explainer.calls == 2
    # and the lock is free: abandoned workers that were still polling have given up
    assert student.lock.acquire(timeout=10)
    student.lock.release()


def test_a_cancelled_call_waiting_for_the_lock_gives_up_without_taking_it():
    lock = threading.RLock()
    lock.acquire()  # held by "another call"
    took, left = [], threading.Event()

    def work():
        try:
            with aio.holding(lock):
                took.append(True)
        finally:
            left.set()

    async def scenario():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.run_in_thread(work), 0.05)

    asyncio.run(scenario())
    lock.release()  # the lock comes free after the cancellation: the abandoned worker still must not run its work
    assert left.wait(10) and took == []


def test_outside_arerank_nothing_is_cancelled():
    assert not aio.cancelled()
    aio.checkpoint("anything")  # no caller to cancel: never raises
    with aio.holding(threading.Lock()):
        pass


class OverlapDetector:
    """A fake tokenizer-backed scorer: counts callers inside ``score`` at once (more than one is the race that gave
    ``ValueError: Unable to create tensor`` with a shared Hugging Face tokenizer)."""

    name = "shared"

    def __init__(self) -> None:
        self.tokenizer = object()  # the shared, not thread-safe object
        self.inside = 0
        self.most_inside = 0
        self.calls = 0
        self._count = threading.Lock()

    @aio.guarded_by_model()
    def score(self, query, passages):
        with self._count:
            self.inside += 1
            self.calls += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.002)  # widens the window a race needs; not a timing assertion
        with self._count:
            self.inside -= 1
        return Scores([float(len(p)) for p in passages])


def test_two_students_sharing_one_scorer_never_run_it_at_once_from_20_threads():
    scorer = OverlapDetector()
    rerankers = [Reranker(Student(scorer=scorer, name=f"s{n}"), explain="evidence", trace=False) for n in range(2)]
    assert rerankers[0].student.lock is not rerankers[1].student.lock  # each Student's own lock does not help here
    errors = []

    def worker(n):
        try:
            for _ in range(3):
                ranking = rerankers[n % 2].rerank("how long do fleas live", PASSAGES)
                assert len(ranking) == 3
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert scorer.calls == 120 and scorer.most_inside == 1  # 60 calls: score + judge each


def test_model_lock_is_one_per_object_and_reentrant():
    shared, other = object(), object()
    assert aio.model_lock(shared) is aio.model_lock(shared)
    assert aio.model_lock(shared) is not aio.model_lock(other)
    with aio.model_lock(shared), aio.model_lock(shared):  # a guarded method may call another of the same model
        pass

    class Tok:
        pass

    tok = Tok()
    key = id(tok)
    aio.model_lock(tok)
    del tok  # its lock is forgotten with it, so a new object at the same id never inherits it
    assert key not in aio._model_locks
