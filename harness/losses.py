"""Any symloss :class:`~symloss.loss.Loss` as a torch loss module, a drop-in for
:class:`torch.nn.CrossEntropyLoss`.

A sample's loss is ``Σ_k w_k ℓ(y_k, h_k)`` with ``h = softmax(logits)`` and class
weights ``w`` (default 1), reduced over the batch as ``nn.CrossEntropyLoss``
reduces it — so ``torch_loss("cross_entropy")`` *is* ``nn.CrossEntropyLoss``:
every reduction, ``weight``, ``ignore_index``, ``label_smoothing``, input of
shape ``(N, C)``, ``(N, C, d1, …)`` or ``(C,)``, integer or probability targets,
checked on PyTorch's own test samples (``tests/test_torch_exact.py``).
``scale="paper"`` multiplies by the papers' ``1/n`` (:mod:`symloss.scale`: why the
trainer's default is the sum).

**Exact in log space.** The per-class term is generated from the formula in
``L = log h = log_softmax(logits)`` (:mod:`symloss.harness.codegen`), never from a
rounded ``h``: cross-entropy is ``−L_T``, Baikal ``−L + y·exp(−L)``, and a
confidently wrong sample keeps its loss and its gradient at any logit gap
(float32, gap 1e4: loss 1e4 and target-logit gradient −1, as torch's). Nothing
is clamped. Where a formula needs ``log(1 − h)`` (or ``1 − h`` under a root or a
denominator), :func:`log_complement` gives it exactly, also as ``h → 1``. What
stays non-finite is what the formula's value is (Baikal's ``1/h`` beyond
``exp(88)`` in float32); a training run reports it as diverged.

**Torch's precision policy.** float16 and bfloat16 inputs are computed in float32
and the loss returned in the input's dtype; under :func:`torch.autocast` the loss
is float32 (float64 stays float64), as ``nn.CrossEntropyLoss``'s.

**Errors like torch's**: ``IndexError`` for a class index out of range,
``RuntimeError`` for shapes, weights, ``label_smoothing`` outside ``[0, 1]`` and
``ignore_index`` with probability targets, ``ValueError`` for a batch-size
mismatch and a bad ``reduction`` — each message naming the bad value.

**Transforms.** Pickle, ``torch.save``, ``copy.deepcopy`` (the generated code is
regenerated from the formula), ``state_dict``/``load_state_dict`` (a family's
parameter values, the same meaning in eager and compiled modes),
``torch.func.grad``/``vmap``, ``torch.compile(fullgraph=True)``. Not
``torch.jit.script``: the term is a Python function generated at run time, which
TorchScript would need rewritten with static types; ``torch.compile`` is the
supported compiler.

One code path: :class:`PerClassLoss` and the module-level functions above it
import only torch; :mod:`symloss.harness.search.export` copies their source into
an exported loss, and the population trainer (:mod:`symloss.harness.batched.loss`)
calls :func:`per_sample_losses` and :func:`per_class_terms`.

One module, over the ~400-line aim: :mod:`symloss.harness.search.export` copies the
torch-only core of this very file (between its "torch-only core" comments) into every
exported loss; split, an export would have to stitch its code from several files.

>>> import torch
>>> criterion = torch_loss("cross_entropy")
>>> logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
>>> bool(torch.isclose(criterion(logits, target), torch.nn.CrossEntropyLoss()(logits, target)))
True
>>> paper = torch_loss("cross_entropy", scale="paper")  # the papers' (1/n) Σ_k
>>> bool(torch.isclose(paper(logits, target) * 3, criterion(logits, target)))
True
>>> criterion  # doctest: +NORMALIZE_WHITESPACE
SymbolicLoss(cross_entropy: ℓ(y, h) = -y*log(h), reduction='mean', ignore_index=-100,
             label_smoothing=0.0, scale='sum')
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from symloss.harness.codegen import GeneratedTerm, generate
from symloss.loss import Loss
from symloss.scale import LOSS_SCALES, check_scale

REDUCTIONS = ("mean", "sum", "none")

__all__ = ["LOSS_SCALES", "REDUCTIONS", "PerClassLoss", "SymbolicLoss", "exact_top",
           "log_complement", "log_probabilities", "per_class_terms", "per_sample_losses",
           "torch_loss"]

# ---- The torch-only core: symloss export copies everything from here to the end marker. ----


def log_complement(log_h):
    """``M_k = log(1 − h_k)`` for ``h = softmax``, from ``log h`` (classes last), exact for
    every ``h``.

    ``1 − h_k = Σ_{j≠k} h_j``. For a class that is not the largest, ``h_k ≤ 1/2`` and
    ``log1p(−h_k)`` is exact; for the largest, ``1 − h_k`` is the log-sum-exp of the
    others' ``log h_j`` — never ``1 − h_k`` rounded to 0 (gap 40 in float32:
    ``1 − h = 4e-18``, where ``log1p(−h)`` gives ``−inf``).

    >>> log_h = torch.log_softmax(torch.tensor([40.0, 0.0], dtype=torch.float64), dim=-1)
    >>> log_complement(log_h).tolist()  # log(1 − h_1) = log h_2 = −40; log(1 − h_2) ≈ −e^−40
    [-40.0, -4.248354255291589e-18]
    >>> torch.log1p(-torch.exp(log_h)).tolist()  # the naive form: h_1 rounds to 1
    [-inf, -4.248354255291589e-18]
    """
    is_top = _is_top(log_h)
    rest_of_top = torch.logsumexp(log_h.masked_fill(is_top, -torch.inf), dim=-1, keepdim=True)
    below_top = torch.log1p(-torch.exp(log_h.masked_fill(is_top, -1.0)))  # a safe value there
    return torch.where(is_top, rest_of_top, below_top)


def exact_top(log_h):
    """``log h`` with the largest class's entry recomputed to relative precision, as
    ``log1p(−Σ_{j≠top} h_j)``: ``log_softmax`` gives it to absolute precision only (gap 40
    in float32: 0 exactly, for −4e-18), which a formula in ``log(−log h)``, ``1/log h`` or
    ``√(−log h)`` needs (``GeneratedTerm.exact_top``). The same function of the logits, so
    its gradient is too.

    >>> log_h = torch.log_softmax(torch.tensor([40.0, 0.0]), dim=-1)
    >>> log_h.tolist(), exact_top(log_h).tolist()
    ([0.0, -40.0], [-4.24835413113866e-18, -40.0])
    """
    is_top = _is_top(log_h)
    rest_of_top = torch.logsumexp(log_h.masked_fill(is_top, -torch.inf), dim=-1, keepdim=True)
    return torch.where(is_top, torch.log1p(-torch.exp(rest_of_top)), log_h)


def _is_top(log_h):
    classes = torch.arange(log_h.shape[-1], device=log_h.device)
    return classes == log_h.argmax(dim=-1, keepdim=True)


def log_probabilities(logits, dim):
    """``log_softmax(logits, dim)``, the class dimension moved last.

    Classes along the last dimension: the softmax runs along the second-to-last of the
    transposed logits when that needs no copy (the population trainer's logits come
    so), or on CPU with few classes and many rows: torch's kernel along a short
    contiguous last dimension is slow (measured, forward and backward, batch 4096 of
    10 classes: 1.83 ms, 0.35 ms this way).

    >>> log_probabilities(torch.zeros(2, 4, 3), 1).shape  # (N, C, d) → (N, d, C)
    torch.Size([2, 3, 4])
    """
    classes = logits.shape[dim]
    if dim not in (-1, logits.dim() - 1):
        return torch.log_softmax(logits, dim=dim).movedim(dim, -1)
    few = logits.device.type == "cpu" and classes <= 16 and logits.numel() >= 256 * classes
    if logits.dim() > 1 and (logits.stride(-1) != 1 or few):
        return torch.log_softmax(logits.transpose(-1, -2).contiguous(), dim=-2).transpose(-1, -2)
    return torch.log_softmax(logits, dim=dim)


def per_sample_losses(generated, log_h, target, parameters, label_smoothing=0.0,
                      weight=None):
    """``Σ_k w_k ℓ(y_k, h_k)`` per sample: ``log_h [..., C]`` (classes last); ``target``
    class indices ``[...]`` (every one in range: the caller replaces ignored ones) or
    probabilities ``[..., C]``; ``generated`` the functions of
    :class:`symloss.harness.codegen.GeneratedTerm`; ``weight`` per class or ``None``.

    One-hot targets of a non-polynomial term go through ``ℓ(0, ·)`` on every class and
    ``ℓ(1, ·)`` on the target's (``generated.by_target``), summed as ``Σ_k ℓ(0, h_k)``
    plus ``ℓ(1, h_T) − ℓ(0, h_T)`` where that adds without cancelling
    (``generated.adds_at_target``; cross-entropy: ``−L_T`` alone). Otherwise ``ℓ``
    sees the labels, smoothed by α to ``y(1−α) + α/C`` (docs/conventions.md §2.7).
    """
    log_h, log_rest = _refined(generated, log_h)
    if _by_target(generated, target, label_smoothing) and generated.adds_at_target:
        index = _target_index(target, log_h)
        rest = None if log_rest is None else log_rest.gather(-1, index)
        chosen = log_h.gather(-1, index)
        at_target = _filled(generated.target_difference(chosen, rest, parameters),
                            chosen).squeeze(-1)
        at_target = at_target if weight is None else at_target * weight[target]
        off = generated.off_target_term(log_h, log_rest, parameters)
        if not isinstance(off, torch.Tensor) and float(off) == 0.0:  # cross-entropy: −L_T
            return at_target
        off = _filled(off, log_h)
        return (off if weight is None else off * weight).sum(dim=-1) + at_target
    terms = _per_class(generated, log_h, log_rest, target, parameters, label_smoothing)
    return (terms if weight is None else terms * weight).sum(dim=-1)


def per_class_terms(generated, log_h, target, parameters, label_smoothing=0.0):
    """``ℓ(y_k, h_k)`` per class ``[..., C]``, as :func:`per_sample_losses` sums them; with
    functions that return ``(ℓ, ∂ℓ/∂L)``
    (:func:`symloss.harness.codegen.generate_with_derivative`), a pair of such tensors."""
    log_h, log_rest = _refined(generated, log_h)
    return _per_class(generated, log_h, log_rest, target, parameters, label_smoothing)


def _refined(generated, log_h):
    """``log h`` (:func:`exact_top` where the term needs it) and ``log(1 − h)`` (or ``None``)."""
    log_h = exact_top(log_h) if generated.exact_top else log_h
    return log_h, log_complement(log_h) if generated.uses_complement else None


def _per_class(generated, log_h, log_rest, target, parameters, label_smoothing):
    if _by_target(generated, target, label_smoothing):
        index = _target_index(target, log_h)
        rest = None if log_rest is None else log_rest.gather(-1, index)
        on = generated.on_target_term(log_h.gather(-1, index), rest, parameters)
        off = generated.off_target_term(log_h, log_rest, parameters)
        if isinstance(on, tuple):
            return tuple(_with_target(a, b, index, log_h)
                         for a, b in zip(on, off, strict=True))
        return _with_target(on, off, index, log_h)
    terms = _labelled_terms(generated, log_h, log_rest, target, parameters, label_smoothing)
    return tuple(_filled(t, log_h) for t in terms) if isinstance(terms, tuple) else terms


def _by_target(generated, target, label_smoothing):
    return generated.by_target and not label_smoothing and not target.dtype.is_floating_point


def _target_index(target, log_h):
    """``target [...]`` as a gather index ``[..., 1]`` over ``log_h [..., C]`` (shared
    targets ``[B]`` broadcast over the population's ``[K, B, C]``)."""
    index = target.unsqueeze(-1)
    return index if index.dim() == log_h.dim() else index.expand(*log_h.shape[:-1], 1)


def _with_target(on, off, index, like):
    """``ℓ(0, ·)`` everywhere but at the target, ``ℓ(1, ·)`` there."""
    return _filled(off, like).scatter(-1, index, _filled(on, like[..., :1]))


def _labelled_terms(generated, log_h, log_rest, target, parameters, label_smoothing):
    if target.dtype.is_floating_point:
        labels = target.to(log_h.dtype)
    else:
        labels = _one_hot(log_h, _target_index(target, log_h))
    if label_smoothing:
        labels = labels * (1.0 - label_smoothing) + label_smoothing / log_h.shape[-1]
    terms = generated.term(labels, log_h, log_rest, parameters)
    return terms if isinstance(terms, tuple) else _filled(terms, log_h)


def _one_hot(like, index):
    """1 at ``index`` (``[..., 1]``), 0 elsewhere, in ``like``'s shape, dtype and layout."""
    zeros = torch.zeros_like(like)
    if _transformed(zeros):  # vmap has no batching rule for the in-place scatter
        return zeros.scatter(-1, index, 1.0)
    return zeros.scatter_(-1, index, 1.0)  # in place: half the time of a copy


def _filled(value, like):
    """``value`` (a tensor or a constant the formula reduced to) at ``like``'s shape."""
    if not isinstance(value, torch.Tensor):
        return like.new_full(like.shape, float(value))
    return value if value.shape == like.shape else value.expand_as(like)


def _transformed(tensor):
    """Whether ``tensor`` is inside a ``torch.func`` transform (``vmap``, ``grad``): its values
    are not concrete there. (``torch.compile`` cannot ask; it traces no transform here.)"""
    return (not torch.compiler.is_compiling()
            and torch._C._functorch.is_functorch_wrapped_tensor(tensor))


def _inspectable(tensor):
    """Whether a check may read ``tensor``'s values: not while ``torch.compile`` traces,
    nor inside ``torch.func`` transforms."""
    return not (torch.compiler.is_compiling() or _transformed(tensor))


class PerClassLoss(torch.nn.Module):
    """``nn.CrossEntropyLoss``'s arguments and semantics for the per-class term of
    ``generated`` (a subclass sets it): per sample ``Σ_k w_k ℓ(y_k, h_k)``.

    ``values``: the family's parameter values, a buffer (``state_dict``); ``scale``:
    ``"sum"`` or ``"paper"`` (times ``1/C``).
    """

    formula = "ℓ(y, h)"

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0, *, scale="sum", values=()):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if scale not in LOSS_SCALES:
            raise ValueError(f"loss scale must be one of {LOSS_SCALES}, got {scale!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise RuntimeError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if weight is not None:  # a tensor keeps its dtype (as nn.CrossEntropyLoss's does)
            weight = (weight if isinstance(weight, torch.Tensor)
                      else torch.as_tensor(weight, dtype=torch.get_default_dtype()))
            if weight.dim() != 1:
                raise RuntimeError(f"weight must be a 1-D tensor of class weights, "
                                   f"got shape {tuple(weight.shape)}")
        self.register_buffer("weight", weight)
        self.register_buffer("loss_parameters", torch.tensor(values, dtype=torch.float64))
        self.ignore_index, self.reduction = int(ignore_index), reduction
        self.label_smoothing, self.scale = float(label_smoothing), scale
        self._refresh()

    def _refresh(self):
        """Eager mode reads the parameter values as Python floats (cheaper operands than
        0-d tensors); compiled code reads the buffer, a graph input."""
        self._values = tuple(self.loss_parameters.tolist())

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def forward(self, input, target):
        autocast = torch.is_autocast_enabled(input.device.type)
        dtype = torch.promote_types(input.dtype, torch.float32) if autocast else input.dtype
        if input.dtype in (torch.float16, torch.bfloat16):
            input = input.float()
        if autocast:
            with torch.autocast(input.device.type, enabled=False):
                return self._loss(input, target).to(dtype)
        loss = self._loss(input, target)
        return loss if loss.dtype == dtype else loss.to(dtype)

    def _loss(self, input, target):
        if input.dim() == 0:
            raise RuntimeError("input must be logits (C), (N, C) or (N, C, d1, ...), "
                               "got a 0-d tensor")
        unbatched = input.dim() == 1
        logits = input.unsqueeze(0) if unbatched else input
        target = target.unsqueeze(0) if unbatched else target
        classes = logits.shape[1]
        log_h = log_probabilities(logits, 1)  # classes last
        weight = self.weight
        if weight is not None:
            if weight.shape != (classes,):
                raise RuntimeError(f"weight has shape {tuple(weight.shape)}; it needs one "
                                   f"entry per class, ({classes},)")
            weight = weight.to(log_h.dtype)
        valid = None
        if target.dtype.is_floating_point:
            self._check_probabilities(logits, target)
            target = target.movedim(1, -1)
        elif self._check_indices(logits, target, classes):  # some may be ignore_index
            valid = target != self.ignore_index
            target = torch.where(valid, target, 0)
        parameters = self.loss_parameters if torch.compiler.is_compiling() else self._values
        per_sample = per_sample_losses(self.generated, log_h, target, parameters,
                                       self.label_smoothing, weight)
        if self.scale == "paper":
            per_sample = per_sample / classes
        if valid is not None:
            per_sample = torch.where(valid, per_sample, 0.0)
        if self.reduction == "none":
            return per_sample[0] if unbatched else per_sample
        if self.reduction == "sum":
            return per_sample.sum()
        if target.dtype.is_floating_point or (weight is None and valid is None):
            return per_sample.mean()  # probability targets, or none ignored nor weighted
        if weight is None:
            return per_sample.sum() / valid.sum()
        chosen = weight[target]  # the mean divides by the targets' weights
        return per_sample.sum() / (chosen if valid is None else torch.where(valid, chosen, 0.0)
                                   ).sum()

    def _check_probabilities(self, logits, target):
        if target.shape != logits.shape:
            raise RuntimeError(f"probability targets must have the input's shape "
                               f"{tuple(logits.shape)}, got {tuple(target.shape)}")
        if self.ignore_index >= 0:
            raise RuntimeError(f"ignore_index={self.ignore_index} applies to class-index "
                               "targets, not to probability targets")

    def _check_indices(self, logits, target, classes):
        """Shape and range checks; whether some target may equal ``ignore_index`` (when the
        values cannot be read — compiled, vmapped — assume so)."""
        if target.dtype == torch.bool or target.is_complex():
            raise RuntimeError(f"targets must be class indices (an integer dtype) or "
                               f"probabilities (a floating one), got {target.dtype}")
        if target.shape[:1] != logits.shape[:1]:
            raise ValueError(f"input batch size {logits.shape[0]} does not match target "
                             f"batch size {target.shape[0] if target.dim() else '()'}")
        expected = (logits.shape[0], *logits.shape[2:])
        if target.shape != expected:
            raise RuntimeError(f"class-index targets must have shape {expected}, "
                               f"got {tuple(target.shape)}")
        if not _inspectable(target) or target.numel() == 0:
            return True
        low, high = torch.aminmax(target)
        low, high = int(low), int(high)  # one look at the values for both checks
        if low >= 0 and high < classes:
            return low <= self.ignore_index <= high
        bad = (target != self.ignore_index) & ((target < 0) | (target >= classes))
        if bool(bad.any()):
            raise IndexError(f"target {target[bad][0].item()} is out of bounds for "
                             f"{classes} classes (0 to {classes - 1}, or "
                             f"ignore_index={self.ignore_index})")
        return True

    def extra_repr(self):
        weight = "" if self.weight is None else f", weight={self.weight.tolist()}"
        return (f"{self.formula}{weight}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
                f"scale={self.scale!r}")

# ---- end of the torch-only core ----


class SymbolicLoss(PerClassLoss):
    """``forward(input, target)`` → the loss of a symloss :class:`~symloss.loss.Loss`;
    build it with :func:`torch_loss`.

    ``input``: logits ``(N, C)``, ``(N, C, d1, …)`` or ``(C,)``; ``target``: class
    indices ``(N)``, ``(N, d1, …)`` or ``()``, or probabilities of the input's shape
    (the conventions of :class:`torch.nn.CrossEntropyLoss`).
    """

    def __init__(self, loss: Loss, weight: torch.Tensor | Sequence[float] | None = None,
                 size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0, *,
                 scale: str = "sum") -> None:
        if loss.is_family:
            raise ValueError(f"loss {loss.name!r} is a family; bind its "
                             f"{len(loss.parameters)} parameters first")
        self.loss = loss
        super().__init__(weight, size_average, ignore_index, reduce, reduction,
                         label_smoothing, scale=check_scale(scale), values=loss.values or ())
        self.generated: GeneratedTerm = generate(loss.expr, tuple(loss.parameters))

    @property
    def formula(self) -> str:
        return f"{self.loss.name}: ℓ(y, h) = {self.loss.expression}"

    def _refresh(self) -> None:
        super()._refresh()
        if self.loss.parameters:
            self.loss = self.loss.bind(self._values)

    def set_values(self, values: Sequence[float]) -> None:
        """Swap in another member of the same family, in place (no code generation)."""
        values = torch.as_tensor(values, dtype=self.loss_parameters.dtype)
        if values.shape != self.loss_parameters.shape:
            raise ValueError(f"loss {self.loss.name!r} takes {self.loss_parameters.numel()} "
                             f"parameter values, got {values.numel()}")
        with torch.no_grad():
            self.loss_parameters.copy_(values)
        self._refresh()


def torch_loss(loss: Loss | str, weight: torch.Tensor | Sequence[float] | None = None,
               size_average=None, ignore_index: int = -100, reduce=None,
               reduction: str = "mean", label_smoothing: float = 0.0, *,
               scale: str = "sum") -> SymbolicLoss:
    """The torch loss module of ``loss``: per sample ``Σ_k w_k ℓ(y_k, h_k)``.

    ``loss``: a bound :class:`~symloss.loss.Loss`, a catalog name or a formula in
    ``y`` and ``h`` (read by :func:`symloss.catalog.loss`, never evaluated). The
    other arguments are :class:`torch.nn.CrossEntropyLoss`'s, in its order:
    ``weight`` (per class), the deprecated ``size_average``/``reduce``,
    ``ignore_index`` (class-index targets equal to it count for nothing),
    ``reduction`` (``"mean"``, ``"sum"``, ``"none"``; with class weights the mean
    divides by the summed weights of the targets), ``label_smoothing`` α
    (``y → y(1−α) + α/n``, docs/conventions.md §2.7). ``scale``: ``"sum"`` (the
    default, as above) or ``"paper"`` (times ``1/n``, the papers' equations;
    :mod:`symloss.scale`).

    >>> import torch
    >>> from symloss.catalog import taylorglo
    >>> criterion = torch_loss(taylorglo(3).bind([0, 0, 0, -1, 0, 2, 0, 0]))
    >>> criterion(torch.zeros(2, 4), torch.tensor([1, 3])).item()  # Σ_k h² − 2hy at h = 1/4
    -0.25
    >>> torch_loss("-log(h) + y/h", torch.ones(4), reduction="sum").loss.expression
    -log(h) + y/h
    """
    if isinstance(loss, str):
        from symloss.catalog import loss as catalog_loss

        loss = catalog_loss(loss)
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a symloss Loss, a catalog name or a formula, "
                        f"got {type(loss).__name__}")
    return SymbolicLoss(loss, weight, size_average, ignore_index, reduce, reduction,
                        label_smoothing, scale=scale)
