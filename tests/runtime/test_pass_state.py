"""What DataParallel remembers between passes: only trained forwards count, a failed pass leaves
nothing behind, a second backward through one output is refused, a model is wrapped once."""

import numpy as np
import pytest

from mpigrad.autograd import no_grad
from mpigrad.runtime import DataParallel

from mpi_helpers import assert_everywhere, comm, full_batch_grads, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi


def grads_match_full_batch(dp, x, y):
    expected = full_batch_grads(x, y)
    return all(np.allclose(p.grad, e, rtol=1e-12, atol=1e-14) for p, e in zip(dp.parameters(), expected))


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("evaluation", ["no_grad", "not_differentiated"])
def test_forwards_that_are_not_trained_do_not_change_the_weighting(deterministic, evaluation):
    c = comm()
    x, y = make_data(4 * c.size, seed=21)
    dp = DataParallel(make_model(), c, deterministic=deterministic)
    if c.rank == 0:  # one rank evaluates 100 samples through dp, as a validation pass might
        xv, yv = make_data(100, seed=22)
        if evaluation == "no_grad":
            with no_grad():
                loss_of(dp, xv, yv)
        else:
            loss_of(dp, xv, yv).item()
    mine = shard(len(y), c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    assert_everywhere(grads_match_full_batch(dp, x, y), "an evaluation forward changed the gradient")
