"""A crafted checkpoint or final.npz cannot exhaust memory or escape as a traceback: only the members the
model and optimizer need are read, each declared shape is checked before it is allocated, compressed
members are refused, and a damaged header is a CheckpointError."""

import hashlib
import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from mpigrad.optim import Adam
from mpigrad.runtime import CheckpointError, load_checkpoint, save_checkpoint
from mpigrad.runtime.checkpoint import MAGIC, read_verified
from mpigrad.runtime.stored_npz import ArchiveError, read_members

from mpi_helpers import make_model


def npy_header_only(shape, dtype="<f8"):
    """A .npy member declaring `shape` but holding 16 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(16)


def rebuilt(payload, replace=None, add=None, compress=()):
    """The archive with members replaced or added (name -> .npy bytes), `compress` ones deflated."""
    replace, add = replace or {}, add or {}
    source, target = zipfile.ZipFile(io.BytesIO(payload)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            name = info.filename[:-4]
            data = replace.get(name, source.read(info))
            out.writestr(info.filename, data, zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED)
        for name, data in add.items():
            out.writestr(f"{name}.npy", data, zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED)
    return target.getvalue()


def with_header(payload):
    return b"%s %s %d\n" % (MAGIC, hashlib.sha256(payload).hexdigest().encode(), len(payload)) + payload


@pytest.fixture
def saved(tmp_path):
    """(path, model, optimizer, archive bytes) of a valid checkpoint with optimizer state."""
    model = make_model()
    optimizer = Adam(model.parameters())
    path = tmp_path / "a.ckpt"
    save_checkpoint(str(path), model, optimizer, step=3)
    return path, model, optimizer, read_verified(str(path))


def test_a_bit_flip_in_the_header_length_is_a_checkpoint_error(saved):
    path, model, optimizer, _ = saved
    data = bytearray(path.read_bytes())
    length_digit = data.index(b"\n") - 1
    data[length_digit] ^= 0x40  # a digit becomes a letter
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is not an mpigrad checkpoint"):
        load_checkpoint(str(path), model, optimizer)


def test_an_unreferenced_member_declaring_2_45_floats_is_never_read(saved):
    path, model, optimizer, payload = saved
    path.write_bytes(with_header(rebuilt(payload, add={"array/999": npy_header_only((2**45,))})))
    assert load_checkpoint(str(path), model, optimizer)["step"] == 3


def test_a_needed_member_declaring_more_than_it_holds_is_refused_before_allocating(saved):
    path, model, optimizer, payload = saved
    first = next(iter(model.state_dict()))
    path.write_bytes(with_header(rebuilt(payload, replace={f"param/{first}": npy_header_only((2**45,))})))
    with pytest.raises(CheckpointError, match=r"declares shape \(35184372088832,\) of float64 \(281,474,976,710,656 "
                                              r"bytes\) but holds"):
        load_checkpoint(str(path), model, optimizer)


def test_a_member_of_the_wrong_shape_is_refused_before_reading(saved):
    path, model, optimizer, payload = saved
    first, value = next(iter(model.state_dict().items()))
    wrong = io.BytesIO()
    np.save(wrong, np.zeros((value.shape[0] + 1,) + value.shape[1:]))
    path.write_bytes(with_header(rebuilt(payload, replace={f"param/{first}": wrong.getvalue()})))
    with pytest.raises(CheckpointError, match=f"does not fit this model/optimizer: array 'param/{first}' has shape"):
        load_checkpoint(str(path), model, optimizer)


def with_bomb(archive, name, megabytes=100):
    """The archive plus a deflated member `name` declaring and holding `megabytes` MB of zeros (about 0.1 %
    of that on disk), streamed in 1 MB pieces."""
    target = io.BytesIO(archive)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (megabytes * 2**20 // 8,)})
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as out:
        with out.open(f"{name}.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(megabytes):
                f.write(bytes(2**20))
    return target.getvalue()


def test_a_deflate_bomb_is_never_decompressed(saved):
    path, model, optimizer, payload = saved
    path.write_bytes(with_header(with_bomb(payload, "array/999")))
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        assert load_checkpoint(str(path), model, optimizer)["step"] == 3
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"{peak:,} bytes allocated"
    first = next(iter(model.state_dict()))
    path.write_bytes(with_header(rebuilt(payload, compress={f"param/{first}"})))
    with pytest.raises(CheckpointError, match=f"array 'param/{first}' is compressed"):
        load_checkpoint(str(path), model, optimizer)


def test_final_npz_members_are_bounded_by_the_file(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, w=np.ones((2, 3)))
    good = buffer.getvalue()
    assert np.array_equal(read_members(io.BytesIO(good))["w"], np.ones((2, 3)))
    for crafted, message in ((rebuilt(good, add={"x": npy_header_only((2**45,))}), "declares shape"),
                             (with_bomb(good, "x"), "is compressed"),
                             (good[:-30], "not a readable .npz")):
        with pytest.raises(ArchiveError, match=message):
            read_members(io.BytesIO(crafted))
