"""Data-parallel training from Python: an MLP classifier on generated data (no download).

    mpiexec -n 2 python examples/train_mlp.py --out runs/example          # train, checkpoint every 20 steps
    mpiexec -n 2 python examples/train_mlp.py --out runs/example --resume # continue from the checkpoint
    mpigrad check-determinism --worlds 1,2,4 -- python examples/train_mlp.py --deterministic --out {out}

The global batch is fixed (64 samples per step, split over the ranks), so 1, 2 or 4 ranks see
the same samples at each step. Evaluation runs on every rank over its share of the validation
rows; rank 0 prints. The checkpoint holds the sampler's position, so a run stopped in the middle
of an epoch resumes at the very next batch, bit for bit at the same world size. Ctrl-C (SIGINT)
or SIGTERM stops the run at the end of a step with a checkpoint (exit 130 / 143). With
--deterministic every world size that divides 8 gives the same bits.
"""

import argparse
import contextlib
import itertools
import os
import sys

import numpy as np

from mpigrad.autograd import cross_entropy, nn, no_grad
from mpigrad.optim import Adam
from mpigrad.runtime import (DataParallel, DistributedSampler, GlobalBatches, StopSignal, init, load_checkpoint,
                             log_digest, save_checkpoint, state_digest)

GLOBAL_BATCH = 64
MICRO_BATCHES = 8  # --deterministic: micro-batches of a step over all ranks


def make_data(samples=4096, features=16, classes=4, seed=0):
    """Gaussian blobs: class c is centre c plus unit noise; the last 512 rows are the validation set."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.5, (classes, features))
    y = rng.integers(0, classes, samples)
    X = (centres[y] + rng.standard_normal((samples, features))).astype(np.float32)
    return (X[:-512], y[:-512]), (X[-512:], y[-512:])


def evaluate(model, X, y, comm):
    """Mean loss and accuracy over all rows, each rank taking a contiguous share; the same on every rank."""
    mine = np.array_split(np.arange(len(y)), comm.size)[comm.rank]
    model.eval()
    with no_grad():
        logits = model(X[mine])
        loss_sum = cross_entropy(logits, y[mine]).item() * len(mine)
        correct = int(np.count_nonzero(logits.data.argmax(axis=1) == y[mine]))
    model.train()
    loss_sum, correct = comm.allreduce_obj(np.array([loss_sum, correct]))
    return loss_sum / len(y), correct / len(y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--out", default="runs/example")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.mpc")
    parser.add_argument("--deterministic", action="store_true", help="the same bits at world sizes 1, 2, 4 and 8")
    args = parser.parse_args()

    comm = init()  # MPI once; from now on an uncaught error on any rank ends every rank
    if GLOBAL_BATCH % comm.size:
        raise SystemExit(f"the global batch {GLOBAL_BATCH} must split evenly: use a world size that divides it")
    local_batch = GLOBAL_BATCH // comm.size
    (X, y), (X_val, y_val) = make_data()

    model = nn.MLP([X.shape[1], 64, 64, 4], activation="relu", rng=np.random.default_rng(0))
    if args.deterministic:
        return train_deterministic(args, comm, model, (X, y), (X_val, y_val))
    dp = DataParallel(model)  # checks every rank holds the same structure, broadcasts rank 0's values
    opt = Adam(dp.parameters(), lr=3e-3)
    # drop_last: every rank gets the same number of samples; rank r reads order[r::P] of each epoch's permutation
    sampler = DistributedSampler(len(y), shuffle=True, seed=0, drop_last=True)
    checkpoint = os.path.join(args.out, "checkpoint.mpc")
    step = 0
    if args.resume:
        extra = load_checkpoint(checkpoint, model, opt)  # every rank reads it; parameters and Adam's moments
        step = extra["step"]
        sampler.load_state_dict(extra["sampler"])  # epoch and position inside it

    batches = iter(sampler)  # starts at the sampler's position; iterating advances it
    stop = StopSignal()  # from here on SIGINT/SIGTERM only set a flag, read at the end of each step
    while step < args.steps:
        indices = list(itertools.islice(batches, local_batch))
        if len(indices) < local_batch:  # end of the epoch (a shorter tail is dropped): next permutation
            sampler.set_epoch(sampler.epoch + 1)
            batches = iter(sampler)
            continue
        opt.zero_grad()
        loss = cross_entropy(dp(X[indices]), y[indices])
        loss.backward()  # gradients are averaged over the ranks while backward runs
        opt.clip_grad_norm(1.0)  # the averaged gradients are identical on every rank, so is the norm
        opt.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            train_loss = comm.allreduce_obj(loss.item()) / comm.size  # collectives: every rank takes part
            val_loss, val_accuracy = evaluate(model, X_val, y_val, comm)
            if comm.is_main:
                print(f"step {step}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                      f"val accuracy {val_accuracy:.3f}", flush=True)
        log_digest(step, model, opt)  # for `mpigrad check-determinism -- ...`; does nothing otherwise
        if step % args.checkpoint_every == 0 or step == args.steps:
            save_checkpoint(checkpoint, model, opt, step=step, sampler=sampler.state_dict())  # rank 0 writes
        if stop.requested():  # a collective: every rank stops after the same step
            save_checkpoint(checkpoint, model, opt, step=step, sampler=sampler.state_dict())
            return stopped(stop, step, checkpoint, comm)
    return done(step, model, opt, comm)


def train_deterministic(args, comm, model, data, val):
    """The same training, bitwise equal at every world size dividing MICRO_BATCHES: each step's batch
    comes from GlobalBatches (a function of the step alone), cut into micro-batches; rank r runs a
    contiguous block of them, and DataParallel sums their gradients along one fixed tree."""
    (X, y), (X_val, y_val) = data, val
    if MICRO_BATCHES % comm.size:
        raise SystemExit(f"--deterministic: use a world size that divides {MICRO_BATCHES}")
    dp = DataParallel(model, deterministic=True, micro_batches=MICRO_BATCHES)
    opt = Adam(dp.parameters(), lr=3e-3)
    batches = GlobalBatches(len(y), GLOBAL_BATCH, seed=0)
    checkpoint = os.path.join(args.out, "checkpoint.mpc")
    step = load_checkpoint(checkpoint, model, opt)["step"] if args.resume else 0
    stop = StopSignal()
    while step < args.steps:
        opt.zero_grad()
        mine = np.split(batches.rank_block(step, comm.rank, comm.size), MICRO_BATCHES // comm.size)
        for i, rows in enumerate(mine):  # only the rank's last backward communicates
            with dp.no_sync() if i < len(mine) - 1 else contextlib.nullcontext():
                cross_entropy(dp(X[rows]), y[rows]).backward()
        opt.clip_grad_norm(1.0)
        opt.step()
        step += 1
        log_digest(step, model, opt)
        if step % args.eval_every == 0 or step == args.steps:
            val_loss, val_accuracy = evaluate(model, X_val, y_val, comm)
            if comm.is_main:
                print(f"step {step}: val loss {val_loss:.4f}, val accuracy {val_accuracy:.3f}", flush=True)
        stopping = stop.requested()  # a collective: every rank stops after the same step
        if step % args.checkpoint_every == 0 or step == args.steps or stopping:
            save_checkpoint(checkpoint, model, opt, step=step)
        if stopping:
            return stopped(stop, step, checkpoint, comm)
    return done(step, model, opt, comm)


def stopped(stop, step, checkpoint, comm):
    if comm.is_main:
        print(f"{stop.signal_name}: stopped after step {step}, checkpoint in {checkpoint}", file=sys.stderr, flush=True)
    return stop.exit_code  # 130 for SIGINT, 143 for SIGTERM


def done(step, model, opt, comm):
    digest = state_digest(model, opt)
    if comm.is_main:
        print(f"done: {step} steps on {comm.size} rank(s), state digest {digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
