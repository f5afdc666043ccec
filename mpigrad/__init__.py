"""mpigrad: data-parallel training of numpy models on MPI.

The library lives in mpigrad.autograd <- mpigrad.optim <- mpigrad.runtime; the rest of this package
is the `mpigrad` application (CLI, config, data loaders, built-in models, metrics, plots).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # loaded on first use, so `import mpigrad.runtime` pulls in none of the application
    if name == "load_run":
        from .run import load_run
        return load_run
    raise AttributeError(f"module 'mpigrad' has no attribute {name!r}")
