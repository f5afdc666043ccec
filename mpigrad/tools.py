"""The subcommands that work on finished runs: diff, check-determinism, eval, sample."""


def add_tool_commands(commands):
    diff = commands.add_parser("diff", help="compare two run directories bit for bit",
                               description="Compare two `mpigrad train --out` directories: config keys, the first "
                                           "logged step where loss, grad_norm or digest differ, and parameters. "
                                           "Exit 0 when bitwise equal, 1 when anything differs, 2 on unusable input.")
    diff.add_argument("run_a", metavar="RUN_A")
    diff.add_argument("run_b", metavar="RUN_B")
    diff.add_argument("--json", action="store_true", help="one JSON object instead of text")
    diff.set_defaults(run=_diff)

    check = commands.add_parser("check-determinism", help="train deterministically at several world sizes and "
                                "compare the bits", description="Run the job with deterministic = true at each world "
                                "size and compare every run with the first one bit for bit (exit 0 only when all "
                                "equal). After --, your own command instead (`-- python train.py --out {out}`): "
                                "it runs under the launcher at each world size, {out} becoming that run's "
                                "directory, and its mpigrad.runtime.log_digest calls are compared.")
    check.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (defaults otherwise)")
    check.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                       help="override one config key (repeatable)")
    check.add_argument("--worlds", default="1,2,4", help="world sizes, comma-separated (default: %(default)s)")
    check.add_argument("--launcher", help="launch command with {n} for the rank count "
                       "(default: the mpiexec next to this Python, else on PATH: \"mpiexec -n {n}\")")
    check.add_argument("--out", metavar="DIR", help="keep the runs here (default: a temporary directory, "
                       "removed when all are equal)")
    check.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                       help="end a launch that has not finished after this long (default: %(default)g)")
    check.add_argument("user_command", nargs="*", metavar="-- COMMAND",
                       help="your training command (its script calls mpigrad.runtime.log_digest)")
    check.set_defaults(run=_check_determinism)

    evaluate = commands.add_parser("eval", help="loss (and accuracy) of a run's parameters on a dataset",
                                   description="Evaluate a run's final.npz (or newest checkpoint) with the config of "
                                   "its directory: on its validation split, or on every row of --data.")
    evaluate.add_argument("run_dir", metavar="RUN", help="an `mpigrad train --out` directory")
    evaluate.add_argument("--data", metavar="FILE", help="data file (default: the run's validation split)")
    evaluate.add_argument("--labels", metavar="FILE", help="labels of a .npy or IDX data file (mlp)")
    evaluate.set_defaults(run=_eval)

    sample = commands.add_parser("sample", help="text from a trained language model",
                                 description="Continue a prompt with the language model of a run directory.")
    sample.add_argument("run_dir", metavar="RUN", help="an `mpigrad train --out` directory of the transformer")
    sample.add_argument("--prompt", help="text to continue (default: the start of the validation text)")
    sample.add_argument("--chars", type=int, default=200, help="characters to generate (default: %(default)s)")
    sample.add_argument("--seed", type=int, help="sampling seed (default: the run's seed)")
    sample.set_defaults(run=_sample)


def _diff(args):
    from .diff import diff_command
    return diff_command(args.run_a, args.run_b, args.json)


def _check_determinism(args):
    from .determinism import check_determinism_command
    return check_determinism_command(args.config, args.overrides, args.worlds, args.launcher, args.out,
                                     args.user_command, args.timeout)


def _eval(args):
    from .evaluate import eval_command  # imports MPI: run it under mpiexec to share the work
    return eval_command(args.run_dir, args.data, args.labels)


def _sample(args):
    from .sample import sample_command
    return sample_command(args.run_dir, args.prompt, args.chars, args.seed)
