"""Adam.step over 10M float32 parameters (10 tensors of 1M), one thread, variants side by side.

    .venv/bin/python scripts/bench_optim.py [--reps 15]

Compares mpigrad's per-parameter path, its flat path, the kernel on one flat buffer with
several chunk sizes (including no chunking), and torch.optim.Adam (default and fused=True)
when torch is installed (optional; never a dependency of mpigrad). Repetitions are
interleaved so machine noise hits every variant alike; medians in ms.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import ctypes  # noqa: E402

import numpy as np  # noqa: E402

from mpigrad.autograd import Variable  # noqa: E402
from mpigrad.optim import Adam, Scratch, adam_update, flatten_parameters  # noqa: E402
from mpigrad.optim.kernels import CHUNK_BYTES  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (scripts/ is on sys.path)

N_TENSORS, SIZE = 10, 1_000_000


def keep_freed_memory():
    """Tell glibc malloc to reuse freed large blocks instead of returning them to the OS.

    torch's default Adam allocates 4 MB temporaries every step; with glibc's defaults they are
    mmapped and page-faulted afresh each time once numpy holds large arrays, which made torch
    ~40% slower in this bench than alone. This gives torch its best case; numpy's step does not
    allocate, so its figures do not move.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, 32 << 20) and libc.mallopt(-1, 1 << 30))  # M_MMAP/M_TRIM_THRESHOLD


def make_params(seed, count=N_TENSORS, size=SIZE):
    rng = np.random.default_rng(seed)
    params = []
    for _ in range(count):
        p = Variable(rng.standard_normal(size, dtype=np.float32), requires_grad=True)
        p.grad = rng.standard_normal(size, dtype=np.float32)
        params.append(p)
    return params


def numpy_variants():
    per_param = Adam(make_params(0))
    flat_params = make_params(1)
    flatten_parameters(flat_params)
    variants = {"mpigrad per-parameter": per_param.step, "mpigrad flat": Adam(flat_params).step}
    # the same 10M as 1000 tensors of 10K: where looping over parameters costs most
    small = N_TENSORS * SIZE // 1000
    variants["per-parameter 1000x10K"] = Adam(make_params(4, 1000, small)).step
    flat_small = make_params(5, 1000, small)
    flatten_parameters(flat_small)
    variants["flat 1000x10K"] = Adam(flat_small).step
    rng = np.random.default_rng(2)
    n = N_TENSORS * SIZE
    p, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for kb in (32, 64, 128, 256, 512, 1024, None):
        scratch = Scratch(kb * 1024 if kb else n * 4)
        label = f"kernel chunk {kb} KB" if kb else "kernel unchunked"

        def run(scratch=scratch):
            adam_update(p, g, m, v, step=10, lr=1e-3, scratch=scratch)
        variants[label] = run
    return variants


def torch_variants():
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(3)
    params = [torch.nn.Parameter(torch.randn(SIZE, generator=gen)) for _ in range(N_TENSORS)]
    for q in params:
        q.grad = torch.randn(SIZE, generator=gen)
    default = torch.optim.Adam(params, lr=1e-3)
    fused = torch.optim.Adam(params, lr=1e-3, fused=True)
    return {"torch default": default.step, "torch fused": fused.step}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="run only variants whose name contains one of these")
    args = parser.parse_args()
    tuned = keep_freed_memory()
    torch_rows = torch_variants()
    variants = {**numpy_variants(), **torch_rows}
    if args.only:
        variants = {k: f for k, f in variants.items() if any(s in k for s in args.only)}
    ms = interleaved_medians(variants, args.reps, warmup=1)  # warm-up: page faults, lazy state
    print(f"Adam.step, {N_TENSORS} x {SIZE} float32, 1 thread, median of {args.reps} "
          f"(default chunk {CHUNK_BYTES // 1024} KB, malloc tuned: {tuned})")
    for name, t in ms.items():
        print(f"  {name:24s} {t:8.2f} ms")
    ours = ms.get("mpigrad flat")
    for ref in ("torch default", "torch fused"):
        if ref in ms and ours is not None:
            print(f"  mpigrad flat / {ref}: {ours / ms[ref]:.2f}")
    if not torch_rows:
        print("  (torch not installed: no comparison)")


if __name__ == "__main__":
    main()
