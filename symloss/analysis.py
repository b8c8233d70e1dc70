"""Everything the engine derives about one loss, as one immutable value (SPEC §2).

>>> from symloss.catalog import loss
>>> result = analyze(loss("baikal"), classes=10)
>>> result.null_epoch.trainable, result.zero_error.attractor, round(result.binary.minimum_at, 2)
(True, False, 0.71)
>>> result.to_dict()["zero_error"]
{'limit': '-inf', 'attractor': False, 'leading_order': 0}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from symloss.binary import BinaryView, binary_view
from symloss.dynamics import (
    NullEpoch,
    ZeroError,
    decompose,
    delta,
    gamma,
    gamma_nontarget,
    gamma_target,
    logit_step,
    null_epoch,
    sign_verdict,
    tidy,
    zero_error,
    zero_error_polynomial,
)
from symloss.loss import Loss
from symloss.smoothing import SmoothingMap, label_smoothing_map
from symloss.symbols import eta
from symloss.trainability import paper_condition, trainability_condition


@dataclass(frozen=True)
class Analysis:
    """The derived learning dynamics of a loss for ``classes`` classes and smoothing ``α``."""

    loss: Loss
    classes: int
    smoothing: float
    gamma: sp.Expr
    gamma_target: sp.Expr
    gamma_nontarget: sp.Expr
    decomposition: dict[str, sp.Expr] | None
    zero_error_coefficients: dict[str, sp.Expr] | None
    delta: sp.Expr
    logit_step: tuple[sp.Expr, sp.Expr]
    null_epoch: NullEpoch
    zero_error: ZeroError
    trainability_condition: sp.Expr
    paper_condition: sp.Expr
    label_smoothing_map: SmoothingMap | None
    binary: BinaryView

    @property
    def trainable(self) -> bool | None:
        """First-principles trainability at the null epoch (target probability grows)."""
        return sign_verdict(self.trainability_condition)

    @property
    def paper_trainable(self) -> bool | None:
        """ICLR Theorem 3's verdict, as published."""
        negative = sign_verdict(-self.paper_condition)
        return None if negative is None else not negative

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Expressions are strings, ±∞ the strings ``"inf"``/``"-inf"``, undecided ``None``.
        """
        family = self.loss.is_family
        result: dict[str, Any] = {
            "loss": str(self.loss.expression),
            "name": self.loss.name,
            "classes": self.classes,
            "smoothing": self.smoothing,
            "gamma": str(self.gamma),
            "gamma_target": str(self.gamma_target),
            "gamma_nontarget": str(self.gamma_nontarget),
            "delta": str(self.delta),
            "logit_step": {"target": str(self.logit_step[0]),
                           "nontarget": str(self.logit_step[1])},
            "null_epoch": {
                "gamma_target": to_json(self.null_epoch.gamma_target),
                "gamma_nontarget": to_json(self.null_epoch.gamma_nontarget),
                "delta": to_json(self.null_epoch.delta),
                "trainable": self.null_epoch.trainable,
            },
            "zero_error": {
                "limit": to_json(self.zero_error.limit),
                "attractor": self.zero_error.attractor,
                "leading_order": self.zero_error.leading_order,
            },
            "trainable": self.trainable,
            "paper_invariant": {"trainable": self.paper_trainable},
            "binary_minimum": self.binary.minimum_at,
            "binary": {"loss": str(self.binary.expression),
                       "minimum_at": self.binary.minimum_at,
                       "minimum_value": self.binary.minimum_value,
                       "interior": self.binary.interior},
        }
        if self.loss.parameters:
            result["parameters"] = {str(p): (None if self.loss.values is None else v)
                                    for p, v in zip(self.loss.parameters,
                                                    self.loss.values or [None] * 99, strict=False)}
        if self.decomposition is not None:
            result["decomposition"] = {k: to_json(v) for k, v in self.decomposition.items()}
        if self.zero_error_coefficients is not None:
            result["zero_error_coefficients"] = {
                k: to_json(v) for k, v in self.zero_error_coefficients.items()}
        if family:
            result["trainability_condition"] = str(self.trainability_condition)
            result["paper_condition"] = str(self.paper_condition)
        if self.label_smoothing_map is not None:
            result["label_smoothing_map"] = (
                {str(k): str(v) for k, v in self.label_smoothing_map.mapping.items()}
                if self.label_smoothing_map.exists else None)
            if not self.label_smoothing_map.exists:
                result["label_smoothing_map_reason"] = self.label_smoothing_map.reason
        return result

    def latex(self) -> dict[str, str]:
        """LaTeX of every derived expression, by the same names as :meth:`to_dict`."""
        items: dict[str, sp.Expr] = {
            "loss": self.loss.expression,
            "gamma": self.gamma,
            "gamma_target": self.gamma_target,
            "gamma_nontarget": self.gamma_nontarget,
            "delta": self.delta,
            "logit_step_target": self.logit_step[0],
            "logit_step_nontarget": self.logit_step[1],
            "null_epoch_gamma_target": self.null_epoch.gamma_target,
            "null_epoch_gamma_nontarget": self.null_epoch.gamma_nontarget,
            "trainability_condition": self.trainability_condition,
            "paper_condition": self.paper_condition,
            "binary_loss": self.binary.expression,
        }
        if self.zero_error.limit is not None:
            items["zero_error_limit"] = self.zero_error.limit
        for name, value in (self.decomposition or {}).items():
            items[f"decomposition_{name}"] = value
        if self.label_smoothing_map is not None and self.label_smoothing_map.exists:
            for parameter, value in self.label_smoothing_map.mapping.items():
                items[f"label_smoothing_{parameter}"] = value
        return {name: sp.latex(value) for name, value in items.items()}


def to_json(value: sp.Expr | None) -> float | int | str | None:
    """A JSON value for a derived quantity: number, ``"inf"``/``"-inf"``, expression string or None.

    >>> to_json(sp.oo), to_json(sp.Rational(1, 2)), to_json(sp.Integer(3)), to_json(None)
    ('inf', 0.5, 3, None)
    """
    if value is None or value.has(sp.nan, sp.zoo):
        return None  # undefined: undecided in JSON
    if value == sp.oo:
        return "inf"
    if value == -sp.oo:
        return "-inf"
    if value.is_number:
        if value.is_Integer:
            return int(value)
        numeric = complex(value.evalf(17))
        if numeric.imag == 0:
            return numeric.real
        return str(value)
    return str(value)


def analyze(
    loss: Loss, classes: int = 10, smoothing: float = 0.0, *, lr: float | sp.Expr = eta,
) -> Analysis:
    """Derive γ, Δ(ε), the null epoch, the zero-error regime, trainability and more.

    ``lr`` is the learning rate in the logit step (the symbol ``η`` by default).
    For a family with ``smoothing > 0`` the label-smoothing parameter map is included.

    >>> from symloss.catalog import loss
    >>> analyze(loss("cross_entropy"), classes=10).to_dict()["null_epoch"]
    {'gamma_target': 10, 'gamma_nontarget': 0, 'delta': 10, 'trainable': True}
    """
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    smoothing_map = None
    if loss.is_family and smoothing:
        smoothing_map = label_smoothing_map(loss, classes, smoothing)
    return Analysis(
        loss=loss,
        classes=classes,
        smoothing=float(smoothing),
        gamma=gamma(loss),
        gamma_target=gamma_target(loss, classes, smoothing),
        gamma_nontarget=gamma_nontarget(loss, classes, smoothing),
        decomposition=decompose(loss),
        zero_error_coefficients=zero_error_polynomial(loss),
        delta=tidy(delta(loss, classes, smoothing)),
        logit_step=tuple(tidy(e) for e in logit_step(loss, classes, lr, smoothing)),
        null_epoch=null_epoch(loss, classes, smoothing),
        zero_error=zero_error(loss, classes, smoothing),
        trainability_condition=trainability_condition(loss, classes, smoothing),
        paper_condition=paper_condition(loss, classes, smoothing),
        label_smoothing_map=smoothing_map,
        binary=binary_view(loss, smoothing if not loss.is_family else 0.0),
    )
