"""What a training job keeps across interruptions: rotating checkpoints, resume, signal shutdown."""

import glob
import os
import re
import shutil
import signal

from mpigrad.runtime import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, trajectory_mismatch


def vote(comm, work):
    """Run work() on this rank, then one allgather: its result everywhere, or the same ConfigError everywhere.

    The failing rank's message wins, whichever rank it is, so a file one rank cannot read ends the
    whole job with that rank's words instead of leaving the others in their next collective.
    """
    try:
        result, error = work(), None
    except (ConfigError, CheckpointError) as e:
        result, error = None, str(e)
    errors = comm.allgather_obj(error)
    failed = [(rank, message) for rank, message in enumerate(errors) if message]
    if failed:
        rank, message = failed[0]
        everywhere = len(failed) == comm.size and all(m == message for _, m in failed)
        raise ConfigError(message if everywhere else f"rank {rank}: {message}")
    return result


def check_same_arguments(comm, cfg, out):
    """Refuse ranks started with different config values or --out (an MPMD launch gone wrong)."""
    everyone = comm.allgather_obj({**vars(cfg), "--out": out})
    for rank, theirs in enumerate(everyone):
        for key, value in everyone[0].items():
            if theirs[key] != value:
                said, first = (f"{key} {v}" if key == "--out" else f"{key} = {v!r}" for v in (theirs[key], value))
                raise ConfigError(f"rank {rank} was started with {said}, rank 0 with {first}: every rank needs "
                                  "the same arguments")


class Checkpoints:
    """DIR/step-00000100.ckpt files; the newest `keep` stay on disk."""

    def __init__(self, directory, keep, comm):
        self.directory, self.keep, self.comm = directory, keep, comm

    def path(self, step):
        return os.path.join(self.directory, f"step-{step:08d}.ckpt")

    def existing(self):
        """Checkpoint paths sorted by step (temporary files of an interrupted write are ignored)."""
        found = glob.glob(os.path.join(self.directory, "step-*.ckpt"))
        return sorted(p for p in found if re.fullmatch(r"step-\d{8}\.ckpt", os.path.basename(p)))

    def save(self, job, step):
        """A failed write (a full disk) stops the job on every rank: the previous checkpoint stays intact."""
        try:
            save_checkpoint(self.path(step), job.model, job.optimizer, step=step, skipped=job.skipped,
                            schedule=job.schedule.state_dict(), config=vars(job.cfg), world_size=self.comm.size)
        except CheckpointError as e:
            previous = [p for p in self.existing() if p != self.path(step)]
            then = (f"{previous[-1]} is intact: once there is room, continue from it with --set resume=true"
                    if previous else "there is no earlier checkpoint: once there is room, start the run again")
            raise CheckpointError(f"{e}; stopping at step {step} ({then})") from None
        if self.comm.is_main:
            for old in self.existing()[:-self.keep]:
                os.unlink(old)


# What a run leaves in --out; a new run refuses a directory holding any of them (unless told to overwrite)
RUN_FILES = ("config.toml", "metrics.jsonl", "final.npz", "checkpoints")


def claim_out(out, overwrite):
    """Rank 0, new run: refuse an --out that holds another run, or clear that run's files first."""
    found = [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]
    if not found:
        return
    if not overwrite:
        raise ConfigError(f"--out {out} already holds a run ({', '.join(found)}); continue it with --resume {out}, "
                          "or pass --overwrite to replace it")
    for name in found:
        path = os.path.join(out, name)
        try:
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        except OSError as e:
            raise ConfigError(f"--overwrite: cannot remove {path}: {e.strerror or e}") from None


def newest_checkpoint(checkpoints):
    """Rank 0's newest checkpoint path (decided once, so every rank reads the same file)."""
    found = checkpoints.existing()
    if not found:
        raise ConfigError(f"resume = true but {checkpoints.directory} holds no checkpoint")
    return found[-1]


def resume_state(job, path):
    """(step, skipped steps) to start from: (0, 0) for a new run, else those of checkpoint `path`."""
    if path is None:
        return 0, 0
    # the config first: a checkpoint of another trajectory is refused naming the key, not by a shape error
    extra = load_checkpoint(path, job.model, None)
    problem = trajectory_mismatch(job.cfg, extra["config"])
    if problem:
        raise ConfigError(f"cannot resume from {path}: {problem}")
    if extra["step"] > job.cfg.steps:
        raise ConfigError(f"cannot resume from {path}: it is at step {extra['step']}, past steps={job.cfg.steps}")
    load_checkpoint(path, job.model, job.optimizer)
    try:
        job.schedule.load_state_dict(extra["schedule"])
    except ValueError as e:  # every rank read the same file, so every rank raises this
        raise CheckpointError(f"checkpoint {path} does not fit this schedule: {e}") from None
    return extra["step"], extra["skipped"]


class Shutdown:
    """SIGINT/SIGTERM only set a flag; all ranks agree at the end of a step, checkpoint and exit."""

    def __init__(self, comm):
        self.comm, self.signum = comm, 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._note)

    def _note(self, signum, frame):
        self.signum = signum

    def requested(self):
        self.signum = self.comm.allreduce_obj(self.signum, op="max")
        return self.signum != 0

    @property
    def signal_name(self):
        return signal.Signals(self.signum).name
