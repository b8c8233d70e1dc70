"""``torch_loss(loss("cross_entropy"))`` is ``nn.CrossEntropyLoss``: every argument, every shape.

The reference is torch's own module; the only difference allowed is rounding
(the order of the sums), hence the named tolerances per dtype. PyTorch's own
test samples, every dtype and extreme logits: ``tests/test_torch_exact.py``.
Other losses: gradients against the
symbolic ``γ`` (tests/test_harness_losses.py) and here through the same
reductions, weights and ignored targets by finite differences.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from symloss.catalog import loss
from symloss.harness.losses import torch_loss

#: |ours − torch| allowed, relative, per dtype: sums in another order.
TOLERANCE = {torch.float32: 2e-6, torch.float64: 1e-12}

CLASSES = 5


def _inputs(shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).mul(2).to(dtype)


def _class_targets(shape, seed=1, ignored=True):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, CLASSES, shape, generator=generator)
    if ignored:
        targets.view(-1)[::3] = -100  # every third sample ignored
    return targets


def _probability_targets(shape, dtype, seed=2):
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=generator, dtype=torch.float64),
                         dim=1).to(dtype)


SHAPES = [(7, CLASSES), (3, CLASSES, 4), (2, CLASSES, 3, 2)]
CASES = list(itertools.product(
    [torch.float32, torch.float64], ["mean", "sum", "none"], [None, "weight"],
    [0.0, 0.2], SHAPES))


@pytest.mark.parametrize(("dtype", "reduction", "weighted", "smoothing", "shape"), CASES)
def test_cross_entropy_equals_torch_with_class_targets(dtype, reduction, weighted, smoothing,
                                                       shape):
    weight = (torch.linspace(0.5, 2.0, CLASSES, dtype=dtype) if weighted else None)
    options = {"reduction": reduction, "weight": weight, "label_smoothing": smoothing,
               "ignore_index": -100}
    logits = _inputs(shape, dtype).requires_grad_()
    targets = _class_targets((shape[0], *shape[2:]))
    ours = torch_loss(loss("cross_entropy"), **options)(logits, targets)
    reference = nn.CrossEntropyLoss(**options)(logits, targets)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    (ours_grad,) = torch.autograd.grad(ours.sum(), logits)
    (reference_grad,) = torch.autograd.grad(reference.sum(), logits)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=10 * TOLERANCE[dtype],
                               atol=10 * TOLERANCE[dtype])


@pytest.mark.parametrize(("dtype", "reduction", "weighted", "smoothing", "shape"), CASES)
def test_cross_entropy_equals_torch_with_probability_targets(dtype, reduction, weighted,
                                                             smoothing, shape):
    weight = (torch.linspace(0.5, 2.0, CLASSES, dtype=dtype) if weighted else None)
    options = {"reduction": reduction, "weight": weight, "label_smoothing": smoothing}
    logits = _inputs(shape, dtype)
    targets = _probability_targets(shape, dtype)
    ours = torch_loss(loss("cross_entropy"), **options)(logits, targets)
    reference = nn.CrossEntropyLoss(**options)(logits, targets)
    torch.testing.assert_close(ours, reference, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_unbatched_input_and_custom_ignore_index(reduction):
    logits = _inputs((CLASSES,), torch.float64)
    for target in (torch.tensor(3), torch.tensor(7)):  # 7 is the ignored index below
        options = {"reduction": reduction, "ignore_index": 7}
        ours = torch_loss(loss("cross_entropy"), **options)(logits, target)
        reference = nn.CrossEntropyLoss(**options)(logits, target)
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_all_targets_ignored_gives_nan_mean_like_torch():
    logits = _inputs((4, CLASSES), torch.float64)
    targets = torch.full((4,), -100)
    ours = torch_loss(loss("cross_entropy"))(logits, targets)
    assert torch.isnan(ours) and torch.isnan(nn.CrossEntropyLoss()(logits, targets))


@pytest.mark.parametrize("name", ["baikal", "mse"])
def test_other_losses_weights_and_ignore_index_by_finite_differences(name):
    """The weighted, masked mean's gradient agrees with central differences in float64."""
    weight = torch.linspace(0.5, 2.0, CLASSES, dtype=torch.float64)
    criterion = torch_loss(loss(name), weight=weight, label_smoothing=0.1)
    logits = _inputs((3, CLASSES, 2), torch.float64).requires_grad_()
    targets = _class_targets((3, 2))
    (grad,) = torch.autograd.grad(criterion(logits, targets), logits)
    step = 1e-6
    numeric = torch.zeros_like(logits)
    with torch.no_grad():
        for index in itertools.product(*(range(s) for s in logits.shape)):
            shifted = logits.detach().clone()
            shifted[index] += step
            up = criterion(shifted, targets)
            shifted[index] -= 2 * step
            numeric[index] = (up - criterion(shifted, targets)) / (2 * step)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)
    ignored = targets == -100
    assert torch.all(grad.movedim(1, -1)[ignored] == 0)  # ignored samples get no gradient


def test_weight_and_target_errors_name_the_problem():
    """Exception types as torch's (tests/test_torch_exact.py); messages name the value."""
    with pytest.raises(IndexError, match="target 5 is out of bounds for 5 classes"):
        torch_loss(loss("mse"))(torch.zeros(2, CLASSES), torch.tensor([0, 5]))
    with pytest.raises(RuntimeError, match=r"weight has shape \(3,\); it needs one entry per "
                       r"class, \(5,\)"):
        torch_loss(loss("mse"), weight=[1.0, 2.0, 3.0])(torch.zeros(2, CLASSES),
                                                       torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="1-D tensor of class weights"):
        torch_loss(loss("mse"), weight=[[1.0]])
    with pytest.raises(RuntimeError, match=r"class-index targets must have shape \(2, 3\)"):
        torch_loss(loss("mse"))(torch.zeros(2, CLASSES, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="loss scale must be one of"):
        torch_loss(loss("mse"), scale="mean")


def test_a_float64_weight_keeps_its_precision():
    """Weights not representable in float32 (0.1, 0.3, ...) are used as given."""
    weight = torch.tensor([0.1, 0.3, 0.7, 1.1, 1.3], dtype=torch.float64)
    logits = _inputs((7, CLASSES), torch.float64)
    targets = _class_targets((7,), ignored=False)
    ours = torch_loss(loss("cross_entropy"), weight=weight)(logits, targets)
    reference = nn.CrossEntropyLoss(weight=weight)(logits, targets)
    torch.testing.assert_close(ours, reference, rtol=1e-14, atol=1e-14)
