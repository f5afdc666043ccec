"""Each parameter's .grad is its view into the flat gradient buffers, whatever the user assigned.

The reducers read and write the flat buffers only. A .grad the user set to None (PyTorch's
zero_grad(set_to_none=True) written by hand) or replaced by another array would otherwise be
trained from stale buffers. So before a backward pass writes, DataParallel binds every .grad to
its view again: None becomes zeros, a replaced array is copied in (as DDP copies it into its
bucket view). What the buffers hold before a step's first backward (gradients kept from an earlier
step, a copied array) is set aside and added back after the reduction, so a synchronising backward
gives .grad = kept + sum_f (n_f / N) grad_f, as one process accumulating would.
"""

import hashlib

import numpy as np


class GradBinding:
    """The views of params' gradients, and the values they held before the step's first backward."""

    def __init__(self, params, views, names):
        self.params, self.views, self.names = params, views, names
        self.kept = {}  # index -> what .grad held before the step's first backward (not all zeros)

    def rebind(self):
        """Every .grad that is None or another array becomes its view: zeros, or that array's values."""
        for p, view in zip(self.params, self.views):
            buffer = p.grad
            if buffer is view:
                continue
            if buffer is None:
                view.fill(0)
            else:
                self._copy_in(p, view)
            p.grad = view

    def take_replaced(self):
        """Each .grad that is another array becomes its view holding that array's values (None stays None):
        before a ZeRO step, which reads the views."""
        for p, view in zip(self.params, self.views):
            if p.grad is not None and p.grad is not view:
                self._copy_in(p, view)
                p.grad = view

    def _copy_in(self, p, view):
        value = np.asarray(p.grad)
        if value.shape != view.shape:
            raise ValueError(f"DataParallel: {self.names[id(p)]}.grad was set to an array of shape {value.shape}; "
                             f"it must have the parameter's shape {view.shape}")
        np.copyto(view, value, casting="same_kind")

    def set_aside(self):
        """Before the step's first backward: take what the views hold out of them (they then read zero)."""
        self.kept = {}
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if _any_bit_set(view):  # zeros need no keeping (a -0.0 is kept: g + -0.0 is g)
                self.kept[i] = view.copy()
                view.fill(0)

    def digest(self):
        """One hash of the set-aside values (None when there are none): equal on every rank or refused."""
        if not self.kept:
            return None
        h = hashlib.sha256()
        for i, value in sorted(self.kept.items()):
            h.update(str(i).encode())
            h.update(value.tobytes())
        return h.hexdigest()

    def check_same(self, digests):
        """Every rank raises the same error when the set-aside values differ between ranks."""
        if len(set(digests)) > 1:
            name = self.names[id(self.params[min(self.kept)])] if self.kept else "a parameter"
            raise RuntimeError(f"DataParallel: the gradients held before this step's first backward differ between "
                               f"ranks (digests {digests}; e.g. {name}.grad): a .grad written differently per rank "
                               "would make the replicas drift; write the same array on every rank, or zero_grad()")

    def add_back(self, used):
        """After the reduction: .grad = averaged gradient + the set-aside values (of parameters some rank used)."""
        for i, value in self.kept.items():
            if used[i]:
                self.views[i] += value
        self.kept = {}


def _any_bit_set(array):
    """True unless every element is +0.0: an unsigned max over the bits (several times faster than any())."""
    return array.size > 0 and bool(array.reshape(-1).view(f"u{array.itemsize}").max())
