"""Random sequences of what a user does to a model's gradients and optimizer, compared bit for bit
with the plainest eager numpy written here.

Every observable is compared after every action: each parameter's .data and .grad (None-ness,
dtype, bytes), every array the user took from .grad and still holds (values, and whether it is
still the parameter's .grad), each clip's returned norm and the optimizer's state. One backward
pass's gradient comes from the library's autograd run on a fresh copy of the model (the maths of
each op is pinned by gradcheck elsewhere); everything stateful (accumulation, zeroing, clipping,
rebinding .grad, steps, state save and load) is the reference's own numpy.

Examples per test: the `mpigrad-fuzz` hypothesis profile of tests/conftest.py
(MPIGRAD_FUZZ_EXAMPLES=N runs N per test instead of the CI default).
"""

import math

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mpigrad.autograd import Variable, nn
from mpigrad.optim import SGD, Adam, AdamW, flatten_parameters

from eager_reference import ref_grad_norm, ref_slots, ref_step

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and NaN gradients are among the inputs

# name, dtype, shape; "s" has two consumers, "frozen" never requires grad, "head" only some passes use
SPECS = [("w", np.float32, (3, 4)), ("b", np.float32, (4,)), ("s", np.float64, (4,)),
         ("frozen", np.float32, (4,)), ("head", np.float64, (4,))]
NAMES = [name for name, _, _ in SPECS]

OPTIMIZERS = {
    "adam": (Adam, dict(lr=0.01, weight_decay=0.1)),
    "adamw": (AdamW, dict(lr=0.01, weight_decay=0.1)),
    "sgd": (SGD, dict(lr=0.1)),
    "sgd-momentum-wd": (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd-nesterov": (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
}


class Model(nn.Module):
    def __init__(self, values):
        super().__init__()
        for name, _, _ in SPECS:
            setattr(self, name, Variable(values[name].copy(), requires_grad=True))
        self.frozen.requires_grad = False

    def forward(self, x, use_head):
        h = (x @ self.w + self.b).tanh()  # float64 input: the float32 weight's gradient is rounded to float32
        z = h * self.s + self.frozen
        loss = ((z * self.s) ** 2).mean()  # s: a second consumer in the same pass
        return loss + (h * self.head).mean() if use_head else loss


def batch(seed, rows, dtype):
    return np.random.default_rng(seed).standard_normal((rows, 3)).astype(dtype)


def pass_gradients(values, x, use_head):
    """name -> the gradient one backward pass gives (None for no gradient), on a fresh model."""
    fresh = Model(values)
    fresh(Variable(x), use_head).backward()
    return {name: getattr(fresh, name).grad for name in NAMES}


def same_bits(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_float(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---- the machine

class EagerGradients(RuleBasedStateMachine):
    kind = "adam"
    flat = False

    @initialize(seed=st.integers(0, 2**16))
    def build(self, seed):
        rng = np.random.default_rng(seed)
        values = {name: rng.standard_normal(shape).astype(dtype) for name, dtype, shape in SPECS}
        self.model = Model(values)
        self.params = dict(self.model.named_parameters())
        cls, hyper = OPTIMIZERS[self.kind]
        self.make_opt = lambda: cls(list(self.params.values()), **hyper)
        self.ref = {name: values[name].copy() for name in NAMES}
        self.ref_grad = {name: None for name in NAMES}
        if self.flat:  # every .grad becomes a zeroed view into one buffer per dtype
            flatten_parameters(list(self.params.values()))
            self.ref_grad = {name: np.zeros_like(self.ref[name]) for name in NAMES}
        self.opt = self.make_opt()
        self.requires = {name: p.requires_grad for name, p in self.params.items()}
        self.state = {name: {slot: np.zeros_like(self.ref[name]) for slot in ref_slots(*OPTIMIZERS[self.kind])} for name in NAMES}
        self.steps = {name: 0 for name in NAMES}
        self.lr = OPTIMIZERS[self.kind][1]["lr"]
        self.held = []  # (name, the array the model's user holds, the reference's array)

    # ---- actions

    @rule(seed=st.integers(0, 2**16), rows=st.integers(1, 4), x64=st.booleans(), use_head=st.booleans())
    def backward(self, seed, rows, x64, use_head):
        x = batch(seed, rows, np.float64 if x64 else np.float32)
        grads = pass_gradients(self.ref, x, use_head)
        self.model(Variable(x), use_head).backward()
        for name, g in grads.items():
            if g is None:
                continue
            if self.ref_grad[name] is None:
                self.ref_grad[name] = g.copy()
            else:
                self.ref_grad[name] += g

    @rule()
    def optimizer_zero_grad(self):
        self.opt.zero_grad()
        self._ref_zero()

    @rule()
    def module_zero_grad(self):
        self.model.zero_grad()
        self._ref_zero()

    def _ref_zero(self):
        for g in self.ref_grad.values():
            if g is not None:
                g.fill(0)

    @rule(name=st.sampled_from(NAMES))
    def set_grad_none(self, name):
        self.params[name].grad = None
        self.ref_grad[name] = None

    @rule(name=st.sampled_from(NAMES), seed=st.integers(0, 2**16), as_float64=st.booleans(), strided=st.booleans())
    def set_grad_array(self, name, seed, as_float64, strided):
        dtype = np.float64 if as_float64 else self.ref[name].dtype
        shape = self.ref[name].shape
        array = np.random.default_rng(seed).standard_normal((*shape, 2)).astype(dtype)
        array = array[..., 1] if strided else array[..., 1].copy()  # a non-contiguous view of a bigger array, or not
        self.params[name].grad = array
        self.ref_grad[name] = array.copy()
        self.held.append((name, array, self.ref_grad[name]))

    @rule(name=st.sampled_from(NAMES))
    def hold_grad(self, name):
        if self.params[name].grad is not None:
            self.held.append((name, self.params[name].grad, self.ref_grad[name]))

    @rule(name=st.sampled_from(NAMES), value=st.sampled_from([np.inf, -np.inf, np.nan, 1e30]))
    def poison_grad(self, name, value):
        """One element of an existing .grad set in place: infinite and NaN norms, float32 overflow of squares."""
        if self.params[name].grad is not None:
            self.params[name].grad.reshape(-1)[0] = value
            self.ref_grad[name].reshape(-1)[0] = value

    @rule(max_norm=st.sampled_from([0.0, 1e-3, 0.5, 1e3]), total=st.sampled_from([None, None, 0.0, 2.0, np.inf, np.nan]))
    def clip_grad_norm(self, max_norm, total):
        norm = self.opt.clip_grad_norm(max_norm, total_norm=total)
        grads = [g for g in self.ref_grad.values() if g is not None]
        ref_norm = ref_grad_norm(grads) if total is None else total
        if ref_norm > max_norm:
            for g in grads:
                g *= max_norm / (ref_norm + 1e-6)
        assert same_float(norm, ref_norm), (norm, ref_norm)

    @rule(bound=st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    def clip_grad_value(self, bound):
        self.opt.clip_grad_value(-bound, bound)
        for g in self.ref_grad.values():
            if g is not None:
                np.clip(g, -bound, bound, out=g)

    @rule()
    def step(self):
        self.opt.step()
        cls, hyper = OPTIMIZERS[self.kind]
        ref_step(cls, dict(hyper, lr=self.lr), self.ref, self.ref_grad, self.requires, self.state, self.steps)

    @rule(lr=st.sampled_from([0.0, 1e-3, 0.1]))
    def set_learning_rate(self, lr):
        self.opt.learning_rate = lr
        self.lr = lr

    @rule()
    def save_and_load_optimizer(self):
        saved = self.opt.state_dict()
        self.opt = self.make_opt()
        self.opt.load_state_dict(saved)

    @precondition(lambda self: len(self.held) > 8)
    @rule()
    def forget_held(self):
        self.held = self.held[-4:]

    # ---- observables

    @invariant()
    def parameters_and_grads_match(self):
        for name in NAMES:
            p = self.params[name]
            assert same_bits(p.data, self.ref[name]), f"{name}.data"
            assert same_bits(p.grad, self.ref_grad[name]), f"{name}.grad"

    @invariant()
    def held_arrays_match(self):
        for name, mine, theirs in self.held:
            assert same_bits(mine, theirs), f"an array held from {name}.grad"
            assert (self.params[name].grad is mine) == (self.ref_grad[name] is theirs), f"{name}.grad rebound"

    @invariant()
    def optimizer_state_matches(self):
        saved = self.opt.state_dict()
        assert saved["param_steps"] == [self.steps[name] for name in NAMES]
        for i, name in enumerate(NAMES):
            for slot, ref in self.state[name].items():
                assert same_bits(saved["state"][i][slot], ref), f"{name} {slot}"


@pytest.mark.parametrize("flat", [False, True], ids=["per-parameter", "flat"])
@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_gradients_and_steps_are_the_eager_bits(kind, flat):
    machine = type(f"EagerGradients_{kind}_{flat}", (EagerGradients,), {"kind": kind, "flat": flat})
    machine.TestCase.settings = settings.get_profile("mpigrad-fuzz")
    machine.TestCase().runTest()
