"""Replica checks: the same model structure on every rank, the same bits in every replica."""

import hashlib

import numpy as np


def check_same_structure(named_params, comm):
    """Every rank raises the same error if any rank's (name, shape, dtype) list differs from rank 0's."""
    mine = [(name, tuple(p.shape), str(p.dtype)) for name, p in named_params]
    everyone = comm.allgather_obj(mine)
    for rank, theirs in enumerate(everyone[1:], start=1):
        problem = _first_difference(everyone[0], theirs)
        if problem:
            raise ValueError(f"DataParallel: the model differs between ranks: rank 0 vs rank {rank}: {problem}")


def _first_difference(ref, other):
    for i, (a, b) in enumerate(zip(ref, other)):
        if a != b:
            return (f"parameter {i} is {a[0]} {a[1]} {a[2]} on rank 0 but {b[0]} {b[1]} {b[2]}")
    if len(ref) != len(other):
        return f"{len(ref)} parameters on rank 0 but {len(other)}"
    return None


def _digest(array):
    return hashlib.blake2b(np.ascontiguousarray(array).view(np.uint8), digest_size=16).hexdigest()


def replica_digests(dp, optimizer=None):
    """(label, digest) of every parameter and every optimizer state array, in a fixed order."""
    items = [(dp.names[id(p)], _digest(p.data)) for g in dp.groups for p in g.params]
    if optimizer is not None:
        for key, value in state_leaves(optimizer.state_dict()):
            items.append((f"optimizer state {key}", _digest(np.asarray(value))))
    return items


def state_leaves(state, prefix=""):
    """(dotted key, value) of every leaf of a nested state dict, in sorted key order."""
    if isinstance(state, dict):
        for key in sorted(state, key=str):
            yield from state_leaves(state[key], f"{prefix}{key}.")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from state_leaves(value, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), state


def check_replicas(dp, optimizer=None):
    """Compare one digest per rank first; only on a mismatch find and name the first differing item."""
    items = replica_digests(dp, optimizer)
    overall = hashlib.blake2b("".join(d for _, d in items).encode(), digest_size=16).hexdigest()
    if len(set(dp.comm.allgather_obj(overall))) == 1:
        return
    everyone = dp.comm.allgather_obj(items)
    for i, (label, digest) in enumerate(everyone[0]):
        ranks = [r for r, theirs in enumerate(everyone) if theirs[i][1] != digest]
        if ranks:
            raise RuntimeError(f"replicas differ: {label} on rank(s) {ranks} is not equal to rank 0's")
    raise RuntimeError("replicas differ, but no single parameter differs (optimizer state layout?)")
