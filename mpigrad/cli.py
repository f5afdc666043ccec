"""The `mpigrad` command: argument parsing and exit codes of its subcommands."""

import argparse
import sys

from .config import ConfigError
from .tools import add_tool_commands


def build_parser():
    parser = argparse.ArgumentParser(prog="mpigrad", description="Data-parallel training of numpy models on MPI.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (run under `mpiexec -n N` for N ranks)",
                                description="Train the built-in default job, or the job a TOML config describes.")
    train.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (defaults otherwise)")
    train.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="override one config key; VALUE is a TOML value (repeatable)")
    train.add_argument("--out", metavar="DIR",
                       help="directory for metrics.jsonl, config.toml, checkpoints and final.npz (default: runs/train)")
    train.add_argument("--resume", metavar="DIR",
                       help="continue the run in DIR from its newest checkpoint, with DIR/config.toml; --set may "
                            "change only keys that leave the trajectory alone (steps, log_every, ...)")
    train.add_argument("--overwrite", action="store_true",
                       help="a new run may replace the run already in --out (its files are deleted first)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(run=_train)

    plot = commands.add_parser("plot", help="plot the loss curves of training runs into a PNG",
                               description="Overlay the loss curves of one or more `mpigrad train --out` directories.")
    plot.add_argument("dirs", nargs="*", metavar="DIR", help="run directories holding metrics.jsonl")
    plot.add_argument("--out", metavar="PNG", default="loss.png", help="image to write (default: %(default)s)")
    plot.add_argument("--timings", action="store_true",
                      help="draw each run's step time split into forward, backward, communication wait and "
                           "clip + optimizer instead of the loss")
    plot.add_argument("--scaling", metavar="PRED.json", help="draw the step times `mpigrad scaling --json` predicted "
                      "against world size, with each DIR's median step as a measured point")
    plot.set_defaults(run=_plot)
    scaling = commands.add_parser("scaling", help="measure this launch and predict step time and efficiency up to "
                                  "512 ranks", description="Run under `mpiexec -n N`: measures all-reduce costs inside "
                                  "and between nodes and a few steps of the job, then predicts strong and weak scaling.")
    scaling.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (the default job otherwise)")
    scaling.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                         help="override one config key (repeatable)")
    scaling.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    scaling.add_argument("--network", metavar="NAME", help="between nodes, use this network's published figures "
                         "instead of a measurement: 10gbe, 25gbe, 100gbe or hdr (default: measured when the launch "
                         "spans nodes, else 10gbe)")
    scaling.add_argument("--steps", type=int, default=4, help="timed steps of the job (default: %(default)s)")
    scaling.set_defaults(run=_scaling)
    add_tool_commands(commands)
    return parser


def main(argv=None):
    """Parse the command line and run the command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


def _train(args):
    from .train import train_command  # imports MPI: only the train command pays for it
    return train_command(args.config, args.overrides, args.out, args.quiet, args.overwrite, args.resume)


def _scaling(args):
    from .scaling import scaling_command  # imports MPI
    return scaling_command(args.config, args.overrides, args.json, args.network, args.steps)


def _plot(args):
    from .plot import plot_runs, plot_scaling, plot_timings
    try:
        if args.scaling:
            plot_scaling(args.scaling, args.dirs, args.out)
        elif not args.dirs:
            raise ConfigError("give at least one run directory (or --scaling PRED.json)")
        else:
            (plot_timings if args.timings else plot_runs)(args.dirs, args.out)
    except ConfigError as e:
        print(f"mpigrad plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0
