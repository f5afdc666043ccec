"""What a training job keeps across interruptions: rotating checkpoints, resume, signal shutdown."""

import os
import signal

from mpigrad.runtime import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, trajectory_mismatch
from .fingerprint import check_recorded, describe, same
from .rundir import checkpoint_files, checkpoint_name


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


def check_same_arguments(comm, cfg, out, fingerprint):
    """Refuse ranks started with different config values or --out (an MPMD launch gone wrong), or that read
    data files of different contents (node-local copies that differ)."""
    everyone = comm.allgather_obj(({**vars(cfg), "--out": out}, fingerprint))
    first, first_print = everyone[0]
    for rank, (theirs, their_print) in enumerate(everyone):
        for key, value in first.items():
            if theirs[key] != value:
                said, then = (f"{key} {v}" if key == "--out" else f"{key} = {v!r}" for v in (theirs[key], value))
                raise ConfigError(f"rank {rank} was started with {said}, rank 0 with {then}: every rank needs "
                                  "the same arguments")
    for rank, (_, their_print) in enumerate(everyone):
        if not same(their_print, first_print):
            role = next(r for r in first_print if describe(their_print, r) != describe(first_print, r))
            raise ConfigError(f"rank {rank} read data file {first_print[role]['path']} as "
                              f"{describe(their_print, role)}, rank 0 as {describe(first_print, role)}: every rank "
                              "needs the same data")


class Checkpoints:
    """DIR/step-00000100.ckpt files (9 digits and more past step 99,999,999); the newest `keep` stay on disk."""

    def __init__(self, directory, keep, comm):
        self.directory, self.keep, self.comm = directory, keep, comm

    def path(self, step):
        return os.path.join(self.directory, checkpoint_name(step))

    def existing(self):
        """Checkpoint paths sorted by step (temporary files of an interrupted write are ignored)."""
        return checkpoint_files(self.directory)

    def save(self, job, step):
        """A failed write (a full disk) stops the job on every rank: the previous checkpoint stays intact."""
        try:
            save_checkpoint(self.path(step), job.model, job.optimizer, step=step, skipped=job.skipped,
                            schedule=job.schedule.state_dict(), config=vars(job.cfg), world_size=self.comm.size,
                            data_fingerprint=job.data.fingerprint)
        except CheckpointError as e:
            raise CheckpointError(f"{e}; stopping at step {step} ({self.intact_note(self.path(step))})") from None
        if self.comm.is_main:
            for old in self.existing()[:-self.keep]:
                os.unlink(old)

    def intact_note(self, failed=None):
        """What a stopped run can continue from, once there is room again."""
        previous = [p for p in self.existing() if p != failed]
        return (f"{previous[-1]} is intact: once there is room, continue from it with --set resume=true"
                if previous else "there is no earlier checkpoint: once there is room, start the run again")


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
    check_recorded(extra.get("data_fingerprint"), job.data.fingerprint, path)
    if extra["step"] > job.cfg.steps:
        raise ConfigError(f"cannot resume from {path}: it is at step {extra['step']}, past steps={job.cfg.steps}")
    load_checkpoint(path, job.model, job.optimizer)
    job.schedule.load_state_dict(extra["schedule"])
    return extra["step"], extra["skipped"]


class Shutdown:
    """SIGINT/SIGTERM only set a flag; all ranks agree at the end of a step, checkpoint and exit."""

    def __init__(self, comm):
        self.comm, self.signum, self.error = comm, 0, None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._note)

    def _note(self, signum, frame):
        self.signum = signum

    def requested(self, error=None):
        """Whether any rank was signalled or failed to write (`error`, one line); the same answer on every rank."""
        everyone = self.comm.allgather_obj((self.signum, error))
        self.signum = max(signum for signum, _ in everyone)
        self.error = next((e for _, e in everyone if e), None)
        return self.signum != 0 or self.error is not None

    @property
    def signal_name(self):
        return signal.Signals(self.signum).name
