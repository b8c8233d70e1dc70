"""Trainer, attraction log and FGSM on tiny runs (digits: bundled, no download)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy as sp
import torch

from symloss.catalog import loss
from symloss.harness.attraction import AttractionLog
from symloss.harness.data import Dataset, load_dataset
from symloss.harness.fgsm import fgsm_accuracy
from symloss.harness.train import TrainConfig, evaluate, learning_rate_factor, train
from symloss.loss import Loss
from symloss.symbols import h

SMALL = TrainConfig(model="mlp", model_options={"hidden": (32,)}, steps=40, lr=0.05,
                    batch_size=50, evaluations=4)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_same_seed_same_run_and_global_rng_untouched(digits):
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    first = train(loss("baikal"), digits, SMALL, seed=3)
    second = train(loss("baikal"), digits, SMALL, seed=3)
    other = train(loss("baikal"), digits, SMALL, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    assert first.status == "ok" and first.metrics == second.metrics
    assert first.curves == second.curves
    assert first.curves != other.curves
    assert first.curves["eval_step"] == [10, 20, 30, 40]
    assert first.metrics["test_accuracy"] > 0.5  # 40 steps of a 1-hidden-layer MLP


def test_result_record_is_json_ready(digits):
    result = train(loss("cross_entropy"), digits, SMALL, seed=0)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["status"] == "ok" and record["loss"] == "cross_entropy"
    assert record["config"]["steps"] == 40 and record["model"] == "mlp"
    assert set(record["metrics"]) >= {"steps", "val_accuracy", "test_accuracy"}


def test_epochs_and_paper_defaults_resolve():
    config = TrainConfig(epochs=2).resolved("mnist1d")
    assert (config.model, config.steps, config.epochs, config.lr) == ("cnn1d", None, 2, 0.05)
    glo = TrainConfig().resolved("mnist")
    assert (glo.model, glo.steps, glo.lr, glo.batch_size, glo.momentum) == (
        "glo_mnist_cnn", 20000, 0.01, 100, 0.0)
    assert TrainConfig(steps=5).resolved("cifar10").augment is True
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear").resolved("digits")


def test_epochs_count_steps(digits):
    result = train(loss("mse"), digits, TrainConfig(model="mlp", epochs=1, batch_size=500),
                   seed=0)
    assert result.metrics["steps"] == math.ceil(1257 / 500)


def test_schedules():
    cosine = TrainConfig(schedule="cosine")
    assert learning_rate_factor(cosine, 0, 100, 10) == 1.0
    assert learning_rate_factor(cosine, 50, 100, 10) == pytest.approx(0.5)
    every = TrainConfig(schedule="step", step_epochs=2, gamma=0.5)
    assert [learning_rate_factor(every, s, 100, 10) for s in (19, 20, 40)] == [1.0, 0.5, 0.25]
    assert learning_rate_factor(TrainConfig(schedule="constant"), 99, 100, 10) == 1.0


def test_nan_loss_ends_as_diverged_with_what_it_had(digits):
    bad = Loss("bad", sp.log(h - 2))  # log of a negative number: NaN from the first step
    result = train(bad, digits, SMALL, seed=0)
    assert result.status == "diverged" and result.metrics["steps"] == 0
    assert "non-finite training loss" in result.error
    assert result.metrics["test_accuracy"] is not None  # parameters are the last finite ones


class LateNaN(torch.nn.Module):
    """Cross-entropy for ``good`` steps, then NaN."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good, self.calls = good, 0

    def forward(self, logits, target):
        self.calls += 1
        value = torch.nn.functional.cross_entropy(logits, target)
        return value if self.calls <= self.good else value * float("nan")


def test_divergence_mid_run_keeps_curves(digits):
    result = train(LateNaN(25), digits, SMALL, seed=0)
    assert result.status == "diverged" and result.metrics["steps"] == 25
    assert result.curves["eval_step"] == [10, 20]
    assert result.metrics["val_accuracy"] > 0.3


class Broken(torch.nn.Module):
    def forward(self, logits, target):
        raise RuntimeError("shape mismatch in a candidate")


def test_exception_in_the_loop_is_failed(digits):
    result = train(Broken(), digits, SMALL, seed=0)
    assert result.status == "failed" and "shape mismatch" in result.error
    assert result.metrics["test_accuracy"] is None


def test_attraction_log_cross_entropy_always_pulls(digits, tmp_path):
    config = TrainConfig(model="mlp", model_options={"hidden": (32,)}, epochs=2,
                         batch_size=200, lr=0.05, attraction_samples=30)
    result = train(loss("cross_entropy"), digits, config, seed=0)
    log = result.attraction
    assert isinstance(log, AttractionLog)
    assert sorted(set(log.epoch.tolist())) == [0, 1, 2] and len(log.epoch) == 90
    assert np.all((log.target_probability > 0) & (log.target_probability < 1))
    np.testing.assert_allclose(log.nontarget_probability, (1 - log.target_probability) / 9)
    assert np.all(log.attraction > 0)  # ICLR Fig. 1a: cross-entropy pulls every sample
    assert log.save(tmp_path / "a.csv").read_text().startswith("epoch,sample,")
    assert log.plot(tmp_path / "a.png").stat().st_size > 1000


def test_attraction_of_baikal_pushes_confident_samples():
    """Baikal repels zero training error (ICLR Theorem 1): A < 0 for small ε."""
    from symloss.harness.attraction import attraction_function

    values = attraction_function(loss("baikal"), 10, 0.5)(np.array([1e-3, 1e-2]))
    assert np.all(values < 0)


def test_fgsm_accuracy_clean_equals_test_and_attack_hurts(digits):
    config = TrainConfig(model="mlp", model_options={"hidden": (32,)}, steps=60, lr=0.05,
                         batch_size=50, fgsm=(0.0, 0.1, 0.3), fgsm_validation=(0.1,))
    result = train(loss("cross_entropy"), digits, config, seed=0)
    attacked = result.metrics["fgsm_accuracy"]
    assert attacked["0.0"] == result.metrics["test_accuracy"]
    assert attacked["0.3"] < attacked["0.1"] < attacked["0.0"]
    assert set(result.metrics["val_fgsm_accuracy"]) == {"0.1"}


def test_fgsm_clips_to_bounds_and_rejects_negative_strength():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    inputs, labels = torch.full((3, 4), 0.5), torch.tensor([0, 1, 0])
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    fgsm_accuracy(model, torch.nn.CrossEntropyLoss(), inputs, labels, [5.0], bounds=(0.0, 1.0))
    assert float(seen[-1].min()) >= 0.0 and float(seen[-1].max()) <= 1.0
    with pytest.raises(ValueError, match="epsilons must be >= 0"):
        fgsm_accuracy(model, torch.nn.CrossEntropyLoss(), inputs, labels, [-0.1])


def test_augmented_cifar_path_trains_on_crops():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 32, 32, generator=generator)
    labels = torch.arange(40) % 10
    dataset = Dataset("cifar10", images[:30], labels[:30], images[30:35], labels[30:35],
                      images[35:], labels[35:], 10, torch.full((3, 1, 1), 0.5),
                      torch.full((3, 1, 1), 0.25), (0.0, 1.0))
    config = TrainConfig(model="glo_cifar_cnn", steps=2, batch_size=10, lr=0.01, fgsm=(0.01,))
    result = train(loss("baikal"), dataset, config, seed=0)
    assert result.status == "ok" and result.config["augment"] is True
    assert "0.01" in result.metrics["fgsm_accuracy"]


def test_evaluate_counts_correct_predictions():
    model = torch.nn.Identity()
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert evaluate(model, logits, torch.tensor([0, 1, 1]), batch_size=2) == pytest.approx(2 / 3)
