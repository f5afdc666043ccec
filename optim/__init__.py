"""Optimizers and learning-rate schedulers over autograd Variables."""
