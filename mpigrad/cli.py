"""Console entry point; the command implementations live in mpigrad.runtime."""


def main(argv=None):
    from mpigrad.runtime.cli import main as runtime_main

    return runtime_main(argv)
