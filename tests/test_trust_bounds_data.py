"""Issue 20, item 6: user errors outside the run store are one line and exit 2.

Data a model cannot take is refused before any training, naming the file or dataset and
what the model reads (2×2 IDX images, test images of 27×29 against training 28×28, a
zero dimension, ``--dataset digits --model glo_mnist_cnn``: torch RuntimeErrors and a
53-line traceback before); NaN or infinite pixels in a float IDX file are refused naming
the file (the run was blamed on the loss as "diverged"); empty files no longer reach
numpy ("zero-size array to reduction operation"); output folders that cannot be made
(below a file, a name over 255 bytes) are one line for ``train --out`` and ``paper --out``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

from symloss.harness.models import check_model_input, smallest_image
from symloss.harness.search.evaluate import Budget, check_budget
from tests.test_harness_cli import run
from tests.test_harness_data import write_idx, write_mnist


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE", str(tmp_path_factory.getbasetemp() / "symloss-cache"))


def _mnist(folder, train: np.ndarray, test: np.ndarray):
    """An MNIST folder holding ``train`` and ``test`` images (labels 0..9 repeating)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, images in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte",
                  (np.arange(len(images)) % 10).astype(np.uint8))


def _train_error(capsys, data_dir, *extra: str) -> str:
    started = time.monotonic()
    code = run(["train", "--loss", "cross_entropy", "--dataset", "mnist", "--data-dir",
                str(data_dir), "--steps", "1", "--no-progress", *extra])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and captured.out == "" and len(lines) == 1, captured
    assert "Traceback" not in captured.err
    assert time.monotonic() - started < 20
    return lines[0]


def _images(count: int, rows: int, cols: int, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, rows, cols)).astype(dtype)


def test_images_too_small_for_the_model_are_refused_naming_the_file_and_the_need(capsys,
                                                                                  tmp_path):
    _mnist(tmp_path / "mnist", _images(30, 2, 2), _images(10, 2, 2))
    message = _train_error(capsys, tmp_path)
    assert "model glo_mnist_cnn cannot take the inputs of mnist (" in message
    assert "train-images-idx3-ubyte), of shape (1, 2, 2)" in message
    assert message.endswith("it reads images (channels, height, width) of at least 4×4")


def test_test_images_of_another_size_than_training_are_refused_naming_both(capsys, tmp_path):
    _mnist(tmp_path / "mnist", _images(30, 28, 28), _images(10, 27, 29))
    message = _train_error(capsys, tmp_path)
    assert "mnist images differ in size" in message
    assert "t10k-images-idx3-ubyte holds 27×29 images" in message
    assert "train-images-idx3-ubyte 28×28" in message


@pytest.mark.parametrize(("shape", "expected"), [((30, 0, 28), "holds images of 0×28 pixels"),
                                                 ((0, 28, 28), "holds no images")])
def test_a_zero_dimension_is_refused_naming_the_file(capsys, tmp_path, shape, expected):
    _mnist(tmp_path / "mnist", np.zeros(shape, np.uint8), _images(10, 28, 28))
    message = _train_error(capsys, tmp_path)
    assert "train-images-idx3-ubyte " + expected in message
    assert "zero-size array" not in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_in_a_float_idx_file_are_refused_naming_it(capsys, tmp_path, bad):
    train = _images(30, 28, 28, np.dtype(">f4"))
    train[3, 5, 7] = bad
    _mnist(tmp_path / "mnist", train, _images(10, 28, 28))
    message = _train_error(capsys, tmp_path)
    assert "train-images-idx3-ubyte holds pixels that are not finite numbers (NaN or ±inf): " \
           "1 of them, the first in image 3" in message


def test_digits_on_the_mnist_cnn_is_one_line(capsys):
    started = time.monotonic()
    assert run(["train", "--loss", "cross_entropy", "--dataset", "digits", "--model",
                "glo_mnist_cnn", "--steps", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("symloss: error: model glo_mnist_cnn cannot take the inputs of "
                            "digits, of shape (64,): it reads images (channels, height, width) "
                            "of at least 4×4\n")
    assert time.monotonic() - started < 20


def test_a_search_budget_is_checked_the_same_way_before_a_run_exists():
    with pytest.raises(ValueError, match=r"^model glo_mnist_cnn cannot take the inputs of "
                                         r"digits, of shape \(64,\)"):
        check_budget(Budget(dataset="digits", model="glo_mnist_cnn"))
    check_budget(Budget(dataset="digits"))  # the dataset's own model takes it


def test_the_model_check_leaves_torch_random_state_alone_and_knows_every_model():
    import torch

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_model_input("glo_cifar_cnn", (3, 32, 32), 10)
    assert torch.equal(torch.rand(3), expected)
    # All-CNN-C: two stride-2 3×3 convolutions, then a 3×3 one without padding.
    assert smallest_image("allcnn_c", 3, 10, width=8) == 9
    with pytest.raises(ValueError, match="have shape \\(1, 0, 28\\), with no values"):
        check_model_input("mlp", (1, 0, 28), 10)


def test_good_mnist_files_still_train(capsys, tmp_path):
    write_mnist(tmp_path / "mnist", train=40, test=20)
    assert run(["train", "--loss", "cross_entropy", "--dataset", "mnist", "--data-dir",
                str(tmp_path), "--steps", "2", "--no-progress"]) == 0


# --- output folders ----------------------------------------------------------------------------

def _bad_folders(tmp_path):
    blocker = tmp_path / "report.md"
    blocker.write_text("the user's notes")
    return [(blocker / "run", "cannot be made: "), (blocker, "is a file, not a folder"),
            (tmp_path / ("r" * 300) / "run", "bytes, longer than")]


def test_train_out_that_cannot_be_a_folder_is_one_line_before_training(capsys, tmp_path):
    for folder, expected in _bad_folders(tmp_path):
        started = time.monotonic()
        assert run(["train", "--loss", "cross_entropy", "--steps", "2", "--out",
                    str(folder)]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"symloss: error: --out {folder}")
        assert expected in captured.err and captured.err.count("\n") == 1
        assert time.monotonic() - started < 5  # refused before the dataset or a training
    assert (tmp_path / "report.md").read_text() == "the user's notes"


def test_paper_out_that_cannot_be_a_folder_is_one_line_before_any_work(capsys, tmp_path):
    from symloss.reproduce.paper import register

    parser = argparse.ArgumentParser(prog="symloss")
    register(parser.add_subparsers(dest="command", required=True))
    for folder, expected in _bad_folders(tmp_path):
        args = parser.parse_args(["paper", "--out", str(folder)])
        started = time.monotonic()
        with pytest.raises(ValueError, match=expected) as refused:
            args.handler(args)
        assert str(refused.value).startswith(f"--out {folder}") and "\n" not in \
            str(refused.value)
        assert time.monotonic() - started < 2  # not after minutes of proofs and training
