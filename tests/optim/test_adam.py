import numpy as np
import pytest

from mpigrad.autograd import Variable
from mpigrad.optim import Adam, AdamW, adam_update
from optim_helpers import adam_reference, make_params, run, step_beside_torch

# Values of the rearranged kernel agree with the literal formula up to a few float64 roundings.
RTOL = 1e-12


def test_first_step_is_lr_times_sign():
    """Hand computation: at t=1, mhat = g and vhat = g^2, so p1 = p0 - lr * g / (|g| + eps)."""
    p = Variable(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    p.grad = np.array([0.3, -4.0, 1e-3])
    Adam([p], lr=0.1).step()
    expected = np.array([1.0 - 0.1 * 0.3 / (0.3 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
                         0.5 - 0.1 * 1e-3 / (1e-3 + 1e-8)])
    np.testing.assert_allclose(p.data, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_three_steps_match_the_formula(weight_decay):
    p0 = np.array([0.5, -1.5, 2.0])
    grads = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.05]), np.array([0.7, 0.0, -0.6])]
    p = Variable(p0.copy(), requires_grad=True)
    opt = Adam([p], lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=weight_decay)
    expected = adam_reference(p0, grads, 0.01, 0.8, 0.95, 1e-6, weight_decay)
    for t, g in enumerate(grads):
        p.grad = g.copy()
        opt.step()
        assert opt.step_count == t + 1
        np.testing.assert_allclose(p.data, expected[t], rtol=RTOL, atol=0)
        np.testing.assert_array_equal(p.grad, g)  # weight decay does not write into the grad


def test_adamw_three_steps_match_the_formula():
    p0 = np.array([0.5, -1.5, 2.0])
    grads = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.05]), np.array([0.7, 0.0, -0.6])]
    p = Variable(p0.copy(), requires_grad=True)
    opt = AdamW([p], lr=0.05, weight_decay=0.2)
    expected = adam_reference(p0, grads, 0.05, weight_decay=0.2, decoupled=True)
    for t, g in enumerate(grads):
        p.grad = g.copy()
        opt.step()
        np.testing.assert_allclose(p.data, expected[t], rtol=RTOL, atol=0)


def test_adamw_default_decay_differs_from_adam_l2():
    a, b = make_params(1), make_params(1)
    run(AdamW(a, lr=0.1), a, 3)
    run(Adam(b, lr=0.1, weight_decay=1e-2), b, 3)
    assert AdamW(make_params(1)).weight_decay == 1e-2
    assert not np.allclose(a[0].data, b[0].data, rtol=1e-9)


def test_moments_persist_across_steps():
    """An implementation that forgets m and v (or restarts t) would give different step-2 values."""
    p0, g1, g2, lr = np.array([1.0, -1.0]), np.array([1.0, -0.5]), np.array([-0.2, 2.0]), 0.1
    p = Variable(p0.copy(), requires_grad=True)
    opt = Adam([p], lr=lr)
    for g in (g1, g2):
        p.grad = g.copy()
        opt.step()
    after_one = adam_reference(p0, [g1], lr)[0]
    right = adam_reference(p0, [g1, g2], lr)[1]
    # fresh moments at t=2: m = 0.1 g2, v = 0.001 g2^2, bias-corrected with t = 2
    mhat, vhat = 0.1 * g2 / (1 - 0.9 ** 2), 0.001 * g2 ** 2 / (1 - 0.999 ** 2)
    forgetful = after_one - lr * mhat / (np.sqrt(vhat) + 1e-8)
    restarted = after_one - lr * g2 / (np.abs(g2) + 1e-8)  # fresh moments and t = 1
    np.testing.assert_allclose(p.data, right, rtol=RTOL, atol=0)
    for wrong in (forgetful, restarted):
        assert np.abs(p.data - wrong).max() > 1e-3
    m_sum = opt.state_dict()["state"][0]["m_sum"]  # the first moment kept undivided: m / (1 - beta1)
    np.testing.assert_allclose(m_sum * (1 - 0.9), 0.9 * 0.1 * g1 + 0.1 * g2, rtol=RTOL)


def test_reads_learning_rate_every_step():
    p = Variable(np.array([1.0]), requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = np.array([1.0])
    opt.step()
    opt.learning_rate = 0.0
    before = p.data.copy()
    opt.step()
    np.testing.assert_array_equal(p.data, before)
    opt.learning_rate = 0.5
    opt.step()
    np.testing.assert_allclose(p.data, before - 0.5, rtol=1e-6)  # mhat/sqrt(vhat) = 1 for a constant grad


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(cls, dtype):
    params = make_params(2, dtype)
    opt = cls(params, lr=0.01, weight_decay=0.1)
    run(opt, params, 3)
    for p in params:
        assert p.data.dtype == dtype and p.grad.dtype == dtype
    for state in opt.state_dict()["state"].values():
        assert state["m_sum"].dtype == dtype and state["v_sum"].dtype == dtype


def test_float32_follows_the_float64_formula():
    p0 = np.array([0.5, -1.5, 2.0])
    grads = [np.array([0.1, -0.2, 0.3]), np.array([-0.4, 0.5, 0.05])]
    p = Variable(p0.astype(np.float32), requires_grad=True)
    opt = Adam([p], lr=0.01, weight_decay=0.1)
    for g in grads:
        p.grad = g.astype(np.float32)
        opt.step()
    np.testing.assert_allclose(p.data, adam_reference(p0, grads, 0.01, weight_decay=0.1)[-1], rtol=1e-6)


def test_params_without_grad_are_skipped_but_t_advances():
    a = Variable(np.array([1.0]), requires_grad=True)
    b = Variable(np.array([2.0]), requires_grad=True)
    opt = Adam([a, b], lr=0.1)
    a.grad = np.array([1.0])
    opt.step()
    assert b.grad is None and b.data[0] == 2.0 and opt.step_count == 1


def test_kernel_rejects_bad_shapes_and_step():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="m has shape"):
        adam_update(x, x, np.zeros(2), x.copy(), step=1, lr=0.1)
    with pytest.raises(ValueError, match="1-D"):
        adam_update(np.zeros((2, 2)), x, x, x, step=1, lr=0.1)
    with pytest.raises(ValueError, match="step=0"):
        adam_update(x, x, x.copy(), x.copy(), step=0, lr=0.1)


@pytest.mark.parametrize("decoupled", [False, True])
def test_matches_torch_when_available(decoupled):
    torch = pytest.importorskip("torch")
    params = make_params(3)
    kw = dict(lr=0.01, weight_decay=0.05, eps=1e-7)
    ours = (AdamW if decoupled else Adam)(params, **kw)
    theirs = step_beside_torch(torch, params, ours, torch.optim.AdamW if decoupled else torch.optim.Adam, kw)
    for p, q in zip(params, theirs):
        np.testing.assert_allclose(p.data, q, rtol=1e-12, atol=1e-15)
