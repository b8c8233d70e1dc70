"""Any symloss :class:`~symloss.loss.Loss` as a torch loss module.

``L = (1/n) Σ_k ℓ(y_k, h_k)`` with ``h = softmax(logits)``, averaged over the
batch (SPEC §1). The per-class term comes from :func:`harness.codegen.generate`,
keyed by the *family* expression: a bound member's parameter values live in a
buffer, so :meth:`SymbolicLoss.set_values` swaps a TaylorGLO candidate without
regenerating code or recompiling a ``torch.compile``-d model: under
``torch.compile`` the generated term reads the values from that buffer (a
graph input), in eager mode from the same values as Python floats (scalar
operands are cheaper than 0-d tensors: ``benchmarks/bench_torch_loss.py``).

``h`` is clamped to ``[eps, 1]`` before ``ℓ`` sees it, so ``log h`` and ``1/h``
stay finite. The clamp passes the gradient straight through (its backward is
the identity): a sample whose target probability has fallen below ``eps`` is
still pushed by ``γ(eps)·∂h/∂f`` — bounded, with the right sign — instead of
silently dropping out of training as it would under ``torch.clamp``. The
default ``eps`` is the dtype's machine epsilon (1.19e-7 in float32,
2.2e-16 in float64), so ``1/h ≤ 1/eps`` never overflows.

>>> import torch
>>> from symloss.catalog import loss
>>> criterion = torch_loss(loss("cross_entropy"))
>>> logits = torch.tensor([[2.0, 0.0, -1.0]])
>>> value = criterion(logits, torch.tensor([0]))
>>> expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0])) / 3
>>> bool(torch.isclose(value, expected))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.codegen import GeneratedTerm, generate
from symloss.loss import Loss

REDUCTIONS = ("mean", "sum", "none")


class _ClampPassGradient(torch.autograd.Function):
    """``h.clamp_min(eps)`` forward, identity backward."""

    @staticmethod
    def forward(h: torch.Tensor, eps: float) -> torch.Tensor:
        return h.clamp_min(eps)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def clamp_probabilities(h: torch.Tensor, eps: float) -> torch.Tensor:
    """``max(h, eps)`` whose gradient is that of ``h`` (see the module docstring).

    >>> h = torch.tensor([1e-9, 0.5], dtype=torch.float64, requires_grad=True)
    >>> clamped = clamp_probabilities(h, 1e-7)
    >>> clamped.tolist(), torch.autograd.grad(clamped.sum(), h)[0].tolist()
    ([1e-07, 0.5], [1.0, 1.0])
    """
    return _ClampPassGradient.apply(h, eps)


class SymbolicLoss(nn.Module):
    """``forward(logits, target)`` → ``L``; build it with :func:`torch_loss`.

    ``target`` is either integer class indices of shape ``(batch,)`` or
    probabilities of shape ``(batch, classes)``.
    """

    def __init__(self, loss: Loss, *, reduction: str = "mean", label_smoothing: float = 0.0,
                 eps: float | None = None) -> None:
        super().__init__()
        if loss.is_family:
            raise ValueError(f"loss {loss.name!r} is a family; bind its "
                             f"{len(loss.parameters)} parameters first")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if eps is not None and not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {eps!r}")
        self.loss = loss
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)
        self.eps = eps
        self.term: GeneratedTerm = generate(loss.expr, tuple(loss.parameters))
        values = loss.values if loss.values is not None else ()
        self.register_buffer("loss_parameters", torch.tensor(values, dtype=torch.float64))
        self._values = tuple(float(v) for v in values)

    def set_values(self, values: Sequence[float]) -> None:
        """Swap in another member of the same family, in place (no code generation)."""
        values = torch.as_tensor(values, dtype=self.loss_parameters.dtype)
        if values.shape != self.loss_parameters.shape:
            raise ValueError(f"loss {self.loss.name!r} takes {self.loss_parameters.numel()} "
                             f"parameter values, got {values.numel()}")
        with torch.no_grad():
            self.loss_parameters.copy_(values)
        self._values = tuple(values.tolist())
        self.loss = self.loss.bind(self._values)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[-1]
        probabilities = torch.softmax(logits, dim=-1)
        eps = self.eps if self.eps is not None else torch.finfo(logits.dtype).eps
        h = clamp_probabilities(probabilities, eps)
        if target.dtype.is_floating_point:
            if target.shape != logits.shape:
                raise ValueError(f"probability targets must have the logits' shape "
                                 f"{tuple(logits.shape)}, got {tuple(target.shape)}")
            labels = target.to(logits.dtype)
        else:
            labels = torch.zeros_like(logits).scatter_(-1, target.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        parameters = self.loss_parameters if torch.compiler.is_compiling() else self._values
        terms = self.term.function(labels, h, parameters)
        if terms.shape != h.shape:
            terms = terms.expand_as(h)
        if self.reduction == "mean":
            return terms.mean()
        per_sample = terms.mean(dim=-1)
        return per_sample.sum() if self.reduction == "sum" else per_sample

    def extra_repr(self) -> str:
        return f"{self.loss.name}: {self.loss.expression}, reduction={self.reduction!r}"


def torch_loss(loss: Loss, *, reduction: str = "mean", label_smoothing: float = 0.0,
               eps: float | None = None) -> SymbolicLoss:
    """The torch module computing ``L = (1/n) Σ_k ℓ(y_k, h_k)``, averaged over the batch.

    ``reduction``: ``"mean"`` (over the batch), ``"sum"`` (over the batch) or
    ``"none"`` (one value per sample). ``label_smoothing`` α replaces ``y`` by
    ``y(1−α) + α/n`` (SPEC §2.7). ``eps``: the lower clamp of ``h``, default the
    logits dtype's machine epsilon.

    >>> import torch
    >>> from symloss.catalog import taylorglo
    >>> criterion = torch_loss(taylorglo(3).bind([0, 0, 0, -1, 0, 2, 0, 0]))
    >>> criterion(torch.zeros(2, 4), torch.tensor([1, 3])).item()  # mean of h² − 2hy at h = 1/4
    -0.0625
    """
    return SymbolicLoss(loss, reduction=reduction, label_smoothing=label_smoothing, eps=eps)
