"""Stop at the end of a step on SIGINT/SIGTERM: a signal only sets a flag, the ranks agree on it together."""

import signal

from .comm import init


class StopSignal:
    """Catch SIGINT and SIGTERM; `requested()`, called by every rank at the end of a step, says whether
    any rank got one (a collective: the same answer on every rank, so all stop after the same step).

        stop = StopSignal()
        while step < steps:
            ...one training step...
            if stop.requested():
                save_checkpoint(...)          # every rank reaches it, rank 0 writes
                if comm.is_main:
                    print(f"{stop.signal_name}: stopped after step {step}", file=sys.stderr)
                raise SystemExit(stop.exit_code)

    Until then a Ctrl-C no longer raises KeyboardInterrupt; `restore()` (or leaving a `with
    StopSignal() as stop:` block) puts the previous handlers back.
    """

    def __init__(self, comm=None, signals=(signal.SIGINT, signal.SIGTERM)):
        self.comm = comm if comm is not None else init()
        self.signum = 0  # the signal the ranks agreed on (0: none yet)
        self._caught = 0  # this rank's; only the handler writes it
        self._previous = {sig: signal.signal(sig, self._note) for sig in signals}

    def _note(self, signum, frame):
        self._caught = signum

    def requested(self):
        """True on every rank once any rank has caught a signal (collective: call it on every rank)."""
        # The handler runs when the MPI call returns, before any assignment after it: writing the
        # result into the handler's own variable would lose a signal that arrived during the call.
        agreed = self.comm.allreduce_obj(self._caught, op="max")
        self.signum = self.signum or agreed
        return self.signum != 0

    @property
    def caught_here(self):
        """This rank's signal, not yet agreed with the others (0: none)."""
        return self._caught

    @property
    def signal_name(self):
        return signal.Signals(self.signum).name if self.signum else None

    @property
    def exit_code(self):
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a signal."""
        return 128 + self.signum if self.signum else 0

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()
