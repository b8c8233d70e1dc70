"""The population's loss: K candidates' losses on their own logits, and its gradient.

Each candidate's value is :class:`symloss.harness.losses.SymbolicLoss`'s, computed by the
same code (:func:`symloss.harness.losses.per_sample_losses` on ``L = log_softmax``); the
gradient with respect to the logits comes from the derived ``g = ∂ℓ/∂L``
(:func:`symloss.harness.codegen.generate_with_derivative`, sympy's derivative in log
space printed next to ``ℓ``) and the softmax Jacobian ``∂ℓ/∂f_j = g_j − h_j Σ_k g_k``,
without autograd. ``g = h·∂ℓ/∂h`` stays finite where ``h`` underflows, so a
confidently wrong sample keeps its gradient (cross-entropy: ``g_T = −1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from symloss.harness.codegen import GeneratedTerm, generate, generate_with_derivative
from symloss.harness.losses import log_probabilities, per_class_terms, per_sample_losses
from symloss.loss import Loss
from symloss.scale import check_scale, class_factor


@dataclass
class _LossGroup:
    """Candidates sharing one generated term (one family, or one GP expression)."""

    generated: GeneratedTerm
    gradient: GeneratedTerm | None  # (ℓ, ∂ℓ/∂L) per function, or None: autograd differentiates
    index: torch.Tensor  # positions in the population
    values: tuple[torch.Tensor, ...]  # per-parameter [Kg, 1, 1]

    def losses(self, log_h: torch.Tensor, target: torch.Tensor, smoothing: float,
               factor: float) -> torch.Tensor:
        """Per-candidate loss ``[Kg]``: the batch mean of ``factor·Σ_k ℓ``."""
        per_sample = per_sample_losses(self.generated, log_h, target, self.values, smoothing)
        return per_sample.mean(dim=-1) * factor

    def value_and_derivative(self, log_h: torch.Tensor, target: torch.Tensor,
                             smoothing: float, factor: float
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate loss ``[Kg]`` and its derivative with respect to ``L`` (``[Kg, B, n]``)."""
        if self.gradient is not None:
            terms, derivative = per_class_terms(self.gradient, log_h, target, self.values,
                                                smoothing)
            return (terms.sum(dim=-1).mean(dim=-1) * factor,
                    derivative * (factor / log_h.shape[-2]))
        with torch.enable_grad():
            leaf = log_h.detach().requires_grad_()
            losses = self.losses(leaf, target, smoothing, factor)
            derivative, = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), derivative


class PopulationLoss:
    """``forward(logits [K, B, n], target [B] or [K, B]) → per-candidate losses [K]``.

    Each candidate's value is :class:`symloss.harness.losses.SymbolicLoss` (reduction
    ``mean``, the same ``scale``: ``"sum"`` or ``"paper"``, :mod:`symloss.scale`) of
    its own logits: TaylorGLO members share one generated function
    with λ as per-candidate tensors; GP trees each get theirs (cached by
    :func:`symloss.harness.codegen.generate`). :meth:`value_and_grad` gives the values and
    their gradient with respect to the logits from the derived ``∂ℓ/∂L``
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
            generated = generate(expr, parameters)  # a loss torch cannot run: raise
            try:
                gradient = generate_with_derivative(expr, parameters)
            except (NotImplementedError, ValueError):  # a derivative torch cannot print
                gradient = None  # autograd differentiates the loss instead
            table = torch.tensor([list(losses[p].values or ()) for p in positions],
                                 dtype=dtype, device=device).reshape(len(positions), -1)
            values = tuple(table[:, j].reshape(-1, 1, 1) for j in range(table.shape[1]))
            self.groups.append(_LossGroup(generated, gradient,
                                          torch.tensor(positions, device=device), values))
        self.single = len(self.groups) == 1

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_h = log_probabilities(logits, -1)
        factor = class_factor(self.scale, logits.shape[-1])
        if self.single:
            return self.groups[0].losses(log_h, target, self.label_smoothing, factor)
        losses = logits.new_empty(self.count)
        for group in self.groups:
            part = group.losses(log_h.index_select(0, group.index), _rows(target, group),
                                self.label_smoothing, factor)
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
            log_h = log_probabilities(logits, -1)
            factor = class_factor(self.scale, logits.shape[-1])
            smoothing = self.label_smoothing
            # one layout, contiguous, whatever the population holds: the class sums below
            # add in memory order, so a member's gradient must not depend on its co-members
            if self.single:
                losses, derivative = self.groups[0].value_and_derivative(log_h, target,
                                                                         smoothing, factor)
                derivative = derivative.contiguous()
            else:
                losses = logits.new_empty(self.count)
                derivative = log_h.new_empty(log_h.shape)
                for group in self.groups:
                    part, slope = group.value_and_derivative(
                        log_h.index_select(0, group.index), _rows(target, group), smoothing,
                        factor)
                    losses.index_copy_(0, group.index, part)
                    derivative.index_copy_(0, group.index, slope)
            if active is not None or not math.isfinite(float(losses.sum())):
                keep = torch.isfinite(losses) if active is None else active & torch.isfinite(
                    losses)
                derivative = torch.where(keep.view(-1, 1, 1), derivative, 0.0)
            # the softmax Jacobian, ∂L_k/∂f_j = δ_kj − h_j, in the logits' memory layout
            # (autograd's), which the network's backward kernels are tuned to
            grad = torch.empty_like(logits)
            torch.sub(derivative, torch.exp(log_h) * derivative.sum(dim=-1, keepdim=True),
                      out=grad)
            return losses, grad


def _rows(target: torch.Tensor, group: _LossGroup) -> torch.Tensor:
    """The group's targets: all of them when shared ``[B]``, its rows of ``[K, B]``."""
    return target.index_select(0, group.index) if target.dim() == 2 else target
