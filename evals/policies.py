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
in (the bi-encoder scores each passage alone; the calibrator reads one passage), so each passage is judged once per
query (a :data:`Pool`, shared by the BM25 and SPLADE++ lists) and every policy on every cut is ordered from it by the
policy's own class (:mod:`r2r_agent.orderings`): ``python -m evals.policies --report DIR`` (see :func:`main`).

Example:
    >>> [p.label for p in parse_policies("scorer, rrf,first_stage,scorer@0.5")]
    ['scorer', 'rrf', 'first_stage', 'scorer@0.5']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from r2r_agent import Passage, RerankConfig
from r2r_agent.config import ORDERINGS
from r2r_agent.errors import InvalidInputError

from .dataset import Dataset
from .judgments import JudgedQuery
from .markdown import fmt, table
from .measures import parse_measure, query_values
from .protocol import JudgingSystem, System, can_judge
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


@dataclass(frozen=True)
class Found:
    """What judging found about one passage for one query: its scorer score, relevance and verdict (none depends on
    the other passages of the list: the bi-encoder scores each passage alone and the calibrator reads one passage)."""

    score: float
    relevance: float | None
    verdict: str | None


#: ``{(qid, docid): Found}``: every passage judged so far, whatever list it came in (BM25 and SPLADE++ lists of the
#: same query share about a third of their passages, judged once).
Pool = dict[tuple[str, str], Found]


def pool_judged(pool: Pool, qid: str, judged: JudgedQuery) -> None:
    """Add every judgment of ``judged`` (one query's) to ``pool``."""
    for d, score, relevance, verdict in zip(judged.doc_ids, judged.scores, judged.relevance, judged.verdicts):
        pool[(qid, d)] = Found(score, relevance, verdict)


def policy_order(policy: str, candidates: Sequence[Passage], found: Mapping[str, Found],
                 cut: int | None = None) -> list[str]:
    """The doc ids of the first ``cut`` of ``candidates`` (in the retriever's order) as the ordering ``policy``
    orders them (its own class, :mod:`r2r_agent.orderings`), from each passage's :class:`Found` (by doc id; scores
    from a system ordering by ``scorer`` with no first-stage weight: the scorer's own).

    Example:
        >>> from r2r_agent import Passage
        >>> passages = [Passage("a", id="a"), Passage("b", id="b"), Passage("c", id="c")]
        >>> found = {"a": Found(0.5, 0.7, "relevant"), "b": Found(0.9, 0.2, "not_relevant"),
        ...          "c": Found(0.1, 0.1, "not_relevant")}
        >>> policy_order("scorer", passages, found), policy_order("tiers", passages, found, cut=2)
        (['b', 'a', 'c'], ['a', 'b'])
    """
    from r2r_agent import orderings
    from r2r_agent.candidate import Candidate, Judged

    shown = list(candidates)[:cut] if cut is not None else list(candidates)
    records = []
    for index, passage in enumerate(shown):
        f = found[docid(passage)]
        records.append(Candidate(index, passage, passage.text, f.score, f.score,
                                 judged=Judged(relevance=f.relevance, verdict=f.verdict)))
    return [docid(c.passage) for c in orderings.get(policy).order(records)]


def cut_table(datasets: Sequence[Dataset], pool: Mapping[tuple[str, str], Found],
              policies: Sequence[str] = CUT_POLICIES, cuts: Sequence[int | None] = CUTS) -> list[dict[str, Any]]:
    """nDCG@10 of each policy on each dataset's lists cut to each length, and its difference from the better of
    ``first_stage`` and ``scorer`` there; one row per (cut, policy) with ``ndcg``/``delta`` per dataset, the
    ``worst`` delta and where (``worst_dataset``). A (dataset, cut) is measured over the queries whose first ``cut``
    candidates are all in ``pool`` (``queries`` per dataset says how many).

    Args:
        datasets: The datasets (their candidates, in the retriever's order, and qrels).
        pool: Every judged passage (:data:`Pool`).
        policies: Ordering names.
        cuts: List lengths (``None``: whole).
    """
    measure = [parse_measure(HEADLINE)]
    rows = []
    for cut in cuts:
        ndcgs: dict[str, dict[str, float]] = {}
        counted: dict[str, int] = {}
        for dataset in datasets:
            qids = [q for q in dataset.qrels if dataset.candidates.get(q)
                    and all((q, docid(p)) in pool for p in dataset.candidates[q][:cut])]
            counted[dataset.name] = len(qids)
            for policy in {*policies, *_CUT_BASELINES}:
                values = []
                for qid in qids:
                    found = {docid(p): pool[(qid, docid(p))] for p in dataset.candidates[qid][:cut]}
                    order = policy_order(policy, dataset.candidates[qid], found, cut)
                    run = {d: float(len(order) - rank) for rank, d in enumerate(order)}
                    values.append(query_values(dataset.qrels[qid], run, measure)[measure[0].name])
                ndcgs.setdefault(policy, {})[dataset.name] = sum(values) / len(values) if values else float("nan")
        for policy in policies:
            ndcg = ndcgs[policy]
            delta = {d: ndcg[d] - max(ndcgs[b][d] for b in _CUT_BASELINES) for d in ndcg if counted[d]}
            worst = min(((v, d) for d, v in delta.items()), default=(float("nan"), "-"))
            rows.append({"cut": cut, "policy": policy, "ndcg": ndcg, "delta": delta, "worst": worst[0],
                         "worst_dataset": worst[1], "queries": dict(counted)})
    return rows


def pick_default(rows: Sequence[Mapping[str, Any]], policies: Sequence[str] = ("tiers", "tiers_rrf")) -> str:
    """The worst-case rule: of ``policies``, the one whose worst difference over every dataset and cut is the least
    bad. By default only the orderings that keep the verdict tiers compete: the adapters' default must never put a
    ``not_relevant`` passage above a ``relevant`` or ``partial`` one.

    Example:
        >>> pick_default([{"policy": "tiers", "worst": -0.02}, {"policy": "tiers", "worst": 0.01},
        ...               {"policy": "tiers_rrf", "worst": -0.01}, {"policy": "rrf", "worst": 0.0}])
        'tiers_rrf'
    """
    worst = {p: min(r["worst"] for r in rows if r["policy"] == p) for p in policies}
    return max(policies, key=lambda p: (worst[p], -policies.index(p)))


def cut_section(rows: Sequence[Mapping[str, Any]], datasets: Sequence[str]) -> list[str]:
    """The markdown table of :func:`cut_table`'s rows; the policy with the best worst case of each cut in bold."""
    best: dict[Any, float] = {}
    for row in rows:
        if row["cut"] not in best or row["worst"] > best[row["cut"]]:
            best[row["cut"]] = row["worst"]
    lines = []
    for row in rows:
        bold = "**" if row["worst"] == best[row["cut"]] else ""
        cells = [f"{fmt(row['ndcg'][d])} ({_signed(row['delta'].get(d))})" if row["queries"][d] else "–"
                 for d in datasets]
        lines.append([str(row["cut"] or "all"), f"{bold}`{row['policy']}`{bold}", *cells,
                      f"{bold}{_signed(row['worst'])}{bold} ({row['worst_dataset']})"])
    return table(["list", "policy", *datasets, "worst"], lines, left=2)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evals.policies --report DIR [--dataset NAME ...] [--depth N] [--system minilm]``: judge the
    first ``N`` candidates (default: all) of every list of each dataset with the system, each passage of a query
    once whatever list it is in (a pool in ``DIR/pool.jsonl``, resumable), then print and write
    ``DIR/ordering_cuts.md``: every policy of :data:`CUT_POLICIES` on lists cut to :data:`CUTS` (those a depth
    covers)."""
    import argparse
    import json
    from pathlib import Path

    from .registry import load_dataset

    parser = argparse.ArgumentParser(prog="python -m evals.policies", description=main.__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--system", default="minilm")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--depth", type=int, default=None)
    args = parser.parse_args(argv)
    names = args.dataset or ["dl19", "dl20", "dl19-splade", "dl20-splade"]
    args.report.mkdir(parents=True, exist_ok=True)
    pool_path = args.report / "pool.jsonl"
    pool: Pool = {}
    if pool_path.exists():
        for line in pool_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            pool[(row["qid"], row["docid"])] = Found(row["score"], row["relevance"], row["verdict"])
    built = build_system(args.system, SystemOptions(), ModelPool())
    if not can_judge(built):
        parser.error(f"--system {args.system} cannot judge candidates (no calibrator); pick one that can, e.g. minilm")
    system = cast(JudgingSystem, built)
    datasets = [load_dataset(name, args.data_dir) for name in names]
    with pool_path.open("a", encoding="utf-8") as out:
        for dataset in datasets:
            todo = {q: [p for p in c[: args.depth] if (q, docid(p)) not in pool] for q, c in dataset.candidates.items()
                    if q in dataset.qrels and q in dataset.queries}
            todo = {q: c for q, c in todo.items() if c}
            for number, (qid, passages) in enumerate(todo.items(), start=1):
                judged = JudgedQuery.from_ranking(system.judge(dataset.queries[qid], passages), passages)
                pool_judged(pool, qid, judged)
                for d, f in zip(judged.doc_ids, (pool[(qid, d)] for d in judged.doc_ids)):
                    out.write(json.dumps({"qid": qid, "docid": d, "score": f.score, "relevance": f.relevance,
                                          "verdict": f.verdict}) + "\n")
                out.flush()
                print(f"{dataset.name}: {number}/{len(todo)} queries judged ({len(passages)} passages)",  # noqa: T201
                      flush=True)
    cuts = [c for c in CUTS if args.depth is None or (c is not None and c <= args.depth)]
    rows = cut_table(datasets, pool, cuts=cuts)
    rule = f"Adapters' default by the worst-case rule: `{pick_default(rows)}`"
    text = "\n".join([*cut_section(rows, names), "", rule])
    (args.report / "ordering_cuts.md").write_text(text + "\n", encoding="utf-8")
    print(text)  # noqa: T201 - the command's output
    return 0


__all__ = ["CUTS", "CUT_POLICIES", "SETTINGS_KEY", "Found", "Policy", "Pool", "build_policy_systems", "cut_section",
           "cut_table", "main", "parse_policies", "pick_default", "policy_order", "policy_section", "pool_judged",
           "worst_cases"]


if __name__ == "__main__":
    raise SystemExit(main())
