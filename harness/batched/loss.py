"""The population's loss: K candidates' losses on their own logits, and its gradient.

Each candidate's value is :class:`symloss.harness.losses.SymbolicLoss` of its own
logits; the gradient with respect to the logits comes from the derived
``∂ℓ/∂h`` (:func:`symloss.harness.codegen.generate_with_derivative`, sympy's derivative
printed next to ``ℓ``) and the softmax Jacobian, without autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from symloss.harness.codegen import generate, generate_with_derivative
from symloss.loss import Loss
from symloss.scale import check_scale, class_factor


@dataclass
class _LossGroup:
    """Candidates sharing one generated term (one family, or one GP expression)."""

    function: object
    gradient: object  # (ℓ, ∂ℓ/∂h) in one function, or None: autograd differentiates
    index: torch.Tensor  # positions in the population
    values: tuple[torch.Tensor, ...]  # per-parameter [Kg, 1, 1]

    def value_and_derivative(self, labels: torch.Tensor, h: torch.Tensor,
                             factor: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate loss ``[Kg]`` (the batch mean of ``factor·Σ_k ℓ``) and its
        derivative with respect to ``h``."""
        if self.gradient is not None:
            terms, derivative = self.gradient(labels, h, self.values)
            return (_expand(terms, h).sum(dim=2).mean(dim=1) * factor,
                    _expand(derivative, h) * (factor / h.shape[1]))
        with torch.enable_grad():
            leaf = h.detach().requires_grad_()
            losses = _group_losses(self, labels, leaf, factor)
            derivative, = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), derivative


def _expand(terms, h: torch.Tensor) -> torch.Tensor:
    if not isinstance(terms, torch.Tensor):  # a constant term or derivative
        return h.new_full(h.shape, float(terms))
    return terms if terms.shape == h.shape else terms.expand_as(h)


class PopulationLoss:
    """``forward(logits [K, B, n], target [B] or [K, B]) → per-candidate losses [K]``.

    Each candidate's value is :class:`symloss.harness.losses.SymbolicLoss` (reduction
    ``mean``, the same ``scale``: ``"sum"`` or ``"paper"``, :mod:`symloss.scale`) of
    its own logits: TaylorGLO members share one generated function
    with λ as per-candidate tensors; GP trees each get theirs (cached by
    :func:`symloss.harness.codegen.generate`). :meth:`value_and_grad` gives the values and
    their gradient with respect to the logits from the derived ``∂ℓ/∂h``
    (:func:`symloss.harness.codegen.generate_with_derivative`) and the softmax Jacobian,
    without autograd.
    """

    def __init__(self, losses: Sequence[Loss], *, label_smoothing: float = 0.0,
                 scale: str = "sum", dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.scale = check_scale(scale)
        for loss in losses:
            if loss.is_family:
                raise ValueError(f"loss {loss.name!r} is a family; bind its "
                                 f"{len(loss.parameters)} parameters first")
        self.label_smoothing = float(label_smoothing)
        self.count = len(losses)
        grouped: dict[tuple, list[int]] = {}
        for position, loss in enumerate(losses):
            grouped.setdefault((loss.expr, tuple(loss.parameters)), []).append(position)
        self.groups = []
        for (expr, parameters), positions in grouped.items():
            function = generate(expr, parameters).function  # a loss torch cannot run: raise
            try:
                gradient = generate_with_derivative(expr, parameters).function
            except (NotImplementedError, ValueError):  # a derivative torch cannot print
                gradient = None  # autograd differentiates the loss instead
            table = torch.tensor([list(losses[p].values or ()) for p in positions],
                                 dtype=dtype, device=device).reshape(len(positions), -1)
            values = tuple(table[:, j].reshape(-1, 1, 1) for j in range(table.shape[1]))
            self.groups.append(_LossGroup(function, gradient,
                                          torch.tensor(positions, device=device), values))
        self.single = len(self.groups) == 1

    def _prepare(self, logits: torch.Tensor, target: torch.Tensor, differentiable: bool = True):
        """Probabilities, the clamped ``h`` the loss sees, and the (smoothed) one-hot labels."""
        classes = logits.shape[-1]
        # softmax over the classes taken as dim -2 of the transposed logits: torch's kernel
        # along the last dim is slow for few classes (measured ~10x for [20, 100, 10])
        probabilities = torch.softmax(logits.transpose(-1, -2).contiguous(),
                                      dim=-2).transpose(-1, -2)
        eps = torch.finfo(logits.dtype).eps
        h = (_ClampPassGradient.apply(probabilities, eps) if differentiable
             else probabilities.clamp_min(eps))
        labels = torch.zeros(target.shape + logits.shape[-1:], dtype=logits.dtype,
                             device=logits.device)  # target [B], or [K, B] per candidate
        labels.scatter_(-1, target.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        return probabilities, h, labels

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, h, labels = self._prepare(logits, target)
        factor = class_factor(self.scale, logits.shape[-1])
        if self.single:
            return _group_losses(self.groups[0], labels, h, factor)
        losses = logits.new_empty(self.count)
        for group in self.groups:
            part = _group_losses(group, _rows(labels, group), h.index_select(0, group.index),
                                 factor)
            losses = losses.index_put((group.index,), part)
        return losses

    def value_and_grad(self, logits: torch.Tensor, target: torch.Tensor,
                       active: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate losses ``[K]`` and ``∂(Σ_k loss_k)/∂logits`` ``[K, B, n]``.

        The gradient rows of candidates that are not ``active`` (a boolean ``[K]``;
        ``None``: all are) or whose loss is not finite are zero (what autograd gives
        for ``where(active, loss, 0)``), so they cannot touch the parameters.

        >>> from symloss.catalog import loss
        >>> criterion = PopulationLoss([loss("cross_entropy"), loss("mse")], dtype=torch.float64)
        >>> logits = torch.randn(2, 5, 10, dtype=torch.float64, requires_grad=True)
        >>> target = torch.randint(0, 10, (5,))
        >>> values, grad = criterion.value_and_grad(logits.detach(), target)
        >>> torch.allclose(grad, torch.autograd.grad(criterion(logits, target).sum(), logits)[0])
        True
        """
        with torch.no_grad():
            probabilities, h, labels = self._prepare(logits, target, differentiable=False)
            factor = class_factor(self.scale, logits.shape[-1])
            if self.single:
                losses, derivative = self.groups[0].value_and_derivative(labels, h, factor)
            else:
                losses = logits.new_empty(self.count)
                derivative = torch.empty_like(h)
                for group in self.groups:
                    part, slope = group.value_and_derivative(
                        _rows(labels, group), h.index_select(0, group.index), factor)
                    losses.index_copy_(0, group.index, part)
                    derivative.index_copy_(0, group.index, slope)
            if active is not None or not math.isfinite(float(losses.sum())):
                keep = torch.isfinite(losses) if active is None else active & torch.isfinite(
                    losses)
                derivative = torch.where(keep.view(-1, 1, 1), derivative, 0.0)
            # the clamp passes the gradient through; then the softmax Jacobian
            inner = (derivative * probabilities).sum(dim=-1, keepdim=True)
            return losses, probabilities * (derivative - inner)


class _ClampPassGradient(torch.autograd.Function):
    """:func:`symloss.harness.losses.clamp_probabilities` (``max(h, eps)``, identity backward).

    The same operation, written with ``forward(ctx, ...)``: that one's ``setup_context``
    form makes every call bind default arguments through ``inspect.signature``
    (measured ~0.2 ms a step, more than the operation).
    """

    @staticmethod
    def forward(ctx, h, eps):
        return h.clamp_min(eps)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _rows(labels: torch.Tensor, group: _LossGroup) -> torch.Tensor:
    """The group's labels: all of them when shared ``[B, n]``, its rows of ``[K, B, n]``."""
    return labels.index_select(0, group.index) if labels.dim() == 3 else labels


def _group_losses(group: _LossGroup, labels: torch.Tensor, h: torch.Tensor,
                  factor: float) -> torch.Tensor:
    return _expand(group.function(labels, h, group.values), h).sum(dim=2).mean(dim=1) * factor
