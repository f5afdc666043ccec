"""A run directory (`mpigrad train --out DIR`): its owner (a lock), its marker, and what mpigrad may delete in it.

Only rank 0 touches these files. The lock is a `flock` on DIR/.mpigrad.lock, held for the job's life;
the kernel drops it when the process ends, however it ends, so a lock file left behind never blocks.
"""

import errno
import fcntl
import os
import re
import socket

from mpigrad.runtime.checkpoint import write_atomically

from .config import ConfigError

LOCK = ".mpigrad.lock"  # flock'ed by the job that owns the directory; names that job's host and pid
MARKER = ".mpigrad-run"  # written before a run's first file: --overwrite deletes only in directories holding it
RUN_FILES = ("config.toml", "metrics.jsonl", "final.npz", "checkpoints")
CHECKPOINT_NAME = re.compile(r"step-(\d{8,})\.ckpt")  # zero-padded to 8 digits, more past step 99,999,999
TEMPORARY_NAME = re.compile(r"(config\.toml|metrics\.jsonl|final\.npz|\.mpigrad-run|step-\d{8,}\.ckpt)\.tmp-\d+")


def checkpoint_name(step):
    return f"step-{step:08d}.ckpt"


def checkpoint_files(directory):
    """The checkpoint paths in `directory`, oldest step first (temporaries and other files ignored)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    steps = {int(m.group(1)): name for name in names for m in [CHECKPOINT_NAME.fullmatch(name)] if m}
    return [os.path.join(directory, steps[step]) for step in sorted(steps)]


class RunDirectory:
    """The --out directory of one job; rank 0 locks it before writing or deleting anything in it."""

    def __init__(self, path):
        self.path, self.fd = path, None

    def file(self, name):
        return os.path.join(self.path, name)

    def lock(self):
        """Own the directory (made if missing) until release() or the end of this process."""
        lock_path = self.file(LOCK)
        try:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ConfigError(f"--out {self.path}: {e.strerror or e}" +
                              (f" ({lock_path} is a symbolic link)" if e.errno == errno.ELOOP else "")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"--out {self.path} is in use by another mpigrad job ({holder}); wait for it to "
                                  "end or choose another --out") from None
            raise ConfigError(f"--out {self.path}: cannot lock {lock_path}: {e.strerror or e}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def found_run_files(self):
        return [name for name in RUN_FILES if os.path.lexists(self.file(name))]

    def is_marked(self):
        return os.path.isfile(self.file(MARKER)) and not os.path.islink(self.file(MARKER))

    def mark(self):
        """The marker, before the run's first file: from here on this directory holds an mpigrad run."""
        if not self.is_marked():
            write_atomically(self.file(MARKER), lambda f: f.write(b"mpigrad run directory\n"))

    def check_links(self):
        """mpigrad writes only inside the directory: a checkpoints/ that is a link could lead anywhere."""
        if os.path.islink(self.file("checkpoints")):
            raise ConfigError(f"{self.file('checkpoints')} is a symbolic link; mpigrad writes only inside the "
                              "run directory (make it a directory, or choose another --out)")

    def claim_for_new_run(self, overwrite):
        """A new run: refuse a directory holding another run, or (overwrite) delete that run's files only."""
        found = self.found_run_files()
        if not found:
            return
        if not overwrite:
            raise ConfigError(f"--out {self.path} already holds a run ({', '.join(found)}); continue it with "
                              f"--resume {self.path}, or pass --overwrite to replace it")
        if not self.is_marked():
            raise ConfigError(f"--out {self.path} holds {', '.join(found)} but no {MARKER}: not a run mpigrad "
                              "made, so --overwrite deletes nothing in it; choose another --out")
        self.check_links()
        for name in ("config.toml", "metrics.jsonl", "final.npz"):
            self.remove(self.file(name))
        checkpoints = self.file("checkpoints")
        for path in checkpoint_files(checkpoints):
            self.remove(path)
        self.remove_temporaries()
        try:
            os.rmdir(checkpoints)  # only when empty: files mpigrad did not make stay
        except OSError:
            pass

    def remove_temporaries(self):
        """`*.tmp-PID` files of writes cut short (a killed job): the lock says no live job is writing them."""
        for directory in (self.path, self.file("checkpoints")):
            names = os.listdir(directory) if os.path.isdir(directory) else []
            for name in names:
                if TEMPORARY_NAME.fullmatch(name):
                    self.remove(os.path.join(directory, name))

    def remove(self, path):
        """Delete a file mpigrad writes (a link is removed, never followed); a directory in its place is refused."""
        if not os.path.lexists(path):
            return
        if os.path.isdir(path) and not os.path.islink(path):
            raise ConfigError(f"{path} is a directory, not a file mpigrad writes; remove it yourself")
        try:
            os.unlink(path)
        except OSError as e:
            raise ConfigError(f"cannot remove {path}: {e.strerror or e}") from None
