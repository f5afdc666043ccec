"""Datasets for the built-in models: character text for the language model, arrays for the MLP.

A split has `num_samples` and `batch(indices) -> (inputs, targets)` as numpy arrays. `.npy`
and raw IDX files are memory-mapped, so a rank only reads the rows it is given.
"""

import gzip
import os

import numpy as np

from .config import ConfigError

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class TokenWindows:
    """Non-overlapping windows of `context` characters; targets are the inputs shifted by one."""

    def __init__(self, ids, context):
        self.ids, self.context = ids, context
        self.num_samples = max(0, (len(ids) - 1) // context)

    def batch(self, indices):
        starts = np.asarray(indices, dtype=np.int64)[:, None] * self.context
        positions = starts + np.arange(self.context)
        return self.ids[positions], self.ids[positions + 1]


class Rows:
    """Rows `rows` of X (flattened to vectors, uint8 scaled to [0, 1]) with integer class labels y;
    sample i of the split is row rows[i] of the file."""

    def __init__(self, X, y, rows, dtype):
        self.X, self.y, self.rows, self.dtype = X, y, rows, dtype
        self.num_samples = len(rows)

    def batch(self, indices):
        picked = self.rows[np.asarray(indices, dtype=np.int64)]
        x = np.asarray(self.X[picked]).reshape(len(picked), -1)
        x = x.astype(self.dtype) / self.dtype.type(255) if x.dtype == np.uint8 else x.astype(self.dtype)
        return x, np.asarray(self.y[picked], dtype=np.int64)


class TextData:
    """A character vocabulary over the whole text; the last val_fraction of it is the validation split."""

    def __init__(self, text, source, context, val_fraction):
        self.source, self.vocab = source, "".join(sorted(set(text)))
        ids = self.encode(text)
        cut = len(ids) - int(len(ids) * val_fraction)
        self.train = TokenWindows(ids[:cut], context)
        self.val = TokenWindows(ids[cut:], context)
        if self.train.num_samples == 0 or (val_fraction > 0 and self.val.num_samples == 0):
            raise ConfigError(f"data file {source}: {len(text)} characters are too few for context={context} "
                              f"with val_fraction={val_fraction}")

    def encode(self, text):
        """Character ids: positions in the sorted vocabulary (sorted by code point)."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        vocab_codes = np.frombuffer(self.vocab.encode("utf-32-le"), dtype="<u4")
        ids = np.searchsorted(vocab_codes, codes)
        if len(codes) and (ids.max() >= len(vocab_codes) or np.any(vocab_codes[ids] != codes)):
            raise ValueError("text has characters outside the vocabulary")
        return ids.astype(np.int32)

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)

    def describe(self):
        return (f"{self.source}: {self.train.num_samples} training windows, {self.val.num_samples} validation, "
                f"vocabulary {len(self.vocab)}")


# The validation rows of array data: a permutation seeded by this constant, not by `seed` or the
# world size, so every run on a file holds out the same rows and their losses compare.
SPLIT_SEED = 20241125


def split_rows(num_rows, val_fraction):
    """(train rows ascending, validation rows in shuffled order): int(num_rows * val_fraction) held out."""
    order = np.random.default_rng(SPLIT_SEED).permutation(num_rows)
    held = int(num_rows * val_fraction)
    return np.sort(order[held:]), order[:held]


class ArrayData:
    """Feature rows and class labels; a fixed shuffle of the rows holds out val_fraction for validation."""

    def __init__(self, X, y, source, val_fraction, dtype, classes=0):
        """classes: the class count (0: inferred from the labels, within a sanity bound; None: the largest
        label + 1, for data a trained model's own class count is checked against)."""
        self.source = source
        _check_labels(X, y, source)
        self.features = int(np.prod(X.shape[1:], dtype=np.int64))
        self.classes = int(y.max()) + 1 if classes is None else class_count(y, source, classes)
        train, val = split_rows(len(y), val_fraction)
        self.train = Rows(X, y, train, dtype)
        self.val = Rows(X, y, val, dtype)

    def describe(self):
        return (f"{self.source}: {self.train.num_samples} training rows, {self.val.num_samples} validation, "
                f"{self.features} features, {self.classes} classes")


def class_count(y, source, declared=0):
    """`declared`, or the largest label + 1 unless that is far beyond the distinct labels seen (a corrupt label
    would otherwise size the model's output layer)."""
    labels = np.unique(np.asarray(y))
    largest = int(labels[-1])
    if declared:
        if largest >= declared:
            raise ConfigError(f"data file {source}: label {largest} (row {_row_of(y, largest)}) is not below "
                              f"classes = {declared}")
        return declared
    if largest + 1 > 2 * len(labels) + 10:
        raise ConfigError(f"data file {source}: label {largest} (row {_row_of(y, largest)}) would make "
                          f"{largest + 1:,} classes, but only {len(labels)} distinct labels occur; fix the label, or "
                          f"set classes = {largest + 1} if that many are meant")
    return largest + 1


def _row_of(y, label):
    return int(np.argmax(np.asarray(y) == label))


def load_data(cfg):
    """The dataset the config names: TextData for the transformer, ArrayData for the MLP."""
    if cfg.model == "transformer":
        source, text = ("pydoc_data.topics", builtin_text()) if cfg.data == "pydoc" else (cfg.data, read_text(cfg.data))
        return TextData(text, source, cfg.context, cfg.val_fraction)
    X, y = load_arrays(cfg.data, cfg.labels)
    return ArrayData(X, y, cfg.data, cfg.val_fraction, np.dtype(cfg.dtype), getattr(cfg, "classes", 0))


def builtin_text():
    """English text that ships with Python: the pydoc help topics, joined in sorted topic order."""
    from pydoc_data import topics
    return "\n".join(topics.topics[name] for name in sorted(topics.topics))


def read_text(path):
    _check_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"data file {path}: not UTF-8 text (byte {e.start}); for .npz, .npy or IDX arrays "
                          'set model = "mlp"') from None


def load_arrays(path, labels):
    """(X, y) from .npz (arrays X and y), .npy (+ labels .npy), or IDX images (+ labels IDX)."""
    _check_file(path)
    if path.endswith(".npz"):
        if labels:
            raise ConfigError(f"data file {path}: a .npz holds its own labels (y); leave labels empty")
        return _load_npz(path)
    if path.endswith(".npy"):
        return _load_npy(path), _load_npy(_labels_path(path, labels, ".npy"))
    if _is_idx(path):
        return load_idx(path), load_idx(_labels_path(path, labels, "IDX"))
    raise ConfigError(f"data file {path}: unknown format; use .npz, .npy, or MNIST IDX (-idx3-ubyte, .gz)")


def _labels_path(path, labels, kind):
    if not labels:
        raise ConfigError(f"data file {path}: a {kind} data file needs labels = a {kind} file of class indices")
    _check_file(labels)
    return labels


def _check_file(path):
    if not os.path.isfile(path):
        raise ConfigError(f"data file {path}: no such file")


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = sorted(archive.files)
            if "X" not in names or "y" not in names:
                raise ConfigError(f"data file {path}: needs arrays 'X' and 'y', found {names}")
            return archive["X"], archive["y"]
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"data file {path}: not a readable .npz ({e})") from None


def _load_npy(path):
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"data file {path}: not a readable .npy ({e})") from None


def _is_idx(path):
    name = os.path.basename(path).removesuffix(".gz")
    return "idx" in name or name.endswith(".ubyte")


def load_idx(path):
    """An IDX array (MNIST format): memory-mapped when raw, decompressed when gzip."""
    if path.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (OSError, EOFError) as e:
            raise ConfigError(f"data file {path}: not a readable gzip file ({e})") from None
        dtype, shape, offset = _idx_header(raw[:260], path)
        _check_idx_size(len(raw) - offset, dtype, shape, path)
        return np.frombuffer(raw, dtype=dtype, offset=offset, count=int(np.prod(shape))).reshape(shape)
    with open(path, "rb") as f:
        head = f.read(260)
    dtype, shape, offset = _idx_header(head, path)
    _check_idx_size(os.path.getsize(path) - offset, dtype, shape, path)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _idx_header(head, path):
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES or head[3] == 0:
        raise ConfigError(f"data file {path}: not an IDX file (bad magic number {head[:4].hex() or 'empty'})")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise ConfigError(f"data file {path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))
    return np.dtype(_IDX_TYPES[head[2]]), shape, 4 + 4 * ndim


def _check_idx_size(available, dtype, shape, path):
    needed = int(np.prod(shape)) * dtype.itemsize
    if available < needed:
        raise ConfigError(f"data file {path}: truncated: header promises {shape} ({needed} bytes), "
                          f"found {available} bytes")


def _check_labels(X, y, source):
    if X.ndim < 2 or len(X) == 0:
        raise ConfigError(f"data file {source}: X must have shape (samples, features...), got {X.shape}")
    if y.shape != (len(X),):
        raise ConfigError(f"data file {source}: y must have shape ({len(X)},) to match X, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ConfigError(f"data file {source}: y must hold class indices >= 0, got dtype {y.dtype} "
                          f"min {y.min()}")
    if not (np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating)):
        raise ConfigError(f"data file {source}: X must be real numbers, got dtype {X.dtype}")
