"""The testbed's outputs: the comparison table and the PNG plots.

Pure functions of :class:`~trl_lift.testbed.experiment.FineTuneResult` lists; nothing here trains or
evaluates. Plots need matplotlib (``pip install "trl-lift[testbed]"``).
"""

from __future__ import annotations

from pathlib import Path

from . import domain

__all__ = ["METRICS", "comparison_table", "plot_accuracy", "plot_lift_selection", "plot_training_loss"]

METRICS = (("sudoku", "cell_acc"), ("sudoku", "acc"))
_COMPONENTS = ("bottom", "vanilla", "top")


def _cell(pair) -> str:
    value, stderr = pair
    return f"{value:.3f} ± {stderr:.3f}" if isinstance(stderr, float) else f"{value:.3f}"


def comparison_table(results) -> str:
    """A Markdown table: accuracy per task (± lm-eval's standard error), evaluation loss, training time, tokens/s."""
    header = [f"{task} {metric}" for task, metric in METRICS] + ["eval loss", "train s", "tokens/s"]
    lines = ["| method | " + " | ".join(header) + " |", "| --- " * (len(header) + 1) + "|"]
    for r in results:
        cells = [_cell(r.scores[task][metric]) for task, metric in METRICS]
        cells += [f"{r.eval_loss:.4f}", f"{r.train_seconds:.0f}", f"{r.tokens_per_second:,.0f}"]
        lines.append(f"| {r.method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(entry["step"], entry[key]) for entry in history if key in entry and "step" in entry]
    return [p[0] for p in points], [p[1] for p in points]


def plot_training_loss(results, path: Path) -> Path:
    """Training loss per logging step, one line per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ax.plot(*_series(r.log_history, "loss"), label=r.method)
    ax.set(xlabel="step", ylabel="training loss (1/t-weighted)", title="Training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_lift_selection(result, path: Path) -> Path:
    """LIFT's component shares, and the confidence of the selected versus the revealed tokens, over training."""
    plt = _pyplot()
    fig, (shares, conf) = plt.subplots(1, 2, figsize=(11, 4))
    for name in _COMPONENTS:
        shares.plot(*_series(result.log_history, f"lift_share_{name}"), label=name)
    shares.set(xlabel="step", ylabel="share of sequences", title=f"{result.method}: component shares", ylim=(0, 1))
    shares.legend()
    for name, colour in (("top", "tab:green"), ("bottom", "tab:red")):
        for kind, style in (("selected", "-"), ("revealed", "--")):
            steps, values = _series(result.log_history, f"lift_conf_{kind}_{name}")
            conf.plot(steps, values, style, color=colour, label=f"{name}-K {kind}")
    conf.set(xlabel="step", ylabel="mean log p(gold | superset input)",
             title="confidence: trained (selected) vs revealed tokens")
    conf.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy(results, path: Path) -> Path:
    """Held-out accuracy per method and metric, with lm-eval's standard error as error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        values = [r.scores[task][metric][0] for task, metric in METRICS]
        errors = [r.scores[task][metric][1] or 0.0 for task, metric in METRICS]
        ax.bar([j + i * width for j in range(len(METRICS))], values, width, yerr=errors, capsize=3, label=r.method)
    ax.axhline(domain.CHANCE_CELL_ACC, color="grey", linestyle=":", linewidth=1, label="chance (Sudoku cells)")
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(METRICS))])
    ax.set_xticklabels([f"{task}\n{metric}" for task, metric in METRICS])
    ax.set(ylabel="held-out accuracy (lm-eval)", ylim=(0, 1), title="Accuracy per method")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
