"""DataParallel(grad_comm_dtype=...): 16-bit gradients on the wire, summed in float32; deterministic
mode keeps one process's bits at every world size; bad input is refused on every rank alike."""

import numpy as np
import pytest

from mpigrad.runtime import DataParallel
from mpigrad.runtime.comm import SerialComm
from mpigrad.runtime.compression import decode, encode

from mpi_helpers import accumulate, assert_everywhere, assert_same_on_all_ranks, comm, loss_of, make_data, make_model

pytestmark = pytest.mark.mpi

K = 12  # divisible by every world size the suite runs at (1, 2, 3, 4)
WIRES = ("bfloat16", "float16")


def model32():
    return make_model(dtype=np.float32, sizes=(5, 64, 64, 3))


def data32(n, seed):
    x, y = make_data(n, seed=seed)
    return x.astype(np.float32), y



def representable(arrays, wire):
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    return np.array_equal(decode(encode(flat, wire), wire), flat)


@pytest.mark.parametrize("wire", WIRES)
def test_deterministic_bits_are_one_process_bits_at_every_world_size(wire):
    c = comm()
    x, y = data32(3 * K, seed=7)
    serial = lambda dtype: DataParallel(model32(), SerialComm(), deterministic=True, micro_batches=K,
                                        grad_comm_dtype=dtype)
    reference = accumulate(serial(wire), x, y, K)
    uncompressed = accumulate(serial("float32"), x, y, K)
    per_rank = K // c.size
    mine = slice(c.rank * 3 * per_rank, (c.rank + 1) * 3 * per_rank)
    dp = DataParallel(model32(), c, deterministic=True, micro_batches=K, grad_comm_dtype=wire)
    grads = accumulate(dp, x[mine], y[mine], per_rank)
    assert_everywhere(all(np.array_equal(g, r) for g, r in zip(grads, reference)),
                      f"{wire}: deterministic gradients differ from one process's")
    assert_same_on_all_ranks(grads, f"{wire}: gradients differ between ranks")
    assert_everywhere(representable(grads, wire), f"{wire}: gradients are not {wire} values")
    assert_everywhere(not all(np.array_equal(g, u) for g, u in zip(grads, uncompressed)),
                      f"{wire}: rounding had no effect (not compressed?)")
    # a dozen roundings of 2^-9 (bfloat16) or 2^-12 (float16) relative, some on partial sums that cancel
    bound = {"bfloat16": 2e-2, "float16": 4e-3}[wire]
    close = all(np.abs(g - u).max() <= bound * np.abs(u).max() for g, u in zip(grads, uncompressed))
    assert_everywhere(close, f"{wire}: gradients far from the float32 ones")


@pytest.mark.parametrize("wire", WIRES)
def test_default_mode_averages_in_float32_and_rounds_once(wire):
    c = comm()
    x, y = data32(8 * c.size, seed=3)
    rows = slice(8 * c.rank, 8 * (c.rank + 1))
    dp = DataParallel(model32(), c, grad_comm_dtype=wire, bucket_mb=0.004)  # several buckets
    assert_everywhere(len(dp.reducer.buckets) > 1, "expected several buckets")
    grads = [g.copy() for g in accumulate(dp, x[rows], y[rows], 1)]
    # the float32 sum of every rank's rounded, weighted gradient, rounded once: what the wire promises
    expected = None
    for r in range(c.size):
        part = accumulate(DataParallel(model32(), SerialComm()), x[8 * r:8 * (r + 1)], y[8 * r:8 * (r + 1)], 1)
        weighted = [decode(encode((g * np.float32(1 / c.size)).reshape(-1), wire), wire) for g in part]
        expected = weighted if expected is None else [e + w for e, w in zip(expected, weighted)]
    expected = [decode(encode(e, wire), wire).reshape(g.shape) for e, g in zip(expected, grads)]
    assert_same_on_all_ranks(grads, f"{wire}: gradients differ between ranks")
    assert_everywhere(representable(grads, wire), f"{wire}: gradients are not {wire} values")
    assert_everywhere(all(np.array_equal(g, e) for g, e in zip(grads, expected)),
                      f"{wire}: not the rank-order float32 sum of the rounded shares, rounded once")


def test_float16_overflow_shows_as_an_infinite_norm_on_every_rank():
    c = comm()
    x, y = data32(4, seed=5)
    dp = DataParallel(model32(), c, grad_comm_dtype="float16")
    (loss_of(dp, x * 1e6, y) * 1e6).backward()
    norm = dp.grad_norm()
    assert_everywhere(np.isinf(norm), f"expected an infinite norm, got {norm}")
    assert_same_on_all_ranks([np.float64(norm)], "norm differs between ranks")


def test_bad_wire_dtypes_are_refused_on_every_rank():
    with pytest.raises(ValueError, match="grad_comm_dtype='int8' is not one of"):
        DataParallel(model32(), comm(), grad_comm_dtype="int8")
    with pytest.raises(ValueError, match="grad_comm_dtype='bfloat16' needs float32 parameters"):
        DataParallel(make_model(), comm(), grad_comm_dtype="bfloat16")  # float64


@pytest.mark.parametrize("wire", WIRES)
def test_sums_found_complete_in_different_orders_on_different_ranks_still_add_up(wire):
    """A 16-bit sum starts its second collective when its first is found complete. Rank 0 polls the
    newer sum first, the others wait on the older one: the gathers must still match by launch order."""
    from mpigrad.runtime.compression import WireAllreduce
    c = comm()
    wire_sum = WireAllreduce(c, wire)
    older = np.full(64, 1.0 + c.rank, np.float32)
    newer = np.full(64, 100.0 * (1 + c.rank), np.float32)
    expect_older, expect_newer = older.copy(), newer.copy()
    expect_older[:] = sum(1.0 + r for r in range(c.size))
    expect_newer[:] = sum(100.0 * (1 + r) for r in range(c.size))
    requests = [wire_sum(older), wire_sum(newer)]
    if c.rank == 0:
        for _ in range(200):  # polls only the newer sum: its gather must not go out before the older's
            requests[1].Test()
    for request in requests:
        request.Wait()
    assert_everywhere(np.array_equal(older, expect_older) and np.array_equal(newer, expect_newer),
                      f"{wire} sums polled in different orders")
