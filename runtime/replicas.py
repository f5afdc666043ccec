"""Replica checks: the same model structure on every rank, the same bits in every replica."""

from .digest import combine, digest_items, state_leaves  # noqa: F401 (state_leaves: used by zero.py)


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


def replica_digests(dp, optimizer=None):
    """(label, digest) of every parameter and every optimizer state array, in a fixed order."""
    return digest_items(dp.named_parameters(), optimizer)


def check_replicas(dp, optimizer=None):
    """Compare one digest per rank first; only on a mismatch find and name the first differing item."""
    items = replica_digests(dp, optimizer)
    overall = combine(items)
    if len(set(dp.comm.allgather_obj(overall))) == 1:
        return
    everyone = dp.comm.allgather_obj(items)
    for i, (label, digest) in enumerate(everyone[0]):
        ranks = [r for r, theirs in enumerate(everyone) if theirs[i][1] != digest]
        if ranks:
            raise RuntimeError(f"replicas differ: {label} on rank(s) {ranks} is not equal to rank 0's")
    raise RuntimeError("replicas differ, but no single parameter differs (optimizer state layout?)")
