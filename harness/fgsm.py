"""Accuracy under the Fast Gradient Sign Method (Goodfellow et al. 2015; ICLR §6).

``x_adv = clip(x + ε·sign(∇_x L(model(x), y)))``, with ``ε`` in the dataset's raw
input units (before normalization: pixels in [0, 1]) and the clip to the
dataset's valid range when it has one. The attack's ``L`` is the loss the
model was trained with (ICLR §6: the input gradients of "a backward pass").

>>> import torch
>>> model = torch.nn.Linear(2, 2)
>>> criterion = torch.nn.CrossEntropyLoss()
>>> inputs, labels = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
>>> sorted(fgsm_accuracy(model, criterion, inputs, labels, [0.0, 0.1]))
[0.0, 0.1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def fgsm_accuracy(model: nn.Module, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  inputs: torch.Tensor, labels: torch.Tensor, epsilons: Sequence[float], *,
                  bounds: tuple[float, float] | None = None, batch_size: int = 1000,
                  transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  ) -> dict[float, float]:
    """Accuracy on ``(inputs, labels)`` under an FGSM attack of each strength in ``epsilons``.

    ``transform`` (e.g. the evaluation crop) is applied before the attack.
    """
    epsilons = [float(e) for e in epsilons]
    if any(e < 0 for e in epsilons):
        raise ValueError(f"FGSM epsilons must be >= 0, got {epsilons!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = dict.fromkeys(epsilons, 0)
    try:
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size].to(device)
            target = labels[start:start + batch_size].to(device)
            if transform is not None:
                batch = transform(batch)
            batch = batch.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(criterion(model(batch), target), batch)
            direction = gradient.sign()
            with torch.no_grad():
                for epsilon in epsilons:
                    attacked = batch + epsilon * direction
                    if bounds is not None:
                        attacked = attacked.clamp(*bounds)
                    predictions = model(attacked).argmax(dim=-1)
                    correct[epsilon] += int((predictions == target).sum())
    finally:
        model.train(was_training)
    return {epsilon: count / max(len(inputs), 1) for epsilon, count in correct.items()}
