"""Training configuration: TOML file + `--set key=value` overrides, every key type- and range-checked.

Every rank parses the same inputs with the same code, so every rank reaches the same config or
the same one-line ConfigError before any training starts.
"""

import difflib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from types import SimpleNamespace


class ConfigError(ValueError):
    """A bad config or data input; the message is one line naming the key or file."""


@dataclass(frozen=True)
class Key:
    default: object
    kind: type  # bool, int, float, str or list (of positive ints)
    doc: str
    lo: float = None  # inclusive bounds for numbers
    hi: float = None
    choices: tuple = None  # allowed strings
    positive: bool = False  # lo itself is excluded
    model: str = None  # the only model the key applies to


KEYS = {
    "model": Key("transformer", str, "built-in model", choices=("transformer", "mlp")),
    "data": Key("pydoc", str, "'pydoc' (built-in text), a text file (transformer), or .npz/.npy/IDX file (mlp)"),
    "labels": Key("", str, "mlp: labels file for .npy or IDX data", model="mlp"),
    "val_fraction": Key(0.1, float, "share of the data held out for validation", 0.0, 0.5),
    "seed": Key(0, int, "seed of initialisation, shuffling and sampling", 0, 2**63 - 1),
    "steps": Key(2000, int, "optimizer steps to train", 1),
    "global_batch": Key(32, int, "samples per optimizer step, whatever the number of ranks", 1),
    "micro_batch": Key(8, int, "samples per forward/backward pass", 1),
    "lr": Key(3e-3, float, "peak learning rate (Adam)", 0.0, positive=True),
    "min_lr": Key(0.0, float, "learning rate at the end of the cosine decay", 0.0),
    "warmup_steps": Key(50, int, "linear warm-up steps", 0),
    "decay_steps": Key(0, int, "steps of cosine decay after the warm-up; 0: until `steps` "
                              "(config.toml records the resolved value)", 0),
    "weight_decay": Key(0.0, float, "Adam L2 weight decay", 0.0),
    "clip_norm": Key(1.0, float, "clip the global gradient norm to this; 0 turns clipping off", 0.0),
    "deterministic": Key(False, bool, "bitwise-identical results at every world size that divides the micro-batches "
                                           "(otherwise any world size up to the micro-batches)"),
    "grad_comm_dtype": Key("float32", str, "dtype gradients travel in over MPI, summed in float32 (half the "
                           "bytes in 16 bits; float16 stops the run if a gradient passes 65504)",
                           choices=("float32", "bfloat16", "float16")),
    "zero": Key(False, bool, "ZeRO-1: each rank keeps the Adam state of 1/world of the parameters (the same "
                "bits as replicated, in both modes)"),
    "nonfinite": Key("stop", str, "on a NaN/Inf loss or gradient norm", choices=("stop", "skip")),
    "dtype": Key("float32", str, "parameter dtype", choices=("float32", "float64")),
    "checkpoint_every": Key(250, int, "steps between checkpoints (one is always written at the end); 0: end only", 0),
    "keep_checkpoints": Key(2, int, "checkpoints kept on disk", 1),
    "resume": Key(False, bool, "continue from the newest checkpoint in --out"),
    "eval_every": Key(100, int, "steps between validation losses (also at the end); 0: end only", 0),
    "eval_samples": Key(256, int, "validation samples per evaluation", 1),
    "check_replicas_every": Key(0, int, "steps between checks that all replicas hold the same bits; 0: never", 0),
    "step_timeout": Key(300.0, float, "seconds a rank may go without progress before the job is ended, saying "
                        "where (start-up and the first step: twice that, at least +120 s); 0: never", 0.0),
    "digest_every": Key(10, int, "steps between state digests in metrics.jsonl (also at the end); 0: never", 0),
    "log_every": Key(10, int, "steps between metrics rows and progress lines", 1),
    "context": Key(64, int, "transformer: characters of context", 2, model="transformer"),
    "d_model": Key(64, int, "transformer: embedding width", 1, model="transformer"),
    "num_heads": Key(4, int, "transformer: attention heads", 1, model="transformer"),
    "num_layers": Key(2, int, "transformer: blocks", 1, model="transformer"),
    "sample_chars": Key(200, int, "transformer: characters generated at the end", 0, model="transformer"),
    "hidden": Key([128], list, "mlp: hidden layer widths", model="mlp"),
    "classes": Key(0, int, "mlp: class count; 0: the largest label + 1 (refused when far beyond the distinct "
                   "labels seen)", 0, model="mlp"),
    "activation": Key("relu", str, "mlp: activation", choices=("relu", "tanh", "gelu", "sigmoid"), model="mlp"),
}

# Keys that shape the trajectory: a resumed run must use the checkpoint's values.
TRAJECTORY_KEYS = ("model", "data", "labels", "val_fraction", "seed", "global_batch", "micro_batch",
                   "lr", "min_lr", "warmup_steps", "decay_steps", "weight_decay", "clip_norm",
                   "deterministic", "nonfinite", "dtype", "grad_comm_dtype", "context", "d_model",
                   "num_heads", "num_layers", "hidden", "classes", "activation")

# Tables `mpigrad train` records in config.toml beside the keys (not config): read back by the tools
RECORDS = ("data_fingerprint", "identity")  # identity: the run's numerical code (run.identity_toml)

# Keys that only change what is logged, checked or kept: `--resume DIR` accepts them. More `steps`
# continue at min_lr once the schedule (fixed by warmup_steps and decay_steps) has ended.
RESUME_KEYS = ("steps", "checkpoint_every", "keep_checkpoints", "eval_every", "eval_samples",
               "check_replicas_every", "step_timeout", "digest_every", "log_every", "sample_chars", "zero")


def resume_request(directory, overrides):
    """(config path, overrides) of `--resume DIR`: the run's own config.toml, --set only for RESUME_KEYS."""
    for item in overrides:
        key, _ = parse_override(item)
        _check_known(key)
        if key not in RESUME_KEYS:
            raise ConfigError(f"--resume {directory}: --set {key} would change the run's trajectory; --resume "
                              f"takes only {', '.join(RESUME_KEYS)} (start a new run for other values)")
    path = os.path.join(directory, "config.toml")
    if not os.path.isfile(path):
        raise ConfigError(f"--resume {directory}: no config.toml (not an `mpigrad train --out` directory?)")
    return path, [*overrides, "resume=true"]


def load_config(path=None, overrides=(), world_size=1):
    """Defaults <- TOML file <- `key=value` overrides, checked; returns a SimpleNamespace."""
    raw = {}
    if path is not None:
        raw.update(_read_toml(path))
    for item in overrides:
        key, value = parse_override(item)
        raw[key] = value
    return SimpleNamespace(**check_config(raw, world_size))


def _read_toml(path):
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML ({e})") from None
    for table in RECORDS:
        data.pop(table, None)
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"config file {path}: table [{key}] is not allowed; keys are top-level")
    return data


def parse_override(item):
    """'key=value' -> (key, TOML value); a value that is not TOML is taken as a plain string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key, value


def check_config(raw, world_size=1):
    """Fill defaults and validate every key, then the keys against each other and the world size."""
    for key in raw:
        _check_known(key)
    cfg = {key: _check_value(key, raw.get(key, spec.default)) for key, spec in KEYS.items()}
    for key in raw:  # a default of the other model is harmless; a value the user set is a mistake
        if KEYS[key].model not in (None, cfg["model"]):
            raise ConfigError(f"config key '{key}' applies to model '{KEYS[key].model}', not to model '{cfg['model']}'")
    _check_combination(cfg, world_size)
    if cfg["decay_steps"] == 0:
        cfg["decay_steps"] = max(1, cfg["steps"] - cfg["warmup_steps"])
    return cfg


def _check_known(key):
    if key not in KEYS:
        near = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else "valid keys: " + ", ".join(KEYS)
        raise ConfigError(f"unknown config key '{key}' ({hint})")


def _check_value(key, value):
    spec = KEYS[key]
    if spec.kind is float and type(value) is int:
        value = float(value)
    if spec.kind is list:
        ok = isinstance(value, list) and value and all(type(v) is int and v >= 1 for v in value)
        if not ok:
            raise ConfigError(f"config key '{key}' must be a non-empty list of positive integers, got {_show(value)}")
        return value
    if type(value) is not spec.kind:
        raise ConfigError(f"config key '{key}' must be {_kind_name(spec.kind)}, got {_show(value)}")
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(f"'{c}'" for c in spec.choices)
        raise ConfigError(f"config key '{key}' must be one of {allowed}, got {_show(value)}")
    if spec.kind is float and not math.isfinite(value):
        raise ConfigError(f"config key '{key}' must be a finite number, got {value}")
    too_low = spec.lo is not None and (value <= spec.lo if spec.positive else value < spec.lo)
    if too_low or (spec.hi is not None and value > spec.hi):
        raise ConfigError(f"config key '{key}' must be {_range_text(spec)}, got {value}")
    return value


def _range_text(spec):
    if spec.hi is not None:
        return f"between {spec.lo} and {spec.hi}"
    return f"> {spec.lo}" if spec.positive else f">= {spec.lo}"


def _kind_name(kind):
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]


def _show(value):
    return f"{type(value).__name__} {value!r}"


def _check_combination(cfg, world_size):
    gb, mb = cfg["global_batch"], cfg["micro_batch"]
    if gb % mb:
        raise ConfigError(f"global_batch={gb} is not divisible by micro_batch={mb}")
    micro_batches = gb // mb
    if cfg["deterministic"] and micro_batches % world_size:
        raise ConfigError(f"global_batch/micro_batch = {micro_batches} micro-batches cannot be split evenly "
                          f"over {world_size} ranks; use a world size that divides {micro_batches}")
    if micro_batches < world_size:
        raise ConfigError(f"global_batch/micro_batch = {micro_batches} micro-batches cannot give each of "
                          f"{world_size} ranks at least one; use at most {micro_batches} ranks")
    if cfg["min_lr"] > cfg["lr"]:
        raise ConfigError(f"min_lr={cfg['min_lr']} is larger than lr={cfg['lr']}")
    if cfg["model"] == "transformer" and cfg["d_model"] % cfg["num_heads"]:
        raise ConfigError(f"d_model={cfg['d_model']} is not divisible by num_heads={cfg['num_heads']}")
    if cfg["grad_comm_dtype"] != "float32" and cfg["dtype"] != "float32":
        raise ConfigError(f"grad_comm_dtype = {cfg['grad_comm_dtype']!r} needs dtype = 'float32', got {cfg['dtype']!r}")
    if cfg["model"] == "mlp" and cfg["data"] == "pydoc":
        raise ConfigError("model 'mlp' needs data = a .npz, .npy or MNIST IDX file")


def trajectory_mismatch(cfg, saved):
    """The first trajectory key whose value differs from the checkpoint's config, as a message."""
    for key in TRAJECTORY_KEYS:
        if key in saved and saved[key] != getattr(cfg, key):
            return (f"config key '{key}' is {getattr(cfg, key)!r} but the checkpoint was trained with "
                    f"{saved[key]!r}; resume with the same value (`mpigrad train --resume DIR` takes the run's "
                    "own config.toml)")
    return None


def to_toml(cfg):
    """The config as TOML text, one `key = value` line per key of its model, in KEYS order."""
    values = vars(cfg) if isinstance(cfg, SimpleNamespace) else cfg
    return "".join(f"{key} = {_toml_value(values[key])}\n" for key, spec in KEYS.items()
                   if spec.model in (None, values["model"]))


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
