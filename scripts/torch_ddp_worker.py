"""The REF-MLP step in PyTorch DDP (gloo), for scripts/bench_dp.py's side-by-side row (optional)."""

import os
import time

import numpy as np


def run_torch(sizes, global_batch, steps):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    rank, size = int(os.environ.get("PMI_RANK", 0)), int(os.environ.get("PMI_SIZE", 1))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=rank, world_size=size)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = DistributedDataParallel(torch.nn.Sequential(*layers[:-1]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(1 + rank)
    local = global_batch // size
    x, y = torch.randn(local, sizes[0], generator=g), torch.randint(0, sizes[-1], (local,), generator=g)
    times = []
    for step in range(5 + steps):
        dist.barrier()
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 5:
            times.append(time.perf_counter() - start)
    dist.destroy_process_group()
    return {"step_ms": [t * 1e3 for t in times]} if rank == 0 else None
