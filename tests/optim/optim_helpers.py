"""Shared helpers for the optim tests: parameters with gradients and float64 reference optimizers."""

import numpy as np

from mpigrad.autograd import Variable

SHAPES = [(3, 4), (5,), (), (2, 3, 2)]


def make_params(seed=0, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Variable(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        g = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        if p.grad is None:
            p.grad = g
        else:
            p.grad[...] = g  # in place: the grad may be a view into a flat buffer


def run(opt, params, steps, first_seed=100):
    for t in range(steps):
        set_grads(params, first_seed + t)
        opt.step()


def adam_reference(p, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    """The issue's formula step by step in float64; returns the list of parameters after each step."""
    p, m, v, out = np.array(p, np.float64), 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat, vhat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def sgd_reference(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    p, buf, out = np.array(p, np.float64), None, []
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = g if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def step_beside_torch(torch, params, ours, theirs_class, kw, steps=4):
    """Give both optimizers the same random grads for `steps` steps; return torch's parameters."""
    ref = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    theirs = theirs_class(ref, **kw)
    for t in range(steps):
        rng = np.random.default_rng(t)
        for p, q in zip(params, ref):
            p.grad = rng.standard_normal(p.data.shape)
            q.grad = torch.tensor(p.grad.copy())
        ours.step()
        theirs.step()
    return [q.detach().numpy() for q in ref]
