import math

import numpy as np
import pytest

from mpigrad.optim import SGD, Adam, CosineLR, ReduceLROnPlateau, StepLR
from optim_helpers import make_params


def opt(lr=1.0):
    return Adam(make_params(0), lr=lr)


def plateau_lrs(metrics, **kw):
    o = opt()
    sched = ReduceLROnPlateau(o, **kw)
    out = []
    for m in metrics:
        sched.step(m)
        out.append(o.learning_rate)
    return out


def test_step_lr_sequence():
    o = opt(1.0)
    sched = StepLR(o, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(6):
        sched.step()
        lrs.append(o.learning_rate)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_reduces_after_patience_bad_epochs():
    # best 10 then 9; three epochs without improvement > patience 2 -> reduce at the third
    lrs = plateau_lrs([10, 9, 9, 9, 9, 9, 9, 9], patience=2)
    assert lrs == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01])


def test_plateau_cooldown_ignores_bad_epochs():
    lrs = plateau_lrs([5, 5, 5, 5, 5, 5, 5], patience=0, cooldown=2)
    assert lrs == pytest.approx([1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])


def test_plateau_min_lr_and_eps():
    assert plateau_lrs([1, 1, 1, 1, 1], patience=0, factor=0.5, min_lr=0.3) == [1, 0.5, 0.3, 0.3, 0.3]
    # a reduction smaller than eps is skipped
    assert plateau_lrs([1, 1, 1], patience=0, factor=0.5, eps=0.6) == [1, 1, 1]


def test_plateau_ignores_nan_and_inf():
    lrs = plateau_lrs([1.0, math.nan, math.inf, -math.inf, 0.5, math.nan], patience=0)
    assert lrs == [1.0] * 6
    o = opt()
    sched = ReduceLROnPlateau(o)
    sched.step(float("nan"))
    assert sched.best == math.inf and sched.num_bad_epochs == 0


def test_plateau_thresholds_rel_and_abs():
    # rel: improvement needs metric < best * (1 - 0.1) = 0.9
    assert plateau_lrs([1.0, 0.95], patience=0, threshold=0.1) == [1.0, 0.1]
    # abs: improvement needs metric < best - 0.01 = 0.99
    assert plateau_lrs([1.0, 0.95], patience=0, threshold=0.01, threshold_mode="abs") == [1.0, 1.0]


def test_plateau_max_mode():
    assert plateau_lrs([0.5, 0.6, 0.7, 0.7], mode="max", patience=0) == [1.0, 1.0, 1.0, 0.1]
    assert plateau_lrs([0.5, 0.52], mode="max", patience=0, threshold=0.1) == [1.0, 0.1]  # needs > 0.55


def test_plateau_accepts_numpy_scalars():
    assert plateau_lrs([np.float32(1.0), np.array(1.0)], patience=0) == [1.0, 0.1]


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", threshold_mode="abs", threshold=0.05, cooldown=1),
                                dict(patience=1, factor=0.5, min_lr=0.05, cooldown=2)])
def test_plateau_matches_torch_when_available(kw):
    torch = pytest.importorskip("torch")
    metrics = np.random.default_rng(0).uniform(0, 1, 60).round(2)
    ref = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(ref, **kw)
    expected = []
    for m in metrics:
        sched.step(float(m))
        expected.append(ref.param_groups[0]["lr"])
    assert plateau_lrs(metrics, **kw) == pytest.approx(expected, rel=1e-12)


def cosine_lrs(base_lr, steps, **kw):
    """The learning rate before the first step and after each of `steps` CosineLR steps."""
    o = opt(base_lr)
    sched = CosineLR(o, **kw)
    lrs = [o.learning_rate]
    for _ in range(steps):
        sched.step()
        lrs.append(o.learning_rate)
    return lrs


def test_cosine_with_warmup():
    lrs = cosine_lrs(1.0, 12, total_steps=10, warmup_steps=2, min_lr=0.1)
    assert lrs[:3] == [0.5, 1.0, 1.0]
    for t in range(2, 10):
        assert lrs[t] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * (t - 2) / 8)) / 2, rel=1e-12)
    assert lrs[6] == pytest.approx(0.55)
    assert all(a > b for a, b in zip(lrs[2:10], lrs[3:11]))
    assert lrs[10:] == [0.1, 0.1, 0.1]


def test_cosine_without_warmup_starts_at_base():
    lrs = cosine_lrs(0.3, 4, total_steps=4)
    assert lrs[0] == 0.3 and lrs[4] == 0.0
    assert lrs[2] == pytest.approx(0.15)


def test_cosine_warmup_longer_than_total():
    lrs = cosine_lrs(1.0, 5, total_steps=2, warmup_steps=4, min_lr=0.1)
    assert lrs == [0.25, 0.5, 0.75, 1.0, 0.1, 0.1]


def test_schedulers_state_round_trip():
    o1, o2 = opt(1.0), opt(1.0)
    for make in (lambda o: StepLR(o, 3, 0.5), lambda o: ReduceLROnPlateau(o, patience=1),
                 lambda o: CosineLR(o, 10, 3)):
        a = make(o1)
        for i in range(4):
            a.step(1.0) if isinstance(a, ReduceLROnPlateau) else a.step()
        b = make(o2)
        b.load_state_dict(a.state_dict())
        assert b.state_dict() == a.state_dict()
        with pytest.raises(ValueError, match="keys"):
            b.load_state_dict({"bogus": 1})


SCHEDULER_ERRORS = [
    (lambda o: StepLR(o, 0), "StepLR: step_size=0 must be an integer >= 1"),
    (lambda o: StepLR(o, 2.5), "StepLR: step_size=2.5 must be an integer >= 1"),
    (lambda o: StepLR(o, 2, gamma=0), "StepLR: gamma=0 must be > 0"),
    (lambda o: ReduceLROnPlateau(o, mode="up"), "ReduceLROnPlateau: mode='up' must be 'min' or 'max'"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), r"ReduceLROnPlateau: factor=1.0 is outside \(0, 1\)"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), "ReduceLROnPlateau: patience=-1 must be an integer >= 0"),
    (lambda o: ReduceLROnPlateau(o, threshold=-1e-4), "ReduceLROnPlateau: threshold=-0.0001 must be >= 0"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="x"), "ReduceLROnPlateau: threshold_mode='x' must be 'rel' or 'abs'"),
    (lambda o: ReduceLROnPlateau(o, cooldown=-2), "ReduceLROnPlateau: cooldown=-2 must be an integer >= 0"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-1.0), "ReduceLROnPlateau: min_lr=-1.0 must be >= 0"),
    (lambda o: CosineLR(o, 0), "CosineLR: total_steps=0 must be an integer >= 1"),
    (lambda o: CosineLR(o, 5, warmup_steps=-1), "CosineLR: warmup_steps=-1 must be an integer >= 0"),
    (lambda o: CosineLR(o, 5, min_lr=2.0), r"CosineLR: min_lr=2.0 exceeds the optimizer's lr=1.0"),
]


@pytest.mark.parametrize("make, message", SCHEDULER_ERRORS)
def test_scheduler_validation(make, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        make(opt(1.0))


def test_scheduler_drives_sgd_too():
    o = SGD(make_params(0), lr=0.2)
    StepLR(o, 1, 0.5).step()
    assert o.learning_rate == 0.1
