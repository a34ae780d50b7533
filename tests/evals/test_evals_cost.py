"""Cost per system: seconds per query, passages/s, generated tokens per query (from the stage costs) and the RSS a
system needed (sampled in-process), in the results, report.md and report.json; on fake systems, no model."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_evals_runner import tiny_dataset  # same folder (pytest puts it on sys.path)

from r2r_agent import Passage, Ranking
from r2r_agent.evals.memory import MemorySampler, MemoryUse, current_rss_mb, peak_rss_mb
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import SystemCost, run_eval
from r2r_agent.evals.systems import FirstStageSystem, SystemResult
from r2r_agent.types import StageCost

MIB = 1024 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


def _allocate(mib: int) -> bytearray:
    block = bytearray(mib * MIB)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    return block


class HungrySystem:
    """Holds ``mib`` MiB while ranking its first query (as a model load would) and reports two stages per query,
    the second generating ``tokens`` tokens."""

    def __init__(self, name: str = "hungry", mib: int = 96, tokens: int = 7) -> None:
        self.name = name
        self.config = {"mib": mib, "tokens": tokens}
        self.mib = mib
        self.tokens = tokens
        self.model: bytearray | None = None

    def rank(self, query: str, candidates: Sequence[Passage]) -> SystemResult:
        if self.model is None:
            self.model = _allocate(self.mib)
        stages = (StageCost("score", "fake", len(candidates), 0.01),
                  StageCost("explain", "fake", 2, 0.02, generated_tokens=self.tokens))
        # passages and tokens are not given: the stage costs are what the runner counts.
        return SystemResult(Ranking.from_order(query, candidates, stages=stages), seconds=0.03)


@linux_only
def test_memory_sampler_sees_an_allocation_inside_the_block():
    assert current_rss_mb() > 1 and peak_rss_mb() >= current_rss_mb() * 0.5
    with MemorySampler(interval=0.01) as sampler:
        block = _allocate(80)
    del block
    use = sampler.use
    assert use.start_mb is not None and use.peak_mb is not None
    assert use.increase_mb >= 60  # 80 MiB touched; allow for pages the allocator reused
    with MemorySampler() as idle:
        pass
    assert idle.use.increase_mb < 30


def test_memory_use_without_readings_and_bad_interval():
    assert MemoryUse(None, 10.0).increase_mb is None
    assert MemoryUse(12.0, 10.0).increase_mb == 0.0  # never negative
    with pytest.raises(ValueError, match="interval must be > 0"):
        MemorySampler(interval=0)


@linux_only
def test_cost_has_tokens_per_query_and_the_memory_each_system_added(tmp_path: Path):
    cache = tmp_path / "cache.jsonl"
    results = run_eval([tiny_dataset()], [FirstStageSystem(), HungrySystem()], cache_path=cache)
    hungry = results.run_for("tiny", "hungry").cost
    assert hungry.generated_tokens == 3 * 7 and hungry.generated_tokens_per_query == 7.0
    assert hungry.seconds_per_query == pytest.approx(0.03) and hungry.passages == 3 * 6
    assert hungry.passages_per_second == pytest.approx(6 / 0.03)
    assert hungry.rss_increase_mb >= 70 and hungry.rss_peak_mb >= hungry.rss_increase_mb
    first = results.run_for("tiny", "first-stage").cost
    assert first.generated_tokens_per_query == 0.0 and first.rss_increase_mb < 30

    data = results.to_dict()
    cost = next(r["cost"] for r in data["runs"] if r["system"] == "hungry")
    assert cost["generated_tokens_per_query"] == 7.0 and cost["rss_increase_mb"] == hungry.rss_increase_mb
    assert SystemCost.from_dict(cost) == hungry

    files = write_report(results, tmp_path / "report", plots=False)
    md = files.markdown.read_text(encoding="utf-8")
    assert "| s/query | passages/s | tokens/query | peak RSS MiB | +RSS MiB | queries |" in md
    assert (f"| 0.030 | 200.0 | 7.0 | {hungry.rss_peak_mb:.0f} | {hungry.rss_increase_mb:.0f} | 3 |") in md
    assert "| tokens | tokens/query | load s | peak RSS MiB | +RSS MiB | process peak MiB |" in md
    assert "Memory is measured in-process" in md
    on_disk = json.loads(files.json.read_text(encoding="utf-8"))
    assert next(r for r in on_disk["runs"] if r["system"] == "hungry")["cost"]["rss_peak_mb"] == hungry.rss_peak_mb

    # Served from the cache, nothing runs: the memory measured when the results were computed is reported.
    again = run_eval([tiny_dataset()], [FirstStageSystem(), HungrySystem()], cache_path=cache)
    assert again.run_for("tiny", "hungry").cost == hungry.__class__(**{**hungry.__dict__, "computed": 0})


def test_costs_from_an_older_cache_have_no_memory_figures(tmp_path: Path):
    old = {"queries": 3, "seconds": 0.3, "passages": 12, "generated_tokens": 0, "load_seconds": None,
           "peak_rss_mb": 500.0, "computed": 3}
    cost = SystemCost.from_dict(old)
    assert cost.rss_peak_mb is None and cost.rss_increase_mb is None
    cache = tmp_path / "cache.jsonl"
    run_eval([tiny_dataset()], [HungrySystem(mib=1)], cache_path=cache)
    rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    for row in rows:  # what a cache written before the memory sampler holds
        if row["kind"] == "cost":
            row["cost"] = {k: v for k, v in row["cost"].items() if not k.startswith("rss_")}
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    results = run_eval([tiny_dataset()], [HungrySystem(mib=1)], cache_path=cache)
    cost = results.run_for("tiny", "hungry").cost
    assert cost.computed == 0 and cost.rss_peak_mb is None and cost.peak_rss_mb is not None
    assert "| 0.030 | 200.0 | 7.0 | – | – | 3 |" in render_markdown(results)
