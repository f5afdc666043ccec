"""Data fingerprints: the size and SHA-256 of each file a run reads (data, labels), recorded in config.toml
and every checkpoint; resume, eval and sample check them, and the ranks compare theirs at start-up.

The modification time is not part of it: a copy of the same bytes on another node is the same data.
"""

import hashlib
import json

from .config import ConfigError

TABLE = "data_fingerprint"  # config.toml's table of this record (not a config key)


def data_fingerprint(cfg):
    """{"data": {...}, "labels": {...}}: path, bytes and sha256 of each file the config's data reads."""
    if cfg.model == "transformer" and cfg.data == "pydoc":
        from .data import builtin_text
        text = builtin_text().encode()
        return {"data": {"path": "pydoc_data.topics", "bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}}
    files = {"data": cfg.data}
    if getattr(cfg, "labels", ""):
        files["labels"] = cfg.labels
    return {role: file_fingerprint(path) for role, path in files.items()}


def file_fingerprint(path):
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256")
            return {"path": path, "bytes": f.tell(), "sha256": digest.hexdigest()}
    except OSError as e:
        raise ConfigError(f"data file {path}: {e.strerror or e}") from None


def same(a, b):
    """Whether two fingerprints name the same bytes (paths may differ)."""
    return {r: (f["bytes"], f["sha256"]) for r, f in a.items()} == {r: (f["bytes"], f["sha256"]) for r, f in b.items()}


def describe(fingerprint, role):
    f = fingerprint.get(role)
    return f"{f['bytes']:,} bytes, SHA-256 {f['sha256'][:16]}" if f else "no such file"


def check_recorded(recorded, current, where):
    """Refuse data other than the recorded (None: an older run without a record, nothing to check)."""
    if not recorded or same(recorded, current):
        return
    role = next(r for r in sorted(set(recorded) | set(current))
                if (recorded.get(r) or {}).get("sha256") != (current.get(r) or {}).get("sha256")
                or (recorded.get(r) or {}).get("bytes") != (current.get(r) or {}).get("bytes"))
    path = (current.get(role) or recorded[role])["path"]
    raise ConfigError(f"data file {path} is not the one {where} was trained on ({describe(current, role)} now, "
                      f"{describe(recorded, role)} recorded)")


def load_run_data(cfg, run):
    """The data of run directory `run` as its config names it, refused unless it is the data the run recorded
    (a relative path names a file in the current directory, which may not be the run's)."""
    from .data import load_data
    from .run import read_raw_config
    data = load_data(cfg)
    check_recorded(read_raw_config(run).get(TABLE), data_fingerprint(cfg), run)
    return data


def to_toml(fingerprint):
    """The record as config.toml tables, after the config's keys."""
    lines = []
    for role, f in fingerprint.items():
        lines += ["", f"[{TABLE}.{role}]", f"path = {json.dumps(f['path'], ensure_ascii=False)}",
                  f"bytes = {f['bytes']}", f"sha256 = \"{f['sha256']}\""]
    return "\n".join(lines) + "\n"
