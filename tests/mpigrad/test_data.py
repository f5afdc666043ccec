"""Data loaders: built-in text, text files, .npz, memory-mapped .npy, MNIST IDX raw and gzip, bad files."""

import gzip
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from mpigrad.config import ConfigError
from mpigrad.data import TextData, builtin_text, load_data, load_idx


def text_cfg(data="pydoc", context=16, val_fraction=0.1):
    return SimpleNamespace(model="transformer", data=data, context=context, val_fraction=val_fraction)


def mlp_cfg(data, labels="", val_fraction=0.25, dtype="float32"):
    return SimpleNamespace(model="mlp", data=str(data), labels=str(labels) if labels else "",
                           val_fraction=val_fraction, dtype=dtype)


def data_error(cfg):
    with pytest.raises(ConfigError) as info:
        load_data(cfg)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_builtin_text_windows_are_shifted_by_one():
    data = load_data(text_cfg())
    text = builtin_text()
    assert len(text) > 100_000 and data.decode(data.encode(text[:500])) == text[:500]
    x, y = data.train.batch([0, 3])
    assert x.shape == y.shape == (2, 16) and x.dtype == np.int32
    assert data.decode(x[1]) == text[48:64] and data.decode(y[1]) == text[49:65]
    assert data.train.num_samples + data.val.num_samples in range(len(text) // 16 - 2, len(text) // 16 + 1)


def test_text_file_split(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    data = load_data(text_cfg(str(path), context=9, val_fraction=0.2))
    assert data.vocab == "abcdefghij" and data.source == str(path)
    assert (data.train.num_samples, data.val.num_samples) == (79 // 9, 19 // 9)
    x, y = data.val.batch([1])
    assert data.decode(x[0]) == ("abcdefghij" * 10)[80 + 9:80 + 18]


def test_text_errors(tmp_path):
    assert data_error(text_cfg(str(tmp_path / "none.txt"))) == f"data file {tmp_path}/none.txt: no such file"
    short = tmp_path / "short.txt"
    short.write_text("hello")
    assert "5 characters are too few for context=16" in data_error(text_cfg(str(short)))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ok\xff\xfe")
    assert data_error(text_cfg(str(binary))).startswith(f"data file {binary}: not UTF-8 text (byte 2); ")


def test_npz(tmp_path):
    X, y = np.arange(40, dtype=np.float64).reshape(8, 5), np.arange(8) % 3
    np.savez(tmp_path / "d.npz", X=X, y=y)
    data = load_data(mlp_cfg(tmp_path / "d.npz"))
    assert (data.features, data.classes, data.train.num_samples, data.val.num_samples) == (5, 3, 6, 2)
    x, t = data.val.batch([1, 0])
    held = data.val.rows[[1, 0]]
    assert x.dtype == np.float32 and t.dtype == np.int64
    np.testing.assert_array_equal(x, X[held].astype(np.float32))
    np.testing.assert_array_equal(t, y[held])


def test_array_validation_rows_are_a_fixed_shuffle_of_all_rows(tmp_path):
    y = np.repeat(np.arange(10), 100)  # sorted by class: the last 10 % would be one class
    np.savez(tmp_path / "d.npz", X=np.arange(1000.0)[:, None], y=y)
    data = load_data(mlp_cfg(tmp_path / "d.npz", val_fraction=0.1))
    val, train = data.val.rows, data.train.rows
    assert len(val) == 100 and len(train) == 900
    assert sorted([*val, *train]) == list(range(1000))
    assert len(set(y[val[:20]])) >= 5  # the first eval_samples rows already span the classes
    again = load_data(mlp_cfg(tmp_path / "d.npz", val_fraction=0.1))  # no seed, rank or world size enters
    np.testing.assert_array_equal(again.val.rows, val)
    x, t = data.val.batch([0, 1])
    np.testing.assert_array_equal(x[:, 0], val[:2].astype(np.float32))
    np.testing.assert_array_equal(t, y[val[:2]])


def test_transformer_on_array_file_hints_at_mlp(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.zeros(4, int))
    message = data_error(text_cfg(str(tmp_path / "d.npz")))
    assert message.startswith(f"data file {tmp_path}/d.npz: not UTF-8 text (byte ") and 'model = "mlp"' in message


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((4, 2))}, "needs arrays 'X' and 'y', found ['X']"),
    ({"X": np.zeros((4, 2)), "y": np.zeros(3, int)}, "y must have shape (4,) to match X, got (3,)"),
    ({"X": np.zeros((4, 2)), "y": np.zeros(4)}, "y must hold class indices >= 0, got dtype float64"),
    ({"X": np.zeros((4, 2)), "y": -np.ones(4, int)}, "y must hold class indices >= 0"),
    ({"X": np.zeros(4), "y": np.zeros(4, int)}, "X must have shape (samples, features...), got (4,)"),
    ({"X": np.array([["a"], ["b"]]), "y": np.zeros(2, int)}, "X must be real numbers, got dtype <U1"),
])
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    text = data_error(mlp_cfg(tmp_path / "d.npz"))
    assert text.startswith(f"data file {tmp_path}/d.npz: ") and message in text


def test_npy_is_memory_mapped(tmp_path):
    X = np.arange(60, dtype=np.uint8).reshape(10, 2, 3)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(10) % 4)
    data = load_data(mlp_cfg(tmp_path / "X.npy", tmp_path / "y.npy", val_fraction=0.0))
    assert isinstance(data.train.X, np.memmap) and isinstance(data.train.y, np.memmap)
    x, t = data.train.batch([9, 2])
    np.testing.assert_array_equal(x, X[[9, 2]].reshape(2, 6) / np.float32(255))
    assert data.features == 6 and data.classes == 4 and t.tolist() == [1, 2]


def test_npy_errors(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((3, 2)))
    assert "a .npy data file needs labels = a .npy file" in data_error(mlp_cfg(tmp_path / "X.npy"))
    assert f"data file {tmp_path}/nope.npy: no such file" == data_error(
        mlp_cfg(tmp_path / "X.npy", tmp_path / "nope.npy"))
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    assert data_error(mlp_cfg(tmp_path / "bad.npy", tmp_path / "X.npy")).startswith(
        f"data file {tmp_path}/bad.npy: not a readable .npy")
    (tmp_path / "d.csv").write_text("1,2\n")
    assert "unknown format" in data_error(mlp_cfg(tmp_path / "d.csv"))


def write_idx(path, array, compress=False, chop=0):
    code = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    raw = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    raw = raw[:len(raw) - chop]
    (gzip.open if compress else open)(path, "wb").write(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx(tmp_path, compress):
    suffix = ".gz" if compress else ""
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    write_idx(tmp_path / f"img-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / f"lab-idx1-ubyte{suffix}", labels, compress)
    data = load_data(mlp_cfg(tmp_path / f"img-idx3-ubyte{suffix}", tmp_path / f"lab-idx1-ubyte{suffix}", 0.5))
    assert isinstance(data.train.X, np.memmap) != compress
    assert (data.features, data.classes, data.train.num_samples) == (12, 10, 3)
    x, t = data.val.batch([2])
    held = data.val.rows[2]
    np.testing.assert_array_equal(x[0], images[held].reshape(-1) / np.float32(255))
    assert t.tolist() == [labels[held]]


def test_idx_big_endian_ints(tmp_path):
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    write_idx(tmp_path / "v-idx2-int", values)
    np.testing.assert_array_equal(load_idx(str(tmp_path / "v-idx2-int")), values)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_errors(tmp_path, compress):
    suffix = ".gz" if compress else ""
    path = tmp_path / f"img-idx3-ubyte{suffix}"
    write_idx(path, np.zeros((5, 2, 2), np.uint8), compress, chop=3)
    message = data_error(mlp_cfg(path, path))
    assert message == f"data file {path}: truncated: header promises (5, 2, 2) (20 bytes), found 17 bytes"
    bad = tmp_path / f"bad-idx1-ubyte{suffix}"
    (gzip.open if compress else open)(bad, "wb").write(b"\x01\x02\x03\x04rest")
    assert data_error(mlp_cfg(bad, path)) == f"data file {bad}: not an IDX file (bad magic number 01020304)"


def test_bad_gzip(tmp_path):
    path = tmp_path / "img-idx3-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    assert data_error(mlp_cfg(path, path)).startswith(f"data file {path}: not a readable gzip file")


def test_vocabulary_is_sorted_by_code_point():
    data = TextData("ba€a\n", "x", context=2, val_fraction=0.0)
    assert data.vocab == "\nab€" and data.encode("€b").tolist() == [3, 2]
