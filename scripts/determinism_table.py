"""How far the default mode drifts across world sizes, and what deterministic mode costs.

    python scripts/determinism_table.py [--steps 100]

Trains the default job (`mpigrad train`) at world sizes 1, 2 and 4 in both modes and prints a
Markdown table: max |difference| of the final parameters against world size 1 and the median
step time from metrics.jsonl. World 4 oversubscribes a 2-core machine: compare its times with care.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def train(out, world, deterministic, steps):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    sets = [f"steps={steps}", f"deterministic={str(deterministic).lower()}", "checkpoint_every=0",
            "sample_chars=0", "eval_every=0", "log_every=1"]
    command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(world), sys.executable, "-m",
               "mpigrad", "train", "--quiet", "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    subprocess.run(command, check=True, timeout=3600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    with np.load(out / "final.npz") as f:
        params = {k: f[k].astype(np.float64) for k in f.files}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return params, float(np.median([r["step_time"] for r in rows[5:]])) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    print(f"| mode | world | max abs diff vs world 1 after {args.steps} steps | median step (ms) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for deterministic in (False, True):
            reference = None
            for world in (1, 2, 4):
                params, ms = train(Path(tmp) / f"{deterministic}-{world}", world, deterministic, args.steps)
                reference = reference or params
                diff = max(float(np.max(np.abs(params[k] - reference[k]))) for k in params)
                mode = "deterministic" if deterministic else "default"
                print(f"| {mode} | {world} | {diff:.3g} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
