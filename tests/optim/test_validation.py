import numpy as np
import pytest

from mpigrad.optim import SGD, Adam, AdamW, Optimizer
from optim_helpers import make_params

CASES = [
    (Adam, dict(lr=-0.1), "Adam: lr=-0.1 must be >= 0"),
    (Adam, dict(lr=float("nan")), "Adam: lr=nan must be >= 0"),
    (Adam, dict(beta1=1.0), r"Adam: beta1=1.0 is outside \[0, 1\)"),
    (Adam, dict(beta1=-0.1), r"Adam: beta1=-0.1 is outside \[0, 1\)"),
    (Adam, dict(beta2=1.0), r"Adam: beta2=1.0 is outside \[0, 1\)"),
    (Adam, dict(eps=0.0), "Adam: eps=0.0 must be > 0"),
    (Adam, dict(eps=-1e-8), "Adam: eps=-1e-08 must be > 0"),
    (Adam, dict(weight_decay=-0.01), "Adam: weight_decay=-0.01 must be >= 0"),
    (AdamW, dict(beta2=1.5), r"AdamW: beta2=1.5 is outside \[0, 1\)"),
    (AdamW, dict(weight_decay=-1), "AdamW: weight_decay=-1 must be >= 0"),
    (SGD, dict(lr=-1.0), "SGD: lr=-1.0 must be >= 0"),
    (SGD, dict(lr=0.1, momentum=-0.5), "SGD: momentum=-0.5 must be >= 0"),
    (SGD, dict(lr=0.1, weight_decay=-0.5), "SGD: weight_decay=-0.5 must be >= 0"),
    (SGD, dict(lr=0.1, nesterov=True), "SGD: nesterov=True needs momentum > 0, got momentum=0.0"),
]


@pytest.mark.parametrize("cls, kw, message", CASES)
def test_bad_arguments(cls, kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls(make_params(0), **kw)


def test_learning_rate_setter_validates():
    opt = Adam(make_params(0))
    with pytest.raises(ValueError, match=r"Adam: lr=-0.5 must be >= 0"):
        opt.learning_rate = -0.5
    opt.learning_rate = np.float32(0.25)
    assert opt.learning_rate == 0.25 and type(opt.learning_rate) is float


def test_empty_and_duplicate_params():
    with pytest.raises(ValueError, match="Adam: params is empty"):
        Adam([])
    p = make_params(0)
    with pytest.raises(ValueError, match="parameter 2 is the same object as parameter 0"):
        Adam([p[0], p[1], p[0]])


def test_clip_arguments():
    opt = Adam(make_params(0))
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm=-1.0 must be >= 0"):
        opt.clip_grad_norm(-1.0)


def test_base_optimizer_has_utilities_but_no_step():
    params = make_params(0)
    opt = Optimizer(params, lr=0.1)
    assert opt.params == params and opt.learning_rate == 0.1 and opt.step_count == 0
    for p in params:
        p.grad = np.ones_like(p.data)
    assert opt.grad_norm() > 0
    with pytest.raises(NotImplementedError):
        opt.step()
