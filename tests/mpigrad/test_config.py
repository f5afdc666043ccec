"""Config parsing and validation: every key type- and range-checked, one-line errors."""

import tomllib
from types import SimpleNamespace

import numpy as np
import pytest

from mpigrad.config import KEYS, ConfigError, check_config, load_config, parse_override, to_toml, \
    trajectory_mismatch


def error_of(overrides, world_size=1, path=None):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides, world_size)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_are_valid_and_decay_defaults_to_the_steps_after_warmup():
    cfg = load_config(None, ["steps=70"])
    assert cfg.model == "transformer" and cfg.data == "pydoc" and cfg.decay_steps == 20
    assert load_config(None, ["steps=7"]).decay_steps == 1  # all warm-up: the cosine never starts
    assert set(vars(cfg)) == set(KEYS)


def test_decay_steps_is_the_cosine_after_warmup():
    from mpigrad.autograd import Variable
    from mpigrad.optim import Adam
    from mpigrad.train import make_schedule
    cfg = load_config(None, ["steps=300", "warmup_steps=50", "decay_steps=100", "lr=1.0", "min_lr=0.5"])
    opt = Adam([Variable(np.zeros(1), requires_grad=True)], lr=cfg.lr)
    schedule = make_schedule(cfg, opt)
    assert [schedule.lr_at(t) for t in (49, 50, 100, 150, 200)] == [1.0, 1.0, 0.75, 0.5, 0.5]


@pytest.mark.parametrize("model, key, value", [
    ("transformer", "hidden", "[8]"), ("transformer", "activation", "tanh"), ("transformer", "labels", "y.npy"),
    ("mlp", "context", "8"), ("mlp", "d_model", "8"), ("mlp", "num_heads", "2"), ("mlp", "num_layers", "3"),
    ("mlp", "sample_chars", "0"),
])
def test_keys_of_the_other_model_are_refused_when_set(model, key, value):
    data = ["data=x.npz"] if model == "mlp" else []
    message = error_of([f"model={model}", *data, f"{key}={value}"])
    other = "mlp" if model == "transformer" else "transformer"
    assert message == f"config key '{key}' applies to model '{other}', not to model '{model}'"


def test_file_then_overrides(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('steps = 3\nlr = 1\nmodel = "mlp"\ndata = "a.npz"\n')
    cfg = load_config(str(path), ["steps=5", "deterministic=true", "hidden=[4, 2]"])
    assert (cfg.steps, cfg.lr, cfg.model, cfg.deterministic, cfg.hidden) == (5, 1.0, "mlp", True, [4, 2])
    assert type(cfg.lr) is float


@pytest.mark.parametrize("item, expected", [
    ("steps=5", ("steps", 5)), ("lr=1e-3", ("lr", 1e-3)), ("resume=true", ("resume", True)),
    ('model="mlp"', ("model", "mlp")), ("model=mlp", ("model", "mlp")), ("data=dir/x.npz", ("data", "dir/x.npz")),
    ("hidden=[8,8]", ("hidden", [8, 8])), (" seed = 3", ("seed", 3)),
])
def test_parse_override(item, expected):
    assert parse_override(item) == expected


@pytest.mark.parametrize("item", ["steps", "=3", ""])
def test_override_needs_key_and_value(item):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override(item)


def test_unknown_key_suggests_nearest():
    assert error_of(["stpes=3"]) == "unknown config key 'stpes' (did you mean 'steps'?)"
    assert "did you mean 'global_batch'" in error_of(["globalbatch=3"])
    assert error_of(["zzz=1"]).startswith("unknown config key 'zzz' (valid keys: model, data,")


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text("micro_bach = 4\n")
    assert "did you mean 'micro_batch'" in error_of([], path=str(path))


@pytest.mark.parametrize("item, message", [
    ("steps=1.5", "config key 'steps' must be an integer, got float 1.5"),
    ("steps=true", "config key 'steps' must be an integer, got bool True"),
    ("steps=ten", "config key 'steps' must be an integer, got str 'ten'"),
    ("lr=fast", "config key 'lr' must be a number, got str 'fast'"),
    ("deterministic=1", "config key 'deterministic' must be true or false, got int 1"),
    ("resume=yes", "config key 'resume' must be true or false, got str 'yes'"),
    ("data=3", "config key 'data' must be a string, got int 3"),
    ("model=cnn", "config key 'model' must be one of 'transformer', 'mlp', got str 'cnn'"),
    ("nonfinite=ignore", "config key 'nonfinite' must be one of 'stop', 'skip', got str 'ignore'"),
    ("dtype=float16", "config key 'dtype' must be one of 'float32', 'float64', got str 'float16'"),
    ("hidden=[]", "config key 'hidden' must be a non-empty list of positive integers, got list []"),
    ("hidden=[4, 0]", "config key 'hidden' must be a non-empty list of positive integers, got list [4, 0]"),
    ("hidden=64", "config key 'hidden' must be a non-empty list of positive integers, got int 64"),
    ("lr=nan", "config key 'lr' must be a finite number, got nan"),
    ("clip_norm=inf", "config key 'clip_norm' must be a finite number, got inf"),
])
def test_wrong_type(item, message):
    assert error_of([item]) == message


@pytest.mark.parametrize("item, allowed", [
    ("steps=0", ">= 1"), ("global_batch=0", ">= 1"), ("micro_batch=-2", ">= 1"),
    ("seed=-1", "between 0 and 9223372036854775807"), ("lr=0", "> 0.0"), ("lr=-1e-3", "> 0.0"), ("min_lr=-1", ">= 0.0"), ("weight_decay=-0.1", ">= 0.0"),
    ("clip_norm=-1", ">= 0.0"), ("val_fraction=0.6", "between 0.0 and 0.5"), ("warmup_steps=-1", ">= 0"),
    ("checkpoint_every=-1", ">= 0"), ("keep_checkpoints=0", ">= 1"), ("eval_every=-5", ">= 0"),
    ("eval_samples=0", ">= 1"), ("log_every=0", ">= 1"), ("context=1", ">= 2"), ("d_model=0", ">= 1"),
    ("num_heads=0", ">= 1"), ("num_layers=0", ">= 1"), ("sample_chars=-1", ">= 0"), ("decay_steps=-1", ">= 0"),
])
def test_out_of_range(item, allowed):
    key, _, value = item.partition("=")
    message = error_of([item])
    assert message.startswith(f"config key '{key}' must be {allowed}, got ")


def test_every_scalar_key_is_type_checked():
    for key, spec in KEYS.items():
        wrong = [1, 2] if spec.kind is not list else "x"
        assert key in error_of([f"{key}={wrong}"] if spec.kind is not list else [f"{key}=x"])


def test_batch_divisibility():
    assert error_of(["global_batch=30", "micro_batch=8"]) == "global_batch=30 is not divisible by micro_batch=8"
    for world_size in (1, 2, 3):  # default mode: ranks may run unequal numbers of micro-batches
        load_config(None, ["global_batch=24", "micro_batch=8"], world_size=world_size)
    message = error_of(["global_batch=24", "micro_batch=8"], world_size=4)
    assert message == ("global_batch/micro_batch = 3 micro-batches cannot give each of 4 ranks at least one; "
                       "use at most 3 ranks")


def test_deterministic_takes_every_world_size_that_divides_the_micro_batches():
    overrides = ["global_batch=48", "micro_batch=8", "deterministic=true"]
    for world_size in (1, 2, 3, 6):
        load_config(None, overrides, world_size=world_size)
    assert "6 micro-batches cannot be split evenly over 4 ranks" in error_of(overrides, world_size=4)


def test_cross_key_checks():
    assert error_of(["min_lr=0.1", "lr=0.01"]) == "min_lr=0.1 is larger than lr=0.01"
    assert error_of(["d_model=30", "num_heads=4"]) == "d_model=30 is not divisible by num_heads=4"
    assert error_of(["model=mlp"]) == "model 'mlp' needs data = a .npz, .npy or MNIST IDX file"


def test_bad_files(tmp_path):
    assert error_of([], path=str(tmp_path / "missing.toml")).startswith(f"config file {tmp_path}/missing.toml:")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    assert "not valid TOML" in error_of([], path=str(bad))
    table = tmp_path / "table.toml"
    table.write_text("[model]\nd_model = 3\n")
    assert "table [model] is not allowed" in error_of([], path=str(table))


def test_to_toml_round_trips():
    for model in ([], ['data="a \\"b\\" é.npz"', "model=mlp", "hidden=[3, 4]"]):
        cfg = load_config(None, [*model, "lr=1e-5", "resume=true", "steps=500"])
        text = to_toml(cfg)
        assert ("hidden" in text) == bool(model) and ("d_model" in text) != bool(model)
        assert check_config(tomllib.loads(text)) == vars(cfg)


def test_trajectory_mismatch_names_the_key():
    cfg = load_config(None, ["steps=20", "min_lr=3e-4"])
    saved = dict(vars(cfg))
    assert trajectory_mismatch(cfg, saved) is None
    assert trajectory_mismatch(SimpleNamespace(**{**saved, "steps": 50, "resume": True}), saved) is None
    message = trajectory_mismatch(SimpleNamespace(**{**saved, "lr": 0.1}), saved)
    assert message.startswith("config key 'lr' is 0.1 but the checkpoint was trained with 0.003; resume with the same value")


def test_every_key_either_shapes_the_trajectory_or_may_change_on_resume():
    from mpigrad.config import RESUME_KEYS, TRAJECTORY_KEYS
    assert set(TRAJECTORY_KEYS) | set(RESUME_KEYS) | {"resume"} == set(KEYS)
    assert not set(TRAJECTORY_KEYS) & set(RESUME_KEYS)
