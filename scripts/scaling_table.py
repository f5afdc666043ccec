"""docs/scaling.md's network tables: predicted efficiency at 8-512 ranks on 10/25/100 Gb/s Ethernet and
InfiniBand HDR, from the measurement `mpigrad scaling --json` saved for a job.

    mpiexec -n 2 mpigrad scaling --json > default.json
    python scripts/scaling_table.py default.json [--ranks-per-node 32] [--compute-scale 1.0]

Nodes of --ranks-per-node ranks (one BLAS thread each, cores enough); the node's own link is the
measured one unless --intra gives it. --compute-scale multiplies the measured compute, optimizer and
backward timings (e.g. to undo a loaded machine).
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpigrad.scaling_model import Link, allreduce_across, predict, step_time  # noqa: E402
from mpigrad.scaling_report import NETWORKS, model_of  # noqa: E402

WORLDS = [8, 16, 32, 64, 128, 256, 512]


def limit(job, machine, world, per_node, scaling, measured_world):
    """The largest cost beyond the split compute at `world`: the replicated optimizer, or the network's
    latency or bandwidth (the step's collectives timed with only alpha, or only beta)."""
    per_rank = job.micro_batches / world if scaling == "strong" else job.micro_batches / measured_world
    _, wait = step_time(job, machine, world, per_node, max(per_rank, 1 / job.micro_batch))
    sizes = [64] * 4 + [b for b, _ in job.ready]
    only = lambda keep: dataclasses.replace(machine, **{side: Link(link.alpha * (keep == "alpha"),
                                                                   link.beta * (keep == "beta"))
                                                      for side, link in (("intra", machine.intra),
                                                                         ("inter", machine.inter))})
    latency = sum(allreduce_across(world, per_node, only("alpha"), n) for n in sizes)
    bandwidth = sum(allreduce_across(world, per_node, only("beta"), n) for n in sizes)
    network = max(wait, 0.0) + 4 * allreduce_across(world, per_node, machine, 64)
    if job.rest_of_step >= network:
        return "optimizer"
    return "latency" if latency > bandwidth else "bandwidth"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+")
    parser.add_argument("--ranks-per-node", type=int, default=32)
    parser.add_argument("--compute-scale", type=float, default=1.0)
    parser.add_argument("--intra", metavar="US,GBPS", help="the node's link as latency (us) and bandwidth (GB/s) "
                        "instead of the measured one (e.g. an idle machine's)")
    args = parser.parse_args()
    for path in args.json:
        result = json.loads(Path(path).read_text().strip().splitlines()[-1])
        job, machine = model_of(result)
        job = dataclasses.replace(job, compute_per_micro_batch=job.compute_per_micro_batch * args.compute_scale,
                                  ready=[(b, t * args.compute_scale) for b, t in job.ready],
                                  backward=job.backward * args.compute_scale,
                                  rest_of_step=job.rest_of_step * args.compute_scale,
                                  measured_ranks_per_node=1, contention=1.0)
        machine = dataclasses.replace(machine, cores_per_node=args.ranks_per_node)
        if args.intra:
            us, gbps = (float(v) for v in args.intra.split(","))
            machine = dataclasses.replace(machine, intra=Link(us * 1e-6, 1 / (gbps * 1e9)))
        print(f"\n{path}: {result['measured']['gradient_bytes'] / 2**20:.2f} MB of gradients, "
              f"{job.compute_per_micro_batch * 1e3:.1f} ms compute per micro-batch of {job.micro_batch}, "
              f"{job.micro_batches} micro-batches per step, {args.ranks_per_node} ranks per node")
        for scaling in ("weak", "strong"):
            print(f"\n{scaling} scaling: efficiency (below 0.9: the largest cost beyond compute; "
                  "*: fewer samples than ranks)")
            print("| network | " + " | ".join(str(w) for w in WORLDS) + " |")
            print("|---|" + "---|" * len(WORLDS))
            for name, net in NETWORKS.items():
                m = dataclasses.replace(machine, inter=net["link"])
                cells = []
                for world in WORLDS:
                    e = predict(job, m, world, scaling, args.ranks_per_node, 1)
                    what = limit(job, m, world, args.ranks_per_node, scaling, 1)
                    star = "" if e["feasible"] else "*"
                    cells.append(f"{e['efficiency']:.2f}{star}" + (f" ({what})" if e["efficiency"] < 0.9 else ""))
                print(f"| {net['label']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
