"""`log_digest`: a training script's state digests, for `mpigrad check-determinism -- COMMAND`."""

import json
import math
import os

from .comm import init
from .digest import combine, digest_items

# Set by `mpigrad check-determinism` on the runs it launches: the JSON-lines file rank 0 appends to.
ENV = "MPIGRAD_DIGEST_LOG"


def log_digest(step, model, optimizer=None, **values):
    """Record the state digest of `model` (and `optimizer`) after `step` when `mpigrad check-determinism`
    runs this script; otherwise do nothing and return None (so the call can stay in the script).

    Call it on every rank (ZeRO's optimizer state is collective). Rank 0 appends one JSON line:
    the step, the digest, one digest per parameter and optimizer state leaf (so the check can name
    the first that differs), and `values` (numbers such as loss=loss.item()), all compared bit for
    bit across world sizes. Returns the digest.
    """
    path = os.environ.get(ENV)
    if not path:
        return None
    comm = init()
    items = digest_items(model.named_parameters(), optimizer)
    digest = combine(items)
    if comm.is_main:
        row = {"step": int(step), "digest": digest, **{k: _exact(v) for k, v in values.items()},
               "parts": dict(items)}
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    return digest


def _exact(value):
    """A number written so that equal text means equal bits (a float as its hex form)."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        return value.hex() if math.isfinite(value) else repr(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    raise TypeError(f"log_digest: value {value!r} is not a number or a string")
