"""The bucket launched last (the first layer's gradients) goes in pieces, each all-reduced as soon as
backward has written its rows: the averaged gradients are unchanged, and the first piece is on its
way before the weight gradient is finished."""

import numpy as np
import pytest

from mpigrad.runtime import DataParallel
from mpigrad.runtime import buckets as buckets_module

from mpi_helpers import assert_everywhere, comm, loss_of, make_data, make_model, shard

pytestmark = pytest.mark.mpi


def _pieced_model(monkeypatch):
    """An MLP whose first weight (16 x 40 float64, 5 KB) is cut into 512-byte pieces."""
    monkeypatch.setattr(buckets_module, "PIECE_BYTES", 512)
    return make_model(sizes=(40, 16, 16, 3))


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("bucket_mb", [None, 0.001])
def test_pieced_last_bucket_gives_the_full_batch_gradients(monkeypatch, bucket_mb):
    c = comm()
    n = 8 * c.size
    x, y = make_data(n, features=40)
    dp = DataParallel(_pieced_model(monkeypatch), c, bucket_mb=bucket_mb)
    assert_everywhere(len(dp.reducer.buckets[-1].pieces) > 1, "the last bucket is not cut into pieces")
    for _ in range(2):  # a second step: the piece counters start again
        for p in dp.parameters():
            p.defer_grad(0.0)
        mine = shard(n, c.rank, c.size)
        loss_of(dp, x[mine], y[mine]).backward()
    expected = _reference(x, y)
    assert_everywhere(all(np.allclose(p.grad, e, rtol=1e-12, atol=1e-14) for p, e in zip(dp.parameters(), expected)),
                      "pieced reduction differs from the full-batch gradients")


def _reference(x, y):
    model = make_model(sizes=(40, 16, 16, 3))
    loss_of(model, x, y).backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.mpi(min_size=2)
def test_first_piece_starts_before_the_weight_gradient_is_written(monkeypatch):
    c = comm()
    n = 4 * c.size
    x, y = make_data(n, features=40)
    dp = DataParallel(_pieced_model(monkeypatch), c)
    events = []
    reducer = dp.reducer
    rows_written, launch_piece = reducer.rows_written, reducer._launch_piece
    monkeypatch.setattr(reducer, "rows_written", lambda p, lo, hi: (events.append("rows"), rows_written(p, lo, hi)))
    monkeypatch.setattr(reducer, "_launch_piece", lambda b: (events.append(("piece", b is reducer.buckets[-1])),
                                                             launch_piece(b)))
    for p in dp.parameters():
        p.defer_grad(0.0)  # as zero_grad leaves them: backward writes the product straight into the buffer
    mine = shard(n, c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    last_rows = max((i for i, e in enumerate(events) if e == "rows"), default=-1)
    first_piece = min((i for i, e in enumerate(events) if e == ("piece", True)), default=len(events))
    assert_everywhere(first_piece < last_rows, f"no piece of the last bucket started while its rows were "
                                               f"being written: {events}")


def _no_bias_model():
    from mpigrad.autograd import nn
    rng = np.random.default_rng(0)
    return nn.Sequential(nn.Linear(40, 16, bias=False, rng=rng, dtype=np.float64), nn.Tanh(),
                         nn.Linear(16, 3, bias=False, rng=rng, dtype=np.float64))


@pytest.mark.mpi(min_size=2)
def test_a_last_bucket_of_one_weight_sent_whole_in_pieces(monkeypatch):
    """The first weight alone in the last bucket, every earlier bucket already started: all its
    pieces go out from the row blocks, before its own hook fires."""
    monkeypatch.setattr(buckets_module, "PIECE_BYTES", 512)
    c = comm()
    n = 4 * c.size
    x, y = make_data(n, features=40)
    dp = DataParallel(_no_bias_model(), c, bucket_mb=0.001)
    assert_everywhere(dp.reducer.buckets[-1].params == (dp.module[0].weight,), "W1 is not alone in the last bucket")
    for p in dp.parameters():
        p.defer_grad(0.0)
    mine = shard(n, c.rank, c.size)
    loss_of(dp, x[mine], y[mine]).backward()
    reference = _no_bias_model()
    loss_of(reference, x, y).backward()
    assert_everywhere(all(np.allclose(p.grad, e.grad, rtol=1e-12, atol=1e-14)
                          for p, e in zip(dp.parameters(), reference.parameters())),
                      "a last bucket sent whole in pieces differs from the full-batch gradients")


@pytest.mark.mpi(min_size=2)
def test_no_pieces_with_a_16_bit_wire(monkeypatch):
    """The wire codec's sums issue their second collective from Test(); with pieces in flight the
    ranks could issue those in different orders (measured: wrong sums), so that path keeps whole buckets."""
    monkeypatch.setattr(buckets_module, "PIECE_BYTES", 512)
    c = comm()
    n = 8 * c.size
    x, y = make_data(n, features=40)
    dp = DataParallel(make_model(sizes=(40, 16, 16, 3), dtype=np.float32), c, grad_comm_dtype="bfloat16")
    assert_everywhere(len(dp.reducer.buckets[-1].pieces) == 1, "the last bucket is cut into pieces")
    for p in dp.parameters():
        p.defer_grad(0.0)
    mine = shard(n, c.rank, c.size)
    loss_of(dp, x[mine].astype(np.float32), y[mine]).backward()
    reference = _reference(x, y)
    assert_everywhere(all(np.abs(p.grad - e).max() <= 2e-2 * np.abs(e).max()
                          for p, e in zip(dp.parameters(), reference)), "bfloat16 sums far from float64's")
