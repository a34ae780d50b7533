"""Reports of an :class:`~r2r_agent.evals.runner.EvalResults`: markdown, JSON and PNG plots.

:func:`write_report` writes into one folder:

- ``report.md``: per dataset, a table of the systems (nDCG@10, MRR@10, Recall@100, the nDCG@10 difference from
  the first stage and from MiniLM with paired-test p-values, cost: seconds per query, passages/s, generated tokens
  per query, peak RSS and the RSS the system added, see :mod:`.memory`), the plots, and the per-query nDCG@10
  table;
- ``report.json``: the same numbers (per-query values of every measure, both paired tests, costs);
- when explanations were measured (``r2r eval --explain-queries N``), an "Explanation quality" section in both
  (means, coverage and worst cases of :func:`~r2r_agent.evals.explanation_quality.explanation_quality`);
- when teacher agreement was measured (``r2r eval --teacher-agreement FILE``), a "Teacher agreement" section
  (:mod:`~r2r_agent.evals.teacher_agreement`: verdict agreement, ROUGE-L and unigram F1, worst cases; the evidence
  against the teacher's best sentence);
- when every candidate was judged (``r2r eval --judgments``), a "Relevance and verdicts" section
  (:mod:`~r2r_agent.evals.judgments`, rendered by :mod:`.trust_report`, each measure beside its target);
- ``ndcg10.png`` (nDCG@10 per system and dataset), ``quality_vs_latency.png`` (nDCG@10 against seconds per
  query), ``deltas_<dataset>.png`` (per-query nDCG@10 differences from the first stage);
- when the candidates were retrieved (``r2r eval --first-stage``), a paragraph naming the first stage and its runs;
- when the systems ran under several ordering policies (``r2r eval --ordering``), an "Ordering policies" section
  with each policy's nDCG@10, its difference from the better baseline and its worst case (:mod:`.policies`; in
  ``report.json`` under ``ordering_worst_cases``).

The plots are drawn by :mod:`.plots` (matplotlib, the ``evals`` extra, imported only when plots are written).
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2r_agent.files import atomic_write_text

from .markdown import cell as _cell
from .markdown import fmt as _fmt
from .markdown import short as _short
from .markdown import table
from .plots import plot_name, write_plots
from .policies import SETTINGS_KEY, policy_section, worst_cases
from .records import PathLike
from .results import EvalResults, SystemRun
from .runner import BASELINES, now
from .trust_report import evidence_lines, evidence_misses, explanation_trust_lines, judgment_section, unsupported_cases

logger = logging.getLogger(__name__)

#: How measures are labelled in reports (``RR@10`` is the usual MRR@10).
LABELS: Mapping[str, str] = {"nDCG@10": "nDCG@10", "RR@10": "MRR@10", "R@100": "Recall@100"}


def label(measure: str) -> str:
    """The report label of a measure name."""
    return LABELS.get(measure, measure)


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    markdown: Path
    json: Path
    plots: tuple[Path, ...] = ()


def write_report(results: EvalResults, directory: PathLike, *, plots: bool = True, command: str | None = None
                 ) -> ReportFiles:
    """Write ``report.md``, ``report.json`` and (when ``plots``) the PNG plots into ``directory``.

    Raises:
        MissingExtraError: when ``plots`` is true and matplotlib is not installed (``pip install
            "r2r-agent[evals]"``, or pass ``plots=False``).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if plots and results.runs:  # a teacher-agreement-only run has nothing to plot
        written = write_plots(results, out)
    data = results.to_dict()
    if results.settings.get(SETTINGS_KEY):
        data["ordering_worst_cases"] = worst_cases(results)
    data["generated"] = now()
    if command:
        data["command"] = command
    json_path = out / "report.json"
    atomic_write_text(json_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md_path = out / "report.md"
    atomic_write_text(md_path, render_markdown(results, plots=[p.name for p in written], command=command))
    return ReportFiles(md_path, json_path, tuple(written))


# ---------------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------------


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"={value:.4f}"


def _delta_cell(results: EvalResults, run: SystemRun, baseline: str) -> str:
    test = results.comparisons_for(run.dataset, baseline).get(run.system)
    if test is None:
        return "–"
    r = test.randomization
    return f"{r.delta:+.4f} (p{_p(r.p_value)})"


def system_table(results: EvalResults, dataset: str) -> list[str]:
    """The markdown table of the systems on one dataset."""
    baselines = [b for b in BASELINES if b in results.systems]
    head = ["system", *(label(m) for m in results.measures)]
    head += [f"Δ nDCG@10 vs {b}" for b in baselines]
    head += ["s/query", "passages/s", "tokens/query", "peak RSS MiB", "+RSS MiB", "queries"]
    rows = []
    for system in results.systems:
        run = results.run_for(dataset, system)
        cost = run.cost
        row = [f"`{system}`", *(_fmt(run.evaluation.aggregates.get(m)) for m in results.measures)]
        row += [_delta_cell(results, run, b) for b in baselines]
        row += [f"{cost.seconds_per_query:.3f}", _fmt(cost.passages_per_second, 1),
                f"{cost.generated_tokens_per_query:.1f}", _fmt(cost.rss_peak_mb, 0), _fmt(cost.rss_increase_mb, 0),
                str(run.evaluation.n_queries)]
        rows.append(row)
    return table(head, rows)


def limited_notes(results: EvalResults, dataset: str, measure: str = "nDCG@10") -> list[str]:
    """Notes under a dataset's table: systems that ranked only some queries, and systems with failures.

    A system limited to its first N queries (e.g. ``teacher``, ``--teacher-queries``) has means and paired tests over
    those queries only; the note gives every system's mean on exactly those queries for a like-for-like comparison.
    """
    info = next(d for d in results.datasets if d.name == dataset)
    lines: list[str] = []
    runs = [results.run_for(dataset, s) for s in results.systems]
    for run in runs:
        if run.cost.queries >= info.queries:
            continue
        qids = set(run.evaluation.per_query)
        same = []
        for other in runs:
            values = [v for q, v in other.evaluation.values(measure).items() if q in qids] if measure in \
                other.evaluation.measures else []
            if values:
                same.append(f"`{other.system}` {math.fsum(values) / len(values):.4f}")
        lines.append(f"- `{run.system}` ranked only the first {run.cost.queries} of {info.queries} queries; its means "
                     f"and Δ tests are over those queries only ({run.evaluation.n_queries} judged). "
                     f"{label(measure)} on the same queries: {', '.join(same)}.")
    for run in runs:
        if run.cost.failures:
            lines.append(f"- `{run.system}`: {run.cost.failures} failures over {run.cost.queries} queries (e.g. "
                         "teacher windows without a usable answer), which kept their first-stage order.")
    return ["", *lines] if lines else []


def per_query_table(results: EvalResults, dataset: str, measure: str = "nDCG@10") -> list[str]:
    """The markdown table of per-query values of ``measure``, one column per system."""
    runs = [results.run_for(dataset, s) for s in results.systems]
    qids = list(dict.fromkeys(q for r in runs for q in r.evaluation.per_query))
    return table(["qid", *(f"`{s}`" for s in results.systems)],
                 [[_cell(qid), *(_fmt(r.evaluation.per_query[qid].get(measure)) if qid in r.evaluation.per_query
                                 else "–" for r in runs)] for qid in qids])


def cost_table(results: EvalResults) -> list[str]:
    """The "Cost" section's table: every run's time, passages, tokens, load time and memory."""
    head = ["dataset", "system", "queries", "computed now", "total s", "s/query", "passages", "passages/s", "tokens",
            "tokens/query", "load s", "peak RSS MiB", "+RSS MiB", "process peak MiB"]
    rows = [[run.dataset, f"`{run.system}`", str(c.queries), str(c.computed), f"{c.seconds:.1f}",
             f"{c.seconds_per_query:.3f}", str(c.passages), _fmt(c.passages_per_second, 1), str(c.generated_tokens),
             f"{c.generated_tokens_per_query:.1f}", _fmt(c.load_seconds, 1), _fmt(c.rss_peak_mb, 0),
             _fmt(c.rss_increase_mb, 0), _fmt(c.peak_rss_mb, 0)] for run in results.runs for c in [run.cost]]
    return table(head, rows, left=2)


def explanation_section(results: EvalResults) -> list[str]:
    """The "Explanation quality" markdown section (empty when explanations were not measured)."""
    n_queries = results.settings.get("explain_queries")
    if not n_queries:
        return []
    top = results.settings.get("explain_top")
    intro = (f"The first {n_queries} queries of each dataset reranked with direct explanations of the top {top} "
             "passages (no comparison), measured by `r2r_agent.evals.explanation_quality`: verdict accuracy is the "
             "explanation's stated verdict against the qrels (grade >= 1 is relevant) over explanations with a known "
             "verdict and a graded passage; coverage is the fraction with a known verdict; groundedness is the mean "
             "fraction of claim words found in the passage (query-only: found only in the query); specificity is "
             "1 - mean pairwise Jaccard similarity of a query's explanations.")
    lines = _explainers_section("Explanation quality", results.explanation_skipped, results.explanations, intro)
    if not results.explanations:
        return lines
    head = ["dataset", "system", "queries", "explained", "verdict accuracy", "coverage", "groundedness", "query-only",
            "specificity", "s/query", "tokens", "tokens/query"]
    rows = [[run.dataset, f"`{run.system}`", str(run.queries), str(q.n_explained),
             f"{_fmt(q.verdict.accuracy, 3)} ({q.verdict.n_correct}/{q.verdict.n_judged})", _fmt(q.verdict.coverage, 3),
             _fmt(q.groundedness, 3), _fmt(q.query_only, 3), _fmt(q.specificity, 3), f"{run.seconds_per_query:.2f}",
             str(run.generated_tokens), f"{run.generated_tokens_per_query:.1f}"]
            for run in results.explanations for q in [run.quality]]
    lines += ["", *table(head, rows, left=2), *explanation_trust_lines(results)]
    for run in results.explanations:
        q = run.quality
        cases = [f"- wrong verdict ({_cell(c.note)}), {c.qid} / {c.passage_id}: {_short(c.explanation)}"
                 for c in q.wrong_verdicts]
        cases += [f"- least grounded ({_cell(c.note)}), {c.qid} / {c.passage_id}: {_short(c.explanation)}"
                  for c in q.lowest_groundedness[:3]]
        cases += [f"- most alike (Jaccard {d.similarity:.2f}), {d.qid} / {d.passage_ids[0]} and {d.passage_ids[1]}: "
                  f"{_short(d.explanations[0], 120)} ‖ {_short(d.explanations[1], 120)}"
                  for d in q.most_duplicated[:3]]
        cases += unsupported_cases(q)
        if cases:
            lines += ["", f"### Worst cases: `{run.system}` on {run.dataset}", "", *cases]
    return lines


def _explainers_section(title: str, skipped: Sequence[str], runs: Sequence[Any], intro: str) -> list[str]:
    """The lines an explanation section starts with: its title, what it measures, the systems skipped (no explainer),
    or that none could explain."""
    lines = ["", f"## {title}", "", intro]
    if skipped:
        lines += ["", f"Skipped (no explainer): {', '.join(f'`{n}`' for n in skipped)}."]
    if not runs:
        lines += ["", "No system that can explain was run."]
    return lines


def first_stage_section(results: EvalResults) -> list[str]:
    """The paragraph naming the first stage that retrieved the candidates (``r2r eval --first-stage``), if any."""
    stage = results.settings.get("first_stage")
    if not stage:
        return []
    lines = ["", f"**First stage: `{stage['name']}`** ({stage.get('description', '')}) retrieved the top "
             f"{stage['depth']} candidates of each query from the dataset's corpus (excluded ids removed before the "
             "cut); the `first-stage` rows are that run, and every system reranks it. Runs (TREC format):", ""]
    for run in stage.get("runs", ()):
        built = "" if run.get("index_seconds") is None else f", first stage built in {run['index_seconds']:.1f} s"
        empty = f", {len(run['empty'])} queries without any candidate" if run.get("empty") else ""
        lines.append(f"- {run['dataset']}: `{run.get('run_file') or '(not cached)'}` ({run['queries']} queries, "
                     f"{run['computed']} retrieved in this run, {run.get('seconds_per_query', 0.0):.3f} s/query"
                     f"{built}{empty})")
    return lines


def agreement_section(results: EvalResults) -> list[str]:
    """The "Teacher agreement" markdown section (empty when it was not measured)."""
    split = results.settings.get("teacher_agreement")
    if not split:
        return []
    top = "every passage with a teacher reason" if split.get("top") is None else f"the teacher's top {split['top']}"
    sources = ", ".join(f"`{s}`" for s in split.get("sources", ())) or "the given annotations"
    intro = (f"{split['queries']} of the {split['validation_queries']} validation queries of {sources} (split as "
             f"`r2r distill` splits it: validation fraction {split['validation_fraction']}, seed {split['seed']}; "
             f"the {split['train_queries']} training queries are never used), {split['passages']} passages "
             f"({top} per query). Each system explains each passage with the direct-explanation prompt; its "
             "explanation is compared with the teacher's direct reason. Verdict agreement: the verdicts both state "
             "(`extract_verdict`) agree, over pairs where both are known; coverage: share of pairs with a known "
             "verdict. ROUGE-L F1: longest common token subsequence. Unigram F1: overlap of content-word bags (stop "
             "words dropped, plurals folded). A blank explanation scores 0.")
    lines = _explainers_section("Teacher agreement (held-out training queries)", results.agreement_skipped,
                                results.agreements, intro)
    if not results.agreements:
        return lines
    head = ["system", "queries", "pairs", "verdict agreement", "student coverage", "teacher coverage", "ROUGE-L F1",
            "unigram F1", "blank", "s/query", "tokens"]
    rows = [[f"`{run.system}`", str(run.queries), str(q.n), f"{_fmt(q.verdict_agreement, 3)} "
             f"({q.n_verdict_agree}/{q.n_both_known})", _fmt(q.student_coverage, 3), _fmt(q.teacher_coverage, 3),
             _fmt(q.rouge_l_f1, 3), _fmt(q.unigram_f1, 3), str(q.n_empty), f"{run.seconds_per_query:.2f}",
             str(run.generated_tokens)] for run in results.agreements for q in [run.quality]]
    lines += ["", *table(head, rows), *evidence_lines(results)]
    for run in results.agreements:
        if run.note:
            lines += ["", f"**Caution, `{run.system}`:** {_cell(run.note)}."]
    for run in results.agreements:
        q = run.quality
        cases = [f"- verdicts differ (student {p.student_verdict}, teacher {p.teacher_verdict}), {p.qid} / "
                 f"{p.passage_id}: {_short(p.student, 150)} ‖ teacher: {_short(p.teacher, 150)}"
                 for p in q.disagreements[:3]]
        cases += [f"- lowest ROUGE-L ({p.rouge_l_f1:.2f}, unigram F1 {p.unigram_f1:.2f}), {p.qid} / {p.passage_id}: "
                  f"{_short(p.student, 150)} ‖ teacher: {_short(p.teacher, 150)}" for p in q.lowest[:3]]
        cases += evidence_misses(run)
        if cases:
            lines += ["", f"### Least agreement: `{run.system}`", "", *cases]
    return lines


def render_markdown(results: EvalResults, *, plots: Sequence[str] = (), command: str | None = None) -> str:
    """The report as markdown (``plots``: PNG file names in the same folder, linked where they belong)."""
    lines = ["# r2r eval report", "", f"Generated {now()}."]
    if command:
        lines += ["", "```", command, "```"]
    limit = results.settings.get("limit_queries")
    lines += [] if not results.datasets else [  # a teacher-agreement-only run ranks nothing
        "",
        "Metrics use trec_eval semantics (see `r2r_agent.evals.evaluation`): nDCG@10 is the headline, MRR@10 is "
        "RR@10, Recall@100 is over the first-stage top-100. Means are over the queries with both a ranking and "
        "judgments.",
        "Δ columns: mean per-query nDCG@10 difference from the baseline, with the two-sided paired randomization "
        "test's p-value (10,000 sign flips, exact when 2^n is smaller); paired t-test p-values are in "
        "`report.json`.",
        "Cost: seconds per query and passages/s exclude model loading; tokens/query are the tokens generated per "
        "query, all cascade stages together (0 for systems that only score). Memory is measured in-process: peak "
        "RSS is the process's highest resident memory while the system ran, model loading included (sampled every "
        "50 ms; exact when it set a new process peak), so it includes what was resident before it (the interpreter, "
        "earlier systems' models); +RSS is that peak minus the RSS when the system started, the memory this system "
        "added (about 0 when an earlier system already loaded the models it shares). The Cost section also gives "
        "the process's peak after each system (it never decreases down the table). Memory is measured only when "
        "the system computed queries in this run (else as measured when they were computed).",
    ]
    lines += first_stage_section(results)
    if limit:
        lines += ["", f"**Quick run: only the first {limit} queries of each dataset.**"]
    for info in results.datasets:
        lines += ["", f"## {info.name}: {info.description}", "",
                  f"{info.queries} of {info.total_queries} queries, first-stage depth {info.first_stage_depth}.", ""]
        lines += system_table(results, info.name)
        lines += limited_notes(results, info.name)
        deltas = plot_name("deltas", info.name)
        if deltas in plots:
            lines += ["", f"![per-query nDCG@10 differences from the first stage on {info.name}]({deltas})"]
    lines += policy_section(results)
    if "ndcg10.png" in plots or "quality_vs_latency.png" in plots:
        lines += ["", "## Plots", ""]
        if "ndcg10.png" in plots:
            lines.append("![nDCG@10 per system](ndcg10.png)")
        if "quality_vs_latency.png" in plots:
            lines.append("![nDCG@10 against seconds per query](quality_vs_latency.png)")
    if results.runs:
        lines += ["", "## Cost", "", *cost_table(results)]
    lines += judgment_section(results)
    lines += explanation_section(results)
    lines += agreement_section(results)
    issues = [(run, msg) for run in results.runs for msg in run.evaluation.issues.messages()]
    if issues:
        lines += ["", "## Data issues", ""]
        lines += [f"- {run.dataset} / `{run.system}`: {_cell(msg)}" for run, msg in issues]
    if results.datasets:
        lines += ["", "## Per-query nDCG@10"]
    for info in results.datasets:
        lines += ["", f"### {info.name}", ""]
        lines += per_query_table(results, info.name)
    return "\n".join(lines) + "\n"


__all__ = ["LABELS", "ReportFiles", "agreement_section", "cost_table", "explanation_section", "first_stage_section",
           "label", "limited_notes", "per_query_table", "plot_name", "render_markdown", "system_table", "table",
           "write_plots", "write_report"]
