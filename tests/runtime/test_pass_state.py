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


def wrapped(seed, deterministic):
    """(x, y, this rank's rows of them, a DataParallel over the shared test model)."""
    c = comm()
    x, y = make_data(4 * c.size, seed=seed)
    return x, y, shard(len(y), c.rank, c.size), DataParallel(make_model(), c, deterministic=deterministic)


def assert_next_step_is_averaged(dp, x, y, mine, message):
    """After a failed or refused pass: zero the grads, run one pass, check it is the full-batch average."""
    for p in dp.parameters():
        p.grad[...] = 0
    loss_of(dp, x[mine], y[mine]).backward()
    assert_everywhere(grads_match_full_batch(dp, x, y), message)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("evaluation", ["no_grad", "not_differentiated"])
def test_forwards_that_are_not_trained_do_not_change_the_weighting(deterministic, evaluation):
    x, y, mine, dp = wrapped(21, deterministic)
    if comm().rank == 0:  # one rank evaluates 100 samples through dp, as a validation pass might
        xv, yv = make_data(100, seed=22)
        if evaluation == "no_grad":
            with no_grad():
                loss_of(dp, xv, yv)
        else:
            loss_of(dp, xv, yv).item()
    loss_of(dp, x[mine], y[mine]).backward()
    assert_everywhere(grads_match_full_batch(dp, x, y), "an evaluation forward changed the gradient")


@pytest.mark.parametrize("deterministic", [False, True])
def test_an_exception_in_backward_does_not_disable_averaging(deterministic):
    x, y, mine, dp = wrapped(23, deterministic)
    dp.parameters()[0].register_post_accumulate_grad_hook(_raise_once())
    with pytest.raises(KeyError, match="from a user hook"):  # raised on every rank at the same point
        loss_of(dp, x[mine], y[mine]).backward()
    assert_next_step_is_averaged(dp, x, y, mine, "the pass after a failed one was not averaged")


def _raise_once():
    calls = []

    def hook(param):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("from a user hook")
    return hook


@pytest.mark.parametrize("deterministic", [False, True])
def test_a_second_backward_through_one_output_is_refused_and_the_next_step_works(deterministic):
    x, y, mine, dp = wrapped(24, deterministic)
    out = dp(x[mine])
    l1 = loss_of(lambda v: v, out, y[mine])
    l2 = (out * out).mean()
    l1.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match=r"second backward through the same dp\(...\) output.*\(l1 \+ l2\)"):
        l2.backward()
    assert_next_step_is_averaged(dp, x, y, mine, "the step after the refused backward was not averaged")


def test_wrapping_a_model_twice_is_refused():
    c = comm()
    model = make_model()
    DataParallel(model, c)
    with pytest.raises(ValueError, match="already wrapped by a DataParallel"):
        DataParallel(model, c)
