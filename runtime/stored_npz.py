"""Reading an .npz archive without trusting it: only the members asked for, each a stored (uncompressed)
.npy whose declared shape and dtype are checked before any memory is allocated for it.

A stored member holds its bytes in the file, so a member that passes these checks costs at most its
share of the file: a crafted archive cannot make a reader allocate more than the file's size.
"""

import math
import zipfile

import numpy as np


class ArchiveError(ValueError):
    """An archive member that cannot be read safely; the message is one line naming it."""


def member_names(source):
    """The array names in the archive (members named NAME.npy), in archive order."""
    with _open(source) as archive:
        return [info.filename[:-4] for info in archive.infolist() if info.filename.endswith(".npy")]


def read_members(source, names=None, shapes=None):
    """{name: array} of the members `names` (default: every .npy member) of the archive at `source` (a path or
    a binary file). shapes: {name: shape} a member must declare, checked before it is read."""
    with _open(source) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        if names is None:
            names = [name[:-4] for name in infos if name.endswith(".npy")]
        arrays = {}
        for name in names:
            info = infos.get(f"{name}.npy")
            if info is None:
                raise ArchiveError(f"has no array {name!r}")
            arrays[name] = _read_member(archive, info, name, (shapes or {}).get(name))
        return arrays


class _open:
    """zipfile.ZipFile with its failures (not a zip, truncated, unreadable) as one-line ArchiveErrors."""

    def __init__(self, source):
        try:
            self.archive = zipfile.ZipFile(source)
            self.archive.bytes = self.archive.fp.seek(0, 2)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ArchiveError(f"not a readable .npz ({e})") from None

    def __enter__(self):
        return self.archive

    def __exit__(self, *exc):
        self.archive.close()


def _read_member(archive, info, name, shape=None):
    if info.compress_type != zipfile.ZIP_STORED:
        raise ArchiveError(f"array {name!r} is compressed; mpigrad reads only the uncompressed archives it writes")
    if info.file_size > archive.bytes:  # the directory's claim, checked against the file itself
        raise ArchiveError(f"array {name!r} claims {info.file_size:,} bytes in an archive of {archive.bytes:,}")
    try:
        with archive.open(info) as f:
            declared_shape, fortran, dtype = _header(f)
            if dtype.hasobject or dtype.itemsize == 0:
                raise ArchiveError(f"array {name!r} has dtype {dtype}: not a numeric array")
            nbytes = math.prod(declared_shape) * dtype.itemsize
            if nbytes > info.file_size:
                raise ArchiveError(f"array {name!r} declares shape {declared_shape} of {dtype} ({nbytes:,} bytes) "
                                   f"but holds {info.file_size:,} bytes")
            if shape is not None and tuple(declared_shape) != tuple(shape):
                raise ArchiveError(f"array {name!r} has shape {declared_shape}, expected {tuple(shape)}")
            buffer = bytearray(nbytes)
            if f.readinto(buffer) != nbytes:
                raise ArchiveError(f"array {name!r} is truncated")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, ArchiveError):
            raise
        raise ArchiveError(f"array {name!r} is unreadable ({e})") from None
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(declared_shape[::-1]).T if fortran else array.reshape(declared_shape)


def _header(f):
    """(shape, fortran order, dtype) from a .npy header (numpy's parser, which bounds the header's size)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(f)
    raise ArchiveError(f".npy format version {version} is not supported")
