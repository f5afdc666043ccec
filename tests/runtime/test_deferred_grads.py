"""Deferred zero_grad and clip under DataParallel, in every mode: the trajectory is bitwise the one
eager zeroing and clipping give, with accumulation, a frozen parameter, a head trained on some ranks
only and a .grad read between clip and step; replicas stay identical."""

import contextlib

import numpy as np
import pytest

from mpigrad.autograd import cross_entropy
from mpigrad.optim import Adam, clip_scale
from mpigrad.runtime import DataParallel, ZeroOptimizer

from mpi_helpers import assert_everywhere, assert_same_on_all_ranks, comm, make_data
from test_frozen_and_unused import Heads

pytestmark = pytest.mark.mpi


def _train(mode, deferred, steps=4):
    c = comm()
    model = Heads()
    model.body.weight.requires_grad = False
    dp = DataParallel(model, c, deterministic=mode == "deterministic", bucket_mb=1e-4,
                      micro_batches=2 * c.size if mode == "deterministic" else None)
    hyper = dict(lr=0.05, weight_decay=0.01)
    opt = ZeroOptimizer(dp, Adam, **hyper) if mode == "zero" else Adam(dp.parameters(), **hyper)
    head = "head_b" if c.rank == 1 else "head_a"
    seen = []
    for step in range(steps):
        if deferred:
            opt.zero_grad()
        else:
            for p in dp.parameters():
                if p.grad is not None:
                    p.grad.fill(0)
        for micro in range(2):
            x, y = make_data(4, seed=100 * step + 10 * c.rank + micro)
            with dp.no_sync() if micro == 0 else contextlib.nullcontext():
                cross_entropy(dp(x, head), y).backward()
        norm = dp.grad_norm()
        if deferred:
            opt.clip_grad_norm(0.01, total_norm=norm)
        else:
            assert norm > 0.01
            for p in dp.parameters():
                if p.grad is not None:
                    np.multiply(p.grad, clip_scale(norm, 0.01), out=p.grad)
        if step == 1:
            seen.append(dp.module.head_a.weight.grad.copy())  # a read between clip and step
        opt.step()
    return dp, seen


@pytest.mark.parametrize("mode", ["replicated", "zero", "deterministic"])
def test_deferred_zero_and_clip_give_the_eager_bits(mode):
    deferred, seen_d = _train(mode, True)
    eager, seen_e = _train(mode, False)
    same = all(np.array_equal(p.data, q.data) for p, q in zip(deferred.parameters(), eager.parameters()))
    assert_everywhere(same, f"{mode}: deferred zero/clip changed the parameters")
    grads = all((p.grad is None and q.grad is None) or np.array_equal(p.grad, q.grad)
                for p, q in zip(deferred.parameters(), eager.parameters()))
    assert_everywhere(grads, f"{mode}: .grad after step differs from the eagerly clipped gradient")
    assert_everywhere(np.array_equal(seen_d[0], seen_e[0]), f"{mode}: a .grad read between clip and step differs")
    assert_same_on_all_ranks([p.data for p in deferred.parameters()], "replicas differ")
