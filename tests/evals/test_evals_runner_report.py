"""Reports (markdown, JSON, PNG plots) and the ``r2r eval`` command on tiny inline data in tmp folders."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_evals_runner import FakeSystem, r2r_row, tiny_dataset  # same folder (pytest puts it on sys.path)

from r2r_agent.cli import main
from r2r_agent.evals.records import CandidateList
from r2r_agent.evals.report import render_markdown, write_report
from r2r_agent.evals.runner import run_eval
from r2r_agent.evals.systems import FirstStageSystem

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results():
    return run_eval([tiny_dataset("tiny"), tiny_dataset("tiny2")],
                    [FirstStageSystem(), FakeSystem("minilm", prefer=(1, 0, 2, 3)), FakeSystem("oracle")],
                    settings={"note": "test"})


def test_write_report_writes_markdown_json_and_plots(tmp_path: Path, results) -> None:
    pytest.importorskip("matplotlib")
    files = write_report(results, tmp_path / "report", command="r2r eval --dataset tiny --report x")
    names = sorted(p.name for p in files.plots)
    assert names == ["deltas_tiny.png", "deltas_tiny2.png", "ndcg10.png", "quality_vs_latency.png"]
    for path in files.plots:
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 1000

    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["systems"] == ["first-stage", "minilm", "oracle"]
    assert data["command"] == "r2r eval --dataset tiny --report x"
    run = next(r for r in data["runs"] if r["system"] == "oracle" and r["dataset"] == "tiny")
    assert run["evaluation"]["aggregates"]["nDCG@10"] == results.run_for("tiny", "oracle").evaluation["nDCG@10"]
    assert set(run["evaluation"]["per_query"]) == {"q1", "q2", "q3"}
    assert run["cost"]["seconds_per_query"] == pytest.approx(0.01)
    assert {(c["baseline"], c["system"]) for c in data["comparisons"] if c["dataset"] == "tiny"} == {
        ("first-stage", "minilm"), ("first-stage", "oracle"), ("minilm", "oracle")}
    assert {"p_value", "delta"} <= set(data["comparisons"][0]["t_test"])

    md = files.markdown.read_text(encoding="utf-8")
    oracle = results.run_for("tiny", "oracle").evaluation
    assert "| system | nDCG@10 | MRR@10 | Recall@100 | Δ nDCG@10 vs first-stage | Δ nDCG@10 vs minilm |" in md
    assert f"| `oracle` | {oracle['nDCG@10']:.4f} | {oracle['RR@10']:.4f} | {oracle['R@100']:.4f} |" in md
    delta = results.comparisons_for("tiny", "first-stage")["oracle"].randomization
    assert f"{delta.delta:+.4f} (p={delta.p_value:.4f})" in md or f"{delta.delta:+.4f} (p<0.0001)" in md
    assert "![nDCG@10 per system](ndcg10.png)" in md and "(deltas_tiny.png)" in md
    per_query = md.split("## Per-query nDCG@10")[1]
    assert f"| q1 | {results.run_for('tiny', 'first-stage').evaluation.per_query['q1']['nDCG@10']:.4f} |" in per_query


def test_report_without_plots(tmp_path: Path, results) -> None:
    files = write_report(results, tmp_path, plots=False)
    assert files.plots == () and not list(tmp_path.glob("*.png"))
    assert "![" not in files.markdown.read_text(encoding="utf-8")


def test_markdown_marks_quick_runs_and_issues() -> None:
    ds = tiny_dataset()
    ds = type(ds)(ds.name, ds.queries, ds.candidates, {**ds.qrels, "q9": {"x": 1}})  # judged, never ranked
    results = run_eval([ds], [FirstStageSystem()], limit_queries=None)
    md = render_markdown(results)
    assert "## Data issues" in md and "q9" in md
    quick = render_markdown(run_eval([tiny_dataset()], [FirstStageSystem()], limit_queries=2))
    assert "only the first 2 queries" in quick


# --- the command ---------------------------------------------------------------------------------------------------


def write_trec_dl(root: Path) -> Path:
    """A tiny data folder in the shared layout (dl19 only)."""
    ds = tiny_dataset()
    folder = root / "trec-dl"
    folder.mkdir(parents=True)
    with gzip.open(folder / "dl19.bm25.top100.jsonl.gz", "wt", encoding="utf-8") as handle:
        for qid, query in ds.queries.items():
            handle.write(json.dumps(CandidateList(qid, query, ds.candidates[qid]).to_dict()) + "\n")
    lines = [f"{q} 0 {d} {r}" for q, docs in ds.qrels.items() for d, r in docs.items()]
    (folder / "qrels.dl19-passage.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_cli_eval_writes_report_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage", "--report", str(report),
            "--data-dir", str(data), "--no-progress", "--no-plots"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = tiny_dataset().evaluate_first_stage()["nDCG@10"]
    assert "first-stage" in out and f"{expected:.4f}" in out
    assert (report / "report.md").is_file() and (report / "report.json").is_file()
    cache_lines = (report / "cache.jsonl").read_text(encoding="utf-8").splitlines()
    assert sum('"kind": "result"' in line for line in cache_lines) == 3

    assert main(argv) == 0  # a second run is served from the cache
    data_json = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data_json["runs"][0]["cost"]["computed"] == 0
    assert (report / "cache.jsonl").read_text(encoding="utf-8").splitlines() == cache_lines


def test_cli_eval_refuses_training_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_trec_dl(tmp_path / "data")
    train = data / "r2r-train"
    train.mkdir()
    rows = [r2r_row(str(i), f"unrelated training query {i}") for i in range(9)] + [r2r_row("77", "Who wrote Hamlet?")]
    (train / "msmarco_10.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    from r2r_agent.training import split_query_ids

    assert "77" in split_query_ids([r["qid"] for r in rows])[0]  # in the training split, not held out
    argv = ["eval", "--dataset", "dl19", "--systems", "first-stage", "--report", str(tmp_path / "r"),
            "--data-dir", str(data), "--no-progress", "--no-plots"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "training data" in err and "q3" in err
    assert not (tmp_path / "r" / "cache.jsonl").exists()


def test_cli_eval_unknown_system_and_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_trec_dl(tmp_path / "data")
    base = ["eval", "--report", str(tmp_path / "r"), "--data-dir", str(data), "--no-progress"]
    assert main([*base, "--dataset", "dl19", "--systems", "first-stage,bm25"]) == 2
    known = "Known: first-stage, minilm, student, zero-shot-student, zero-shot-lm, adapter:PATH"
    assert known in capsys.readouterr().err
    assert main([*base, "--dataset", "dl21", "--systems", "first-stage"]) == 2
    assert "Known: dl19" in capsys.readouterr().err


def test_cli_help_lists_systems(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "adapter:PATH" in out and "--limit-queries" in out and "--lm-top" in out


@pytest.mark.slow
def test_cli_eval_minilm_on_two_real_queries(data_dir: Path, tmp_path: Path) -> None:
    """The real bundled MiniLM on two DL19 queries through the whole command."""
    report = tmp_path / "r"
    assert main(["eval", "--dataset", "dl19", "--systems", "first-stage,minilm", "--limit-queries", "2",
                 "--report", str(report), "--data-dir", str(data_dir), "--no-progress"]) == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    minilm = next(r for r in data["runs"] if r["system"] == "minilm")
    assert minilm["cost"]["passages"] == 200 and minilm["evaluation"]["n_queries"] == 2
    assert minilm["cost"]["passages_per_second"] > 1


def test_cli_eval_first_stage_weight(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from test_evals_runner import DigitScorer

    from r2r_agent.evals.systems import ModelPool

    monkeypatch.setattr(ModelPool, "encoder", lambda self: DigitScorer())
    data = write_trec_dl(tmp_path / "data")
    report = tmp_path / "report"
    base = ["eval", "--dataset", "dl19", "--systems", "first-stage,minilm", "--report", str(report),
            "--data-dir", str(data), "--no-progress", "--no-plots"]
    assert main([*base, "--first-stage-weight", "1"]) == 0
    out = capsys.readouterr().out
    assert "minilm+first-stage@1" in out
    fused = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert fused["systems"] == ["first-stage", "minilm+first-stage@1"]
    assert fused["settings"]["system_config"]["minilm+first-stage@1"]["first_stage_weight"] == 1.0
    assert "--first-stage-weight 1.0" in fused["command"]
    scores = {r["system"]: r["evaluation"]["aggregates"]["nDCG@10"] for r in fused["runs"]}
    assert scores["minilm+first-stage@1"] == scores["first-stage"]  # weight 1: the first-stage order
    assert main(base) == 0  # weight 0, same cache file: its own key, nothing served from the fused results
    plain = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert plain["systems"] == ["first-stage", "minilm"]
    assert next(r for r in plain["runs"] if r["system"] == "minilm")["cost"]["computed"] == 3
    keys = {json.loads(line)["system"] for line in (report / "cache.jsonl").read_text(encoding="utf-8").splitlines()}
    assert {'minilm {"model": "all-MiniLM-L6-v2"}',
            'minilm+first-stage@1 {"first_stage_weight": 1.0, "model": "all-MiniLM-L6-v2"}'} <= keys
    assert main([*base, "--first-stage-weight", "1.5"]) == 2
    assert "first_stage_weight must be a number in [0, 1]" in capsys.readouterr().err
