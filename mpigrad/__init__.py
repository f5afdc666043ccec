"""mpigrad: data-parallel training of numpy models on MPI.

The library lives in mpigrad.autograd <- mpigrad.optim <- mpigrad.runtime; the rest of this package
is the `mpigrad` application (CLI, config, data loaders, built-in models, metrics, plots).
"""

__version__ = "0.1.0"
