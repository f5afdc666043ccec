"""Reverse-mode automatic differentiation on numpy arrays."""
