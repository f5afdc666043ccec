"""Metrics rows (DIR/metrics.jsonl) and the progress display; both only on rank 0."""

import json
import math
import os
import sys
import time

from .config import ConfigError


def _clean(value):
    """JSON has no NaN/Inf: a non-finite float is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends one JSON object per logged step; a resumed run drops rows after its checkpoint."""

    def __init__(self, path, resume_step=None):
        self.path = path
        rows = []
        if resume_step is not None and os.path.exists(path):
            rows, dropped = read_rows(path)
            if dropped:
                print(f"mpigrad train: {path}: dropped a partial last line ({dropped} bytes) left by an "
                      "interrupted write", file=sys.stderr, flush=True)
        kept = "".join(json.dumps(row) + "\n" for row in rows if row.get("step", 0) <= resume_step)
        _replace(path, kept)

    def write(self, row):
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")


def _replace(path, text):
    """Write a temporary file and rename it over `path`: a crash leaves the old file or the new one."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def read_rows(path):
    """(rows, bytes dropped): the rows of a metrics.jsonl file; a last line that is not JSON (a write
    cut short by a crash or a full disk) is dropped, a bad line before it is an error."""
    with open(path) as f:
        lines = f.read().split("\n")
    rows, dropped = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[number:]):
                raise ConfigError(f"{path}: line {number} is not JSON") from None
            dropped = len(line.encode())
    return rows, dropped


def read_metrics(path):
    """The rows of a metrics.jsonl file as dicts (blank lines and a partial last line skipped)."""
    return read_rows(path)[0]


def format_duration(seconds):
    seconds = max(0, int(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """A tqdm bar when stdout is a terminal, plain lines every log_every steps otherwise, or nothing."""

    def __init__(self, total, start, enabled, unit="samples", unit_scale=1):
        self.total, self.start, self.unit, self.unit_scale = total, start, unit, unit_scale
        self.enabled = enabled
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step, row, show_line):
        """Advance to `step` (1-based count of finished steps) with that step's metrics row."""
        if not self.enabled:
            return
        rate = row["samples_per_s"] * self.unit_scale
        if self.bar is not None:
            postfix = {"loss": f"{row['loss']:.4f}", f"{self.unit}/s": f"{rate:,.0f}"}
            if "val_loss" in row:
                postfix["val"] = f"{row['val_loss']:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(step - self.bar.n)
        elif show_line:
            done = step - self.start
            eta = (time.perf_counter() - self.t0) / max(done, 1) * (self.total - step)
            val = f" val_loss {row['val_loss']:.4f}" if "val_loss" in row else ""
            print(f"step {step}/{self.total} loss {row['loss']:.4f}{val} lr {row['lr']:.2e} "
                  f"{rate:,.0f} {self.unit}/s eta {format_duration(eta)}", flush=True)

    def write(self, message):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
