"""The PNG beside the markdown table: matplotlib is optional (``pip install -e .[bench]``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.stats import Result


def plot(results: Sequence[Result], path: Path) -> str:
    """Writes the plot; returns what happened, for the report (never raises ImportError)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return "no plot: matplotlib is not installed (pip install -e '.[bench]')"
    labels = [f"{r.side}\n{r.name}" + (f"\n{r.note}" if r.note else "") for r in results]
    colors = ["tab:orange" if r.side == "celery" else "tab:blue" for r in results]
    fig, (rate, latency) = plt.subplots(2, 1, figsize=(max(8, len(results) * 0.9), 8))
    rate.bar(labels, [r.nodes_per_second for r in results], color=colors)
    rate.set_ylabel("nodes (tasks) per second")
    rate.set_title("throughput of a backlog (higher is better)")
    width = 0.4
    xs = range(len(results))
    for shift, q, color in ((-width / 2, 50, "tab:gray"), (width / 2, 95, "black")):
        heights = [r.p(q) for r in results]
        latency.bar([x + shift for x in xs], heights, width, label=f"p{q}", color=color)
    latency.set_xticks(list(xs), labels)
    latency.set_yscale("log")
    latency.set_ylabel("ms, one run at a time (log)")
    latency.set_title("latency (lower is better)")
    latency.legend()
    for axis in (rate, latency):
        axis.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot: {path}"


def plot_series(series: Sequence[tuple[float, int]], path: Path, title: str) -> str:
    """Worker RSS over time (the stress backlog): flat means no leak per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return "no RSS plot: matplotlib is not installed"
    fig, axis = plt.subplots(figsize=(8, 4))
    axis.plot([t for t, _ in series], [b / 2**20 for _, b in series])
    axis.set_xlabel("seconds")
    axis.set_ylabel("worker RSS, MB")
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"RSS plot: {path}"
