"""Optimizers and learning-rate schedulers over autograd Variables.

Fast path: pack the parameters into flat buffers first, then build the optimizer over the
same parameters (or the groups) in the same order::

    groups = flatten_parameters(model.parameters())
    opt = Adam(model.parameters())          # or Adam(groups)

step() then updates each whole buffer in cache-sized chunks. Any other layout takes the
per-parameter path, which gives bitwise-identical results. For ZeRO-style sharding, call the
kernels (adam_update, sgd_update) on 1-D slices of the flat buffers, or build an optimizer over
Variables whose .data and .grad are 1-D slices: that works on the per-parameter path.
"""

from .adam import Adam, AdamW
from .flat import FlatGroup, flatten_parameters
from .kernels import Scratch, adam_update, sgd_update, sum_of_squares
from .optimizer import Optimizer
from .schedulers import CosineLR, LRScheduler, ReduceLROnPlateau, StepLR
from .sgd import SGD

__all__ = [
    "Optimizer", "Adam", "AdamW", "SGD",
    "LRScheduler", "StepLR", "ReduceLROnPlateau", "CosineLR",
    "FlatGroup", "flatten_parameters",
    "adam_update", "sgd_update", "sum_of_squares", "Scratch",
]
