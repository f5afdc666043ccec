"""`mpigrad train`: the training loop. Every rank runs it; rank 0 alone writes files and prints."""

import contextlib
import math
import os
import resource
import sys
import time

import numpy as np

from mpigrad.optim import Adam, CosineLR, clip_scale

from mpigrad.runtime.compression import overflow_message
from mpigrad.runtime import CheckpointError, DataParallel, GlobalBatches, ZeroOptimizer, init, progress, state_digest
from mpigrad.runtime.checkpoint import write_atomically
from mpigrad.runtime.identity import IdentityError, recorded

from .config import ConfigError, load_config, resume_request, to_toml
from .data import load_data
from .evaluate import count_correct, validation_metrics
from .fingerprint import data_fingerprint, to_toml as fingerprint_toml
from .job import Checkpoints, Shutdown, check_same_arguments, newest_checkpoint, resume_state, vote
from .metrics import MetricsLog, Progress, StepTimes
from .models import build_model
from .run import identity_toml
from .rundir import RunDirectory
from .stragglers import Stragglers


def train_command(config_path, overrides, out, quiet, overwrite=False, resume_dir=None):
    """Run the job; returns the exit code (0 done, 2 bad input, 1 stopped on NaN, 128+n on a signal).

    `resume_dir` (--resume DIR) continues the run in DIR with its own config.toml.
    """
    comm = init()
    run_dir = RunDirectory(resume_dir if resume_dir is not None else out or "runs/train")
    try:  # the lock rank 0 takes on --out lasts until the job ends here (or its process does)
        return _train(comm, run_dir, config_path, overrides, out, quiet, overwrite, resume_dir)
    finally:
        run_dir.release()


def _train(comm, run_dir, config_path, overrides, out, quiet, overwrite, resume_dir):
    try:
        job = Job(comm, run_dir, config_path, overrides, out, quiet, overwrite, resume_dir)
    except (ConfigError, CheckpointError, IdentityError) as e:
        # every check ends in a vote or a collective, so every rank is here with the same message
        if comm.is_main:
            print(f"mpigrad train: error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        return job.run()
    except CheckpointError as e:  # a failed checkpoint write, raised on every rank together
        if comm.is_main:
            print(f"mpigrad train: error: {e}", file=sys.stderr, flush=True)
        return 1


def make_schedule(cfg, optimizer):
    """Linear warm-up over warmup_steps, then a cosine from lr to min_lr over the next decay_steps."""
    return CosineLR(optimizer, total_steps=cfg.warmup_steps + cfg.decay_steps, warmup_steps=cfg.warmup_steps,
                    min_lr=cfg.min_lr)


class Job:
    """Everything one training run holds: data, model, optimizer, schedule, checkpoints, logs."""

    def __init__(self, comm, run_dir, config_path, overrides, out, quiet, overwrite=False, resume_dir=None):
        self.comm, self.run_dir, self.out = comm, run_dir, run_dir.path
        self.write_error = None  # rank 0's failed metrics write: every rank stops at the end of the step
        # local work first, then one vote: no rank enters a collective while another has failed
        self.cfg, self.data, self.batches, self.model = vote(
            comm, lambda: self.prepare(config_path, overrides, out, resume_dir))
        cfg = self.cfg
        check_same_arguments(comm, cfg, self.out, self.data.fingerprint)
        init(timeout=cfg.step_timeout)  # again: the same value on every rank, checked just above
        micro_batches = cfg.global_batch // cfg.micro_batch  # of a step, over all ranks
        self.dp = DataParallel(self.model, comm, deterministic=cfg.deterministic, micro_batches=micro_batches,
                               grad_comm_dtype=cfg.grad_comm_dtype)
        hyper = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.optimizer = ZeroOptimizer(self.dp, Adam, **hyper) if cfg.zero else Adam(self.dp.parameters(), **hyper)
        self.schedule = make_schedule(cfg, self.optimizer)
        self.checkpoints = Checkpoints(os.path.join(self.out, "checkpoints"), cfg.keep_checkpoints, comm)
        resume_from = vote(comm, lambda: self.claim_out(overwrite) if comm.is_main else None)
        resume_from = comm.bcast_obj(resume_from)
        self.step, self.skipped = resume_state(self, resume_from)
        vote(comm, self.open_outputs if comm.is_main else lambda: None)
        tokens = cfg.context if cfg.model == "transformer" else 1
        self.unit = ("tokens" if tokens > 1 else "samples", tokens)
        self.times = StepTimes(start_step=self.step, elapsed_before=self.metrics.elapsed_before if comm.is_main else 0)
        self.progress = Progress(cfg.steps, self.step, comm.is_main and not quiet, *self.unit, times=self.times,
                                 samples_per_step=cfg.global_batch)
        if resume_from:
            self.progress.write(f"mpigrad: resumed from step {self.step} of {resume_from}")
        self.micro_batches = micro_batches
        # this rank's micro-batches of the step: a contiguous run, one more on the first K mod P ranks
        self.my_micro_batches = np.array_split(np.arange(micro_batches), comm.size)[comm.rank].tolist()
        self.stragglers = Stragglers()

    def prepare(self, config_path, overrides, out, resume_dir):
        """This rank's config, data, batch order and model: file reads only, no communication."""
        if resume_dir is not None:
            if config_path is not None or out not in (None, resume_dir):
                what = "--config" if config_path is not None else "--out"
                raise ConfigError(f"--resume {resume_dir} continues in {resume_dir}; leave out {what}")
            config_path, overrides = resume_request(resume_dir, overrides)
        cfg = load_config(config_path, overrides, self.comm.size)
        init(timeout=cfg.step_timeout)  # local: this rank's watchdog covers its data loading and the vote after it
        progress("loading data")
        data = load_data(cfg)
        data.fingerprint = data_fingerprint(cfg)  # compared across ranks below, recorded, checked on resume
        try:
            batches = GlobalBatches(data.train.num_samples, cfg.global_batch, cfg.seed)
        except ValueError as e:
            raise ConfigError(f"data {data.source}: {e}") from None
        model = build_model(cfg, data)
        progress("start-up vote")  # what a rank's watchdog names while it waits for a slower or stopped one
        return cfg, data, batches, model

    def claim_out(self, overwrite):
        """Rank 0: lock --out; the checkpoint to resume from, or None after making --out free for a new run."""
        if self.cfg.resume and overwrite:
            raise ConfigError("--overwrite starts a new run in place of the old one; it cannot be combined "
                              "with resume")
        if self.cfg.resume and not os.path.isdir(self.out):
            return newest_checkpoint(self.checkpoints)  # refused, naming it, before a directory is made
        self.run_dir.lock()  # before anything in --out is written or deleted
        self.run_dir.check_links()
        if self.cfg.resume:
            self.run_dir.remove_temporaries()
            return newest_checkpoint(self.checkpoints)
        self.run_dir.claim_for_new_run(overwrite)
        return None

    def open_outputs(self):
        """Rank 0: the run's marker, config.toml and metrics.jsonl in --out (each replaced by rename, so a link
        there is replaced, never followed). A resume first removes the old final.npz: it is no longer the newest."""
        try:
            self.run_dir.mark()
            if self.cfg.resume:
                self.run_dir.remove(self.run_dir.file("final.npz"))
            text = to_toml(self.cfg) + fingerprint_toml(self.data.fingerprint) + identity_toml(recorded())
            write_atomically(self.run_dir.file("config.toml"), lambda f: f.write(text.encode()))
        except OSError as e:
            raise ConfigError(f"--out {self.out}: {e.strerror or e}") from None
        self.metrics = MetricsLog(os.path.join(self.out, "metrics.jsonl"), self.step if self.cfg.resume else None)

    def run(self):
        shutdown = Shutdown(self.comm)
        self.progress.write(f"mpigrad: {self.comm.size} rank(s), {self.data.describe()}, "
                            f"{sum(p.size for p in self.model.parameters()):,} parameters")
        code = 0
        while self.step < self.cfg.steps:
            row = self.train_step()
            if row is None:
                code = 1  # the checkpoint below holds the state before the failed step
                break
            self.step += 1
            self.after_step(row)
            if shutdown.requested(self.write_error):
                if shutdown.error:  # no checkpoint: the disk that refused a metrics row is likely full
                    if self.comm.is_main:
                        print(f"mpigrad train: error: {shutdown.error}; stopping at step {self.step} "
                              f"({self.checkpoints.intact_note()})", file=sys.stderr, flush=True)
                    return 1
                if self.comm.is_main:
                    print(f"mpigrad train: {shutdown.signal_name}: stopping after step {self.step}, writing a "
                          "checkpoint", file=sys.stderr, flush=True)
                code = 128 + shutdown.signum
                break
        self.checkpoints.save(self, self.step)
        if self.times.step_times:
            self.progress.write(self.times.summary(self.cfg.global_batch, *self.unit))
        self.progress.close()
        return self.finish(shutdown) if code == 0 else code

    def train_step(self):
        """One optimizer step over the global batch; the metrics row, or None to stop on NaN/Inf."""
        cfg, start, blocked = self.cfg, time.perf_counter(), self.comm.blocked_time
        progress("forward", self.step + 1)
        self.optimizer.zero_grad()
        losses, correct, phases = self.accumulate(self.batches.batch(self.step))
        progress("loss all-gather", self.step + 1)
        everyone = self.comm.allgather_obj((losses, correct))  # fsum: exact, so the same at every world size
        every_loss = [v for rank_losses, _ in everyone for v in rank_losses]
        loss = math.fsum(every_loss) / len(every_loss)
        progress("optimizer step", self.step + 1)
        optimizer_start = time.perf_counter()
        norm = self.dp.grad_norm()  # summed from per-bucket partials taken during the all-reduce
        row = {"step": self.step + 1, "loss": loss, "lr": self.optimizer.learning_rate, "grad_norm": norm}
        if cfg.model == "mlp":
            row["accuracy"] = sum(c for _, c in everyone) / cfg.global_batch
        if not (math.isfinite(loss) and math.isfinite(norm)):  # the same values, so the same decision, everywhere
            if cfg.nonfinite == "stop":
                if self.comm.is_main:
                    why = overflow_message(cfg.grad_comm_dtype, norm) if math.isfinite(loss) else None
                    print(f"mpigrad train: stopping at step {self.step + 1}: {why}" if why else
                          f"mpigrad train: stopping: non-finite loss {loss} or gradient norm {norm} at step "
                          f"{self.step + 1} (set nonfinite = \"skip\" to skip such steps)", file=sys.stderr, flush=True)
                return None
            self.skipped += 1
        else:
            if cfg.clip_norm > 0:
                self.optimizer.clip_grad_norm(cfg.clip_norm, total_norm=norm)
            self.optimizer.step()
        self.schedule.step()
        phases["optimizer_time"] = time.perf_counter() - optimizer_start
        clipped = norm * clip_scale(norm, cfg.clip_norm) if cfg.clip_norm > 0 else norm
        step_time = time.perf_counter() - start
        row.update(grad_norm_clipped=clipped, skipped_steps=self.skipped, step_time=step_time,
                   comm_time=self.dp.comm_time, **phases, samples_per_s=cfg.global_batch / step_time,
                   world_size=self.comm.size, rank_step_time=step_time - (self.comm.blocked_time - blocked))
        return row

    def accumulate(self, batch):
        """Forward and backward over this rank's micro-batches of the global batch; the last one averages.

        Returns (losses, correct predictions, {forward_time, backward_time}) with backward_time
        excluding the wait for gradient communication at its end (comm_time).
        """
        cfg, mine = self.cfg, self.my_micro_batches
        losses, correct, forward, backward = [], 0, 0.0, 0.0
        for i in mine:
            x, y = self.data.train.batch(batch[i * cfg.micro_batch:(i + 1) * cfg.micro_batch])
            with self.dp.no_sync() if i != mine[-1] else contextlib.nullcontext():
                t0 = time.perf_counter()
                logits = self.dp(x)
                loss = self.model.loss(logits, y)
                t1 = time.perf_counter()
                loss.backward()  # DataParallel weights each micro-batch by its samples, in both modes
                forward, backward = forward + t1 - t0, backward + time.perf_counter() - t1
                losses.append(loss.item())
                correct += count_correct(logits, y) if cfg.model == "mlp" else 0
        return losses, correct, {"forward_time": forward, "backward_time": max(0.0, backward - self.dp.comm_time)}

    def after_step(self, row):
        cfg, step = self.cfg, self.step
        last = step == cfg.steps
        if (cfg.eval_every and step % cfg.eval_every == 0) or last:
            row.update(validation_metrics(self.model, self.data.val, cfg, self.comm))
        if cfg.check_replicas_every and step % cfg.check_replicas_every == 0:
            progress("replica check", step)
            self.dp.check_replicas(self.optimizer)
        if cfg.digest_every and (step % cfg.digest_every == 0 or last):
            progress("state digest", step)
            row["digest"] = state_digest(self.model, self.optimizer)  # on every rank: ZeRO's state is collective
        logged = step % cfg.log_every == 0 or last or "val_loss" in row or "digest" in row
        progress("metrics", step)
        if logged:  # the same decision on every rank, so the gather below is collective
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            everyone = self.comm.allgather_obj((rss, row["rank_step_time"]))
            row["max_rss_mb"], row["rank_step_time"] = [m for m, _ in everyone], [t for _, t in everyone]
            for warning in self.stragglers.check(step, row["rank_step_time"]) if self.comm.is_main else ():
                print(warning, file=sys.stderr, flush=True)
        self.times.record(step, row)
        if self.comm.is_main and logged:
            try:
                self.metrics.write({**row, "time": time.time(), "elapsed": self.times.elapsed()})
            except OSError as e:
                self.write_error = f"cannot write {self.metrics.path}: {e.strerror or e}"
        self.progress.update(step, row, logged)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not last:
            self.checkpoints.save(self, step)

    def finish(self, shutdown):
        """Rank 0: final.npz (replaced atomically), then the sample a signal cuts short; the exit code."""
        if not self.comm.is_main:
            return 0
        progress("writing final.npz")
        path = self.run_dir.file("final.npz")
        try:
            write_atomically(path, lambda f: np.savez(f, **self.model.state_dict()))
        except OSError as e:
            print(f"mpigrad train: error: cannot write {path}: {e.strerror or e} (the checkpoint "
                  f"{self.checkpoints.path(self.step)} holds the same parameters)", file=sys.stderr, flush=True)
            return 1
        if self.cfg.model == "transformer" and self.cfg.sample_chars:
            rng = np.random.default_rng([self.cfg.seed, self.step])
            prompt = self.data.val.ids[:self.cfg.context // 2] if self.data.val.num_samples else self.data.train.ids[:8]
            ids = self.model.generate(prompt, self.cfg.sample_chars, rng, stop=lambda: shutdown.signum)
            if shutdown.signum:
                print(f"mpigrad train: {shutdown.signal_name}: stopped the end-of-run sample ({path} is written)",
                      file=sys.stderr, flush=True)
                return 128 + shutdown.signum
            self.progress.write(f"--- sample after {self.step} steps (prompt, then generated) ---\n"
                                f"{self.data.decode(prompt)}|{self.data.decode(ids)}\n---")
        self.progress.write(f"mpigrad: wrote {path}")
        return 0

