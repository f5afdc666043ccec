"""The eager reference of test_stateful_eager.py: optimizer steps and the global norm in plain
numpy, whole arrays, written from the documented maths (never calling mpigrad's kernels)."""

import math

import numpy as np

from mpigrad.optim import SGD, AdamW


def ref_grad_norm(grads):
    """sqrt(sum over grads of sum(g^2)), each sum a float64 dot, added in order."""
    total = 0.0
    for g in grads:
        g64 = g.astype(np.float64).ravel()
        total += float(np.dot(g64, g64))
    return math.sqrt(total)


def ref_adam(p, g, state, t, lr, weight_decay, decoupled, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam in the kernels' undivided form (m_sum = m/(1-b1), v_sum = v/(1-b2)), whole arrays."""
    f = p.dtype.type
    if weight_decay and not decoupled:
        g = p * f(weight_decay) + g
    root = math.sqrt((1.0 - beta2) / (1.0 - beta2 ** t))
    step_size = lr * (1.0 - beta1) / ((1.0 - beta1 ** t) * root)
    state["m_sum"][...] = state["m_sum"] * f(beta1) + g
    state["v_sum"][...] = state["v_sum"] * f(beta2) + g * g
    update = state["m_sum"] / (np.sqrt(state["v_sum"]) + f(eps / root)) * f(step_size)
    if weight_decay and decoupled:
        p[...] = p * f(1.0 - lr * weight_decay)
    p[...] = p - update


def ref_sgd(p, g, state, t, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """g <- g + wd p; b <- mu b + g; p <- p - lr (g + mu b if nesterov else b) (b = g without momentum)."""
    f = p.dtype.type
    if weight_decay:
        g = p * f(weight_decay) + g
    d = g
    if momentum:
        state["momentum"][...] = state["momentum"] * f(momentum) + g
        d = state["momentum"] * f(momentum) + g if nesterov else state["momentum"]
    p[...] = p - d * f(lr)


def ref_slots(cls, hyper):
    """The state arrays the optimizer keeps per parameter."""
    if cls is SGD:
        return ("momentum",) if hyper.get("momentum") else ()
    return ("m_sum", "v_sum")


def ref_step(cls, hyper, params, grads, requires, state, steps):
    """One step of cls(**hyper) over the dicts name -> array (params, grads, state) and name -> count (steps)."""
    for name in params:
        if not requires[name] or grads[name] is None:
            continue  # frozen, or no gradient: no move, no count
        steps[name] += 1
        g = grads[name].astype(params[name].dtype)  # a .grad of another dtype is read in the parameter's
        if cls is SGD:
            ref_sgd(params[name], g, state[name], steps[name], **hyper)
        else:
            ref_adam(params[name], g, state[name], steps[name], decoupled=cls is AdamW, **hyper)
