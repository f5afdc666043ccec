"""Checkpoints: one file, written by rank 0 atomically (temp file, fsync, rename), checksummed, no pickle.

Layout: a header line `MPIGRAD-CHECKPOINT 1 <sha256> <length>` followed by an .npz archive of
`param/<name>` arrays, `array/<k>` arrays referenced from a JSON skeleton of everything else
(the skeleton also holds the writing run's numerical identity, runtime/identity.py).
"""

import hashlib
import io
import json
import os

import numpy as np

from .comm import current_comm
from .identity import note_resumed, recorded, well_formed
from .stored_npz import ArchiveError, read_members
from .watchdog import progress

MAGIC = b"MPIGRAD-CHECKPOINT 1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, corrupt or from another model."""


def save_checkpoint(path, model, optimizer, **extra):
    """Every rank calls this; rank 0 writes. A crash mid-write leaves the previous file intact.

    Every rank gathers the state (a sharded optimizer's state_dict() is a collective) before rank 0
    alone encodes and writes: the collectives run on every rank, in the same order."""
    comm = current_comm()
    progress("checkpoint write")
    state = optimizer.state_dict() if optimizer is not None else None
    error = None
    if comm.is_main:
        try:
            _write_atomically(path, encode(model, state, extra))
        except OSError as e:
            error = f"cannot write checkpoint {path}: {e.strerror or e}"
    error = comm.bcast_obj(error)
    if error:
        raise CheckpointError(error)


def load_checkpoint(path, model, optimizer):
    """Every rank reads `path`, checks it and that all ranks read the same bytes; returns the extras."""
    comm = current_comm()
    progress("checkpoint read")
    try:
        payload = read_verified(path)
        digest, error = hashlib.sha256(payload).hexdigest(), None
    except CheckpointError as e:
        digest, error = None, str(e)
    outcomes = comm.allgather_obj((digest, error))
    for rank, (_, problem) in enumerate(outcomes):
        if problem:
            raise CheckpointError(problem if rank == comm.rank or comm.size == 1 else f"rank {rank}: {problem}")
    if len({d for d, _ in outcomes}) != 1:
        raise CheckpointError(f"checkpoint {path}: ranks read different contents (not a shared file system?)")
    extra = decode(payload, path, model, optimizer)
    step = extra.get("step") if isinstance(extra, dict) else None
    where = f"step {step}" if isinstance(step, int) else os.path.basename(path)
    note_resumed(checkpoint_identity(payload), where, comm.is_main)
    return extra


def checkpoint_identity(payload):
    """The numerical identity (runtime/identity.py) of the run that wrote these archive bytes (None if older)."""
    try:
        skeleton = json.loads(read_members(io.BytesIO(payload), ["skeleton"])["skeleton"].tobytes())
    except (ArchiveError, ValueError, KeyError, TypeError):
        return None
    record = skeleton.get("identity") if isinstance(skeleton, dict) else None
    return record if well_formed(record) else None


def encode(model, optimizer_state, extra):
    """The archive bytes: the model's parameters, an optimizer state_dict() (or None) and the extras."""
    arrays = {f"param/{name}": np.asarray(value) for name, value in model.state_dict().items()}
    skeleton = {"optimizer": _to_skeleton(optimizer_state, arrays),
                "extra": _to_skeleton(extra, arrays), "identity": recorded()}
    arrays["skeleton"] = np.frombuffer(json.dumps(skeleton).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode(payload, path, model, optimizer):
    """Reads only the members this model and optimizer need, each checked before it is allocated."""
    source = io.BytesIO(payload)
    try:
        skeleton = json.loads(read_members(source, ["skeleton"])["skeleton"].tobytes())
        parts = [skeleton["extra"]] + ([skeleton["optimizer"]] if optimizer is not None else [])
        arrays = read_members(source, sorted({key for part in parts for key in _array_keys(part)}))
    except (ArchiveError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} is not usable: {e}") from None
    shapes = {f"param/{name}": np.shape(value) for name, value in model.state_dict().items()}
    try:
        arrays.update(read_members(source, list(shapes), shapes))
    except ArchiveError as e:
        raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer: {e}") from None
    params = {key[len("param/"):]: arrays[key] for key in shapes}
    try:
        model.load_state_dict(params)
        if optimizer is not None:
            optimizer.load_state_dict(_from_skeleton(skeleton["optimizer"], arrays))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer: {e}") from None
    return _from_skeleton(skeleton["extra"], arrays)


def _array_keys(value):
    """The `array/<k>` members a skeleton refers to."""
    if isinstance(value, dict):
        if "__array__" in value:
            yield value["__array__"]
        for item in value.get("__dict__", []):
            yield from _array_keys(item[1])
        for item in value.get("__list__", []):
            yield from _array_keys(item)


def read_verified(path):
    """The archive bytes after checking the header's length and SHA-256."""
    try:
        with open(path, "rb") as f:
            header, payload = f.readline(), f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    parts = header.split()
    if len(parts) != 4 or b" ".join(parts[:2]) != MAGIC or not parts[3].isdigit():
        raise CheckpointError(f"{path} is not an mpigrad checkpoint (bad header)")
    if len(payload) != int(parts[3]):
        raise CheckpointError(f"checkpoint {path} is truncated: {len(payload)} of {int(parts[3])} bytes")
    if hashlib.sha256(payload).hexdigest().encode() != parts[2]:
        raise CheckpointError(f"checkpoint {path} is corrupt: its SHA-256 checksum does not match")
    return payload


def _write_atomically(path, payload):
    header = b"%s %s %d\n" % (MAGIC, hashlib.sha256(payload).hexdigest().encode(), len(payload))
    write_atomically(path, lambda f: (f.write(header), f.write(payload)))


def write_atomically(path, fill):
    """fill(file) writes a new file that then replaces `path` by rename: a crash leaves the old file or the
    new one, never a mix, and a symbolic link at `path` is replaced, never followed. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(temporary, flags, 0o644)
        except FileExistsError:  # left by a killed process that had this pid
            os.unlink(temporary)
            fd = os.open(temporary, flags, 0o644)
        with open(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def _to_skeleton(value, arrays):
    """JSON-able structure; arrays move to `arrays`, dict keys keep their types."""
    if isinstance(value, np.ndarray):
        key = f"array/{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"__dict__": [[k, _to_skeleton(v, arrays)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_to_skeleton(v, arrays) for v in value], "tuple": isinstance(value, tuple)}
    return value


def _from_skeleton(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__dict__" in value:
            return {k: _from_skeleton(v, arrays) for k, v in value["__dict__"]}
        items = [_from_skeleton(v, arrays) for v in value["__list__"]]
        return tuple(items) if value["tuple"] else items
    return value
