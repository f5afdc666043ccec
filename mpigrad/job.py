"""What a training job keeps across interruptions: rotating checkpoints, resume, signal shutdown."""

import glob
import os
import re
import signal

from mpigrad.runtime import load_checkpoint, save_checkpoint
from .config import ConfigError, trajectory_mismatch


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
        save_checkpoint(self.path(step), job.model, job.optimizer, step=step, skipped=job.skipped,
                        schedule=job.schedule.state_dict(), config=vars(job.cfg), world_size=self.comm.size)
        if self.comm.is_main:
            for old in self.existing()[:-self.keep]:
                os.unlink(old)


def resume_state(job, resume):
    """(step, skipped steps) to start from: (0, 0) for a new run, else the newest checkpoint's."""
    if not resume:
        return 0, 0
    found = job.checkpoints.existing()
    if not found:
        raise ConfigError(f"resume = true but {job.checkpoints.directory} holds no checkpoint")
    extra = load_checkpoint(found[-1], job.model, job.optimizer)
    problem = trajectory_mismatch(job.cfg, extra["config"])
    if problem:
        raise ConfigError(f"cannot resume from {found[-1]}: {problem}")
    if extra["step"] > job.cfg.steps:
        raise ConfigError(f"cannot resume from {found[-1]}: it is at step {extra['step']}, past steps={job.cfg.steps}")
    job.schedule.load_state_dict(extra["schedule"])
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
