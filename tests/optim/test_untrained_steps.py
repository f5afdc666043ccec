"""Parameters without a gradient this step (frozen, or grad None) never move, on the flat and the
per-parameter path; Adam counts its bias-correction step per parameter, as PyTorch does."""

import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim import SGD, Adam, AdamW, flatten_parameters

from optim_helpers import make_params

OPTIMIZERS = [(Adam, dict(lr=0.1, weight_decay=0.01)), (AdamW, dict(lr=0.1)),
              (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01))]


def layouts(seed):
    """(name, params): the same values on the per-parameter and the flat path."""
    loose = make_params(seed)
    flat = make_params(seed)
    flatten_parameters(flat)
    return [("per-parameter", loose), ("flat", flat)]


def give_grads(params, step, skip=()):
    rng = np.random.default_rng(step)
    for i, p in enumerate(params):
        g = rng.standard_normal(p.data.shape)
        if i in skip:
            continue
        if p.grad is None:
            p.grad = g
        else:
            p.grad[...] = g


@pytest.mark.parametrize("cls, kw", OPTIMIZERS)
@pytest.mark.parametrize("path", ["per-parameter", "flat"])
def test_frozen_parameters_never_move(cls, kw, path):
    params = dict(layouts(3))[path]
    params[1].requires_grad = False
    before = params[1].data.copy()
    opt = cls(params, **kw)
    for step in range(3):
        give_grads(params, step)
        opt.step()
    np.testing.assert_array_equal(params[1].data, before)
    assert not np.array_equal(params[0].data, make_params(3)[0].data), "trainable parameters did not move"


@pytest.mark.parametrize("cls, kw", OPTIMIZERS)
def test_both_paths_agree_bitwise_with_a_frozen_parameter_and_a_late_first_gradient(cls, kw):
    results = []
    for _, params in layouts(4):
        params[0].requires_grad = False
        if params[2].grad is not None:
            params[2].grad = None
        opt = cls(params, **kw)
        for step in range(4):
            give_grads(params, step, skip={2} if step < 2 else ())
            opt.step()
        results.append([p.data.copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", ["per-parameter", "flat"])
def test_a_parameter_whose_first_gradient_comes_late_gets_the_first_bias_correction(path):
    torch = pytest.importorskip("torch")
    params = dict(layouts(5))[path]
    late = 1
    if path == "flat":
        params[late].grad = None  # no gradient yet: a flat view would read as a zero gradient
    ref = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    ours, theirs = Adam(params, lr=0.1, weight_decay=0.01), torch.optim.Adam(ref, lr=0.1, weight_decay=0.01)
    for step in range(5):
        skip = {late} if step < 3 else set()
        give_grads(params, step, skip)
        for i, (p, q) in enumerate(zip(params, ref)):
            q.grad = None if i in skip else torch.tensor(np.array(p.grad))
        ours.step()
        theirs.step()
        for p, q in zip(params, ref):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-15)
