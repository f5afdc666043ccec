import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim import SGD
from optim_helpers import make_params, sgd_reference, step_beside_torch

GRADS = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.05]), np.array([0.7, 0.0, -0.6])]
P0 = np.array([0.5, -1.5, 2.0])


def trajectory(**kw):
    p = Variable(P0.copy(), requires_grad=True)
    opt, out = SGD([p], **kw), []
    for g in GRADS:
        p.grad = g.copy()
        opt.step()
        out.append(p.data.copy())
    return out


def test_plain_step_by_hand():
    p = trajectory(lr=0.1)
    np.testing.assert_allclose(p[0], P0 - 0.1 * GRADS[0], rtol=1e-15)


def test_momentum_by_hand():
    """v1 = g1, v2 = 0.9 g1 + g2: p2 = p0 - lr g1 - lr (0.9 g1 + g2)."""
    p = trajectory(lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p[1], P0 - 0.1 * GRADS[0] - 0.1 * (0.9 * GRADS[0] + GRADS[1]), rtol=1e-14)


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, weight_decay=0.1), dict(weight_decay=0.3),
                                dict(momentum=0.9, nesterov=True, weight_decay=0.01)])
def test_three_steps_match_pytorch_convention(kw):
    got = trajectory(lr=0.05, **kw)
    for a, b in zip(got, sgd_reference(P0, GRADS, 0.05, **kw)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    params = make_params(0, dtype)
    opt = SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    assert all(p.data.dtype == dtype for p in params)
    assert all(s["momentum"].dtype == dtype for s in opt.state_dict()["state"].values())


def test_no_momentum_keeps_no_state():
    opt = SGD(make_params(0), lr=0.1)
    assert all(s == {} for s in opt.state_dict()["state"].values())


def test_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    params = make_params(4)
    kw = dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01)
    theirs = step_beside_torch(torch, params, SGD(params, **kw), torch.optim.SGD, kw)
    for p, q in zip(params, theirs):
        np.testing.assert_allclose(p.data, q, rtol=1e-13, atol=1e-15)
