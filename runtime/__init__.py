"""MPI runtime: communicator, DataParallel, sampler, checkpoints, CLI."""
