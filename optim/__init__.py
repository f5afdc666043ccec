"""Optimizers and learning-rate schedulers over autograd Variables.

Fast path: give consecutive parameters data and grads that lie back to back in one buffer each,
e.g. pack them first, then build the optimizer over the same parameters in the same order::

    groups = flatten_parameters(model.parameters())
    opt = Adam(model.parameters())          # or Adam(groups)

The layout is detected from the arrays at every step (cheap identity checks; re-detected when a
.data or .grad is rebound), so the runtime's own flat buffers take the fast path too. step()
then updates each whole span in cache-sized chunks. Any other layout takes the per-parameter
path through the same kernels, which gives bitwise-identical results.

ZeRO-style sharding: call the kernels (adam_update, sgd_update) on 1-D slices of the flat
buffers, or build an optimizer over Variables whose .data are 1-D slices of the flat buffer
(with grads of the same length): they are updated in place on the per-parameter path.
"""

from .adam import Adam, AdamW
from .flat import FlatGroup, flatten_parameters
from .kernels import Scratch, adam_update, sgd_update, sum_of_squares
from .optimizer import Optimizer, clip_scale
from .schedulers import CosineLR, LRScheduler, ReduceLROnPlateau, StepLR
from .sgd import SGD

__all__ = [
    "Optimizer", "Adam", "AdamW", "SGD", "clip_scale",
    "LRScheduler", "StepLR", "ReduceLROnPlateau", "CosineLR",
    "FlatGroup", "flatten_parameters",
    "adam_update", "sgd_update", "sum_of_squares", "Scratch",
]
