"""`mpigrad plot`: loss (and, for classifiers, accuracy) curves of one or more runs (training solid,
validation dashed) as a PNG."""

import os

from .config import ConfigError
from .metrics import read_metrics


def load_run(directory):
    """(label, rows) of a run directory; the label names the directory and its world size."""
    path = os.path.join(directory, "metrics.jsonl")
    if not os.path.isfile(path):
        raise ConfigError(f"{directory}: no metrics.jsonl (not an `mpigrad train --out` directory?)")
    rows = read_metrics(path)
    if not rows:
        raise ConfigError(f"{path}: no rows yet")
    name = os.path.basename(os.path.normpath(directory))
    return f"{name} (world {rows[-1].get('world_size', '?')})", rows


def plot_runs(directories, out):
    """Draw every run's loss (and accuracy, when logged) against step into one figure saved at `out`."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("matplotlib is not installed; install it from the repository with: pip install -e '.[plot]'") from None
    runs = [load_run(d) for d in directories]
    accuracy = any(r.get("accuracy") is not None for _, rows in runs for r in rows)  # classifiers log it
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(12 if accuracy else 7, 4.2), squeeze=False)
    draw_curves(axes[0][0], runs, "loss", "val_loss")
    if accuracy:
        draw_curves(axes[0][1], runs, "accuracy", "val_accuracy")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def draw_curves(ax, runs, key, val_key):
    """Training `key` solid and validation `val_key` dashed against step, one colour per run."""
    for label, rows in runs:
        train = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        val = [(r["step"], r[val_key]) for r in rows if r.get(val_key) is not None]
        color = None
        if train:
            color = ax.plot(*zip(*train), label=f"{label} train", linewidth=1.2)[0].get_color()
        if val:
            ax.plot(*zip(*val), "--o", color=color, markersize=3, label=f"{label} validation")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend()
