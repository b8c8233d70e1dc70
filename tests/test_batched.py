"""Population-batched training (issue 6): the same runs as one by one, isolated candidates.

Reference: :func:`symloss.harness.train.train` on each candidate with the same seed. The
equivalence checks run in float64 so that the only difference left, the order
of floating-point sums in batched matmuls, stays far below the 1e-5 tolerance
after a few hundred SGD steps (in float32 it is amplified by training's chaos
but stays within training noise: ``test_batched_search_matches_unbatched``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import symloss.harness.batched
import symloss.harness.train
from symloss.catalog import loss, taylorglo
from symloss.harness.batched import PopulationLoss, supports, supports_model, train_population
from symloss.harness.batched.optim import _clip, _sgd_step
from symloss.harness.data import load_dataset
from symloss.harness.losses import torch_loss
from symloss.harness.models import build_model
from symloss.harness.train import TrainConfig, train

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def float64(digits):
    """The digits data in float64, with float64 as the default dtype while the test runs."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    fields = {f.name: getattr(digits, f.name) for f in dataclasses.fields(digits)}
    for name in ("x_train", "x_val", "x_test", "mean", "std"):
        fields[name] = fields[name].double()
    yield type(digits)(**fields)
    torch.set_default_dtype(previous)


def one_by_one(losses, data, config, seed, monkeypatch):
    """:func:`symloss.harness.train.train` per loss; the results and each final model's weights."""
    captured = []
    final_metrics = symloss.harness.train._final_metrics

    def capture(model, *args, **kwargs):
        captured.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return final_metrics(model, *args, **kwargs)

    monkeypatch.setattr(symloss.harness.train, "_final_metrics", capture)
    results = [train(item, data, config, seed=seed) for item in losses]
    monkeypatch.setattr(symloss.harness.train, "_final_metrics", final_metrics)
    return results, captured


def batched(losses, data, config, seed, **options):
    parameters = []
    results = train_population(losses, data, config, seed=seed, parameters=parameters, **options)
    return results, parameters


def largest_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max(float((first[n] - second[n]).abs().max()) for n in first)


def mixed_losses() -> list:
    """GLO-style distinct expressions and TaylorGLO members sharing one generated term."""
    rng = np.random.default_rng(0)
    members = [taylorglo(3).bind(rng.normal(scale=0.5, size=8).tolist()) for _ in range(2)]
    return [loss("cross_entropy"), loss("baikal"), taylorglo(3).bind([0, 0, 0, -1, 0, 2, 0, 0]),
            *members]


# equivalence ---------------------------------------------------------------------------------


def test_mlp_population_matches_one_by_one_after_300_steps(float64, monkeypatch):
    config = TrainConfig(model="mlp", steps=300, batch_size=64, lr=0.01, evaluations=3)
    losses = mixed_losses()
    expected, expected_parameters = one_by_one(losses, float64, config, 3, monkeypatch)
    results, parameters = batched(losses, float64, config, 3)
    for mine, theirs, mine_p, theirs_p in zip(results, expected, parameters,
                                              expected_parameters, strict=True):
        assert largest_difference(mine_p, theirs_p) < TOLERANCE
        assert (mine.status, mine.metrics) == (theirs.status, theirs.metrics)
        assert mine.curves["eval_step"] == theirs.curves["eval_step"]
        assert mine.curves["val_accuracy"] == theirs.curves["val_accuracy"]
        assert np.allclose(mine.curves["train_loss"], theirs.curves["train_loss"], rtol=1e-9)


def test_cnn1d_population_matches_one_by_one(float64, monkeypatch):
    config = TrainConfig(model="cnn1d", steps=100, batch_size=64, lr=0.01, weight_decay=1e-3,
                         schedule="step", evaluations=1)
    losses = mixed_losses()[:3]
    expected, expected_parameters = one_by_one(losses, float64, config, 1, monkeypatch)
    results, parameters = batched(losses, float64, config, 1)
    for mine, theirs, mine_p, theirs_p in zip(results, expected, parameters,
                                              expected_parameters, strict=True):
        assert largest_difference(mine_p, theirs_p) < TOLERANCE
        assert mine.metrics == theirs.metrics


@pytest.mark.parametrize(("kernel", "stride", "padding"),
                         [(1, 1, 0), (3, 1, 2), (2, 3, 0), (4, 2, 3), (5, 2, 1)])
def test_kernel_backward_is_autograds(kernel, stride, padding):
    """The written-out forward and backward of stacked convolutions (taps that read only
    padding, strides past the end), linear layers and flattening, against autograd
    through vmap of the same K models, float64."""
    from torch import nn

    from symloss.harness.batched.loop import _stack
    from symloss.harness.batched.network import _KernelNet, _VmapNet

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Unflatten(1, (2, -1)), nn.Conv1d(2, 3, 3, 2, 1), nn.ReLU(),
                            nn.Conv1d(3, 2, kernel, stride, padding), nn.ReLU(), nn.Flatten(),
                            nn.LazyLinear(4)).double() for _ in range(3)]
    x = torch.randn(5, 22, dtype=torch.float64)
    for model in models:
        model(x)  # materialize the lazy layer
    params = _stack(models)
    grad = torch.randn(3, 5, 4, dtype=torch.float64)
    tape: list = []
    logits = _KernelNet(models[0]).forward(params, x, training=True, tape=tape)
    grads = _KernelNet.backward(params, tape, grad)
    vmap_tape: list = []
    expected = _VmapNet(models[0]).forward(params, x, training=True, tape=vmap_tape)
    expected_grads = _VmapNet.backward(params, vmap_tape, grad)
    assert torch.allclose(logits, expected, rtol=1e-12, atol=1e-12)
    assert grads.keys() == expected_grads.keys()
    for name, value in grads.items():
        assert torch.allclose(value, expected_grads[name], rtol=1e-10, atol=1e-12), name


def _image_digits(data):
    """The digits data as 1×8×8 images (a tiny stand-in for MNIST's 1×28×28)."""
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    for name in ("x_train", "x_val", "x_test"):
        fields[name] = fields[name].reshape(-1, 1, 8, 8)
    return type(data)(**fields)


@pytest.mark.parametrize("per_candidate", [False, True])
@pytest.mark.parametrize(("stride", "padding", "pool"), [(1, 2, 2), (2, 1, 3), (1, 0, 2)])
def test_conv2d_kernel_backward_is_autograds(per_candidate, stride, padding, pool):
    """Stacked Conv2d/MaxPool2d/Dropout-free GLO-CNN layers against autograd through vmap,
    float64, with the data shared or per candidate (K seeds)."""
    from torch import nn

    from symloss.harness.batched.loop import _stack
    from symloss.harness.batched.network import _KernelNet, _VmapNet

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Conv2d(2, 3, 3, stride, padding), nn.ReLU(), nn.MaxPool2d(pool),
                            nn.Conv2d(3, 4, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.LazyLinear(6), nn.ReLU(), nn.Linear(6, 5)).double()
              for _ in range(3)]
    x = torch.randn(3, 7, 2, 9, 9, dtype=torch.float64)
    for model in models:
        model(x[0])  # materialize the lazy layer
    data = x if per_candidate else x[0]
    params = _stack(models)
    grad = torch.randn(3, 7, 5, dtype=torch.float64)
    tape: list = []
    logits = _KernelNet(models[0]).forward(params, data, training=True, tape=tape,
                                           per_candidate=per_candidate)
    grads = _KernelNet.backward(params, tape, grad)
    vmap_tape: list = []
    expected = _VmapNet(models[0]).forward(params, data, training=True, tape=vmap_tape,
                                           per_candidate=per_candidate)
    expected_grads = _VmapNet.backward(params, vmap_tape, grad)
    for k, model in enumerate(models):  # and against each model itself
        assert torch.allclose(logits[k], model(x[k] if per_candidate else x[0]), atol=1e-12)
    assert torch.allclose(logits, expected, rtol=1e-12, atol=1e-12)
    assert grads.keys() == expected_grads.keys()
    for name, value in grads.items():
        assert torch.allclose(value, expected_grads[name], rtol=1e-10, atol=1e-12), name


def test_glo_cnn_population_of_losses_matches_one_by_one(float64, monkeypatch):
    """The GLO MNIST CNN's layers (Conv2d, MaxPool2d, Linear; dropout off so that the
    runs are comparable) batched over losses, against training each alone."""
    images = _image_digits(float64)
    config = TrainConfig(model="glo_mnist_cnn", model_options={"hidden": 16, "dropout": 0.0},
                         steps=40, batch_size=32, lr=0.01, momentum=0.9, evaluations=2)
    losses = mixed_losses()[:3]
    expected, expected_parameters = one_by_one(losses, images, config, 2, monkeypatch)
    results, parameters = batched(losses, images, config, 2, backend="kernels")
    for mine, theirs, mine_p, theirs_p in zip(results, expected, parameters,
                                              expected_parameters, strict=True):
        assert largest_difference(mine_p, theirs_p) < TOLERANCE
        assert mine.metrics == theirs.metrics


@pytest.mark.parametrize("model", ["glo_mnist_cnn", "mlp"])
def test_seeds_of_one_loss_train_together_as_one_by_one(float64, monkeypatch, model):
    """K seeds of one loss in one pass: each its own initialization and batches."""
    images = _image_digits(float64) if model == "glo_mnist_cnn" else float64
    options = {"hidden": 16, "dropout": 0.0} if model == "glo_mnist_cnn" else {}
    config = TrainConfig(model=model, model_options=options, steps=30, batch_size=32, lr=0.01,
                         evaluations=1)
    seeds = [0, 1, 5]
    expected, expected_parameters = [], []
    for seed in seeds:
        results, parameters = one_by_one([loss("baikal")], images, config, seed, monkeypatch)
        expected += results
        expected_parameters += parameters
    results, parameters = batched([loss("baikal")] * 3, images, config, seeds)
    assert [r.seed for r in results] == seeds
    for mine, theirs, mine_p, theirs_p in zip(results, expected, parameters,
                                              expected_parameters, strict=True):
        assert largest_difference(mine_p, theirs_p) < TOLERANCE
        assert mine.metrics == theirs.metrics
    assert largest_difference(parameters[0], parameters[1]) > 1e-3  # the seeds differ
    with pytest.raises(ValueError, match="one seed per loss: got 2 seeds for 3 losses"):
        train_population([loss("baikal")] * 3, images, config, seed=[0, 1])


def test_test_curves_and_confidence_match_one_by_one(float64, monkeypatch):
    """GLO Fig. 3 (test accuracy along the run) and Fig. 7 (largest softmax output)."""
    config = TrainConfig(model="mlp", steps=40, batch_size=32, lr=0.01, evaluations=4,
                         curve_split="test", confidence_bins=10)
    losses = [loss("cross_entropy"), loss("baikal")]
    expected, _ = one_by_one(losses, float64, config, 0, monkeypatch)
    results, _ = batched(losses, float64, config, 0)
    for mine, theirs in zip(results, expected, strict=True):
        assert mine.curves["eval_step"] == [10, 20, 30, 40]
        assert mine.curves["test_accuracy"] == theirs.curves["test_accuracy"]
        assert "val_accuracy" not in mine.curves
        assert mine.curves["test_accuracy"][-1] == mine.metrics["test_accuracy"]
        assert mine.metrics["test_confidence"] == theirs.metrics["test_confidence"]
        assert sum(mine.metrics["test_confidence"]) == len(float64.x_test)
        assert sum(mine.metrics["test_confidence"][:1]) == 0  # the largest of 10 is ≥ 1/10


def test_vmap_backend_matches_the_kernels(float64):
    config = TrainConfig(model="cnn1d", steps=30, batch_size=64, lr=0.01, evaluations=1)
    losses = mixed_losses()[:3]
    _, kernels = batched(losses, float64, config, 0, backend="kernels")
    _, vmapped = batched(losses, float64, config, 0, backend="vmap")
    for first, second in zip(kernels, vmapped, strict=True):
        assert largest_difference(first, second) < 1e-10


def test_float32_population_is_close_to_one_by_one(digits, monkeypatch):
    config = TrainConfig(model="mlp", steps=100, batch_size=64, lr=0.01, evaluations=1)
    losses = mixed_losses()[:3]
    expected, expected_parameters = one_by_one(losses, digits, config, 0, monkeypatch)
    results, parameters = batched(losses, digits, config, 0)
    for mine, theirs, mine_p, theirs_p in zip(results, expected, parameters,
                                              expected_parameters, strict=True):
        assert largest_difference(mine_p, theirs_p) < 1e-3
        assert abs(mine.metrics["val_accuracy"] - theirs.metrics["val_accuracy"]) <= 2 / 180


def test_chunks_give_the_same_results(float64):
    config = TrainConfig(model="mlp", steps=20, batch_size=64, evaluations=1)
    losses = mixed_losses()
    _, whole = batched(losses, float64, config, 0)
    _, chunked = batched(losses, float64, config, 0, chunk=2)
    for first, second in zip(whole, chunked, strict=True):
        assert largest_difference(first, second) < 1e-12


# isolation -----------------------------------------------------------------------------------


def test_a_diverging_candidate_does_not_touch_the_others(float64, monkeypatch):
    """``-y e^{1/h}`` overflows at step 1 (after one update), ``y log(h − 2)`` is NaN at
    step 0; their neighbours train as if they were not there."""
    config = TrainConfig(model="mlp", steps=60, batch_size=64, lr=0.01, evaluations=1)
    healthy = [loss("cross_entropy"), loss("baikal")]
    diverging = [loss("-y*exp(1/h)"), loss("y*log(h - 2)")]
    population = [healthy[0], diverging[0], healthy[1], diverging[1]]
    results, parameters = batched(population, float64, config, 0)
    alone, alone_parameters = one_by_one(population, float64, config, 0, monkeypatch)
    for mine, theirs, mine_p, theirs_p in zip(results, alone, parameters, alone_parameters,
                                              strict=True):
        assert mine.status == theirs.status
        assert mine.metrics == theirs.metrics
        assert mine.error == theirs.error
        if mine.status == "ok":
            assert largest_difference(mine_p, theirs_p) < TOLERANCE
    assert [r.status for r in results] == ["ok", "diverged", "ok", "diverged"]
    assert [r.metrics["steps"] for r in results] == [60, 1, 60, 0]
    assert results[1].metrics["val_accuracy"] is not None  # the last finite parameters


def test_a_loss_torch_cannot_run_fails_alone(float64):
    """``y·(1/0)`` (a GP tree can hold one) has no torch code: that candidate comes back
    ``failed``, the rest of its chunk still trains batched, unchanged."""
    import sympy as sp

    from symloss.loss import Loss
    from symloss.symbols import y

    config = TrainConfig(model="mlp", steps=10, batch_size=64, evaluations=1)
    broken = Loss("broken", y * sp.zoo)
    results, parameters = batched([loss("cross_entropy"), broken, loss("mse")], float64,
                                  config, 0)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert "not a finite real number" in results[1].error
    _, alone = batched([loss("cross_entropy"), loss("mse")], float64, config, 0)
    for first, second in zip(parameters, alone, strict=True):
        assert largest_difference(first, second) == 0


#: Two identical candidates without dropout, float32: the fused SGD kernel's vector
#: tails straddle the stacked candidates, so their updates may round differently.
ROUNDING = 1e-6


def test_dropout_masks_are_independent_per_candidate(digits):
    config = TrainConfig(model="mlp", model_options={"dropout": 0.5}, steps=5, batch_size=64,
                         evaluations=1)
    same = [loss("cross_entropy")] * 2
    _, parameters = batched(same, digits, config, 0)
    assert largest_difference(parameters[0], parameters[1]) > 1000 * ROUNDING
    _, without = batched(same, digits, dataclasses.replace(config, model_options={}), 0)
    assert largest_difference(without[0], without[1]) <= ROUNDING


def test_gradient_clipping_is_per_candidate():
    generator = torch.Generator().manual_seed(0)
    stacked = [torch.randn(3, 4, 5, generator=generator), torch.randn(3, 4, generator=generator)]
    for tensor, scale in zip(stacked, (1.0, 1.0), strict=True):
        tensor.grad = torch.randn(tensor.shape, generator=generator) * scale
    stacked[0].grad[1] *= 1e-3  # candidate 1 is under the norm, the others over
    expected = []
    for k in range(3):
        copies = [t.grad[k].clone().requires_grad_() for t in stacked]
        for copy in copies:
            copy.grad = copy.detach().clone()
        torch.nn.utils.clip_grad_norm_(copies, 1.0)
        expected.append([c.grad for c in copies])
    grads = [tensor.grad for tensor in stacked]
    _clip(grads, 1.0)
    for k in range(3):
        for grad, reference in zip(grads, expected[k], strict=True):
            assert torch.allclose(grad[k], reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.9, 5e-4), (0.0, 0.0), (0.9, 0.0)])
def test_sgd_step_is_torch_sgd(fused, momentum, weight_decay, monkeypatch):
    """The fused kernel and the ``_foreach`` fallback both give :class:`torch.optim.SGD`."""
    available = hasattr(torch, "_fused_sgd_")  # off by default (optim.FUSED_SGD), still tested
    monkeypatch.setattr(symloss.harness.batched.optim, "FUSED_SGD", fused and available)
    generator = torch.Generator().manual_seed(0)
    stacked = [torch.randn(3, 4, 5, generator=generator, dtype=torch.float64),
               torch.randn(3, 4, generator=generator, dtype=torch.float64)]
    reference = [tensor.clone().requires_grad_() for tensor in stacked]
    optimizer = torch.optim.SGD(reference, lr=0.05, momentum=momentum,
                                weight_decay=weight_decay)
    buffers = [None, None]
    for _ in range(3):
        grads = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in stacked]
        for tensor, grad in zip(reference, grads, strict=True):
            tensor.grad = grad.clone()
        optimizer.step()
        _sgd_step(stacked, [g.clone() for g in grads], buffers, 0.05, momentum, weight_decay)
    for mine, theirs in zip(stacked, reference, strict=True):
        assert torch.allclose(mine, theirs.detach(), rtol=1e-14, atol=1e-15)


# losses and errors ---------------------------------------------------------------------------


def test_population_loss_equals_each_symbolic_loss():
    generator = torch.Generator().manual_seed(0)
    losses = mixed_losses()
    logits = torch.randn(len(losses), 7, 10, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 10, (7,), generator=generator)
    values = PopulationLoss(losses, label_smoothing=0.1, dtype=torch.float64)(logits, target)
    for k, item in enumerate(losses):
        reference = torch_loss(item, label_smoothing=0.1)(logits[k], target)
        assert torch.isclose(values[k], reference, rtol=1e-12)


def autograd_value_and_grad(criterion, logits, target, active):
    """The reference: autograd through the generated losses, ``where(keep, loss, 0)``."""
    leaf = logits.detach().clone().requires_grad_()
    values = criterion(leaf, target)
    keep = active & torch.isfinite(values.detach())
    torch.where(keep, values, torch.zeros_like(values)).sum().backward()
    return values.detach(), leaf.grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_value_and_grad_equals_autograd_through_the_losses(smoothing):
    """The derived ``∂ℓ/∂h`` and the softmax Jacobian, against autograd: shared TaylorGLO
    members, distinct expressions with Max/Min (Heaviside derivatives) and Abs (sign), an
    inactive candidate and one whose loss is NaN (its gradient row must be zero)."""
    generator = torch.Generator().manual_seed(1)
    losses = [*mixed_losses(), loss("Max(y, h)*log(h) - Min(h, 0.3)"), loss("Abs(h - y)"),
              loss("y*log(h - 2)")]
    criterion = PopulationLoss(losses, label_smoothing=smoothing, dtype=torch.float64)
    logits = torch.randn(len(losses), 9, 10, generator=generator, dtype=torch.float64) * 3
    target = torch.randint(0, 10, (9,), generator=generator)
    active = torch.ones(len(losses), dtype=torch.bool)
    active[1] = False
    values, grad = criterion.value_and_grad(logits, target, active)
    expected_values, expected_grad = autograd_value_and_grad(criterion, logits, target, active)
    assert torch.allclose(values, expected_values, rtol=1e-12, equal_nan=True)
    assert torch.allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
    assert not torch.isfinite(values[-1]) and grad[-1].abs().max() == 0
    assert grad[1].abs().max() == 0 and grad[0].abs().max() > 0
    assert all(group.gradient is not None for group in criterion.groups)


def test_a_derivative_torch_cannot_print_falls_back_to_autograd():
    """``d sign(h − ½)/dh = 2 δ(h − ½)``: no torch translation, so autograd differentiates."""
    import sympy as sp

    from symloss.loss import Loss
    from symloss.symbols import h, y

    stepped = Loss("stepped", y * sp.sign(h - sp.Rational(1, 2)) - y * sp.log(h))
    criterion = PopulationLoss([stepped, loss("mse")], dtype=torch.float64)
    assert criterion.groups[0].gradient is None and criterion.groups[1].gradient is not None
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 6, 10, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 10, (6,), generator=generator)
    active = torch.ones(2, dtype=torch.bool)
    values, grad = criterion.value_and_grad(logits, target, active)
    expected_values, expected_grad = autograd_value_and_grad(criterion, logits, target, active)
    assert torch.allclose(values, expected_values, rtol=1e-12)
    assert torch.allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_a_family_must_be_bound():
    with pytest.raises(ValueError, match="family"):
        PopulationLoss([taylorglo(3)])


def test_bad_chunk_is_refused(digits):
    with pytest.raises(ValueError, match="chunk must be >= 1, got 0"):
        train_population([loss("mse")], digits, TrainConfig(steps=1), chunk=0)


def test_batchnorm_models_are_not_batched():
    assert not supports(build_model("preresnet20", input_shape=(3, 32, 32), classes=10))
    assert supports(build_model("mlp", input_shape=(40,), classes=10))
    assert (supports_model("cnn1d"), supports_model("wrn")) == (True, False)
    assert train_population([], "digits", TrainConfig(steps=1)) == []


def test_a_members_weights_do_not_depend_on_its_chunk_or_place():
    """Bit for bit, on one thread: a member trains the same whole, in chunks, reversed
    (issue 24: a search's numbers must not follow how its candidates were chunked; the
    fused SGD kernel and a layout that followed the population's losses both broke it)."""
    losses = mixed_losses()
    config = TrainConfig(steps=12, batch_size=32, evaluations=1, threads=1)
    data = load_dataset("digits")

    def trained(order, chunk=None):
        order, weights = list(order), []
        train_population([losses[i] for i in order], data, config, chunk=chunk,
                         parameters=weights)
        return {index: weights[position] for position, index in enumerate(order)}

    whole = trained(range(len(losses)))
    for other in (trained(range(len(losses)), chunk=2), trained(reversed(range(len(losses))))):
        for index, named in whole.items():
            assert all(torch.equal(named[name], other[index][name]) for name in named), index
