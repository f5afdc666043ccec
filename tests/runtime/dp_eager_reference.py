"""The plainest eager one-process computation of what DataParallel promises, for the stateful MPI test.

Gradients are numpy arrays the reference keeps itself: zero_grad fills zeros, a clip multiplies in
place, backward adds. A step's gradient is the mean over every sample of every rank's micro-batches,
added to what .grad held; a parameter no micro-batch of the step reached has .grad None (as PyTorch
DDP with find_unused_parameters). In deterministic mode the mean is formed as DataParallel documents
it, so the bits can be compared: each micro-batch's gradient with its output gradient scaled by its
samples, summed along the fixed binary tree over the global micro-batch index, divided by the samples.
"""

import math

import numpy as np

from mpigrad.autograd import Variable, cross_entropy
from mpigrad.optim import sum_of_squares


def tree_sum(leaves):
    """Sum of leaves (lists of arrays or None per parameter): perfect binary trees over the largest
    aligned power-of-two blocks, the blocks folded from the right: b0 + (b1 + (b2 + ...))."""
    if len(leaves) == 1:
        return leaves[0]
    block = 1 << (len(leaves).bit_length() - 1)
    if block == len(leaves):
        block //= 2
    return add(tree_sum(leaves[:block]), tree_sum(leaves[block:]))


def add(left, right):
    """Elementwise per parameter; None is a zero gradient (and zero + zero stays None)."""
    out = []
    for a, b in zip(left, right):
        if a is None and b is None:
            out.append(None)
        else:
            out.append((0.0 if a is None else a) + (0.0 if b is None else b))
    return out


class EagerReference:
    """The model, its gradients and the optimizer, one process, every rank's data."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.params = list(model.parameters())

    # ---- gradient utilities, eager

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def norm(self):
        return math.sqrt(sum(sum_of_squares(p.grad) for p in self.params if p.grad is not None))

    def clip_grad_norm(self, max_norm):
        norm = self.norm()
        if norm > max_norm:
            scale = float(max_norm) / (norm + 1e-6)
            for p in self.params:
                if p.grad is not None:
                    p.grad *= scale
        return norm

    def clip_grad_value(self, lo, hi):
        for p in self.params:
            if p.grad is not None:
                np.clip(p.grad, lo, hi, out=p.grad)

    # ---- one step's gradients

    def synchronise(self, micro_batches, deterministic):
        """micro_batches: for each global micro-batch in index order, its parts [(head, x, y)] (one
        dp(...) output each). .grad <- .grad + the step's mean gradient; None where nothing reached."""
        samples = sum(len(y) for parts in micro_batches for _, _, y in parts)
        held = [p.grad for p in self.params]
        if deterministic:
            leaves = [self._leaf(parts) for parts in micro_batches]
            leaves[0] = [None if g is None else 0.0 + g for g in leaves[0]]  # added to zeroed buffers
            total = [None if g is None else np.divide(g, samples) for g in tree_sum(leaves)]
        else:
            total = self._mean_gradient(micro_batches, samples)
        for p, before, g in zip(self.params, held, total):
            if g is None or before is None:
                p.grad = g
            else:
                before += g  # in place, as backward accumulates
                p.grad = before

    def _mean_gradient(self, micro_batches, samples):
        for p in self.params:
            p.grad = None
        loss = 0.0
        for parts in micro_batches:
            for head, x, y in parts:
                loss = loss + cross_entropy(self.model(x, head), y) * (len(y) / samples)
        loss.backward()
        return [p.grad for p in self.params]

    def _leaf(self, parts):
        """One micro-batch's gradient, each output's gradient scaled by its samples before the model's backward."""
        for p in self.params:
            p.grad = None
        outputs, seeds = [], []
        for head, x, y in parts:
            out = self.model(x, head)
            cut = Variable(out.data, requires_grad=True)
            cross_entropy(cut, y).backward()
            outputs.append(out)
            seeds.append(cut.grad if len(y) == 1 else np.multiply(cut.grad, np.float64(len(y))))
        root = 0.0
        for out, seed in zip(outputs, seeds):
            root = root + (out * seed).sum()
        root.backward()
        return [p.grad for p in self.params]
