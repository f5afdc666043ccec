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


# metrics.jsonl fields of the disjoint phases of a step, as drawn by `mpigrad plot --timings`
PHASES = {"forward": "forward_time", "backward": "backward_time", "communication wait": "comm_time",
          "clip + optimizer": "optimizer_time"}


def timing_series(rows):
    """phase -> [(step, milliseconds)] for every row with per-phase timings; `rest of step` is
    step_time minus the phases (loading the batch, zeroing gradients, gathering the loss)."""
    timed = [r for r in rows if all(r.get(field) is not None for field in [*PHASES.values(), "step_time"])]
    series = {name: [(r["step"], 1e3 * r[field]) for r in timed] for name, field in PHASES.items()}
    series["rest of step"] = [(r["step"], 1e3 * (r["step_time"] - sum(r[f] for f in PHASES.values())))
                              for r in timed]
    return series


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("matplotlib is not installed; install it from the repository with: pip install -e '.[plot]'") from None
    return plt


def plot_timings(directories, out):
    """One panel per run: the milliseconds of each phase of the logged steps, stacked."""
    plt = _pyplot()
    runs = [load_run(d) for d in directories]
    fig, axes = plt.subplots(1, len(runs), figsize=(9 * len(runs), 4.2), squeeze=False)
    for ax, (label, rows) in zip(axes[0], runs):
        series = timing_series(rows)
        if not series["forward"]:
            plt.close(fig)
            raise ConfigError(f"{label}: no per-phase timings in its metrics.jsonl (a run from an older mpigrad?)")
        steps = [s for s, _ in series["forward"]]
        ax.stackplot(steps, *[[ms for _, ms in points] for points in series.values()], labels=list(series))
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_ylabel("ms per step")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_runs(directories, out):
    """Draw every run's loss (and accuracy, when logged) against step into one figure saved at `out`."""
    plt = _pyplot()
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


def load_prediction(path):
    """The object `mpigrad scaling --json` printed (one JSON object, possibly after other lines)."""
    import json
    try:
        with open(path) as f:
            text = f.read()
        result = json.loads(text.strip().splitlines()[-1])
        result["predicted"][0]["step_time"]
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise ConfigError(f"{path}: not the output of `mpigrad scaling --json`") from None
    return result


def measured_points(directories):
    """(world size, median step seconds) of each training run (its first logged step left out)."""
    import statistics
    points = []
    for d in directories:
        _, rows = load_run(d)
        times = [r["step_time"] for r in rows if r.get("step_time") is not None][1:]
        if times:
            points.append((rows[-1].get("world_size", 1), statistics.median(times)))
    return points


def plot_scaling(prediction_path, directories, out):
    """Predicted step time against world size (strong and weak), the launch that measured it, and the median
    step of each training run given, all on log-log axes."""
    plt = _pyplot()
    result = load_prediction(prediction_path)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for scaling, style in (("strong", "-o"), ("weak", "--s")):
        entries = [e for e in result["predicted"] if e["scaling"] == scaling and e.get("feasible", True)]
        ax.plot([e["world"] for e in entries], [1e3 * e["step_time"] for e in entries], style, markersize=3,
                label=f"predicted, {scaling} scaling")
    beyond = [e for e in result["predicted"] if not e.get("feasible", True)]
    if beyond:
        ax.plot([e["world"] for e in beyond], [1e3 * e["step_time"] for e in beyond], ":", color="grey",
                label="strong, fewer samples than ranks")
    ax.plot([result["world"]], [1e3 * result["measured"]["step_time"]], "k*", markersize=10,
            label=f"measured by `mpigrad scaling` (world {result['world']})")
    points = measured_points(directories)
    if points:
        ax.plot(*zip(*[(w, 1e3 * t) for w, t in points]), "rx", markersize=8, label="measured runs (median step)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("world size (ranks)")
    ax.set_ylabel("ms per step")
    ax.set_title(f"network between nodes: {result.get('network', '?')}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
