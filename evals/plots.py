"""The PNG plots of an ``r2r eval`` report: nDCG@10 per system, quality against latency, per-query differences.

Plots use matplotlib's ``Agg`` backend (no display needed), imported only when plots are written (``evals`` extra).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from r2r_agent._optional import require

from .records import PathLike
from .results import EvalResults


def plot_name(prefix: str, dataset: str) -> str:
    """The PNG file name of a per-dataset plot (``beir:PATH`` names hold characters file names should not).

    Example:
        >>> plot_name("deltas", "beir:data/sci fact")
        'deltas_beir_data_sci_fact.png'
    """
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset)}.png"


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "evals", "Report plots")
    matplotlib.use("Agg")  # files only: no display, works on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def write_plots(results: EvalResults, directory: PathLike) -> list[Path]:
    """Write the PNG plots; returns their paths."""
    plt = _pyplot()
    out = Path(directory)
    paths = [_plot_ndcg(plt, results, out / "ndcg10.png"), _plot_latency(plt, results, out / "quality_vs_latency.png")]
    if "first-stage" in results.systems:
        for info in results.datasets:
            paths.append(_plot_deltas(plt, results, info.name, out / plot_name("deltas", info.name)))
    return paths


def _plot_ndcg(plt: Any, results: EvalResults, path: Path) -> Path:
    datasets = [d.name for d in results.datasets]
    n = len(results.systems)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.6 * len(datasets) * max(n, 2) / 2), 4.0))
    for i, system in enumerate(results.systems):
        values = [results.run_for(d, system).evaluation.aggregates.get("nDCG@10", 0.0) for d in datasets]
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(datasets))]
        bars = ax.bar(xs, values, width, label=system)
        for bar, value in zip(bars, values):
            ax.annotate(f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets)
    ax.set_ylabel("nDCG@10")
    ax.set_ylim(0, 1)
    ax.set_title("nDCG@10 per system")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_latency(plt: Any, results: EvalResults, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    markers = "osD^v<>P*X"
    datasets = [d.name for d in results.datasets]
    for i, system in enumerate(results.systems):
        xs, ys = [], []
        for d in datasets:
            run = results.run_for(d, system)
            xs.append(max(run.cost.seconds_per_query, 1e-4))  # the first stage costs ~0: keep it on a log axis
            ys.append(run.evaluation.aggregates.get("nDCG@10", 0.0))
        ax.scatter(xs, ys, marker=markers[i % len(markers)], label=system, s=40)
        for x, y, d in zip(xs, ys, datasets):
            ax.annotate(d, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per query (log; model loading excluded)")
    ax.set_ylabel("nDCG@10")
    ax.set_title("Quality vs latency")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_deltas(plt: Any, results: EvalResults, dataset: str, path: Path) -> Path:
    base = results.run_for(dataset, "first-stage").evaluation.values("nDCG@10")
    others = [s for s in results.systems if s != "first-stage"]
    rows = max(len(others), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(7.0, 2.2 * rows), squeeze=False)
    for ax, system in zip(axes[:, 0], others):
        values = results.run_for(dataset, system).evaluation.values("nDCG@10")
        deltas = sorted((values[q] - base[q] for q in values if q in base), reverse=True)
        colors = ["tab:green" if d > 0 else "tab:red" if d < 0 else "tab:gray" for d in deltas]
        ax.bar(range(len(deltas)), deltas, color=colors)
        ax.axhline(0, color="black", linewidth=0.6)
        wins, losses = sum(d > 0 for d in deltas), sum(d < 0 for d in deltas)
        ax.set_title(f"{system} − first-stage on {dataset}: {wins} better, {losses} worse", fontsize=9)
        ax.set_ylabel("Δ nDCG@10")
        ax.set_xticks([])
    if not others:
        axes[0, 0].set_title(f"{dataset}: only the first stage was run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plot_name", "write_plots"]
