"""A few steps of the job as `mpigrad train` runs them, timed: compute per micro-batch, the rest of the
step, and when each parameter's gradient is ready in the synchronising backward."""

import contextlib
import statistics
import time

import numpy as np

from mpigrad.optim import Adam
from mpigrad.runtime import DataParallel, GlobalBatches

from .data import load_data
from .models import build_model


class JobProbe:
    def __init__(self, cfg, comm):
        self.cfg, self.comm = cfg, comm
        self.data = load_data(cfg)
        self.batches = GlobalBatches(self.data.train.num_samples, cfg.global_batch, cfg.seed)
        self.model = build_model(cfg, self.data)
        self.micro_batches = cfg.global_batch // cfg.micro_batch

    def wrap(self):
        """DataParallel around the model (collective: after every rank has loaded its data)."""
        cfg, comm = self.cfg, self.comm
        self.dp = DataParallel(self.model, comm, deterministic=cfg.deterministic, micro_batches=self.micro_batches,
                               grad_comm_dtype=cfg.grad_comm_dtype)
        self.optimizer = Adam(self.dp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.mine = np.array_split(np.arange(self.micro_batches), comm.size)[comm.rank].tolist()
        self.ready = {}  # id(param) -> seconds into the synchronising backward
        self._backward_start = None
        reducer = self.dp.reducer
        if hasattr(reducer, "grad_ready"):
            inner = reducer.grad_ready

            def noting(param):
                self.ready[id(param)] = time.perf_counter() - self._backward_start
                inner(param)
            reducer.grad_ready = noting
        return self

    def micro_batch(self, i, step, sync):
        x, y = self.data.train.batch(self.batches.batch(step)[i * self.cfg.micro_batch:(i + 1) * self.cfg.micro_batch])
        with contextlib.nullcontext() if sync else self.dp.no_sync():
            loss = self.model.loss(self.dp(x), y)
            self._backward_start = time.perf_counter()
            loss.backward()
            return time.perf_counter() - self._backward_start

    def step(self, step):
        """Seconds of (compute per micro-batch, rest of the step, last backward, comm wait)."""
        start = time.perf_counter()
        self.optimizer.zero_grad()
        computes, backward = [], 0.0
        for i in self.mine:
            t0 = time.perf_counter()
            backward = self.micro_batch(i, step, i == self.mine[-1])
            computes.append(time.perf_counter() - t0)
        wait = self.dp.comm_time
        computes[-1] -= wait
        backward -= wait
        t1 = time.perf_counter()
        self.comm.allgather_obj(0.0)  # the loss gather of mpigrad train
        norm = self.dp.grad_norm()
        if self.cfg.clip_norm > 0:
            self.optimizer.clip_grad_norm(self.cfg.clip_norm, total_norm=norm)
        self.optimizer.step()
        return statistics.median(computes), time.perf_counter() - t1, backward, wait, time.perf_counter() - start

    def run(self, steps, warmup=2):
        rows = [self.step(s) for s in range(warmup + steps)][warmup:]
        return [statistics.median(column) for column in zip(*rows)]

    def bucket_ready(self, bucket_bytes):
        """(float32 bytes, seconds into backward when it can start) of each bucket of that size, in
        launch order (a bucket also waits for the one before it: they start in order)."""
        from mpigrad.runtime.buckets import make_buckets
        out, latest = [], 0.0
        end = max(self.ready.values(), default=0.0)
        for b in make_buckets(self.dp.groups, int(bucket_bytes)):
            latest = max([latest, *[self.ready.get(id(p), end) for p in b.params]])
            out.append((b.grad.nbytes, latest))
        return out

    def plain_micro_batch(self):
        """Forward + backward of one micro-batch on a copy of the model outside DataParallel."""
        model = build_model(self.cfg, self.data)
        x, y = self.data.train.batch(self.batches.batch(0)[:self.cfg.micro_batch])

        def run():
            for p in model.parameters():
                p.grad = None
            model.loss(model(x), y).backward()
        return run
