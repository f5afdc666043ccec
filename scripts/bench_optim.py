"""Adam.step over 10M float32 parameters (10 tensors of 1M), one thread, variants side by side.

    .venv/bin/python scripts/bench_optim.py [--reps 15]
    .venv/bin/python scripts/bench_optim.py --ref-mlp [--reps 41]

--ref-mlp times the kernels alone on one flat float32 buffer of REF-MLP's size (1.86 M, the
model of bench_dp.py): sum_of_squares beside the plain loop it replaced, Adam with weight decay
beside its previous chunk loop, other chunk sizes and torch's fused Adam on one tensor of the
same size.

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
import math  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from mpigrad.autograd import Variable  # noqa: E402
from mpigrad.optim import Adam, Scratch, adam_update, flatten_parameters, sum_of_squares  # noqa: E402
from mpigrad.optim.kernels import CHUNK_BYTES  # noqa: E402
from timing import interleaved_medians  # noqa: E402  (scripts/ is on sys.path)
from machine import machine_line  # noqa: E402

N_TENSORS, SIZE = 10, 1_000_000
REF_MLP = 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 10 * 1024 + 10


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


def chunked_sum_of_squares(x, row=8192):
    """sum_of_squares before np.vecdot: one copy and one np.dot per 8192-element chunk."""
    work, total = np.empty(row, np.float64), 0.0
    for lo in range(0, x.size, row):
        w = work[:min(row, x.size - lo)]
        np.copyto(w, x[lo:lo + row])
        total += float(np.dot(w, w))
    return total


def previous_adam_update(data, grad, m_sum, v_sum, *, step, lr, weight_decay, scratch,
                         beta1=0.9, beta2=0.999, eps=1e-8):
    """adam_update with classical L2 decay as it was before its chunk loop was reordered (same bits)."""
    mul, add, sub, div, sqrt = np.multiply, np.add, np.subtract, np.divide, np.sqrt
    root = math.sqrt((1.0 - beta2) / (1.0 - beta2 ** step))
    b1, b2, step_size, eps_hat, wd_s = (np.array(x, data.dtype) for x in (
        beta1, beta2, lr * (1.0 - beta1) / ((1.0 - beta1 ** step) * root), eps / root, weight_decay))
    tmp, g_wd = scratch.get(data.dtype, 2)
    for lo in range(0, data.size, len(tmp)):
        hi = min(lo + len(tmp), data.size)
        p, g, mm, vv, t = data[lo:hi], grad[lo:hi], m_sum[lo:hi], v_sum[lo:hi], tmp[:hi - lo]
        g = add(mul(p, wd_s, out=g_wd[:hi - lo]), g, out=g_wd[:hi - lo])
        add(mul(mm, b1, out=mm), g, out=mm)
        add(mul(vv, b2, out=vv), mul(g, g, out=t), out=vv)
        add(sqrt(vv, out=t), eps_hat, out=t)
        sub(p, mul(div(mm, t, out=t), step_size, out=t), out=p)


def ref_mlp_variants():
    rng = np.random.default_rng(6)
    p, g, m, v = (rng.standard_normal(REF_MLP, dtype=np.float32) for _ in range(4))
    v = np.abs(v)
    scratch = Scratch()
    variants = {
        "sum_of_squares chunked np.dot": lambda: chunked_sum_of_squares(g),
        "sum_of_squares": lambda: sum_of_squares(g),
        "adam_update wd previous loop": lambda: previous_adam_update(p, g, m, v, step=10, lr=1e-3,
                                                                     weight_decay=1e-4, scratch=scratch),
        "adam_update wd": lambda: adam_update(p, g, m, v, step=10, lr=1e-3, weight_decay=1e-4,
                                              scratch=scratch),
        # clip_grad_norm's pass over the gradients, then the update (what every clipped step costs)
        "clip pass + adam_update wd": lambda: (np.multiply(g, 0.9999, out=g), adam_update(
            p, g, m, v, step=10, lr=1e-3, weight_decay=1e-4, scratch=scratch)),
    }
    for kb in (64, 128, 512, 1024):
        variants[f"adam_update wd chunk {kb} KB"] = partial(
            adam_update, p, g, m, v, step=10, lr=1e-3, weight_decay=1e-4, scratch=Scratch(kb * 1024))
    try:
        import torch
    except ImportError:
        return variants
    torch.set_num_threads(1)
    q = torch.nn.Parameter(torch.from_numpy(p.copy()))
    q.grad = torch.from_numpy(g.copy())
    fused = torch.optim.Adam([q], lr=1e-3, weight_decay=1e-4, fused=True)
    variants["torch fused Adam wd"] = fused.step
    return variants


def main_ref_mlp(reps):
    ms = interleaved_medians(ref_mlp_variants(), reps, warmup=2)
    print(f"kernels on {REF_MLP} float32, 1 thread, median of {reps} interleaved rounds "
          f"(default chunk {CHUNK_BYTES // 1024} KB)")
    for name, t in ms.items():
        print(f"  {name:32s} {t:8.3f} ms")
    print(f"  adam_update wd / previous loop: {ms['adam_update wd'] / ms['adam_update wd previous loop']:.3f}")
    if "torch fused Adam wd" in ms:
        for name in ("adam_update wd previous loop", "adam_update wd"):
            print(f"  {name} / torch fused Adam wd: {ms[name] / ms['torch fused Adam wd']:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="run only variants whose name contains one of these")
    parser.add_argument("--ref-mlp", action="store_true", help="the kernels alone at REF-MLP's size")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    if args.ref_mlp:
        return main_ref_mlp(args.reps)
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
