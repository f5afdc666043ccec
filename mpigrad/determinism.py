"""`mpigrad check-determinism`: the job with deterministic = true at several world sizes, compared bit for bit."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import ConfigError, load_config
from .diff import compare_runs, identity_differences
from .run import RunError, read_identity, read_rows

# Forced on every run: the mode under test, and logging that finds the first diverging step exactly.
# None of them changes the trajectory.
FORCED = ("deterministic=true", "log_every=1", "digest_every=1", "sample_chars=0")


def parse_worlds(text):
    try:
        worlds = [int(w) for w in text.split(",")]
    except ValueError:
        worlds = []
    if not worlds or min(worlds) < 1 or len(set(worlds)) != len(worlds):
        raise ConfigError(f"--worlds {text!r}: expected distinct positive integers separated by commas, like 1,2,4")
    return worlds


def default_launcher():
    """`mpiexec -n {n}` with the mpiexec next to this Python (the mpich wheel's), else the one on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if not found:
        raise ConfigError("no mpiexec next to this Python or on PATH; pass --launcher \"mpiexec -n {n}\"")
    return f"{shlex.quote(found)} -n {{n}}"


def check_worlds(config, overrides, worlds):
    """Refuse, before running anything, every world size the config's micro-batches cannot be split over."""
    for world in worlds:
        try:
            load_config(config, [*overrides, *FORCED], world)
        except ConfigError as e:
            raise ConfigError(f"world size {world}: {e}") from None


def train_at(world, launcher, config, overrides, out):
    """Run the job at one world size; (exit code, log path, seconds)."""
    command = [*shlex.split(launcher.format(n=world)), sys.executable, "-m", "mpigrad", "train", "--quiet",
               "--overwrite", "--out", str(out)]  # its own world-N directories
    if config:
        command += ["--config", config]
    command += [a for item in [*overrides, *FORCED] for a in ("--set", item)]
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    return code, log, time.perf_counter() - start


def row_for(world, code, log, reference):
    """One table row: the run compared with the reference run (None for the reference itself)."""
    out = log.with_suffix("")
    if code != 0:
        return [str(world), "FAILED", f"exit {code}", f"see {log}", "-"], False
    try:
        step_times = [r["step_time"] for r in read_rows(out).values() if "step_time" in r]
        median = f"{np.median(step_times) * 1e3:.1f}" if step_times else "-"
        if reference is None:
            return [str(world), "reference", "-", "-", median], True
        report = compare_runs(str(reference), str(out))
    except RunError as e:
        return [str(world), "FAILED", "unreadable run", str(e), "-"], False
    s, differ = report["first_step"], report["parameters"]["differ"]
    step = f"{s['step']} ({s['field']})" if s else "-"
    name = differ[0]["name"] if differ else "-"
    return [str(world), "yes" if report["equal"] else "NO", step, name, median], report["equal"]


def print_table(rows):
    header = ["world", "bitwise equal", "first diverging step", "first differing parameter", "median step (ms)"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip(), flush=True)


def check_determinism_command(config, overrides, worlds_text, launcher, out):
    """Exit 0 when every world size gave the first one's bits; 1 on a difference or failed run; 2 on bad input."""
    start = time.perf_counter()
    try:
        worlds = parse_worlds(worlds_text)
        check_worlds(config, overrides, worlds)
        launcher = launcher or default_launcher()
        if "{n}" not in launcher:
            raise ConfigError(f"--launcher {launcher!r} must contain {{n}} where the number of ranks goes")
    except ConfigError as e:
        print(f"mpigrad check-determinism: error: {e}", file=sys.stderr)
        return 2
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="mpigrad-determinism-"))
    root.mkdir(parents=True, exist_ok=True)
    rows, all_equal, reference = [], True, None
    for world in worlds:
        run_dir = root / f"world-{world}"
        code, log, _ = train_at(world, launcher, config, overrides, run_dir)
        row, ok = row_for(world, code, log, reference)
        reference = reference or (run_dir if code == 0 else None)
        rows.append(row)
        all_equal &= ok
    print_table(rows)
    print(code_line(root, worlds), flush=True)
    verdict = "bitwise equal at world sizes " + ", ".join(map(str, worlds)) if all_equal else "NOT bitwise equal"
    keep = bool(out) or not all_equal
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    where = f"; runs and logs in {root}" if keep else ""
    print(f"{verdict} ({time.perf_counter() - start:.1f} s{where})", flush=True)
    return 0 if all_equal else 1


def code_line(root, worlds):
    """The numerical code the runs recorded (runtime/identity.py): a pinned kernel shows here, as the
    environment (OPENBLAS_CORETYPE, NPY_DISABLE_CPU_FEATURES) reaches every rank through mpiexec."""
    records = {w: read_identity(root / f"world-{w}") if (root / f"world-{w}" / "config.toml").exists() else None
               for w in worlds}
    known = {w: r for w, r in records.items() if r is not None}
    if not known:
        return "numerical code: not recorded"
    pinned = [f"{name}={os.environ[name]}" for name in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")
              if os.environ.get(name)]
    first, *_ = known.values()
    apart = [f"world {w}: {d['label']} {d['b']}" for w, r in known.items()
             for d in identity_differences(first, r)["differ"]]
    said = (f"numpy {first.get('numpy')} ({first.get('numpy_simd')}), {first.get('blas')} "
            f"{first.get('blas_kernels')} kernels, {first.get('blas_threads')} BLAS thread(s)")
    return (f"numerical code: {said}" + (f" ({', '.join(pinned)} from the environment)" if pinned else "")
            + (f"; differs: {'; '.join(apart)}" if apart else " in every run"))
