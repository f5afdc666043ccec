"""mpigrad: data-parallel training of numpy models on MPI.

The library lives in mpigrad.autograd <- mpigrad.optim <- mpigrad.runtime; the rest of this package
is the `mpigrad` application (CLI, config, data loaders, built-in models, metrics, plots).

mpigrad.load_run(DIR) gives the model of an `mpigrad train --out DIR` run, with its parameters.
"""

__version__ = "0.1.0"
__all__ = ["load_run"]


def __dir__():
    """The module's names, load_run included (it is imported on first use)."""
    return sorted([*globals(), "load_run"])


def __getattr__(name):
    """load_run, imported on first use."""
    # loaded on first use, so `import mpigrad.runtime` pulls in none of the application
    if name == "load_run":
        from .run import load_run
        return load_run
    raise AttributeError(f"module 'mpigrad' has no attribute {name!r}")
