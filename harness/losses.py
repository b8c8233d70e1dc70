"""Any symloss :class:`~symloss.loss.Loss` as a torch loss module, a drop-in for
:class:`torch.nn.CrossEntropyLoss`.

A sample's loss is ``Σ_k w_k ℓ(y_k, h_k)`` with ``h = softmax(logits)`` and class
weights ``w`` (default 1), reduced over the batch as ``nn.CrossEntropyLoss``
reduces it — so ``torch_loss(loss("cross_entropy"))`` *is* ``nn.CrossEntropyLoss``
for every reduction, ``weight``, ``ignore_index``, ``label_smoothing``, input of
shape ``(N, C)``, ``(N, C, d1, …)`` or ``(C,)``, integer or probability targets
(``tests/test_harness_losses.py``). ``scale="paper"`` multiplies by the papers'
``1/n`` (:mod:`symloss.scale`: why the trainer's default is the sum). The
per-class term comes from :func:`symloss.harness.codegen.generate`, keyed by the
*family* expression: a bound member's parameter values live in a buffer, so
:meth:`SymbolicLoss.set_values` swaps a TaylorGLO candidate without regenerating
code or recompiling a ``torch.compile``-d model: under ``torch.compile`` the
generated term reads the values from that buffer (a graph input), in eager
mode from the same values as Python floats (scalar operands are cheaper than
0-d tensors: ``benchmarks/bench_torch_loss.py``).

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
>>> logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
>>> bool(torch.isclose(criterion(logits, target), torch.nn.CrossEntropyLoss()(logits, target)))
True
>>> paper = torch_loss(loss("cross_entropy"), scale="paper")  # the papers' (1/n) Σ_k
>>> bool(torch.isclose(paper(logits, target) * 3, criterion(logits, target)))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symloss.harness.codegen import GeneratedTerm, generate
from symloss.loss import Loss
from symloss.scale import LOSS_SCALES, check_scale

REDUCTIONS = ("mean", "sum", "none")

__all__ = ["LOSS_SCALES", "REDUCTIONS", "SymbolicLoss", "clamp_probabilities", "torch_loss"]


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
    """``forward(input, target)`` → the loss; build it with :func:`torch_loss`.

    ``input``: logits ``(N, C)``, ``(N, C, d1, …)`` or ``(C,)``; ``target``: class
    indices ``(N)``, ``(N, d1, …)`` or ``()``, or probabilities of the input's shape
    (the conventions of :class:`torch.nn.CrossEntropyLoss`).
    """

    def __init__(self, loss: Loss, *, reduction: str = "mean",
                 weight: torch.Tensor | Sequence[float] | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, scale: str = "sum",
                 eps: float | None = None) -> None:
        super().__init__()
        if loss.is_family:
            raise ValueError(f"loss {loss.name!r} is a family; bind its "
                             f"{len(loss.parameters)} parameters first")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if eps is not None and not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {eps!r}")
        self.loss = loss
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.scale = check_scale(scale)
        self.eps = eps
        if weight is not None:  # a tensor keeps its dtype (as nn.CrossEntropyLoss's does)
            weight = (weight if isinstance(weight, torch.Tensor)
                      else torch.as_tensor(weight, dtype=torch.get_default_dtype()))
            if weight.dim() != 1 or not bool(torch.isfinite(weight).all()):
                raise ValueError(f"weight must be a 1-D tensor of finite class weights, "
                                 f"got shape {tuple(weight.shape)}")
        self.register_buffer("weight", weight)
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

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        unbatched = input.dim() == 1
        logits = input.unsqueeze(0) if unbatched else input
        if unbatched:
            target = target.unsqueeze(0)
        classes = logits.shape[1]
        logits = logits.movedim(1, -1)  # classes last: (N, d1, …, C)
        labels, valid = self._labels(logits, target, classes)
        eps = self.eps if self.eps is not None else torch.finfo(logits.dtype).eps
        h = clamp_probabilities(torch.softmax(logits, dim=-1), eps)
        parameters = self.loss_parameters if torch.compiler.is_compiling() else self._values
        terms = self.term.function(labels, h, parameters)
        terms = terms.expand_as(h) if isinstance(terms, torch.Tensor) else h.new_full(
            h.shape, float(terms))
        if self.weight is not None:
            if self.weight.shape != (classes,):
                raise ValueError(f"weight has {self.weight.numel()} entries for {classes} "
                                 "classes")
            terms = terms * self.weight.to(terms.dtype)
        per_sample = terms.sum(dim=-1)
        if self.scale == "paper":
            per_sample = per_sample / classes
        if valid is not None:
            per_sample = torch.where(valid, per_sample, 0.0)
        if self.reduction == "none":
            return per_sample[0] if unbatched else per_sample
        if self.reduction == "sum":
            return per_sample.sum()
        if valid is None:  # probability targets: the mean over samples
            return per_sample.mean()
        if self.weight is None:
            return per_sample.sum() / valid.sum()
        chosen = self.weight.to(per_sample.dtype)[torch.where(valid, target, 0)]
        return per_sample.sum() / torch.where(valid, chosen, 0.0).sum()

    def _labels(self, logits: torch.Tensor, target: torch.Tensor,
                classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (smoothed) label values ``(N, d1, …, C)`` and, for class indices, which
        samples count (``target != ignore_index``)."""
        if target.dtype.is_floating_point:
            labels = target.movedim(1, -1).to(logits.dtype) if target.dim() > 1 else target
            if labels.shape != logits.shape:
                raise ValueError(f"probability targets must have the input's shape "
                                 f"{tuple(logits.movedim(-1, 1).shape)}, "
                                 f"got {tuple(target.shape)}")
            valid = None
        else:
            if target.shape != logits.shape[:-1]:
                raise ValueError(f"class-index targets must have shape "
                                 f"{tuple(logits.shape[:-1])}, got {tuple(target.shape)}")
            valid = target != self.ignore_index
            index = torch.where(valid, target, 0)
            if not torch.compiler.is_compiling() and bool(
                    ((index < 0) | (index >= classes)).any()):
                bad = target[valid & ((target < 0) | (target >= classes))][0].item()
                raise ValueError(f"target {bad} is out of bounds for {classes} classes")
            labels = torch.zeros_like(logits).scatter_(-1, index.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        return labels, valid

    def extra_repr(self) -> str:
        return (f"{self.loss.name}: {self.loss.expression}, reduction={self.reduction!r}, "
                f"scale={self.scale!r}")


def torch_loss(loss: Loss, *, reduction: str = "mean",
               weight: torch.Tensor | Sequence[float] | None = None, ignore_index: int = -100,
               label_smoothing: float = 0.0, scale: str = "sum",
               eps: float | None = None) -> SymbolicLoss:
    """The torch loss module of ``loss``: per sample ``Σ_k w_k ℓ(y_k, h_k)``.

    The arguments are :class:`torch.nn.CrossEntropyLoss`'s: ``reduction``
    (``"mean"``, ``"sum"``, ``"none"``; with class weights the mean divides by
    the summed weights of the targets), ``weight`` (per class), ``ignore_index``
    (class-index targets equal to it count for nothing), ``label_smoothing`` α
    (``y → y(1−α) + α/n``, docs/conventions.md §2.7). ``scale``: ``"sum"`` (the
    default, as above) or ``"paper"`` (times ``1/n``, the papers' equations;
    :mod:`symloss.scale`). ``eps``: the lower clamp of ``h``, default the logits
    dtype's machine epsilon.

    >>> import torch
    >>> from symloss.catalog import taylorglo
    >>> criterion = torch_loss(taylorglo(3).bind([0, 0, 0, -1, 0, 2, 0, 0]))
    >>> criterion(torch.zeros(2, 4), torch.tensor([1, 3])).item()  # Σ_k h² − 2hy at h = 1/4
    -0.25
    """
    return SymbolicLoss(loss, reduction=reduction, weight=weight, ignore_index=ignore_index,
                        label_smoothing=label_smoothing, scale=scale, eps=eps)
