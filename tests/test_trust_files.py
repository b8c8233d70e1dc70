"""Hostile dataset files (issue 14, items 1 and 4): bounded before anything is allocated.

Each attack is a small crafted file; the reader must answer one :class:`DataError`
line, run nothing, and allocate no more than the file could honestly need
(``tracemalloc`` sees numpy's allocations, so the peak is measured, not assumed).
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc

import numpy as np
import pytest

from symloss.harness.data import MAX_CLASSES, DataError, load_dataset, read_cifar_batch, read_idx
from tests.test_harness_data import write_cifar, write_idx, write_mnist

MB = 2**20


def _peak(function) -> tuple[BaseException | None, int]:
    """Run ``function``; the exception it raised (or None) and its peak traced allocation."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        function()
        error = None
    except BaseException as raised:  # returned for the caller to check
        error = raised
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


def _refused(function, match: str, *, peak_mb: float = 8) -> str:
    error, peak = _peak(function)
    assert isinstance(error, DataError), repr(error)
    message = str(error)
    assert "\n" not in message and match in message, message
    assert peak < peak_mb * MB, f"allocated {peak / MB:.0f} MB before refusing"
    return message


# --- CIFAR-10 batches --------------------------------------------------------------------------


class _Call:
    """Pickles as ``function(*arguments)`` (how an attacker writes a batch by hand)."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _State:
    """Pickles as a distinct uint8 array over shared ``raw`` bytes (``_reconstruct`` + state)."""

    def __init__(self, raw: bytes, tag: int):
        self.raw, self.tag = raw, tag

    def __reduce__(self):
        dtype = np.dtype(np.uint8)
        return (_reconstruct(), (np.ndarray, (0,), b"b"),
                (1, (len(self.raw),), dtype, False, self.raw))


def _write(path, payload, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(payload, protocol=protocol))


def test_a_tiny_batch_announcing_a_huge_array_allocates_nothing(tmp_path):
    path = tmp_path / "data_batch_1"
    huge = _Call(_reconstruct(), np.ndarray, (4 * 2**30,), b"b")  # 4 GB, uninitialised
    _write(path, {b"data": huge, b"labels": [0]})
    assert path.stat().st_size < 300
    _refused(lambda: read_cifar_batch(path), "not a CIFAR-10 python batch")


def test_an_array_state_larger_than_its_bytes_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    array = np.zeros((2, 3072), dtype=np.uint8)
    reduced = list(array.__reduce__())
    state = list(reduced[2])
    state[1] = (10**6, 3072)  # the shape lies about the bytes that follow
    reduced[2] = tuple(state)

    class Lying:
        def __reduce__(self):
            return tuple(reduced)

    _write(path, {b"data": Lying(), b"labels": [0, 1]})
    _refused(lambda: read_cifar_batch(path), "not a CIFAR-10 python batch")


def test_memo_referenced_rows_are_not_copied_out(tmp_path):
    path = tmp_path / "data_batch_1"
    row = np.zeros(3072 * 64, dtype=np.uint8)  # one row object, referenced 2,000 times
    _write(path, {b"data": [row] * 2000, b"labels": [0] * 2000})
    assert path.stat().st_size < 1 * MB  # np.asarray of it would be 393 MB
    _refused(lambda: read_cifar_batch(path), "expected b'data' (N, 3072) uint8")


def test_many_arrays_share_one_budget(tmp_path):
    path = tmp_path / "data_batch_1"
    raw = bytes(8 * MB)  # pickled once, referenced by 40 array states through the memo
    arrays = [_State(raw, i) for i in range(40)]
    _write(path, {b"data": np.zeros((1, 3072), np.uint8), b"rest": arrays, b"labels": [0]},
           protocol=3)
    assert path.stat().st_size < 9 * MB  # 40 arrays of 8 MB would be 320 MB
    _refused(lambda: read_cifar_batch(path), "not a CIFAR-10 python batch", peak_mb=40)


@pytest.mark.parametrize("labels", [[10**30], {b"a": 1}, [-1], [MAX_CLASSES], [0.5], "ab"],
                         ids=["huge", "dict", "negative", "too-many-classes", "float", "text"])
def test_bad_cifar_labels_are_one_line(tmp_path, labels):
    path = tmp_path / "data_batch_1"
    data = np.zeros((1 if not isinstance(labels, str) else 2, 3072), dtype=np.uint8)
    _write(path, {b"data": data, b"labels": labels})
    _refused(lambda: read_cifar_batch(path), str(path))


@pytest.mark.parametrize("gadget", ["os.system", "object-dtype", "codecs"])
def test_no_global_outside_the_arrays_runs(tmp_path, gadget):
    import codecs
    import os

    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    payload = {"os.system": _Call(os.system, f"touch {marker}"),
               "object-dtype": np.array([object()] * 3, dtype=object),
               "codecs": _Call(codecs.encode, "x", "rot13")}[gadget]
    try:
        _write(path, {b"data": payload, b"labels": [0]})
    except (pickle.PicklingError, TypeError, AttributeError):
        pytest.skip("cannot pickle this gadget here")
    _refused(lambda: read_cifar_batch(path), "not a CIFAR-10 python batch")
    assert not marker.exists()


def test_protocol_5_batches_still_load(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    images, labels = read_cifar_batch(path)
    _write(path, {b"data": images.reshape(-1, 3072), b"labels": labels.tolist()}, protocol=5)
    again, labels_again = read_cifar_batch(path)
    assert np.array_equal(again, images) and np.array_equal(labels_again, labels)


# --- IDX ---------------------------------------------------------------------------------------


def _idx_header(shape: tuple[int, ...], type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def test_a_gzip_bomb_is_read_only_as_far_as_its_header_says(tmp_path):
    path = tmp_path / "bomb.gz"
    payload = _idx_header((10, 28, 28)) + bytes(64 * MB)  # 64 MB of zeros after 7,840 bytes
    path.write_bytes(gzip.compress(payload, compresslevel=1))
    assert path.stat().st_size < 1 * MB
    _refused(lambda: read_idx(path), "found more")


def test_a_header_announcing_too_much_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_idx_header((2**31 - 1, 28, 28)) + bytes(1000)))
    _refused(lambda: read_idx(path), "more than the")
    path.write_bytes(_idx_header((1,) * 200))
    _refused(lambda: read_idx(path), "dimensions")


def test_a_corrupt_deflate_stream_is_one_line(tmp_path):
    good = gzip.compress(_idx_header((100,)) + bytes(range(100)))
    path = tmp_path / "corrupt.gz"
    path.write_bytes(good[:12] + bytes(b ^ 0x5A for b in good[12:-8]) + good[-8:])
    _refused(lambda: read_idx(path), "cannot read IDX file")


@pytest.mark.parametrize("label", [2**31 - 1, 100_000, -1])
def test_idx_labels_must_be_class_indices(tmp_path, label):
    folder = tmp_path / "mnist"
    write_mnist(folder, compress=False)
    labels = (np.arange(60) % 10).astype(">i4")
    labels[7] = label
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    _refused(lambda: load_dataset("mnist", data_dir=tmp_path), f"found {label}", peak_mb=64)
