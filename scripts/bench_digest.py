"""What `digest_every` costs: state_digest of the default job's model and Adam state against one training step.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_digest.py [--reps 30]

One process; the step is the default job's (forward, backward, Adam over global_batch / micro_batch
micro-batches), the digests are taken of the same model and optimizer, interleaved with the steps.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from timing import interleaved_medians  # noqa: E402
from machine import machine_line  # noqa: E402

from mpigrad.config import load_config  # noqa: E402
from mpigrad.data import load_data  # noqa: E402
from mpigrad.models import build_model  # noqa: E402
from mpigrad.optim import Adam  # noqa: E402
from mpigrad.runtime import GlobalBatches, state_digest  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    cfg = load_config()
    data = load_data(cfg)
    model = build_model(cfg, data)
    opt = Adam(model.parameters(), lr=cfg.lr)
    batches = GlobalBatches(data.train.num_samples, cfg.global_batch, cfg.seed)
    state = {"step": 0}

    def step():
        opt.zero_grad()
        block = batches.batch(state["step"])
        for i in range(0, len(block), cfg.micro_batch):
            x, y = data.train.batch(block[i:i + cfg.micro_batch])
            model.loss(model(x), y).backward()
        opt.step()
        state["step"] += 1

    times = interleaved_medians({"step": step, "digest with optimizer": lambda: state_digest(model, opt),
                                 "digest of parameters": lambda: state_digest(model)}, args.reps)
    size = sum(p.size for p in model.parameters())
    print(f"default job: {size:,} parameters; medians of {args.reps} interleaved rounds")
    for name, ms in times.items():
        share = f" ({100 * ms / times['step']:.1f} % of a step)" if name != "step" else ""
        print(f"  {name}: {ms:.2f} ms{share}")
    print(f"digest_every = 10 adds {100 * times['digest with optimizer'] / times['step'] / 10:.2f} % to training; "
          f"digest_every = 1 adds {100 * times['digest with optimizer'] / times['step']:.1f} %")


if __name__ == "__main__":
    main()
