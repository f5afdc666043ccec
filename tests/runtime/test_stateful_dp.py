"""Random sequences of what a user does to a DataParallel model, against the plainest eager one-process
computation (dp_eager_reference.py): to float rounding in the default modes, bitwise in deterministic mode.

Every rank runs the same sequence (hypothesis derandomised, no example database; each rule checks
that all ranks drew it) on its own rank-seeded data; the reference sees every rank's data. Every
check is agreed on by all ranks, so a failure fails everywhere and never hangs. More examples:
MPIGRAD_FUZZ_EXAMPLES=200 mpiexec -n 3 python -m pytest --with-mpi -m mpi tests/runtime/test_stateful_dp.py
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from mpigrad.autograd import cross_entropy, nn
from mpigrad.optim import SGD, Adam, AdamW
from mpigrad.runtime import DataParallel, ZeroOptimizer

from dp_eager_reference import EagerReference
from mpi_helpers import assert_everywhere, comm

pytestmark = pytest.mark.mpi

EXAMPLES = int(os.environ.get("MPIGRAD_FUZZ_EXAMPLES", "4"))
MODES = {"replicated": (Adam, dict(lr=0.05, weight_decay=0.01)),
         "zero": (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
         "deterministic": (AdamW, dict(lr=0.05))}
HEADS = ["head_a", "head_b", "both"]


class Heads(nn.Module):
    """A shared body, two heads (one may go unused in a step), a frozen bias."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.body = nn.Linear(4, 6, rng=rng, dtype=np.float64)
        self.head_a = nn.Linear(6, 3, rng=rng, dtype=np.float64)
        self.head_b = nn.Linear(6, 3, rng=rng, dtype=np.float64)
        self.head_b.bias.requires_grad = False

    def forward(self, x, head):
        return getattr(self, head)(self.body(x).tanh())


def data(step, action, rank, part, rows):
    rng = np.random.default_rng([step, action, rank, part])
    return rng.standard_normal((rows, 4)), rng.integers(0, 3, rows)


class DataParallelAgainstEager(RuleBasedStateMachine):
    mode = "replicated"

    def __init__(self):
        super().__init__()
        self.comm = comm()
        cls, hyper = MODES[self.mode]
        self.deterministic = self.mode == "deterministic"
        buckets = 1e-4 if self.mode == "replicated" else None  # one bucket per parameter, or one in all
        self.dp = DataParallel(Heads(), self.comm, deterministic=self.deterministic, bucket_mb=buckets)
        self.opt = ZeroOptimizer(self.dp, cls, **hyper) if self.mode == "zero" else cls(self.dp.parameters(), **hyper)
        model = Heads()
        self.ref = EagerReference(model, cls(model.parameters(), **hyper))
        self.params = list(self.dp.parameters())
        self.names = [name for name, _ in self.dp.named_parameters()]
        self.pending = []  # this step's micro-batches so far: per action, per rank, its parts
        self.steps, self.held, self.problems, self.label = 0, [], [], "start"

    def agree(self, *what, collective=False):
        """All ranks drew the same rule with the same arguments: checked before a rule's collectives
        (ranks in different collectives would hang), else with the findings at the rule's end."""
        self.label = repr(what)
        if collective:
            everyone = self.comm.allgather_obj(self.label)
            assert_everywhere(len(set(everyone)) == 1, f"ranks drew different steps: {everyone}")

    def expect(self, ok, message):
        """A failed check of this rule, reported (on every rank) by the rule's one comparison at its end."""
        if not ok:
            self.problems.append(message)

    def same(self, a, b):
        if a is None or b is None:
            return a is None and b is None
        if self.deterministic:
            return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        return np.allclose(a, b, rtol=1e-9, atol=1e-12)

    # ---- rules

    @rule(head=st.sampled_from(HEADS), rows=st.integers(1, 3), sync=st.booleans())
    def backward(self, head, rows, sync):
        """One micro-batch per rank (rank-seeded data); outside no_sync it ends the step (the 4th always does)."""
        sync = sync or len(self.pending) == 3
        if self.deterministic and sync and len(self.pending) + 1 not in (1, 2, 4):
            sync = False  # a rank runs a power-of-two count of micro-batches per step
        self.agree("backward", head, rows, sync, collective=True)
        action = len(self.pending)
        mine = self.parts(action, self.comm.rank, head, rows)
        self.pending.append([self.parts(action, r, head, rows) for r in range(self.comm.size)])
        loss = sum(cross_entropy(self.dp(x, h), y) for h, x, y in mine)
        if sync:
            loss.backward()
            self.synchronise()
            got, expected = self.dp.reduced_grad_norm(), self.ref.norm()
            self.expect(abs(got - expected) <= 1e-9 * expected, f"reduced_grad_norm() {got} != eager {expected}")
        else:
            with self.dp.no_sync():
                loss.backward()

    def parts(self, action, rank, head, rows):
        heads = ["head_a", "head_b"] if head == "both" else [head]
        return [(h, *data(self.steps, action, rank, k, rows + rank % 2 + k)) for k, h in enumerate(heads)]

    def synchronise(self):
        # the global micro-batch index runs over rank 0's micro-batches, then rank 1's, ...
        order = [actions[r] for r in range(self.comm.size) for actions in self.pending]
        self.ref.synchronise(order, self.deterministic)
        self.pending = []
        self.steps += 1

    @precondition(lambda self: not self.pending)
    @rule(which=st.sampled_from(["optimizer", "module"]))
    def zero_grad(self, which):
        self.agree("zero_grad", which)
        (self.opt if which == "optimizer" else self.dp.module).zero_grad()
        self.ref.zero_grad()

    @precondition(lambda self: not self.pending)
    @rule(index=st.integers(0, 5))
    def set_none(self, index):
        self.agree("set_none", index)
        self.params[index].grad = None
        self.ref.params[index].grad = None

    @precondition(lambda self: not self.pending)
    @rule(index=st.integers(0, 5), value=st.floats(-2, 2, allow_nan=False).map(lambda v: round(v, 3)))
    def set_array(self, index, value):
        self.agree("set_array", index, value)
        shape = self.params[index].shape
        self.params[index].grad = np.full(shape, value)
        self.ref.params[index].grad = np.full(shape, value)

    @precondition(lambda self: not self.pending)
    @rule(index=st.integers(0, 5))
    def hold_grad(self, index):
        self.agree("hold_grad", index)
        mine, theirs = self.params[index].grad, self.ref.params[index].grad
        self.expect(self.same(mine, theirs), f"{self.names[index]}.grad differs from eager")
        if mine is not None and any(np.shares_memory(mine, g.grad) for g in self.dp.groups):
            self.held.append((index, mine, theirs))  # an array you assigned is copied in at backward: not held

    @precondition(lambda self: not self.pending)
    @rule(max_norm=st.sampled_from([0.0, 0.05, 10.0]))
    def clip_grad_norm(self, max_norm):
        self.agree("clip_grad_norm", max_norm)
        expected = self.ref.norm()
        if self.deterministic:
            norm = self.opt.clip_grad_norm(max_norm)
        else:
            norm = self.opt.clip_grad_norm(max_norm, total_norm=self.dp.grad_norm())
        self.ref.clip_grad_norm(max_norm)
        self.expect(abs(norm - expected) <= 1e-9 * expected, f"norm {norm} != eager {expected}")

    @precondition(lambda self: not self.pending)
    @rule(bound=st.sampled_from([0.01, 0.2]))
    def clip_grad_value(self, bound):
        self.agree("clip_grad_value", bound)
        self.opt.clip_grad_value(-bound, bound)
        self.ref.clip_grad_value(-bound, bound)

    @precondition(lambda self: not self.pending)
    @rule()
    def grad_norm(self):
        self.agree("grad_norm")
        got, expected = self.dp.grad_norm(), self.ref.norm()
        self.expect(abs(got - expected) <= 1e-9 * expected, f"dp.grad_norm() {got} != eager {expected}")

    @precondition(lambda self: not self.pending)
    @rule()
    def step(self):
        self.agree("step", collective=True)
        self.opt.step()
        self.ref.optimizer.step()

    @precondition(lambda self: not self.pending)
    @rule()
    def state_dict_round_trip(self):
        self.agree("state_dict", collective=True)
        state = self.opt.state_dict()  # collective with ZeRO
        self.opt.load_state_dict(state)
        expected = self.ref.optimizer.state_dict()
        ok = state["param_steps"] == expected["param_steps"] and all(
            self.same(np.asarray(state["state"][i][slot]), np.asarray(arr))
            for i, slots in expected["state"].items() for slot, arr in slots.items())
        self.expect(ok, "optimizer state differs from eager")

    # ---- what must hold after every rule: one all-gather of every rank's findings

    @invariant()
    def everything_matches_eager(self):
        if not hasattr(self, "dp"):
            return
        self.expect(all(self.same(p.data, q.data) for p, q in zip(self.params, self.ref.params)),
                    "parameters differ from eager")
        if not self.pending:
            bad = [n for n, p, q in zip(self.names, self.params, self.ref.params) if not self.same(p.grad, q.grad)]
            self.expect(not bad, f"gradients differ from eager: {bad}")
            held = [i for i, mine, theirs in self.held
                    if theirs is self.ref.params[i].grad and not self.same(mine, theirs)]
            self.expect(not held, f"an array held from .grad differs from eager: {held}")
        everyone = self.comm.allgather_obj((self.label, self.problems))
        self.problems = []
        assert len({label for label, _ in everyone}) == 1, f"ranks drew different steps: {everyone}"
        assert not any(found for _, found in everyone), f"rank(s) found: {everyone}"

    def teardown(self):
        if hasattr(self, "dp"):
            self.agree("teardown", collective=True)


@pytest.mark.parametrize("mode", list(MODES))
def test_data_parallel_against_eager(mode):
    machine = type(f"DataParallelAgainstEager_{mode}", (DataParallelAgainstEager,), {"mode": mode})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=20, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), print_blob=False))
