"""Take a found loss home: ``symloss export RUN_ID`` and ``run:ID[:rank]`` loss specs.

:func:`export_source` writes a standalone PyTorch module — it imports only
``torch`` — with the loss's per-class term printed by :mod:`symloss.harness.codegen` (the
parameter values substituted), a ``torch.nn.Module`` with
:class:`torch.nn.CrossEntropyLoss`'s arguments and semantics (those of
:func:`symloss.harness.losses.torch_loss`: the per-sample sum ``Σ_k w_k ℓ(y_k, h_k)``,
``h`` clamped at the dtype's epsilon with the gradient passed through), and the
formula, its parameter values, where it came from and its symbolic analysis in
the docstring. ``tests/test_search_export.py`` imports a written file in a fresh
interpreter and compares it with the harness's loss.

A loss spec ``run:ID`` (the best of run ``ID``) or ``run:ID:K`` (its K-th best,
from 1) names a stored candidate wherever a loss is accepted: :func:`run_loss`.
"""

from __future__ import annotations

import re
from pathlib import Path

from symloss.harness.codegen import term_source
from symloss.loss import Loss

#: ``run:ID`` or ``run:ID:RANK``.
RUN_SPEC = re.compile(r"run:(?P<run_id>[^:\s]{1,200})(?::(?P<rank>\d{1,4}))?")


def run_loss(spec: str, store_file: str | Path) -> Loss:
    """The stored candidate a ``run:ID[:rank]`` spec names (rank 1: the best).

    A ``ValueError`` (one line) for a spec that is not one, a run that is not in the
    store, or a rank past the run's distinct evaluated candidates.
    """
    from symloss.harness.search.final import rebuild_loss
    from symloss.harness.search.runner import SearchConfig, best_candidates
    from symloss.harness.search.store import RunStore

    match = RUN_SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"a stored loss is run:ID or run:ID:RANK, got {spec!r}")
    run_id, rank = match["run_id"], int(match["rank"] or 1)
    if rank < 1:
        raise ValueError(f"ranks start at 1, got {rank}")
    with RunStore.open(store_file, readonly=True) as store:
        run = store.run(run_id)
        ranked = best_candidates(store, run_id, rank)
        if len(ranked) < rank:
            raise ValueError(f"run {run_id} has {len(ranked)} distinct evaluated candidates, "
                             f"not {rank}")
        record = ranked[rank - 1]
        loss = rebuild_loss(record, SearchConfig.from_dict(run.config))
    meta = (("run", run_id), ("rank", rank), ("fitness", record.fitness))
    return Loss(f"run-{run_id}-{rank}", loss.expr, loss.parameters, loss.values,
                (*loss.meta, *meta))


def export_source(loss: Loss, *, class_name: str = "FoundLoss", origin: str = "",
                  classes: int = 10) -> str:
    """The text of a standalone module computing ``loss`` (see the module docstring).

    >>> from symloss.catalog import loss
    >>> text = export_source(loss("baikal"))
    >>> "import torch" in text and "class FoundLoss(torch.nn.Module)" in text
    True
    """
    from symloss.analysis import analyze
    from symloss.report import format_report

    if loss.is_family:
        raise ValueError(f"loss {loss.name!r} is a family; bind its parameters first")
    if not class_name.isidentifier():
        raise ValueError(f"--class-name must be a Python identifier, got {class_name!r}")
    expression = loss.expression  # the parameter values substituted
    term = term_source(expression, ()).replace("def term(y, h, parameters):",
                                               "def per_class_term(y, h):")
    parameters = ", ".join(f"{symbol} = {value!r}" for symbol, value in
                           zip(loss.parameters, loss.values or (), strict=False)) or "none"
    analysis = format_report(analyze(loss, classes=classes))
    return TEMPLATE.format(class_name=class_name, formula=expression, parameters=parameters,
                           origin=origin or loss.name, analysis=_indent(analysis),
                           term=term.rstrip() + "\n")


def _indent(text: str) -> str:
    return "\n".join(("    " + line).rstrip() for line in text.splitlines())


TEMPLATE = '''"""A loss function found by symloss ({origin}); this file needs only torch.

    ℓ(y, h) = {formula}

per class k, with h = softmax(logits) and y the label value (one-hot, or
smoothed); a sample's loss is Σ_k w_k ℓ(y_k, h_k), reduced over the batch as
torch.nn.CrossEntropyLoss reduces it. Parameters: {parameters}.

Usage, as torch.nn.CrossEntropyLoss:

    criterion = {class_name}()  # reduction, weight, ignore_index, label_smoothing
    loss = criterion(logits, target)  # logits (N, C) or (N, C, d1, ...); target indices
                                      # or probabilities

Its symbolic analysis (symloss analyze, n = 10; docs/conventions.md in symloss):

{analysis}
"""

import torch

__all__ = ["{class_name}", "per_class_term"]


{term}

class _ClampPassGradient(torch.autograd.Function):
    """max(h, eps), with the gradient of h: a probability below eps still gets pushed."""

    @staticmethod
    def forward(ctx, h, eps):
        return h.clamp_min(eps)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class {class_name}(torch.nn.Module):
    """ℓ(y, h) = {formula}, with torch.nn.CrossEntropyLoss's arguments."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean, sum or none, got {{reduction!r}}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {{label_smoothing!r}}")
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight))
        self.ignore_index, self.reduction = int(ignore_index), reduction
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        unbatched = input.dim() == 1
        logits = input.unsqueeze(0) if unbatched else input
        target = target.unsqueeze(0) if unbatched else target
        classes = logits.shape[1]
        logits = logits.movedim(1, -1)
        valid = None
        if target.dtype.is_floating_point:
            labels = target.movedim(1, -1).to(logits.dtype)
        else:
            valid = target != self.ignore_index
            index = torch.where(valid, target, 0)
            labels = torch.zeros_like(logits).scatter_(-1, index.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        h = _ClampPassGradient.apply(torch.softmax(logits, dim=-1),
                                     torch.finfo(logits.dtype).eps)
        terms = per_class_term(labels, h)
        if not isinstance(terms, torch.Tensor):
            terms = h.new_full(h.shape, float(terms))
        terms = terms.expand_as(h)
        if self.weight is not None:
            terms = terms * self.weight.to(terms.dtype)
        per_sample = terms.sum(dim=-1)
        if valid is not None:
            per_sample = torch.where(valid, per_sample, 0.0)
        if self.reduction == "none":
            return per_sample[0] if unbatched else per_sample
        if self.reduction == "sum":
            return per_sample.sum()
        if valid is None:
            return per_sample.mean()
        if self.weight is None:
            return per_sample.sum() / valid.sum()
        chosen = self.weight.to(per_sample.dtype)[torch.where(valid, target, 0)]
        return per_sample.sum() / torch.where(valid, chosen, 0.0).sum()
'''
