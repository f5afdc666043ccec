"""A rank's numerical identity: what decides the bits of its arithmetic (numpy, its SIMD code, BLAS kernels).

Two ranks with the same identity run the same instructions on the same numbers and so get the
same bits; ranks whose identities differ round the same sums differently. The CPU model is
recorded but does not decide anything: two CPUs running the same kernels give the same bits.
"""

import functools
import platform
import sys

import numpy as np

# The fields that select code, so bits; in deterministic mode every rank must agree on them.
CODE_KEYS = ("numpy", "numpy_simd", "blas", "blas_kernels", "blas_threads")
LABELS = {"numpy": "numpy", "numpy_simd": "numpy SIMD code", "blas": "BLAS", "blas_kernels": "BLAS kernels",
          "blas_threads": "BLAS threads", "cpu": "CPU"}
DOCS = "docs/determinism-across-machines.md"

_recorded = None  # the run's record, as the last check_ranks() gathered it


class IdentityError(ValueError):
    """Ranks that would compute different bits in deterministic mode; one line, the same on every rank."""


def numerical_identity():
    """This process's identity now: numpy version and SIMD targets, BLAS library/version/kernels/threads, CPU."""
    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"numpy": np.__version__, "numpy_simd": numpy_simd(),
            "blas": "; ".join(f"{i.get('internal_api')} {i.get('version')}" for i in blas) or "none",
            "blas_kernels": "; ".join(str(i.get("architecture")) for i in blas) or "none",
            "blas_threads": min((int(i.get("num_threads") or 1) for i in blas), default=1),
            "cpu": cpu_model()}


@functools.cache  # fixed when numpy loads
def numpy_simd():
    """numpy's baseline and the dispatched SIMD targets this CPU runs (NPY_DISABLE_CPU_FEATURES removes some)."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:
        return "unknown"
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    return " ".join(__cpu_baseline__) + (" + " + " ".join(found) if found else " only")


@functools.cache
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def check_ranks(comm, deterministic):
    """Gather every rank's identity and decide the same way everywhere: deterministic mode raises
    IdentityError when code fields differ, the default mode warns once (rank 0). Returns the record."""
    global _recorded
    identities = comm.allgather_obj(numerical_identity())
    _recorded = record_of(identities)
    code = differences(identities, CODE_KEYS)
    if code and deterministic:
        raise IdentityError(f"deterministic mode refused: ranks run different numerical code ({describe(code)}), "
                            f"which rounds the same sums differently; {pin_advice(code)}")
    if code and comm.is_main:
        print(f"mpigrad: warning: ranks run different numerical code ({describe(code)}): results depend on which "
              f"rank computes what; {pin_advice(code)}", file=sys.stderr, flush=True)
    return _recorded


def recorded():
    """The run's record from the last check (this process's own identity if no rank check ran)."""
    return _recorded if _recorded is not None else record_of([numerical_identity()])


def record_of(identities):
    """Rank 0's identity, the number of ranks, and under "rank" only what other ranks hold differently."""
    base = identities[0]
    others = {str(r): {k: v for k, v in ident.items() if base.get(k) != v} for r, ident in enumerate(identities)}
    differ = {r: d for r, d in others.items() if d}
    return {**base, "ranks": len(identities), **({"rank": differ} if differ else {})}


def well_formed(record, depth=0):
    """A record as record_of() and note_resumed() make them (a checkpoint is read from outside)."""
    count = record.get("ranks", 1) if isinstance(record, dict) else None
    if not (isinstance(count, int) and 0 < count <= 2**20):
        return False
    ranks, earlier = record.get("rank", {}), record.get("earlier", [])
    return (isinstance(ranks, dict) and all(isinstance(d, dict) for d in ranks.values()) and isinstance(earlier, list)
            and depth < 2 and all(well_formed(e, depth + 1) for e in earlier))


def rank_identities(record):
    """The per-rank identities a record stands for."""
    base = {k: v for k, v in record.items() if k in LABELS}
    return [{**base, **record.get("rank", {}).get(str(r), {})} for r in range(record.get("ranks", 1))]


def differences(identities, keys):
    """{key: {value: [ranks]}} for each key on which the identities disagree."""
    found = {}
    for key in keys:
        holders = {}
        for rank, ident in enumerate(identities):
            holders.setdefault(ident.get(key), []).append(rank)
        if len(holders) > 1:
            found[key] = holders
    return found


def describe(found):
    """'BLAS kernels: Haswell on rank 0, Sandybridge on rank 1' for each differing key."""
    return "; ".join(f"{LABELS[key]}: " + ", ".join(f"{value} on {rank_list(ranks)}"
                                                    for value, ranks in holders.items())
                     for key, holders in found.items())


def rank_list(ranks):
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ",".join(map(str, ranks))


def pin_advice(found):
    """The way out, one clause per kind of difference."""
    advice = []
    if "blas_kernels" in found:
        kernels = ", ".join(map(str, found["blas_kernels"]))
        advice.append(f"pin the BLAS kernels: OPENBLAS_CORETYPE set to one of {kernels} that every rank's CPU "
                      "runs, in every rank's environment before numpy loads")
    if "numpy_simd" in found:
        targets = [set(str(v).split()) - {"+", "only"} for v in found["numpy_simd"]]
        extra = sorted(set.union(*targets) - set.intersection(*targets))
        advice.append(f"pin numpy's SIMD code: NPY_DISABLE_CPU_FEATURES=\"{' '.join(extra)}\" on every rank")
    if "numpy" in found or "blas" in found:
        advice.append("install the same numpy (and so the same BLAS) on every node")
    if "blas_threads" in found:
        advice.append("give every rank the same BLAS thread count (MPIGRAD_BLAS_THREADS)")
    return "; ".join(advice) + f" (see {DOCS})"


def note_resumed(saved, where, is_main):
    """A checkpoint's record met the current one: keep its history in the run's record and, when its
    code fields differ, say so once (rank 0). `where` names the checkpoint ('step 300')."""
    global _recorded
    current = recorded()
    if saved is None or _recorded is None or _recorded.get("resumed_from") == where:
        return
    history, changed = saved.get("earlier", []), changes(saved, current)
    if changed:
        history = [*history, {**{k: v for k, v in saved.items() if k not in ("earlier", "resumed_from")},
                              "until": where}]
        if is_main:
            print(f"mpigrad: note: resuming from {where} on other numerical code than wrote it ({changed}): the "
                  "bits from here on differ from an uninterrupted run's", file=sys.stderr, flush=True)
    _recorded = {**current, **({"earlier": history} if history else {}), "resumed_from": where}


def changes(before, now):
    """'BLAS kernels Sandybridge before, Haswell now' for each code field whose values changed."""
    parts = []
    for key in CODE_KEYS:
        old, new = (sorted({str(i.get(key)) for i in rank_identities(r)}) for r in (before, now))
        if old != new:
            parts.append(f"{LABELS[key]} {'/'.join(old)} before, {'/'.join(new)} now")
    return "; ".join(parts)
