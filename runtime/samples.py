"""Sample accounting: a forward counts when, and only when, a backward pass reaches its output.

dp(x) returns the module's output behind an identity node. Its backward runs at the start of any
backward pass that uses the output: it counts the forward's samples n (once) and scales the
gradient flowing into the model by n / ref, ref being the first counted forward's samples of the
step. The gradient buffers then hold sum_f (n_f / ref) g_f, and DataParallel weights them by
ref / N when it averages (N: the step's samples over all ranks). Forwards under no_grad() have no
node, and outputs nobody differentiates never reach one, so evaluation never counts.
"""

import numpy as np

from mpigrad.autograd import Variable
from mpigrad.autograd.engine import make_result


class SecondBackwardError(RuntimeError):
    """A backward through a dp(...) output whose samples an earlier backward already counted."""


class ForwardMark:
    """One dp(...) call: its sample count and whether a backward has counted it."""

    def __init__(self, owner, samples):
        self.owner, self.samples, self.counted_in = owner, samples, None

    def backward(self, grad):
        scale = self.owner.count_forward(self)
        if scale == 1.0:
            return (grad,)
        return (np.multiply(grad, grad.dtype.type(scale)),)


def mark_outputs(output, mark):
    """output with every Variable that requires grad (alone, or in a tuple/list/dict) behind the mark."""
    if isinstance(output, Variable):
        if not output.requires_grad:
            return output
        return make_result(output.data, [output], mark.backward, "dp_output")
    if isinstance(output, (tuple, list)):
        return type(output)(mark_outputs(o, mark) for o in output)
    if isinstance(output, dict):
        return {k: mark_outputs(v, mark) for k, v in output.items()}
    return output


def second_backward_message():
    return ("DataParallel: a second backward through the same dp(...) output (retain_graph=True): its samples "
            "were already counted and, outside no_sync(), averaged; add the losses and call backward once, "
            "e.g. (l1 + l2).backward()")
