import json

import numpy as np
import pytest

from mpigrad.optim import SGD, Adam, AdamW, flatten_parameters
from optim_helpers import make_params, run

MAKERS = {
    "adam": lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw": lambda ps: AdamW(ps, lr=0.02),
    "sgd": lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("flat_after_load", [False, True])
def test_save_load_continue_is_bitwise_identical(name, flat_after_load):
    straight = make_params(0, np.float32)
    opt = MAKERS[name](straight)
    run(opt, straight, 7)

    first = make_params(0, np.float32)
    opt1 = MAKERS[name](first)
    run(opt1, first, 3)
    saved, values = opt1.state_dict(), [p.data.copy() for p in first]
    run(opt1, first, 2, first_seed=999)  # later steps must not leak into the saved copy

    resumed = make_params(5, np.float32)
    for p, v in zip(resumed, values):
        p.data[...] = v
    if flat_after_load:
        flatten_parameters(resumed)
    opt2 = MAKERS[name](resumed)
    opt2.learning_rate = 123.0  # overwritten by the loaded hyperparameters
    opt2.load_state_dict(saved)
    assert opt2.step_count == 3 and opt2.learning_rate == opt1.learning_rate
    run(opt2, resumed, 4, first_seed=103)
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p.data, q.data)


def test_contents_are_plain_arrays_keyed_by_index():
    params = make_params(0)
    opt = Adam(params, lr=0.01, beta1=0.8)
    run(opt, params, 2)
    d = opt.state_dict()
    assert d["type"] == "Adam" and d["step_count"] == 2
    assert d["hyperparams"] == {"lr": 0.01, "beta1": 0.8, "beta2": 0.999, "weight_decay": 0.0, "eps": 1e-8}
    assert sorted(d["state"]) == list(range(len(params)))
    for p, s in zip(params, d["state"].values()):
        assert set(s) == {"m_sum", "v_sum"} and s["m_sum"].shape == p.data.shape and type(s["m_sum"]) is np.ndarray


def test_json_style_string_keys_are_accepted():
    params = make_params(0)
    opt = Adam(params)
    run(opt, params, 1)
    d = opt.state_dict()
    d = dict(d, state={str(k): v for k, v in d["state"].items()},
             hyperparams=json.loads(json.dumps(d["hyperparams"])))
    other = Adam(make_params(0))
    other.load_state_dict(d)
    np.testing.assert_array_equal(other.state_dict()["state"][1]["v_sum"], opt.state_dict()["state"][1]["v_sum"])


def test_load_validates_count_shapes_slots_and_type():
    params = make_params(0)
    good = Adam(params).state_dict()
    opt = Adam(make_params(1))
    with pytest.raises(ValueError, match="state has 3 parameters, the optimizer has 4"):
        opt.load_state_dict(dict(good, state={i: good["state"][i] for i in range(3)}))
    bad = {i: dict(s) for i, s in good["state"].items()}
    bad[1]["v_sum"] = np.zeros(6)
    with pytest.raises(ValueError, match=r"parameter 1 v_sum has shape \(6,\), the parameter has \(5,\)"):
        opt.load_state_dict(dict(good, state=bad))
    with pytest.raises(ValueError, match=r"parameter 0 has state \['m_sum'\], expected \['m_sum', 'v_sum'\]"):
        opt.load_state_dict(dict(good, state={**good["state"], 0: {"m_sum": good["state"][0]["m_sum"]}}))
    with pytest.raises(ValueError, match="state is for 'Adam', not 'SGD'"):
        SGD(make_params(1), lr=0.1).load_state_dict(good)
    with pytest.raises(ValueError, match="step_count=-1"):
        opt.load_state_dict(dict(good, step_count=-1))


def test_failed_load_changes_nothing():
    opt = Adam(make_params(1), lr=0.5)
    good = Adam(make_params(0), lr=0.01).state_dict()
    with pytest.raises(ValueError, match="beta2=1.5 is outside"):
        opt.load_state_dict(dict(good, hyperparams=dict(good["hyperparams"], beta2=1.5)))
    assert opt.learning_rate == 0.5 and opt.beta2 == 0.999


def test_sgd_momentum_cannot_be_switched_on_by_loading():
    plain = SGD(make_params(0), lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"parameter 0 has state \[\], expected \['momentum'\]"):
        SGD(make_params(0), lr=0.1, momentum=0.9).load_state_dict(plain)
    with pytest.raises(ValueError, match="cannot switch momentum"):
        SGD(make_params(0), lr=0.1).load_state_dict(dict(plain, hyperparams=dict(plain["hyperparams"], momentum=0.5)))


def test_state_with_the_old_divided_moments_loads():
    """Files written before the undivided moments hold m and v; they continue the same trajectory."""
    straight, old = make_params(0), make_params(0)
    opt, opt_old = Adam(straight, lr=0.01), Adam(old, lr=0.01)
    run(opt, straight, 2)
    run(opt_old, old, 2)
    d = opt_old.state_dict()
    d["state"] = {i: {"m": s["m_sum"] * 0.1, "v": s["v_sum"] * 0.001} for i, s in d["state"].items()}
    resumed = Adam(old, lr=0.01)
    resumed.load_state_dict(d)
    run(opt, straight, 2, first_seed=7)
    run(resumed, old, 2, first_seed=7)
    for p, q in zip(straight, old):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12)
