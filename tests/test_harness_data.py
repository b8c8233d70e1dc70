"""Dataset loaders, on small files written here in the real formats (no download, ever)."""

from __future__ import annotations

import gzip
import pickle
import random
import struct

import numpy as np
import pytest
import torch

from symloss.harness import data as data_module
from symloss.harness.data import (
    DataError,
    augment_glo_cifar,
    center_crop,
    load_dataset,
    read_cifar_batch,
    read_idx,
)


def write_idx(path, array: np.ndarray, *, compress: bool = False) -> None:
    """LeCun's IDX format: 0, 0, type code, ndim, big-endian dims, big-endian data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D, np.dtype(">i4"): 0x0C}
    array = np.asarray(array)
    big_endian = array.astype(array.dtype.newbyteorder(">")) if array.itemsize > 1 else array
    header = bytes([0, 0, codes[big_endian.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + big_endian.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist(folder, *, train: int = 60, test: int = 20, compress: bool = True,
                seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)


def write_cifar(folder, *, per_batch: int = 12, seed: int = 0) -> None:
    """The CIFAR-10 python batches: pickled dicts with b'data' (N, 3072) uint8 and b'labels'."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"batch_label": name.encode(),
                 b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in np.arange(per_batch) % 10],
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)


def test_digits_splits_are_fixed_and_disjoint():
    first, second = load_dataset("digits"), load_dataset("digits")
    assert (first.x_train.shape, first.x_val.shape, first.x_test.shape) == (
        (1257, 64), (180, 64), (360, 64))
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_val, second.y_val)
    rows = {tuple(r) for r in first.x_train.tolist()}
    assert not any(tuple(r) in rows for r in first.x_test.tolist()[:50])
    assert first.bounds == (0.0, 1.0) and float(first.x_train.max()) <= 1.0
    assert torch.isclose(first.mean, first.x_train.mean(), atol=1e-5).all()
    other = load_dataset("digits", split_seed=1)
    assert not torch.equal(first.y_train, other.y_train)


def test_mnist1d_is_generated_once_then_cached(tmp_path, monkeypatch):
    numpy_state = np.random.get_state()[1].copy()
    python_state = random.getstate()
    dataset = load_dataset("mnist1d", cache_dir=tmp_path)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # global RNGs left alone
    assert random.getstate() == python_state
    assert (dataset.x_train.shape, dataset.x_val.shape, dataset.x_test.shape) == (
        (3500, 40), (500, 40), (1000, 40))
    assert dataset.classes == 10 and dataset.bounds is None
    assert list(tmp_path.glob("*.npz"))

    def no_generation():
        raise AssertionError("regenerated despite the cache")

    monkeypatch.setattr(data_module, "_generate_mnist1d", no_generation)
    cached = load_dataset("mnist1d", cache_dir=tmp_path)
    assert torch.equal(cached.x_test, dataset.x_test)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files_load(tmp_path, compress):
    write_mnist(tmp_path / "mnist", compress=compress)
    dataset = load_dataset("mnist", data_dir=tmp_path)
    assert dataset.x_train.shape == (54, 1, 28, 28) and dataset.x_val.shape == (6, 1, 28, 28)
    assert dataset.x_test.shape == (20, 1, 28, 28) and dataset.y_test.tolist()[:3] == [0, 1, 2]
    assert float(dataset.x_train.min()) >= 0.0 and float(dataset.x_train.max()) <= 1.0
    assert dataset.mean.shape == (1,)


def test_fashion_mnist_reads_files_placed_directly_in_data_dir(tmp_path):
    write_mnist(tmp_path, compress=False, seed=3)
    dataset = load_dataset("fashion_mnist", data_dir=tmp_path)
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte")
    assert torch.allclose(dataset.x_test[:, 0], torch.from_numpy(raw / 255.0).float())


def test_read_idx_other_types_roundtrip(tmp_path):
    values = np.arange(12, dtype=">f4").reshape(3, 4) / 7
    write_idx(tmp_path / "floats.idx", values)
    assert np.array_equal(read_idx(tmp_path / "floats.idx"), values)


def test_missing_idx_file_names_the_expected_path(tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in message and "IDX" in message
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("fashion_mnist")


def test_malformed_idx_files_are_refused(tmp_path):
    write_mnist(tmp_path / "mnist", compress=False)
    images = tmp_path / "mnist" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"malformed IDX file.*shape \(60, 28, 28\)"):
        load_dataset("mnist", data_dir=tmp_path)
    images.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="is not an IDX file"):
        load_dataset("mnist", data_dir=tmp_path)
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "broken.gz")


def test_mismatched_image_and_label_counts(tmp_path):
    write_mnist(tmp_path / "mnist", compress=False)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="test files disagree"):
        load_dataset("mnist", data_dir=tmp_path)


def test_cifar10_python_batches_load(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    dataset = load_dataset("cifar10", data_dir=tmp_path)
    assert dataset.x_train.shape == (54, 3, 32, 32) and dataset.x_val.shape == (6, 3, 32, 32)
    assert dataset.x_test.shape == (12, 3, 32, 32)
    assert dataset.mean.shape == (3, 1, 1) and dataset.std.shape == (3, 1, 1)
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    assert torch.allclose(dataset.x_test, torch.from_numpy(images / 255.0).float())
    assert labels.tolist() == dataset.y_test.tolist()


def test_cifar10_missing_and_malformed_batches(tmp_path):
    with pytest.raises(DataError, match=r"expected .*cifar-10-batches-py.*data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path)
    write_cifar(tmp_path / "cifar-10-batches-py")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    with batch.open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(DataError, match=r"data_batch_3 is not a CIFAR-10 python batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    with batch.open("wb") as handle:
        pickle.dump({b"data": random.Random}, handle)  # a global that is not an array
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'svhn'; available: mnist1d"):
        load_dataset("svhn")


def test_glo_cifar_augmentation_is_seeded_and_bounded():
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = augment_glo_cifar(images, generator=torch.Generator().manual_seed(1))
    second = augment_glo_cifar(images, generator=torch.Generator().manual_seed(1))
    other = augment_glo_cifar(images, generator=torch.Generator().manual_seed(2))
    assert first.shape == (6, 3, 24, 24)
    assert torch.equal(first, second) and not torch.equal(first, other)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert center_crop(images).shape == (6, 3, 24, 24)
    assert torch.equal(center_crop(images), images[..., 4:28, 4:28])
