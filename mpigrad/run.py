"""A `mpigrad train --out` directory read back: its config, metrics rows, parameters, and the model itself."""

import io
import json
import os
import tomllib
from types import SimpleNamespace


from mpigrad.runtime.checkpoint import CheckpointError, read_verified
from mpigrad.runtime.stored_npz import ArchiveError, member_names, read_members

from .config import ConfigError, _toml_value, load_config
from .rundir import checkpoint_files


class RunError(ConfigError):
    """A run directory that cannot be used; the message is one line naming the path."""


def check_run_dir(directory):
    if not os.path.isdir(directory):
        raise RunError(f"{directory}: no such directory")


def read_raw_config(directory):
    """The run's config.toml as a plain dict (every key the run was trained with; not its [identity])."""
    config = _read_config_toml(directory)
    config.pop("identity", None)
    return config


def read_identity(directory):
    """The numerical identity the run recorded in config.toml's [identity] (runtime/identity.py), or None."""
    identity = _read_config_toml(directory).get("identity")
    return identity if isinstance(identity, dict) else None


def identity_toml(record, name="identity"):
    """The record as config.toml's [identity] table: rank 0's fields, [identity.rank.N] for ranks that
    differ, [[identity.earlier]] for the code a resumed run ran on before."""
    scalars = [f"{key} = {_toml_value(value)}\n" for key, value in record.items()
               if not isinstance(value, (dict, list))]
    text = f"\n[{name}]\n" + "".join(scalars)
    for rank, fields in record.get("rank", {}).items():
        text += f"\n[{name}.rank.{rank}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in fields.items())
    for earlier in record.get("earlier", []):
        text += identity_toml(earlier, f"{name}.earlier").replace(f"[{name}.earlier]", f"[[{name}.earlier]]", 1)
    return text


def _read_config_toml(directory):
    path = os.path.join(directory, "config.toml")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise RunError(f"{path}: {e.strerror or e} (not an `mpigrad train --out` directory?)") from None
    except tomllib.TOMLDecodeError as e:
        raise RunError(f"{path}: not valid TOML ({e})") from None


def read_config(directory):
    """The run's config as train sees it (checked, defaults filled)."""
    check_run_dir(directory)
    read_raw_config(directory)  # the one-line error for a missing or broken file
    return load_config(os.path.join(directory, "config.toml"))


def read_rows(directory):
    """metrics.jsonl rows keyed by step (a missing file is no rows; a broken line is an error)."""
    path = os.path.join(directory, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    rows = {}
    try:
        with open(path) as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    row = json.loads(line)
                    rows[row["step"]] = row
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: unreadable ({e})") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise RunError(f"{path}: line {number} is not a metrics row") from None
    return rows


def newest_checkpoint(directory):
    found = checkpoint_files(os.path.join(directory, "checkpoints"))
    return found[-1] if found else None


def read_parameters(directory, prefer_final=True):
    """(name -> array, source path): final.npz, or (if absent or not preferred) the newest checkpoint."""
    check_run_dir(directory)
    final, checkpoint = os.path.join(directory, "final.npz"), newest_checkpoint(directory)
    if prefer_final and os.path.exists(final) and not _newer(checkpoint, final):
        return _read_npz(final, final), final
    if checkpoint is None:
        raise RunError(f"{directory}: no final.npz and no checkpoints/step-*.ckpt")
    try:
        payload = read_verified(checkpoint)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    source = io.BytesIO(payload)
    try:
        names = [name for name in member_names(source) if name.startswith("param/")]
    except ArchiveError as e:
        raise RunError(f"{checkpoint}: {e}") from None
    arrays = _read_npz(source, checkpoint, names)
    return {k[len("param/"):]: v for k, v in arrays.items()}, checkpoint


def _newer(checkpoint, final):
    """Whether the checkpoint was written after final.npz: a resumed run stopped early (older mpigrad kept
    the previous final.npz); the newest parameters win."""
    return checkpoint is not None and os.stat(checkpoint).st_mtime_ns > os.stat(final).st_mtime_ns


def _read_npz(source, path, names=None):
    """Each array checked before it is allocated, compressed ones refused: at most the file's size in memory."""
    try:
        return read_members(source, names)
    except ArchiveError as e:
        raise RunError(f"{path}: {e}") from None


def load_run(directory):
    """(model, cfg): the run's model rebuilt from its config.toml, holding its final (or newest
    checkpoint's) parameters. Needs no data: the vocabulary size or feature and class counts come
    from the parameter shapes."""
    model, cfg, _ = load_run_from(directory)
    return model, cfg


def load_run_from(directory):
    """(model, cfg, path of the parameters it holds)."""
    from .models import build_model
    cfg = read_config(directory)
    params, source = read_parameters(directory)
    model = build_model(cfg, _shapes(cfg, params, source))
    try:
        model.load_state_dict(params)
    except (KeyError, ValueError) as e:
        raise RunError(f"{source} does not fit the model of {directory}/config.toml: {e}") from None
    model.eval()
    return model, cfg, source


def _shapes(cfg, params, source):
    """What build_model reads from a dataset: the vocabulary (its size), or features and classes."""
    weights = [v for k, v in params.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise RunError(f"{source}: holds no weight matrices")
    if cfg.model == "transformer":
        return SimpleNamespace(vocab=range(params.get("token.weight", weights[0]).shape[0]))
    return SimpleNamespace(features=weights[0].shape[1], classes=weights[-1].shape[0])
