"""`mpigrad check-determinism`: a job at several world sizes, compared bit for bit.

Either the built-in job (`mpigrad train` with deterministic = true), or the user's own command
(`-- python train.py ...`) whose script records digests with `mpigrad.runtime.log_digest`.
"""

import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import ConfigError, load_config
from .determinism_compare import compare_digest_logs, read_digest_log
from .diff import compare_runs, identity_differences
from .launch_runs import LaunchTimeout, run_logged
from .run import RunError, read_identity, read_rows

# Forced on every run of the built-in job: the mode under test, and logging that finds the first
# diverging step exactly. None of them changes the trajectory.
FORCED = ("deterministic=true", "log_every=1", "digest_every=1")
DIGEST_LOG = "digests.jsonl"  # a command's run directory: what its log_digest calls wrote


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


def check_launcher(launcher):
    """The launcher as words for n = 1, or a one-line error for a template that cannot be filled."""
    try:
        words = shlex.split(launcher.format(n=1))
    except (KeyError, IndexError) as e:
        raise ConfigError(f"--launcher {launcher!r}: unknown placeholder {{{e.args[0]}}}; the only one is {{n}}, "
                          "the number of ranks (write {{ and }} for literal braces)") from None
    except ValueError as e:
        raise ConfigError(f"--launcher {launcher!r}: {e}") from None
    if "{n}" not in launcher:
        raise ConfigError(f"--launcher {launcher!r} must contain {{n}} where the number of ranks goes")
    return words


def forced_sets(config, overrides, worlds):
    """The --set items every run of the built-in job gets; refuses, before running anything, every
    world size the config's micro-batches cannot be split over."""
    model = load_config(config, overrides).model
    forced = [*FORCED, "sample_chars=0"] if model == "transformer" else list(FORCED)  # no text sample: faster
    for world in worlds:
        try:
            load_config(config, [*overrides, *forced], world)
        except ConfigError as e:
            raise ConfigError(f"world size {world}: {e}") from None
    return forced


def make_root(out):
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="mpigrad-determinism-"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: {'a file is in the way' if isinstance(e, FileExistsError) else e.strerror}")
    return root


class BuiltinJob:
    """`mpigrad train` of the config at each world size; compared with `mpigrad diff`'s rules."""

    def __init__(self, config, overrides, forced):
        self.config, self.sets = config, [*overrides, *forced]

    def command(self, run_dir):
        command = [sys.executable, "-m", "mpigrad", "train", "--quiet", "--overwrite", "--out", str(run_dir)]
        command += ["--config", self.config] if self.config else []
        return command + [a for item in self.sets for a in ("--set", item)], None

    def compare(self, run_dir, reference):
        """(bitwise equal, first diverging step, first differing parameter, median step ms); raises RunError."""
        step_times = [r["step_time"] for r in read_rows(run_dir).values() if "step_time" in r]
        median = f"{np.median(step_times) * 1e3:.1f}" if step_times else "-"
        if reference is None:
            return None, "-", "-", median
        report = compare_runs(str(reference), str(run_dir))
        s, differ = report["first_step"], report["parameters"]["differ"]
        return (report["equal"], f"{s['step']} ({s['field']})" if s else "-", differ[0]["name"] if differ else "-",
                median)


class UserCommand:
    """The user's command at each world size; its log_digest rows are compared."""

    def __init__(self, words):
        self.words = words

    def command(self, run_dir):
        env = {**os.environ, "MPIGRAD_DIGEST_LOG": str(run_dir / DIGEST_LOG)}
        return [w.replace("{out}", str(run_dir)) for w in self.words], env

    def compare(self, run_dir, reference):
        rows = read_digest_log(run_dir / DIGEST_LOG)
        if reference is None:
            return None, "-", "-", None
        first = compare_digest_logs(read_digest_log(reference / DIGEST_LOG), rows)
        if first is None:
            return True, "-", "-", None
        return False, f"{first['step']} ({first['field']})", first.get("part", "-"), None


def run_world(job, world, launcher, root, timeout):
    """One launch: (table row, ok, run directory or None when it failed)."""
    run_dir = root / f"world-{world}"
    run_dir.mkdir(exist_ok=True)
    (run_dir / DIGEST_LOG).unlink(missing_ok=True)
    command, env = job.command(run_dir)
    log, start = root / f"world-{world}.log", time.perf_counter()
    try:
        code = run_logged([*shlex.split(launcher.format(n=world)), *command], log, timeout, env)
    except LaunchTimeout:
        print(f"mpigrad check-determinism: world size {world}: no result after --timeout {timeout:g} s; ended the "
              f"launch (its output: {log}; pass a larger --timeout for longer runs)", file=sys.stderr, flush=True)
        return [str(world), "FAILED", f"timeout {timeout:g} s", f"see {log}", "-"], False, None
    if code != 0:
        return [str(world), "FAILED", f"exit {code}", f"see {log}", "-"], False, None
    return [str(world), f"{time.perf_counter() - start:.1f}"], True, run_dir


def print_table(rows, header_last):
    header = ["world", "bitwise equal", "first diverging step", "first differing parameter", header_last]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip(), flush=True)


def check_determinism_command(config, overrides, worlds_text, launcher, out, command=(), timeout=1800.0):
    """Exit 0 when every world size gave the first one's bits; 1 on a difference or failed run; 2 on bad
    input; 130 on Ctrl-C (the launch in progress is ended)."""
    start = time.perf_counter()
    try:
        worlds = parse_worlds(worlds_text)
        if command and (config or overrides):
            raise ConfigError("--config and --set describe the built-in job; with a command after --, leave them out")
        if not timeout > 0:
            raise ConfigError(f"--timeout {timeout:g}: expected a positive number of seconds")
        job = UserCommand(list(command)) if command else BuiltinJob(config, overrides,
                                                                   forced_sets(config, overrides, worlds))
        launcher = launcher or default_launcher()
        check_launcher(launcher)
        root = make_root(out)
    except ConfigError as e:
        print(f"mpigrad check-determinism: error: {e}", file=sys.stderr)
        return 2
    try:
        rows, all_equal = run_all(job, worlds, launcher, root, timeout)
    except KeyboardInterrupt:
        print(f"mpigrad check-determinism: interrupted; runs so far in {root}", file=sys.stderr, flush=True)
        return 130
    print_table(rows, "median step (ms)" if isinstance(job, BuiltinJob) else "run (s)")
    if isinstance(job, BuiltinJob):
        print(code_line(root, worlds), flush=True)
    verdict = "bitwise equal at world sizes " + ", ".join(map(str, worlds)) if all_equal else "NOT bitwise equal"
    keep = bool(out) or not all_equal
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    where = f"; runs and logs in {root}" if keep else ""
    print(f"{verdict} ({time.perf_counter() - start:.1f} s{where})", flush=True)
    return 0 if all_equal else 1


def run_all(job, worlds, launcher, root, timeout):
    """Every world size in turn, each compared with the first that ran; (table rows, all equal)."""
    rows, all_equal, reference = [], True, None
    for world in worlds:
        row, ok, run_dir = run_world(job, world, launcher, root, timeout)
        if ok:
            world_cell, seconds = row
            try:
                equal, step, name, last = job.compare(run_dir, reference)
                row = [world_cell, "reference" if equal is None else "yes" if equal else "NO", step, name,
                       seconds if last is None else last]
                ok = equal is not False
                reference = reference or run_dir
            except RunError as e:
                row += ["FAILED", "unreadable run", str(e), "-"]
                ok = False
        rows.append(row)
        all_equal &= ok
    return rows, all_equal


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
