"""Sentence splitting is linear in the text split (issue 19 item 6): 0.1, 1 and 4 MB passages (`make bench`).

Before the fix, 1 MB took 2.9 s and 2 MB 10.5 s (each boundary copied the text before it). Read the per-MB time
in ``extra_info``: it should stay flat from 0.1 to 4 MB. The judge stage splits only the part a model read
(``candidate_spans(text, visible)``), timed last on the 4 MB text.
"""

from __future__ import annotations

import pytest

from r2r_agent.evidence import candidate_spans, sentence_spans

pytestmark = [pytest.mark.benchmark]

_UNIT = "Dr. Smith saw approx. 3 fleas in the U.S. Army. They live two to three months! Why? Hosts.\n"


def _text(megabytes: float) -> str:
    return _UNIT * int(megabytes * 1_000_000 / len(_UNIT))


@pytest.mark.parametrize("megabytes", [0.1, 1, 4])
def test_split_whole_text(benchmark, megabytes):
    text = _text(megabytes)
    spans = benchmark.pedantic(lambda: sentence_spans(text), rounds=3, iterations=1)
    benchmark.extra_info.update(chars=len(text), spans=len(spans),
                                seconds_per_mb=benchmark.stats.stats.mean / (len(text) / 1e6))


def test_split_only_the_part_read_of_4mb(benchmark):
    text = _text(4)
    spans = benchmark.pedantic(lambda: candidate_spans(text, 20_000), rounds=5, iterations=1)
    benchmark.extra_info.update(chars=len(text), spans=len(spans))
