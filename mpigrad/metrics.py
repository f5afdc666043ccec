"""Metrics rows (DIR/metrics.jsonl) and the progress display; both only on rank 0."""

import collections
import json
import math
import os
import statistics
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
        kept = [row for row in rows if row.get("step", 0) <= resume_step]
        self.elapsed_before = next((row["elapsed"] for row in reversed(kept) if row.get("elapsed") is not None), 0.0)
        _replace(path, "".join(json.dumps(row) + "\n" for row in kept))

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
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    rows, dropped = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode()))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if any(rest.strip() for rest in lines[number:]):
                what = "UTF-8 text" if isinstance(e, UnicodeDecodeError) else "JSON"
                raise ConfigError(f"{path}: line {number} is not {what}") from None
            dropped = len(line)
            continue
        if not (isinstance(rows[-1], dict) and type(rows[-1].get("step")) is int):
            raise ConfigError(f"{path}: line {number} is not a metrics row (a JSON object with an integer step)")
    return rows, dropped


def read_metrics(path):
    """The rows of a metrics.jsonl file as dicts (blank lines and a partial last line skipped)."""
    return read_rows(path)[0]


def format_duration(seconds):
    seconds = max(0, int(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class StepTimes:
    """Wall-clock bookkeeping: seconds per step over the last `window` steps (rates, ETA), the run's
    elapsed time (continued across resumes), and the end-of-run summary."""

    def __init__(self, window=20, start_step=0, elapsed_before=0.0, clock=time.perf_counter):
        self.clock, self.elapsed_before = clock, elapsed_before
        self.started = clock()
        self.recent = collections.deque([(start_step, self.started)], maxlen=window + 1)
        self.step_times, self.comm_times = [], []

    def record(self, step, row):
        self.recent.append((step, self.clock()))
        self.step_times.append(row["step_time"])
        self.comm_times.append(row["comm_time"])

    def elapsed(self):
        """Seconds of training so far, earlier sessions of a resumed run included."""
        return self.elapsed_before + self.clock() - self.started

    def seconds_per_step(self):
        """Wall time per step over the window (evaluation and checkpoints included, as in an ETA)."""
        (first, t0), (last, t1) = self.recent[0], self.recent[-1]
        return (t1 - t0) / max(last - first, 1)

    def summary(self, samples_per_step, unit="samples", unit_scale=1):
        steps, seconds = len(self.step_times), self.clock() - self.started
        rate = steps * samples_per_step * unit_scale / max(seconds, 1e-9)
        wait = 100 * sum(self.comm_times) / max(sum(self.step_times), 1e-12)
        return (f"mpigrad: {steps} steps in {format_duration(seconds)}: median step "
                f"{statistics.median(self.step_times) * 1e3:.1f} ms, {rate:,.0f} {unit}/s overall, "
                f"communication wait {wait:.1f} % of step time")


class Progress:
    """A tqdm bar when rank 0's stdout is a terminal (so not under mpiexec, whose ranks write into
    pipes), plain lines every log_every steps otherwise, or nothing. Rates and ETA come from
    `times`' window of recent steps."""

    def __init__(self, total, start, enabled, unit="samples", unit_scale=1, times=None, samples_per_step=1):
        self.total, self.start, self.unit, self.unit_scale = total, start, unit, unit_scale
        self.enabled, self.samples_per_step = enabled, samples_per_step
        self.times = times if times is not None else StepTimes(start_step=start)
        self.bar = None
        if enabled and sys.stdout is not None and sys.stdout.isatty():  # None: started with stdout closed
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step, row, show_line):
        """Advance to `step` (1-based count of finished steps) with that step's metrics row."""
        if not self.enabled:
            return
        per_step = self.times.seconds_per_step()
        rate = self.samples_per_step * self.unit_scale / max(per_step, 1e-9)
        if self.bar is not None:
            postfix = {"loss": f"{row['loss']:.4f}", f"{self.unit}/s": f"{rate:,.0f}"}
            if "val_loss" in row:
                postfix["val"] = f"{row['val_loss']:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(step - self.bar.n)
        elif show_line:
            eta = per_step * (self.total - step)
            val = f" val_loss {row['val_loss']:.4f}" if "val_loss" in row else ""
            self._print(f"step {step}/{self.total} loss {row['loss']:.4f}{val} lr {row['lr']:.2e} "
                        f"{rate:,.0f} {self.unit}/s eta {format_duration(eta)}")

    def write(self, message):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            self._print(message)

    def _print(self, text):
        try:
            print(text, flush=True)
        except BrokenPipeError:  # the reader went away (`| head`): training goes on without progress output
            self.enabled = False
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
            os.close(devnull)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
