"""The report's measures of trustworthy explanations, each beside its target (issue "Trustworthy explanations"):

- :func:`judgment_section`: relevance and verdicts over every candidate (``r2r eval --judgments``,
  :mod:`.judgments`);
- :func:`explanation_trust_lines` and :func:`unsupported_cases`: verdicts, unsupported claims and quoted evidence of
  the explained passages (``--explain-queries``, :mod:`.explanation_quality` and :mod:`.claims`), under "Explanation
  quality";
- :func:`evidence_lines` and :func:`evidence_misses`: evidence against the teacher's best sentence
  (``--teacher-agreement``, :mod:`.evidence_agreement`), under "Teacher agreement".
"""

from __future__ import annotations

from .explanation_quality import ExplanationQuality
from .judgments import TARGETS, VERDICT_KEYS, JudgmentRun
from .markdown import cell, fmt, share, short, table
from .results import EvalResults
from .teacher_agreement import AgreementRun

#: The target of each explanation measure (issue "Trustworthy explanations", Measured).
EXPLANATION_TARGETS = {"with_verdict": "100%", "opens_with_verdict": "100%", "unsupported": "<= 2%"}

JUDGMENT_INTRO = (
    "Every candidate of every query judged by each system whose student has a calibrator for its scorer "
    "(`top_n=None, judge=True`, no explanations), against the TREC qrels with unjudged passages as label 0. A passage "
    "*answers* the query when its TREC label is >= 2 (what `relevance` estimates: the probability that it answers), "
    "and is *on topic* when its label is >= 1. Verdict coverage: the share of judgments with a verdict. Balanced "
    "accuracy (the mean of the true-positive and true-negative rates; a constant verdict scores 0.50) of "
    "`verdict == \"relevant\"` against answers, and of `verdict != \"not_relevant\"` against on topic, over the "
    "judgments with a verdict. ECE (10 equal-width bins) and Brier score of `relevance` against answers; AUC of "
    "`relevance` and, for reference, of the judgment's score, pooled over all (query, passage) pairs. Abstention: the "
    "AUC of a list's best `relevance` between each query's full list (when it holds a label >= 1 passage) and the "
    "same list with every label >= 1 passage removed (a query without any gives its list to that side once; one whose "
    "every candidate is label >= 1 has no second list); lists: full / removed; answerable: the share of those lists "
    "with a `relevant` verdict (`Ranking.answerable`). Targets in brackets.")


def _target(name: str) -> str:
    return f" [{TARGETS[name]}]"


def judgment_section(results: EvalResults) -> list[str]:
    """The "Relevance and verdicts" markdown section (empty when judgments were not measured)."""
    if not results.settings.get("judgments"):
        return []
    lines = ["", "## Relevance and verdicts (all candidates)", "", JUDGMENT_INTRO]
    if results.judgment_skipped:
        lines += ["", f"Skipped (no calibrator): {', '.join(f'`{n}`' for n in results.judgment_skipped)}."]
    if not results.judgments:
        return [*lines, "", "No system that can judge was run."]
    head = ["dataset", "system", "queries", "judgments", "verdict coverage" + _target("verdict_coverage"),
            "bal. acc. relevant" + _target("balanced_accuracy_relevant"),
            "bal. acc. on topic" + _target("balanced_accuracy_on_topic"), "ECE" + _target("ece"), "Brier",
            "AUC relevance", "AUC score", "abstention AUC" + _target("abstention_auc"), "lists", "answerable",
            "mean relevance", "s/query"]
    rows = [[run.dataset, f"`{run.system}`", str(q.n_queries), str(q.n_judgments),
             share(q.n_with_verdict, q.n_judgments), fmt(q.balanced_accuracy_relevant, 3),
             fmt(q.balanced_accuracy_on_topic, 3), fmt(q.ece, 3), fmt(q.brier, 3), fmt(q.auc_relevance, 3),
             fmt(q.auc_score, 3), fmt(a.auc, 3), f"{a.n_full} / {a.n_removed}",
             f"{fmt(a.answerable_full, 3)} / {fmt(a.answerable_removed, 3)}", fmt(q.mean_relevance, 3),
             f"{run.seconds_per_query:.2f}"] for run in results.judgments for q in [run.quality]
            for a in [q.abstention]]
    lines += ["", *table(head, rows, left=2)]
    notes = [f"- {run.dataset} / `{run.system}`: {a.n_all_relevant} queries with every candidate label >= 1 (no list "
             f"without them), {a.n_no_relevant} without any label >= 1 candidate." for run in results.judgments
             for a in [run.quality.abstention] if a.n_all_relevant or a.n_no_relevant]
    lines += ["", *notes] if notes else []
    lines += ["", "Verdicts by TREC label (counts, and the mean relevance of each label):", "",
              *table(["dataset", "system", "label", "judgments", "relevant", "partial", "not relevant", "no verdict",
                      "mean relevance"], _label_rows(results.judgments), left=3)]
    return lines


def _label_rows(runs: tuple[JudgmentRun, ...]) -> list[list[str]]:
    rows = []
    for run in runs:
        labels = sorted((k for k in run.quality.by_label if k != "all"), key=int) + ["all"]
        for label in labels:
            counts = run.quality.by_label[label]
            rows.append([run.dataset, f"`{run.system}`", label, str(counts["n"]),
                         *(str(counts[key]) for key in VERDICT_KEYS),
                         fmt(counts["mean_relevance"], 3)])
    return rows


def explanation_trust_lines(results: EvalResults) -> list[str]:
    """The verdict, claim and evidence table of the explanation runs, and their unsupported explanations."""
    if not results.explanations:
        return []
    lines = ["", "Verdicts and claims of the explained passages: with verdict, the share of explained judgments with "
             "a `verdict`; opens with it, the share of those whose explanation opens with its own verdict's words "
             "(`Relevant:`, `Partly relevant:`, `Not relevant:`); guard removed, the share whose `Judgment."
             "unsupported` is not empty (claims the core's grounding guard took out); unsupported (own check), the "
             "share that still hold a number or a quoted phrase that neither the passage nor the query states "
             "(`r2r_agent.evals.claims`, independent of the guard: case, thousands separators and number words one to "
             "twenty normalised); quotes evidence, the share quoting their judgment's `evidence`. Targets in "
             "brackets.", ""]
    head = ["dataset", "system", "explained", f"with verdict [{EXPLANATION_TARGETS['with_verdict']}]",
            f"opens with it [{EXPLANATION_TARGETS['opens_with_verdict']}]", "guard removed",
            f"unsupported (own check) [{EXPLANATION_TARGETS['unsupported']}]", "quotes evidence"]
    rows = [[run.dataset, f"`{run.system}`", str(q.n_explained), share(q.n_with_verdict, q.n_explained),
             share(q.n_opens_with_verdict, q.n_with_verdict), share(q.n_guard_removed, q.n_explained),
             share(q.n_unsupported, q.n_explained), share(q.n_quotes_evidence, q.n_explained)]
            for run in results.explanations for q in [run.quality]]
    return lines + table(head, rows, left=2)


def unsupported_cases(quality: ExplanationQuality) -> list[str]:
    """Worst-case lines: the explanations that fail the claims check, most unsupported claims first."""
    return [f"- unsupported claims ({cell(c.note)}), {c.qid} / {c.passage_id}: {short(c.explanation)}"
            for c in quality.unsupported_cases]


def evidence_lines(results: EvalResults) -> list[str]:
    """The table of the agreement runs' evidence against the teacher's best sentences, and a few misses."""
    runs = [run for run in results.agreements if run.evidence is not None]
    if not runs:
        return []
    lines = ["", "Evidence against the teacher's best-answering sentence (R2R's `direct_answer_sentence`), on the same "
             "passages; passages where the teacher named none (missing, \"Not applicable\", \"N/A\", \"None\") are "
             "skipped. A match: the normalised word sets share >= 0.8 of the smaller and >= 0.5 of the larger "
             "(`r2r_agent.evals.evidence_agreement.same_sentence`). Baselines from the passage's sentences "
             "(`r2r_agent.evidence.sentence_spans`): the first, and the one holding the largest share of the query's "
             "content words (`query_coverage`).", ""]
    head = ["system", "passages (n)", "skipped", "evidence matches", "first sentence", "best query coverage",
            "no evidence"]
    rows = [[f"`{run.system}`", str(e.n), str(e.n_skipped), share(e.n_system, e.n), share(e.n_first_sentence, e.n),
             share(e.n_query_coverage, e.n), str(e.n_without_evidence)] for run in runs for e in [run.evidence]
            if e is not None]
    return lines + table(head, rows)


def evidence_misses(run: AgreementRun) -> list[str]:
    """Worst-case lines: the first passages whose evidence is not the teacher's best sentence."""
    misses = run.evidence.misses[:3] if run.evidence is not None else ()
    return [f"- evidence unlike the teacher's, {m.qid} / {m.passage_id}: {short(m.evidence or '(none)', 150)} ‖ "
            f"teacher: {short(m.teacher, 150)}" for m in misses]


__all__ = ["EXPLANATION_TARGETS", "evidence_lines", "evidence_misses", "explanation_trust_lines", "judgment_section",
           "unsupported_cases"]
