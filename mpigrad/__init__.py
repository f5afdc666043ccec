"""mpigrad: data-parallel training of numpy models on MPI."""

__version__ = "0.1.0"
