"""Standard dataset file formats, read with bounds: IDX (MNIST, Fashion-MNIST) and the
CIFAR-10 python batches.

A file someone sent is untrusted input: nothing here allocates what a header or a
pickle merely announces. An IDX header is checked against :data:`MAX_IDX_BYTES`
and a gzipped one is decompressed incrementally, never past what its header
announces; a CIFAR batch is unpickled by an allowlist of the exact numpy
globals it needs, its arrays built only after their shape, dtype and size are
checked (:data:`MAX_CIFAR_BYTES` per file); labels must be class indices below
:data:`MAX_CLASSES`. Every problem is a :class:`DataError` with one line naming
the file and what is wrong.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A dataset file is missing or not in the expected format (the message says which)."""


def check_regular_file(path: Path) -> Path:
    """``path`` if it is not there or is a regular file (a symlink to one counts); a
    :class:`DataError` for anything else that exists — a named pipe would block the first
    read forever, a folder or a device is no dataset file. Nothing is opened.

    >>> check_regular_file(Path("/dev/null"))
    Traceback (most recent call last):
    ...
    symloss.harness.datafiles.DataError: dataset file /dev/null is not a regular file
    """
    if path.exists() and not path.is_file():
        raise DataError(f"dataset file {path} is not a regular file")
    return path


#: Labels are class indices 0 ≤ label < MAX_CLASSES (a label of 10**5 is a broken file,
#: not a 100,000-class problem: the one-hot targets alone would not fit).
MAX_CLASSES = 1000


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """``labels`` as int64 class indices, or a :class:`DataError` naming the first bad one.

    >>> check_labels(np.array([0, 3, 9], dtype=np.uint8), "x").dtype
    dtype('int64')
    >>> check_labels(np.array([0, 2**31 - 1]), "train labels")
    Traceback (most recent call last):
    ...
    symloss.harness.datafiles.DataError: train labels must be class indices 0 <= label < ...
    """
    array = np.asarray(labels)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise DataError(f"{where} must be a list of integer class indices, got "
                        f"{array.dtype} of shape {array.shape}")
    bad = array[(array < 0) | (array >= MAX_CLASSES)]
    if bad.size:
        raise DataError(f"{where} must be class indices 0 <= label < {MAX_CLASSES}, "
                        f"found {int(bad[0])}")
    return array.astype(np.int64)


# --- IDX (MNIST, Fashion-MNIST) --------------------------------------------------------------

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


#: The largest IDX payload read (MNIST's training images are 47 MB): a header that
#: announces more is refused before anything is read or decompressed.
MAX_IDX_BYTES = 1 << 30
MAX_IDX_DIMENSIONS = 4


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (LeCun's MNIST format), gzipped or not.

    Header: two zero bytes, a type code, the number of dimensions, then each
    dimension as a big-endian uint32; then the data, big-endian. The header is
    checked first and the data read (or decompressed) only up to the size it
    announces, so a gzip bomb costs at most :data:`MAX_IDX_BYTES`.
    """
    check_regular_file(path)
    try:
        with path.open("rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
            return _read_idx_stream(stream, path)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None


def _read_idx_stream(stream, path: Path) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (expected magic 0x0000<type><ndim>)")
    ndim = head[3]
    if not 1 <= ndim <= MAX_IDX_DIMENSIONS:
        raise DataError(f"{path} is not an IDX dataset file: {ndim} dimensions (expected 1 "
                        f"to {MAX_IDX_DIMENSIONS})")
    dimensions = stream.read(4 * ndim)
    if len(dimensions) < 4 * ndim:
        raise DataError(f"{path} is a truncated IDX file (header of {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", dimensions)
    dtype = np.dtype(IDX_TYPES[head[2]])
    expected = math.prod(shape) * dtype.itemsize
    if expected > MAX_IDX_BYTES:
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes), more than the "
                        f"{MAX_IDX_BYTES} bytes an IDX dataset file may hold")
    data = stream.read(expected + 1)  # one byte more: a longer file is malformed too
    if len(data) != expected:
        found = "more" if len(data) > expected else f"{len(data)} bytes"
        raise DataError(f"{path} is a malformed IDX file: header says shape {shape} "
                        f"({expected} bytes), found {found}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


#: The most a CIFAR batch file may hold, and its arrays together (one batch: 30 MB).
MAX_CIFAR_BYTES = 256 * 2**20
CIFAR_ROW = 3072


class _PendingArray:
    """What ``_reconstruct`` returns while unpickling: the array is built in ``__setstate__``,
    from the pickled bytes, only once its shape, dtype and size are checked."""

    def __init__(self, budget: list[int]):
        self.budget = budget
        self.array: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("malformed array state")
        _, shape, dtype, fortran, raw = state
        self.array = _bounded_array(raw, dtype, shape, "F" if fortran else "C", self.budget)


def _bounded_array(raw, dtype, shape, order: str, budget: list[int]) -> np.ndarray:
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)) or not isinstance(dtype, np.dtype) \
            or dtype.hasobject or not isinstance(shape, tuple) \
            or not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 4:
        raise pickle.UnpicklingError("an array that is not plain numbers")
    size = math.prod(shape) * dtype.itemsize
    budget[0] -= size
    if size != len(raw) or budget[0] < 0:
        raise pickle.UnpicklingError(f"an array of shape {shape} ({size} bytes) from "
                                     f"{len(raw)} bytes, or more than {MAX_CIFAR_BYTES} in all")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches' dicts of numpy arrays and lists, nothing else.

    No global is the real one: arrays are :class:`_PendingArray` until checked,
    dtypes must hold plain numbers, and ``_codecs.encode`` only re-encodes text
    as Latin-1 (protocol 2's bytes).
    """

    RECONSTRUCT = frozenset({("numpy.core.multiarray", "_reconstruct"),
                             ("numpy._core.multiarray", "_reconstruct")})
    FROMBUFFER = frozenset({("numpy.core.numeric", "_frombuffer"),
                            ("numpy._core.numeric", "_frombuffer")})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = [MAX_CIFAR_BYTES]

    def find_class(self, module: str, name: str):
        if (module, name) in self.RECONSTRUCT:
            return self._reconstruct
        if (module, name) in self.FROMBUFFER:
            return self._frombuffer
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")

    def _reconstruct(self, subtype, shape, dtype) -> _PendingArray:
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError("refusing to reconstruct anything but an ndarray")
        return _PendingArray(self.budget)

    def _frombuffer(self, buffer, dtype, shape, order) -> np.ndarray:
        raw = bytes(buffer) if isinstance(buffer, pickle.PickleBuffer) else buffer
        return _bounded_array(raw, dtype, tuple(shape), "F" if order == "F" else "C",
                              self.budget)


def _plain_dtype(spec, align=False, copy=False) -> np.dtype:
    if not isinstance(spec, (str, bytes)):
        raise pickle.UnpicklingError(f"refusing dtype {spec!r}")
    dtype = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec)
    if dtype.hasobject or dtype.itemsize > 16:
        raise pickle.UnpicklingError(f"refusing dtype {dtype}")
    return dtype


def _latin1(text, encoding="utf-8", errors="strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)``."""
    check_regular_file(path)
    try:
        size = path.stat().st_size
        if size > MAX_CIFAR_BYTES:
            raise DataError(f"{path} is not a CIFAR-10 python batch: {size} bytes, more than "
                            f"{MAX_CIFAR_BYTES}")
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"missing cifar10 file: expected {path} (CIFAR-10 python batch)") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RecursionError, MemoryError, struct.error) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path} is not a CIFAR-10 python batch: "
                        f"{type(error).__name__}: {str(error)[:100]}") from None
    shape = "expected b'data' (N, 3072) uint8 and b'labels' (N,)"
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch: expected a dict")
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if isinstance(data, _PendingArray):
        data = data.array
    if isinstance(labels, _PendingArray):
        labels = labels.array
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != CIFAR_ROW \
            or data.dtype != np.uint8:
        raise DataError(f"{path} is not a CIFAR-10 python batch: {shape}")
    if isinstance(labels, list):
        if not all(type(v) is int and 0 <= v < MAX_CLASSES for v in labels):
            raise DataError(f"{path}: labels must be class indices 0 <= label < {MAX_CLASSES}")
        labels = np.array(labels, dtype=np.int64)
    if not isinstance(labels, np.ndarray) or len(data) != len(labels):
        raise DataError(f"{path} is not a CIFAR-10 python batch: {shape}")
    labels = check_labels(labels, f"{path} labels")
    return data.reshape(-1, 3, 32, 32), labels
