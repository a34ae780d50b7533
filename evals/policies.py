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

Example:
    >>> [p.label for p in parse_policies("scorer, rrf,first_stage,scorer@0.5")]
    ['scorer', 'rrf', 'first_stage', 'scorer@0.5']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from r2r_agent import RerankConfig
from r2r_agent.config import ORDERINGS
from r2r_agent.errors import InvalidInputError

from .markdown import fmt, table
from .protocol import System
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


__all__ = ["SETTINGS_KEY", "Policy", "build_policy_systems", "parse_policies", "policy_section", "worst_cases"]
