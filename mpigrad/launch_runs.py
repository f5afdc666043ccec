"""Launch one run of `mpigrad check-determinism` with a deadline: the whole launch is ended when it passes."""

import os
import signal
import subprocess
import time


class LaunchTimeout(Exception):
    """The launch did not finish within the time given; it has been ended."""


def run_logged(command, log, timeout, env=None):
    """Run `command` with stdout and stderr into `log`; its exit code.

    The launch gets a process group of its own, so on timeout (LaunchTimeout) or Ctrl-C
    (KeyboardInterrupt, re-raised) the launcher and every rank it started are ended together:
    SIGTERM, then SIGKILL after 10 s.
    """
    with open(log, "w") as f:
        process = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_group(process)
            raise LaunchTimeout() from None
        except BaseException:
            end_group(process)
            raise


def end_group(process, grace=10.0):
    """SIGTERM to the process group, SIGKILL to what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not group_alive(process.pid):
                return
            time.sleep(0.05)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
