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


def _diff(args):
    from .diff import diff_command
    return diff_command(args.run_a, args.run_b, args.json)
