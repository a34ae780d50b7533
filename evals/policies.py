"""Ordering policies side by side: one ``r2r eval`` run builds the Reranker-based systems under several orderings
(``--ordering scorer,rrf,first_stage,scorer@0.5``), and the report gives each policy's worst case.

A :class:`Policy` is a :attr:`r2r_agent.RerankConfig.ordering` (``"scorer"``, ``"rrf"``, ``"first_stage"``) with a
:attr:`~r2r_agent.RerankConfig.first_stage_weight` (``ORDERING@W``; without ``@W`` the run's ``--first-stage-weight``):
``scorer@0.5`` is z-score fusion of the scorer's and the retriever's scores at weight 0.5. Systems that run a Reranker
are built once per policy, named as :func:`r2r_agent.evals.systems` names them (``minilm``, ``minilm+rrf``,
``minilm+first-stage-order``, ``minilm+first-stage@0.5``: the default policy keeps today's names and cache keys);
the first stage and the teacher, which do not rerank with a Reranker, once.

:func:`policy_section`: for each (system, policy) and dataset, nDCG@10 and its difference from the better of the
retriever's order (``first-stage``) and the scorer alone (``minilm``, policy ``scorer``) on that dataset, and the
worst difference over the datasets: what the policy risks where it does worst.

Short lists (:func:`cut_table`): framework users pass few candidates, so the same policies are also compared on
each list cut to its first 5, 10 and 20 candidates. Each passage's score and verdict do not depend on the list it is
in (the bi-encoder scores each passage alone; the calibrator reads one passage), so one judging of every full list
(``r2r eval --judgments``, cached) gives every policy on every cut, ordered by the policy's own class
(:mod:`r2r_agent.orderings`): ``python -m evals.policies --report DIR`` (see :func:`main`).

Example:
    >>> [p.label for p in parse_policies("scorer, rrf,first_stage,scorer@0.5")]
    ['scorer', 'rrf', 'first_stage', 'scorer@0.5']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from r2r_agent import Passage, RerankConfig
from r2r_agent.config import ORDERINGS
from r2r_agent.errors import InvalidInputError

from .dataset import Dataset
from .judgments import JudgedQuery
from .markdown import fmt, table
from .measures import parse_measure, query_values
from .protocol import System
from .records import docid
from .reranker_system import RerankerSystem
from .results import EvalResults
from .runner import BASELINES, HEADLINE
from .systems import ModelPool, SystemOptions, build_system, build_systems

#: The settings key under which ``r2r eval --ordering`` records which system runs which policy.
SETTINGS_KEY = "ordering_policies"


@dataclass(frozen=True)
class Policy:
    """How a Reranker orders all passages: an ordering and a first-stage weight (see the module docs)."""

    ordering: str
    first_stage_weight: float = 0.0

    @property
    def label(self) -> str:
        """``ORDERING`` or ``ORDERING@W``, e.g. ``'scorer@0.5'``."""
        return self.ordering + (f"@{self.first_stage_weight:g}" if self.first_stage_weight else "")

    def apply(self, config: RerankConfig) -> RerankConfig:
        """``config`` with this ordering and weight (checked by :class:`r2r_agent.RerankConfig`)."""
        return config.replace(ordering=self.ordering, first_stage_weight=self.first_stage_weight)


def parse_policies(text: str, first_stage_weight: float = 0.0) -> list[Policy]:
    """The policies of ``ORDERING[@W],...`` (``first_stage_weight`` where ``@W`` is not given).

    Raises:
        InvalidInputError: for an unknown ordering (listing them), a weight that is not a number in [0, 1], the same
            policy twice, or no policy.
    """
    policies = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ordering, _, weight = part.partition("@")
        if ordering not in ORDERINGS:
            raise InvalidInputError(f"--ordering: unknown ordering {ordering!r} in {part!r}; expected one of "
                                    f"{', '.join(ORDERINGS)}, optionally with @W (a first-stage weight in [0, 1]), "
                                    "e.g. scorer,rrf,first_stage,scorer@0.5")
        try:
            value = float(weight) if weight else first_stage_weight
        except ValueError:
            raise InvalidInputError(f"--ordering: {part!r}: the weight after @ must be a number in [0, 1], got "
                                    f"{weight!r}") from None
        policy = Policy(ordering, value)
        policy.apply(RerankConfig())  # the weight's range is checked where the setting is declared
        policies.append(policy)
    labels = [p.label for p in policies]
    if not policies or len(set(labels)) != len(labels):
        raise InvalidInputError(f"--ordering needs distinct policies, e.g. scorer,rrf,first_stage,scorer@0.5; got "
                                f"{text!r}")
    return policies


def build_policy_systems(names: Sequence[str], options: SystemOptions, pool: ModelPool,
                         policies: Sequence[Policy]) -> tuple[list[System], dict[str, dict[str, str]]]:
    """The systems ``names`` under each policy (those that run a Reranker; the others once), and for each
    Reranker-based system its name and policy: ``{report name: {"system": name, "policy": label}}``."""
    def under(policy: Policy) -> SystemOptions:
        return replace(options, rerank=policy.apply(options.rerank))

    names = [n.strip() for n in names if n.strip()]
    first = build_systems(names, under(policies[0]), pool)
    follows = [name for name, system in zip(names, first) if isinstance(system, RerankerSystem)]
    systems = list(first)
    origin = {system.name: {"system": name, "policy": policies[0].label} for name, system in zip(names, first)
              if name in follows}
    for policy in policies[1:]:
        for name in follows:
            system = build_system(name, under(policy), pool)
            systems.append(system)
            origin[system.name] = {"system": name, "policy": policy.label}
    return systems, origin


def _ndcg(results: EvalResults, dataset: str, system: str) -> float | None:
    try:
        return results.run_for(dataset, system).evaluation.aggregates.get(HEADLINE)
    except KeyError:
        return None


def worst_cases(results: EvalResults) -> list[dict[str, Any]]:
    """One row per first stage and (system, policy): ``system``, ``policy``, per dataset ``ndcg`` and ``delta`` (the
    difference from the better baseline), and the ``worst`` delta with its ``worst_dataset``."""
    recorded: Mapping[str, Mapping[str, str]] = results.settings.get(SETTINGS_KEY, {}).get("systems", {})
    datasets = [d.name for d in results.datasets]
    better = {}
    for dataset in datasets:
        values = [_ndcg(results, dataset, b) for b in BASELINES]
        better[dataset] = None if None in values else max(v for v in values if v is not None)
    entries = [(b, "retriever order", b) for b in BASELINES[:1] if b in results.systems]
    entries += [(name, origin["policy"], origin["system"]) for name, origin in recorded.items()]
    rows = []
    for name, policy, system in entries:
        ndcg = {d: _ndcg(results, d, name) for d in datasets}
        delta = {d: _difference(ndcg[d], better[d]) for d in datasets}
        known = [(v, d) for d, v in delta.items() if v is not None]
        worst = min(known) if known else (None, None)
        rows.append({"run": name, "system": system, "policy": policy, "ndcg": ndcg, "delta": delta,
                     "worst": worst[0], "worst_dataset": worst[1]})
    return rows


def _difference(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or baseline is None else value - baseline


def policy_section(results: EvalResults) -> list[str]:
    """The "Ordering policies" markdown section (empty unless the run was made with ``--ordering``)."""
    recorded = results.settings.get(SETTINGS_KEY)
    if not recorded or not results.datasets:
        return []
    datasets = [d.name for d in results.datasets]
    lines = ["", "## Ordering policies: worst case", "",
             f"Policies {', '.join(f'`{p}`' for p in recorded['policies'])} (`RerankConfig.ordering`; `@W`: "
             "`first_stage_weight` W, z-score fusion of the scorer's and the retriever's standardised scores). Each "
             "cell: nDCG@10 and, in brackets, its difference from the better of the retriever's order "
             "(`first-stage`) and the scorer alone (`minilm`, policy `scorer`) on that dataset; worst: the lowest "
             "difference over the datasets, and where."]
    if any(b not in results.systems for b in BASELINES):
        lines += ["", f"Run {' and '.join(f'`{b}`' for b in BASELINES)} too (policy `scorer`, no first-stage "
                  "weight) to get the differences."]
    rows = [[f"`{row['system']}`", row["policy"],
             *(f"{fmt(row['ndcg'][d])} ({_signed(row['delta'][d])})" for d in datasets),
             f"{_signed(row['worst'])} ({row['worst_dataset'] or '–'})"] for row in worst_cases(results)]
    return [*lines, "", *table(["system", "policy", *datasets, "worst"], rows, left=2)]


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


#: The list lengths of :func:`cut_table` (``None``: the whole list).
CUTS: tuple[int | None, ...] = (5, 10, 20, None)
#: The policies of :func:`cut_table`, and the two that make its baseline.
CUT_POLICIES = ("first_stage", "scorer", "rrf", "tiers", "tiers_rrf")
_CUT_BASELINES = ("first_stage", "scorer")


def policy_order(policy: str, candidates: Sequence[Passage], judged: JudgedQuery, cut: int | None = None) -> list[str]:
    """The doc ids of the first ``cut`` of ``candidates`` (in the retriever's order) as the ordering ``policy``
    orders them, from the scores and verdicts a judging of the whole list gave (:class:`JudgedQuery` of a system whose
    ordering is ``scorer`` with no first-stage weight: its scores are the scorer's own).

    Example:
        >>> from r2r_agent import Passage
        >>> passages = [Passage("a", id="a"), Passage("b", id="b"), Passage("c", id="c")]
        >>> judged = JudgedQuery(("b", "a", "c"), (0.9, 0.5, 0.1), (0.2, 0.7, 0.1),
        ...                      ("not_relevant", "relevant", "not_relevant"))
        >>> policy_order("scorer", passages, judged), policy_order("tiers", passages, judged, cut=2)
        (['b', 'a', 'c'], ['a', 'b'])
    """
    from r2r_agent import orderings
    from r2r_agent.candidate import Candidate, Judged

    found = {d: (s, r, v) for d, s, r, v in zip(judged.doc_ids, judged.scores, judged.relevance, judged.verdicts)}
    shown = list(candidates)[:cut] if cut is not None else list(candidates)
    records = []
    for index, passage in enumerate(shown):
        score, relevance, verdict = found[docid(passage)]
        records.append(Candidate(index, passage, passage.text, score, score,
                                 judged=Judged(relevance=relevance, verdict=verdict)))
    return [docid(c.passage) for c in orderings.get(policy).order(records)]


def cut_table(datasets: Sequence[Dataset], judged: Mapping[str, Mapping[str, JudgedQuery]],
              policies: Sequence[str] = CUT_POLICIES, cuts: Sequence[int | None] = CUTS) -> list[dict[str, Any]]:
    """nDCG@10 of each policy on each dataset's lists cut to each length, and its difference from the better of
    ``first_stage`` and ``scorer`` there; one row per (cut, policy) with ``ndcg``/``delta`` per dataset and the
    ``worst`` delta (and where).

    Args:
        datasets: The datasets (their candidates, in the retriever's order, and qrels).
        judged: ``{dataset name: {qid: JudgedQuery}}``, every candidate judged (:func:`policy_order`).
        policies: Ordering names.
        cuts: List lengths (``None``: whole).
    """
    measure = [parse_measure(HEADLINE)]
    rows = []
    for cut in cuts:
        table: dict[str, dict[str, float]] = {}
        for dataset in datasets:
            qids = [q for q in dataset.qrels if q in judged[dataset.name] and dataset.candidates.get(q)]
            for policy in {*policies, *_CUT_BASELINES}:
                values = []
                for qid in qids:
                    order = policy_order(policy, dataset.candidates[qid], judged[dataset.name][qid], cut)
                    run = {d: float(len(order) - rank) for rank, d in enumerate(order)}
                    values.append(query_values(dataset.qrels[qid], run, measure)[measure[0].name])
                table.setdefault(policy, {})[dataset.name] = sum(values) / len(values) if values else float("nan")
        for policy in policies:
            ndcg = table[policy]
            delta = {d: ndcg[d] - max(table[b][d] for b in _CUT_BASELINES) for d in ndcg}
            worst = min((v, d) for d, v in delta.items())
            rows.append({"cut": cut, "policy": policy, "ndcg": ndcg, "delta": delta, "worst": worst[0],
                         "worst_dataset": worst[1]})
    return rows


def cut_section(rows: Sequence[Mapping[str, Any]], datasets: Sequence[str]) -> list[str]:
    """The markdown table of :func:`cut_table`'s rows; the policy with the best worst case of each cut in bold."""
    best: dict[Any, float] = {}
    for row in rows:
        if row["cut"] not in best or row["worst"] > best[row["cut"]]:
            best[row["cut"]] = row["worst"]
    lines = []
    for row in rows:
        bold = "**" if row["worst"] == best[row["cut"]] else ""
        cells = [f"{fmt(row['ndcg'][d])} ({_signed(row['delta'][d])})" for d in datasets]
        lines.append([str(row["cut"] or "all"), f"{bold}`{row['policy']}`{bold}", *cells,
                      f"{bold}{_signed(row['worst'])}{bold} ({row['worst_dataset']})"])
    return table(["list", "policy", *datasets, "worst"], lines, left=2)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evals.policies --report DIR [--dataset NAME ...] [--system minilm]``: judge every candidate of
    each dataset with the system (cached in ``DIR/cache.jsonl``, resumable; the same cache as ``r2r eval --judgments
    --report DIR``), then print and write ``DIR/ordering_cuts.md``: every policy of :data:`CUT_POLICIES` on lists cut
    to :data:`CUTS`."""
    import argparse
    from pathlib import Path

    from .cache import ResultCache
    from .passes import judgment_run
    from .registry import load_dataset

    parser = argparse.ArgumentParser(prog="python -m evals.policies", description=main.__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--system", default="minilm")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--limit-queries", type=int, default=None)
    args = parser.parse_args(argv)
    names = args.dataset or ["dl19", "dl20", "dl19-splade", "dl20-splade"]
    args.report.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(args.report / "cache.jsonl")
    system = build_system(args.system, SystemOptions(), ModelPool())
    datasets, judged = [], {}
    for name in names:
        dataset = load_dataset(name, args.data_dir)
        if args.limit_queries:
            keep = list(dataset.qrels)[: args.limit_queries]
            dataset = replace(dataset, qrels={q: dataset.qrels[q] for q in keep})
        datasets.append(dataset)
        judged[name] = judgment_run(system, dataset, cache, progress=True).judged
    text = "\n".join(cut_section(cut_table(datasets, judged), names))
    (args.report / "ordering_cuts.md").write_text(text + "\n", encoding="utf-8")
    print(text)  # noqa: T201 - the command's output
    return 0


__all__ = ["CUTS", "CUT_POLICIES", "SETTINGS_KEY", "Policy", "build_policy_systems", "cut_section", "cut_table",
           "main", "parse_policies", "policy_order", "policy_section", "worst_cases"]


if __name__ == "__main__":
    raise SystemExit(main())
