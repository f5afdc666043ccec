"""Neural-network layers built on mpigrad.autograd."""
