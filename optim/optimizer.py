"""Optimizer base: parameters, layout detection, gradient utilities, learning rate, state.

Fast path: when consecutive parameters of the optimizer have their data and grads back to back
in one buffer each (flatten_parameters(), the runtime's flat buffers), step() and the gradient
utilities work on that whole span at once; the state (m, v, ...) then lives in matching flat
buffers, each parameter's state being a view. Anything else is updated one parameter at a time
through the same kernel, so both paths give bitwise-identical results.
"""

import math

import numpy as np

from .flat import FlatGroup
from .kernels import Scratch, sum_of_squares
from .layout import find_runs


def check_arg(owner, name, value, ok, rule):
    """Raise ValueError("Owner: name=value rule") unless ok."""
    if not ok:
        raise ValueError(f"{owner}: {name}={value!r} {rule}")


def check_nonneg(owner, name, value):
    """Raise ValueError("Owner: name=value must be >= 0") unless value is a real number >= 0."""
    check_arg(owner, name, value, is_real(value) and value >= 0, "must be >= 0")


def clip_scale(norm, max_norm):
    """The factor clip_grad_norm scales gradients by: max_norm / (norm + 1e-6) above max_norm, else 1."""
    return float(max_norm) / (norm + 1e-6) if norm > max_norm else 1.0


class Optimizer:
    """Holds params (a list of Variables) and a learning rate; subclasses define _update()."""

    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, lr):
        self.params = _expand(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: params is empty")
        _check_unique(type(self).__name__, self.params)
        self.learning_rate = lr
        self.step_count = 0  # calls of step()
        self.param_steps = [0] * len(self.params)  # updates each parameter received (Adam's t is per parameter)
        self._scratch = Scratch()
        self._state = [{} for _ in self.params]  # slot -> 1-D array
        self._seen, self._runs, self._run_state = [], [], {}  # layout cache, see _layout()
        self._layout()

    # ---- learning rate and hyperparameters

    @property
    def learning_rate(self):
        """The learning rate the next step() uses (lr at construction); assign to change it, as schedulers do."""
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        check_nonneg(type(self).__name__, "lr", value)
        self._lr = float(value)

    def hyperparams(self):
        """The hyperparameters as a dict of keyword arguments of __init__."""
        return {"lr": self._lr}

    def _set_hyperparams(self, lr):
        self.learning_rate = lr

    # ---- stepping

    def step(self):
        """Advance step_count and update every parameter that requires grad and has a grad.

        The others (frozen, or no gradient this step) do not move and their own update count,
        param_steps (Adam's t), does not advance: PyTorch's per-parameter `step`."""
        if type(self)._update is Optimizer._update:
            raise NotImplementedError(f"{type(self).__name__} does not implement step()")
        self.step_count += 1
        steps = self.param_steps
        for run in self._layout():
            if run.data is not None:  # a run holds only trainable params with grads (layout.find_runs)
                for i in range(run.lo, run.hi):
                    steps[i] += 1
                self._update_run(run)
            elif _trainable(self.params[run.lo]):
                steps[run.lo] += 1
                self._update_param(self.params[run.lo], self._state[run.lo], steps[run.lo])

    def _update_run(self, run):
        """The whole run in one kernel call, or one per stretch of params with the same update count."""
        state, steps = self._run_state[run.lo, run.hi], self.param_steps
        first = steps[run.lo]
        if all(t == first for t in steps[run.lo + 1:run.hi]):
            self._update(run.data, run.grad, state, steps[run.lo])
            return
        start, i = 0, run.lo
        while i < run.hi:
            j, stop = i, start
            while j < run.hi and steps[j] == steps[i]:
                stop += self.params[j].data.size
                j += 1
            span = slice(start, stop)
            self._update(run.data[span], run.grad[span], {k: v[span] for k, v in state.items()}, steps[i])
            start, i = stop, j

    def _update(self, data, grad, state, step):
        """Update 1-D data in place from the 1-D grad and the 1-D state arrays {slot: array};
        step is the parameters' own update count (from 1). grad itself is never modified."""
        raise NotImplementedError

    def _update_param(self, p, state, step):
        data = p.data
        contiguous = data.flags.c_contiguous
        flat = (data if contiguous else np.ascontiguousarray(data)).reshape(-1)
        grad = np.ascontiguousarray(p.grad, dtype=data.dtype).reshape(-1)
        self._update(flat, grad, state, step)
        if not contiguous:  # the update went to a copy
            data[...] = flat.reshape(data.shape)

    # ---- gradient utilities (parameters without grads are skipped)

    def zero_grad(self):
        """Fill every existing .grad with +0.0 in place (never rebinds .grad: it may be a flat-buffer view or held)."""
        for g in self._grads():
            g.fill(0)

    def grad_norm(self):
        """Global L2 norm over all grads, accumulated in float64 (independent of the layout)."""
        total = sum(sum_of_squares(p.grad) for p in self.params if p.grad is not None)
        return math.sqrt(total)

    def clip_grad_norm(self, max_norm, total_norm=None):
        """Scale grads by max_norm / (norm + 1e-6) when norm > max_norm; return the pre-clip norm.

        total_norm, when given, is used instead of grad_norm() (e.g. a norm over all ranks).
        """
        name = f"{type(self).__name__}.clip_grad_norm"
        check_nonneg(name, "max_norm", max_norm)
        norm = self.grad_norm() if total_norm is None else float(total_norm)
        if norm > max_norm:  # never for a NaN norm; an infinite one scales by 0.0 (inf * 0 -> NaN, as in torch)
            scale = clip_scale(norm, max_norm)
            for g in self._grads():
                np.multiply(g, scale, out=g)  # NEP 50: scale is rounded to g's dtype first, as g *= scale
        return norm

    def clip_grad_value(self, min_val, max_val):
        """Clamp every grad into [min_val, max_val] in place."""
        if not min_val <= max_val:
            raise ValueError(f"{type(self).__name__}.clip_grad_value: min_val={min_val!r} "
                             f"is greater than max_val={max_val!r}")
        for g in self._grads():
            np.clip(g, min_val, max_val, out=g)

    def _grads(self):
        """Every existing .grad, a whole run's buffer at once where the layout is flat."""
        for run in self._layout():
            grad = run.grad if run.data is not None else self.params[run.lo].grad
            if grad is not None:
                yield grad

    # ---- layout

    def _layout(self):
        """Runs of params (see layout.find_runs), recomputed only when some .data or .grad was rebound."""
        seen = self._seen
        if len(seen) != len(self.params) or any(
                p.data is not d or p.grad is not g or p.requires_grad is not r for p, (d, g, r) in zip(self.params, seen)):
            self._seen = [(p.data, p.grad, p.requires_grad) for p in self.params]
            self._runs = find_runs(self.params)
            self._run_state = {(r.lo, r.hi): self._flat_state_for(r) for r in self._runs if r.data is not None}
            for r in self._runs:
                if r.data is None:
                    self._ensure_param_state(r.lo)
        return self._runs

    def _ensure_param_state(self, i):
        state, p = self._state[i], self.params[i]
        for slot in self.slots:
            if slot not in state or state[slot].size != p.data.size:
                state[slot] = np.zeros(p.data.size, p.data.dtype)

    def _flat_state_for(self, run):
        """One buffer per slot over the run; each param's state becomes a view (values carried over)."""
        known = self._run_state.get((run.lo, run.hi))
        if known is not None and all(v.size == run.data.size and v.dtype == run.data.dtype for v in known.values()):
            return known
        flat = {slot: np.zeros(run.data.size, run.data.dtype) for slot in self.slots}
        start = 0
        for i in range(run.lo, run.hi):
            stop = start + self.params[i].data.size
            for slot, buf in flat.items():
                old = self._state[i].get(slot)
                if old is not None and old.size == stop - start:
                    buf[start:stop] = old  # keep state accumulated under the previous layout
                self._state[i][slot] = buf[start:stop]
            start = stop
        return flat

    # ---- state (de)serialisation

    def state_dict(self):
        """{'type', 'step_count', 'hyperparams', 'state': {index: {slot: array shaped like the param}}} (copies)."""
        state = {i: {slot: arr.reshape(p.data.shape).copy() for slot, arr in s.items() if slot in self.slots}
                 for i, (p, s) in enumerate(zip(self.params, self._state))}
        return {"type": type(self).__name__, "step_count": self.step_count, "param_steps": list(self.param_steps),
                "hyperparams": self.hyperparams(), "state": state}

    def load_state_dict(self, d):
        """Restore from state_dict(); ValueError (before changing anything) on any mismatch."""
        name = f"{type(self).__name__}.load_state_dict"
        if d.get("type") != type(self).__name__:
            raise ValueError(f"{name}: state is for {d.get('type')!r}, not {type(self).__name__!r}")
        arrays = _checked_arrays(name, d.get("state", {}), self.params, self.slots)
        step_count = d.get("step_count")
        check_arg(name, "step_count", step_count,
                  isinstance(step_count, (int, np.integer)) and step_count >= 0, "must be an integer >= 0")
        param_steps = d.get("param_steps", [step_count] * len(self.params))  # files from before per-parameter counts
        check_arg(name, "param_steps", param_steps, isinstance(param_steps, (list, tuple)) and len(param_steps) == len(
            self.params) and all(isinstance(t, (int, np.integer)) and 0 <= t <= step_count for t in param_steps),
            f"must be {len(self.params)} integers in [0, step_count]")
        before = self.hyperparams()
        try:
            self._set_hyperparams(**d.get("hyperparams", {}))
        except (TypeError, ValueError):
            self._set_hyperparams(**before)
            raise
        self._layout()
        for state, loaded in zip(self._state, arrays):
            for slot, arr in loaded.items():
                np.copyto(state[slot], arr.reshape(-1))
        self.step_count = int(step_count)
        self.param_steps = [int(t) for t in param_steps]


def _trainable(p):
    return p.requires_grad and p.grad is not None


def is_real(value):
    """True for a number that converts to a float other than NaN."""
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _expand(params):
    """A list of Variables from Variables and/or FlatGroups (a group stands for its params)."""
    if isinstance(params, FlatGroup):
        params = [params]
    out = []
    for p in params:
        out.extend(p.params if isinstance(p, FlatGroup) else [p])
    return out


def _check_unique(owner, params):
    seen = {}
    for i, p in enumerate(params):
        if id(p) in seen:
            raise ValueError(f"{owner}: parameter {i} is the same object as parameter {seen[id(p)]}")
        seen[id(p)] = i


def _checked_arrays(name, state, params, slots):
    if len(state) != len(params):
        raise ValueError(f"{name}: state has {len(state)} parameters, the optimizer has {len(params)}")
    out = []
    for i, p in enumerate(params):
        entry = state.get(i, state.get(str(i)))
        if entry is None or set(entry) != set(slots):
            got = None if entry is None else sorted(entry)
            raise ValueError(f"{name}: parameter {i} has state {got}, expected {sorted(slots)}")
        arrays = {slot: np.asarray(entry[slot]) for slot in slots}
        for slot, arr in arrays.items():
            if arr.shape != p.data.shape:
                raise ValueError(f"{name}: parameter {i} {slot} has shape {arr.shape}, "
                                 f"the parameter has {p.data.shape}")
        out.append(arrays)
    return out
