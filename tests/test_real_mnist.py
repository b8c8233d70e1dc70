"""Real MNIST, where a copy lies beside the checkout (``../shared/data/mnist``) or at
``$SYMLOSS_MNIST_DIR``; skipped with the reason elsewhere (nothing is downloaded).

The GLO paper's CNN and settings (§IV-A-1: SGD, lr 0.01, batch 100) on the trainer's
sum scale: 300 steps of cross-entropy already pass 0.9 test accuracy, the same 300
steps on the papers' 1/n scale do not come close (docs/conventions.md §1).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from symloss.catalog import loss
from symloss.harness.data import load_dataset
from symloss.harness.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SYMLOSS_MNIST_DIR", ROOT.parent / "shared" / "data"))

pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").exists(),
    reason=f"real MNIST not found at {DATA_DIR}/mnist (set SYMLOSS_MNIST_DIR to run this)")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", data_dir=DATA_DIR)


def test_the_real_files_load_with_the_standard_splits(mnist):
    assert (len(mnist.x_train), len(mnist.x_val), len(mnist.x_test)) == (55_000, 5_000, 10_000)
    assert mnist.input_shape == (1, 28, 28) and mnist.classes == 10
    assert float(mnist.x_train.min()) == 0.0 and float(mnist.x_train.max()) == 1.0


@pytest.mark.slow
def test_300_steps_of_cross_entropy_pass_90_percent_and_the_paper_scale_lags(mnist):
    config = TrainConfig(model="glo_mnist_cnn", steps=300, evaluations=1, threads=2)
    summed = train(loss("cross_entropy"), mnist, config, seed=0)
    assert summed.status == "ok"
    assert summed.metrics["test_accuracy"] >= 0.9
    paper = train(loss("cross_entropy"), mnist,
                  TrainConfig(**{**config.__dict__, "loss_scale": "paper"}), seed=0)
    assert paper.metrics["test_accuracy"] < summed.metrics["test_accuracy"] - 0.1
