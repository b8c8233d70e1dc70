"""Everything the engine derives about one loss, as one immutable value (docs/conventions.md §2).

One module, over the ~400-line aim: :class:`Analysis`, the bounded steps of
:func:`analyze` that fill its fields (each with its fallback) and each field's JSON form
(:func:`to_json`) change together; a new derived quantity is a field, a step and a key
here.

>>> from symloss.catalog import loss
>>> result = analyze(loss("baikal"), classes=10)
>>> result.null_epoch.trainable, result.zero_error.attractor, round(result.binary.minimum_at, 2)
(True, False, 0.71)
>>> result.to_dict()["zero_error"]
{'limit': '-inf', 'attractor': False, 'leading_order': 0, 'neutral': False}

Every step runs under a time and memory bound (:mod:`symloss.guard`, with size
checks from :mod:`symloss.bounds`); a step that cannot finish is *undecided*
and :attr:`Analysis.undecided` says why, step by step.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from symloss.binary import BinaryView, binary_view
from symloss.bounds import is_zero_number
from symloss.dynamics import (
    UNDECIDED,
    NullEpoch,
    ZeroError,
    _smoothing,
    decompose,
    delta,
    gamma,
    gamma_nontarget,
    gamma_target,
    labels,
    logit_step,
    null_epoch,
    sign_verdict,
    tidy,
    zero_error,
    zero_error_polynomial,
)
from symloss.guard import CALL_SECONDS, bounded, check_seconds
from symloss.loss import Loss
from symloss.smoothing import SmoothingMap, label_smoothing_map
from symloss.stability import Basin, Stability, stability
from symloss.symbols import eta, h, y
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
    undecided: tuple[tuple[str, str], ...] = ()
    stability: Stability | None = None
    #: :attr:`trainable` and :attr:`paper_trainable` as :func:`analyze` decided them within
    #: its budget (a sign proof of a large constant can take sympy minutes); ``None``: derived
    #: when asked, unbounded.
    verdicts: tuple[bool | None, bool | None] | None = None

    @property
    def trainable(self) -> bool | None:
        """First-principles trainability at the null epoch (target probability grows).

        Undecided at a kink whose subgradients disagree, or for a complex γ.
        """
        return self.verdicts[0] if self.verdicts is not None else _trainable(
            self.null_epoch, self.trainability_condition)

    @property
    def paper_trainable(self) -> bool | None:
        """ICLR Theorem 3's verdict, as published (undecided where :attr:`trainable` is
        undecided for a reason other than parameters)."""
        return self.verdicts[1] if self.verdicts is not None else _paper_trainable(
            self.null_epoch, self.paper_condition)

    def _repr_markdown_(self) -> str:
        """The report as a table in Jupyter (:func:`symloss.report.markdown_report`), and
        whether it will last (:meth:`outlook`)."""
        from symloss.report import markdown_report, markdown_text

        lasting = markdown_text(self.outlook()["text"])
        return f"{markdown_report(self)}\n\n**Will it last?** {lasting}"

    def outlook(self) -> dict[str, Any]:
        """Will it last? The derived basin and what losses of its kind did when trained at
        5× a search's length, from the committed benchmark
        (:func:`symloss.outlook.analysis_outlook`; nothing is derived again)."""
        from symloss.outlook import analysis_outlook

        return analysis_outlook(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Expressions are strings, ±∞ the strings ``"inf"``/``"-inf"``, undecided ``None``.
        """
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
            "null_epoch": self._null_epoch_dict(),
            "zero_error": self._zero_error_dict(),
            "trainable": self.trainable,
            "paper_invariant": {"trainable": self.paper_trainable},
            "binary_minimum": self.binary.minimum_at,
            "binary": self._binary_dict(),
            **self._stability_dict(),
            **self._optional_dict(),
        }
        return json_safe(result)

    def _null_epoch_dict(self) -> dict[str, Any]:
        null = self.null_epoch
        fields: dict[str, Any] = {
            "gamma_target": to_json(null.gamma_target),
            "gamma_nontarget": to_json(null.gamma_nontarget),
            "delta": to_json(null.delta),
            "trainable": null.trainable,
        }
        if null.delta_range is not None:
            fields["delta_range"] = [to_json(v) for v in null.delta_range]
        return _with_reason(fields, null.reason)

    def _zero_error_dict(self) -> dict[str, Any]:
        zero = self.zero_error
        return _with_reason({"limit": to_json(zero.limit), "attractor": zero.attractor,
                             "leading_order": zero.leading_order, "neutral": zero.neutral},
                            zero.reason)

    def _binary_dict(self) -> dict[str, Any]:
        binary = self.binary
        return _with_reason({"loss": str(binary.expression), "minimum_at": binary.minimum_at,
                             "minimum_value": binary.minimum_value,
                             "interior": binary.interior,
                             "minima": [list(run) for run in binary.minima]}, binary.reason)

    def _stability_dict(self) -> dict[str, Any]:
        """:attr:`stability`'s fields, its method and reason renamed ``stability_…``."""
        if self.stability is None:
            return {}
        fields = self.stability.to_dict()
        fields["stability_method"] = fields.pop("method")
        if "reason" in fields:
            fields["stability_reason"] = fields.pop("reason")
        return fields

    def _optional_dict(self) -> dict[str, Any]:
        """The keys present only for some losses: undecided steps, parameters, the
        decomposition, a family's conditions, the label-smoothing map."""
        fields: dict[str, Any] = {}
        if self.undecided:
            fields["undecided"] = dict(self.undecided)
        if self.loss.parameters:
            fields["parameters"] = {str(p): (None if self.loss.values is None else v)
                                    for p, v in zip(self.loss.parameters,
                                                    self.loss.values or [None] * 99, strict=False)}
        if self.decomposition is not None:
            fields["decomposition"] = {k: to_json(v) for k, v in self.decomposition.items()}
        if self.zero_error_coefficients is not None:
            fields["zero_error_coefficients"] = {
                k: to_json(v) for k, v in self.zero_error_coefficients.items()}
        if self.loss.is_family:
            fields["trainability_condition"] = str(self.trainability_condition)
            fields["paper_condition"] = str(self.paper_condition)
        if self.label_smoothing_map is not None:
            fields["label_smoothing_map"] = (
                {str(k): str(v) for k, v in self.label_smoothing_map.mapping.items()}
                if self.label_smoothing_map.exists else None)
            if not self.label_smoothing_map.exists:
                fields["label_smoothing_map_reason"] = self.label_smoothing_map.reason
        return fields

    def latex(self, seconds: float = CALL_SECONDS) -> dict[str, str | None]:
        """LaTeX of every derived expression, by the same names as :meth:`to_dict`.

        All of it within ``seconds`` (sympy's printer takes seconds on a sixteenth power
        of logs): an expression not printed by then is ``None``, undecided.
        """
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
        items = {name: value for name, value in items.items()
                 if isinstance(value, sp.Basic) and not value.has(sp.nan)}
        for name, value in (self.decomposition or {}).items():
            items[f"decomposition_{name}"] = value
        if self.label_smoothing_map is not None and self.label_smoothing_map.exists:
            for parameter, value in self.label_smoothing_map.mapping.items():
                items[f"label_smoothing_{parameter}"] = value
        deadline = time.monotonic() + check_seconds("seconds", seconds)
        return {name: bounded(lambda value=value: sp.latex(value), undecided_on=UNDECIDED,
                              seconds=max(deadline - time.monotonic(), 1e-3)).value
                for name, value in items.items()}


def _trainable(null: NullEpoch, condition: sp.Expr) -> bool | None:
    if _null_epoch_decides(null):
        return null.trainable
    return sign_verdict(condition)


def _paper_trainable(null: NullEpoch, condition: sp.Expr) -> bool | None:
    if _null_epoch_decides(null):
        return None
    negative = sign_verdict(-condition)
    return None if negative is None else not negative


def _null_epoch_decides(null: NullEpoch) -> bool:
    """A kink or a complex γ at the null epoch: its verdict overrides the plain sign of Δ."""
    return null.delta_range is not None or (
        null.trainable is None and null.reason not in ("", "depends on the parameters"))


def _with_reason(fields: dict[str, Any], reason: str) -> dict[str, Any]:
    """``fields`` with ``"reason"`` added when there is one."""
    return {**fields, "reason": reason} if reason else fields


def to_json(value: sp.Expr | None) -> float | int | str | None:
    """A JSON value for a derived quantity: number, ``"inf"``/``"-inf"``, expression string or None.

    A finite number too large for a float is its 17-digit string; an exactly zero
    constant is ``0``; a constant sympy cannot evaluate within :data:`NUMBER_SECONDS`
    (a sixteenth power of logs at 1/n: seconds of ``evalf``) is its expression string.

    >>> to_json(sp.oo), to_json(sp.Rational(1, 2)), to_json(sp.Integer(3)), to_json(None)
    ('inf', 0.5, 3, None)
    >>> to_json(-sp.exp(sp.Integer(10)**6)), to_json(sp.log(2) + sp.log(3) - sp.log(6))
    ('-3.0332153968020875e+434294', 0)
    """
    if value is None or value.has(sp.nan, sp.zoo):
        return None  # undefined: undecided in JSON
    if value == sp.oo:
        return "inf"
    if value == -sp.oo:
        return "-inf"
    if value.is_number:
        return int(value) if value.is_Integer else _number_json(value)
    return str(value)


#: Seconds one derived constant may take to evaluate for JSON and the report.
NUMBER_SECONDS = 0.5


@functools.lru_cache(maxsize=256)
def _number_json(value: sp.Expr) -> float | int | str:
    """:func:`to_json` of a constant, under :data:`NUMBER_SECONDS` (remembered: the report
    and the JSON ask for the same values)."""
    outcome = bounded(lambda: _evaluated(value), seconds=NUMBER_SECONDS, undecided_on=UNDECIDED)
    return str(value) if outcome.reason is not None else outcome.value


def _evaluated(value: sp.Expr) -> float | int | str:
    if is_zero_number(value):
        return 0
    numeric = value.evalf(17)
    real, imaginary = numeric.as_real_imag()
    if imaginary != 0 or not real.is_Float:
        return str(value)
    number = float(real)
    return number if math.isfinite(number) else _float_text(real)


def _float_text(value: sp.Float) -> str:
    return str(sp.N(value, 17)).replace("e+", "e+").replace("E", "e")


def json_safe(payload: Any) -> Any:
    """``payload`` with every non-finite float as ``"inf"``, ``"-inf"`` or ``None`` (NaN).

    ``json.dumps(..., allow_nan=False)`` then never fails: the output is valid JSON.

    >>> json_safe({"a": [float("inf"), float("nan"), 1.5]})
    {'a': ['inf', None, 1.5]}
    """
    if isinstance(payload, float) and not math.isfinite(payload):
        return None if math.isnan(payload) else ("inf" if payload > 0 else "-inf")
    if isinstance(payload, dict):
        return {key: json_safe(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [json_safe(value) for value in payload]
    return payload


#: Seconds one step of :func:`analyze` may take before it is undecided.
STEP_SECONDS = 5.0
#: Seconds all the steps of one :func:`analyze` may take together (``symloss analyze
#: --seconds``): the call's budget, after which every step left is undecided.
TOTAL_SECONDS = CALL_SECONDS


class _Steps:
    """Runs each step under the bounds; records why a step is undecided, and its fallback."""

    def __init__(self, seconds: float, total: float):
        self.seconds, self.deadline = seconds, time.monotonic() + total
        self.total = total
        self.undecided: list[tuple[str, str]] = []

    def __call__(self, name: str, call: Callable[[], Any], fallback: Any = None) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.undecided.append((name, f"skipped: the analysis's {self.total:g} s are spent"))
            return fallback
        outcome = bounded(call, seconds=min(self.seconds, left), undecided_on=UNDECIDED)
        if outcome.reason is not None:
            self.undecided.append((name, outcome.reason))
            return fallback
        return outcome.value


def _complex_at(loss: Loss, classes: int, smoothing: float) -> str | None:
    """Where ``ℓ`` takes a non-real value on a few probabilities and both labels, if anywhere."""
    if loss.is_family:
        return None
    target, nontarget = labels(classes, smoothing)
    expression = loss.expression
    for label in (target, nontarget):
        for point in (sp.Rational(1, classes), sp.Rational(1, 20), sp.Rational(1, 2),
                      sp.Rational(19, 20)):
            value = expression.subs({y: label, h: point}).evalf(15)
            if value.is_number and not value.has(sp.nan, sp.zoo) and \
                    value.is_extended_real is False:
                return f"ℓ is complex at y = {label}, h = {point} (ℓ = {value}); a loss is real"
    return None


def analyze(
    loss: Loss, classes: int = 10, smoothing: float = 0.0, *, lr: float | sp.Expr = eta,
    seconds: float = STEP_SECONDS, total_seconds: float = TOTAL_SECONDS,
) -> Analysis:
    """Derive γ, Δ(ε), the null epoch, the zero-error regime, trainability, stability and more.

    ``lr`` is the learning rate in the logit step (the symbol ``η`` by default).
    For a family with ``smoothing > 0`` the label-smoothing parameter map is included.
    Each step may take ``seconds`` (default 5) and 2 GB of memory, and all of them
    together ``total_seconds`` (default 10: the call's budget, whatever the formula);
    past that a step is undecided, with the reason in ``undecided``. The steps that
    only differentiate and substitute run first, so a budget spent on a hard limit
    still leaves γ, Δ and the logit step decided.
    A loss with a complex constant is a ``ValueError``; one that is complex-valued
    on ``(0, 1)`` gets undecided verdicts.

    >>> from symloss.catalog import loss
    >>> analyze(loss("cross_entropy"), classes=10).to_dict()["null_epoch"]
    {'gamma_target': 10, 'gamma_nontarget': 0, 'delta': 10, 'trainable': True}
    >>> analyze(loss("sqrt(h - 2)"), classes=10).trainable is None
    True
    """
    _check_arguments(loss, classes, smoothing, seconds, total_seconds)
    step = _Steps(seconds, total_seconds)
    nan = sp.nan
    # The steps that are plain differentiation and substitution come first: when the budget
    # runs out on the hard ones (limits, sign proofs, roots), these are already decided.
    coefficient = step("gamma", lambda: gamma(loss), nan)
    complex_reason = step("realness", lambda: _complex_at(loss, classes, smoothing))
    target = step("gamma_target", lambda: gamma_target(loss, classes, smoothing), nan)
    nontarget = step("gamma_nontarget", lambda: gamma_nontarget(loss, classes, smoothing), nan)
    raw_delta = step("delta", lambda: delta(loss, classes, smoothing), nan)
    raw_step = step("logit_step", lambda: logit_step(loss, classes, lr, smoothing), (nan, nan))
    decomposition = step("decomposition", lambda: decompose(loss))
    coefficients = step("zero_error_coefficients", lambda: zero_error_polynomial(loss))
    smoothing_map = _smoothing_map_step(step, loss, classes, smoothing)
    null, zero = _limit_steps(step, loss, classes, smoothing, seconds, complex_reason)
    condition = step("trainability_condition",
                     lambda: trainability_condition(loss, classes, smoothing), nan)
    paper = step("paper_condition", lambda: paper_condition(loss, classes, smoothing), nan)
    verdicts = (step("trainable", lambda: _trainable(null, condition)),
                step("paper_trainable", lambda: _paper_trainable(null, paper)))
    binary = step("binary", lambda: binary_view(loss, smoothing if not loss.is_family else 0.0),
                  BinaryView(nan, nan, None, None, None, reason=_WITHIN_BOUNDS))
    stable = step("stability", lambda: stability(loss, classes, smoothing, seconds=seconds),
                  _undecided_stability(classes, smoothing, _WITHIN_BOUNDS))
    tidy_delta = step("tidy delta", lambda: tidy(raw_delta), raw_delta)
    tidy_step = step("tidy logit_step", lambda: tuple(tidy(e) for e in raw_step), raw_step)
    if complex_reason:
        zero, binary, stable = _complex_verdicts(zero, binary, classes, smoothing, complex_reason)
    return Analysis(
        loss=loss, classes=classes, smoothing=float(smoothing), gamma=coefficient,
        gamma_target=target, gamma_nontarget=nontarget, decomposition=decomposition,
        zero_error_coefficients=coefficients, delta=tidy_delta, logit_step=tidy_step,
        null_epoch=null, zero_error=zero, trainability_condition=condition,
        paper_condition=paper, label_smoothing_map=smoothing_map, binary=binary,
        undecided=tuple(step.undecided), stability=stable, verdicts=verdicts,
    )


#: The reason a step's fallback gives when the step did not finish.
_WITHIN_BOUNDS = "undecided within the bounds"


def _check_arguments(loss: Loss, classes: int, smoothing: float, seconds: float,
                     total_seconds: float) -> None:
    """:func:`analyze`'s arguments, refused with a ``ValueError`` that names the bad one."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    for name, value in (("seconds", seconds), ("total_seconds", total_seconds)):
        check_seconds(name, value)
    _smoothing(smoothing)
    if loss.expr.has(sp.I):
        raise ValueError(f"loss {loss.name!r} has a complex constant ({loss.expr}); a loss is real")


def _smoothing_map_step(step: _Steps, loss: Loss, classes: int,
                        smoothing: float) -> SmoothingMap | None:
    """The label-smoothing parameter map: for a family with ``smoothing > 0`` only."""
    if not (loss.is_family and smoothing):
        return None
    return step("label_smoothing_map", lambda: label_smoothing_map(loss, classes, smoothing),
                SmoothingMap(False, {}, _WITHIN_BOUNDS))


def _limit_steps(step: _Steps, loss: Loss, classes: int, smoothing: float, seconds: float,
                 complex_reason: str | None) -> tuple[NullEpoch, ZeroError]:
    """The null epoch (its verdict undecided where ``ℓ`` is complex) and the zero-error
    limit, then their numbers evaluated once, within the budget."""
    nan = sp.nan
    null = step("null_epoch", lambda: null_epoch(loss, classes, smoothing),
                NullEpoch(nan, nan, nan, None, reason=_WITHIN_BOUNDS))
    if complex_reason:
        null = NullEpoch(null.gamma_target, null.gamma_nontarget, null.delta, None,
                         reason=complex_reason)
    zero = step("zero_error", lambda: zero_error(loss, classes, smoothing, seconds=seconds),
                ZeroError(None, None, None, reason=_WITHIN_BOUNDS))
    step("numbers", lambda: [to_json(value) for value in (
        null.gamma_target, null.gamma_nontarget, null.delta, zero.limit,
        *(null.delta_range or ()))])
    return null, zero


def _undecided_stability(classes: int, smoothing: float, basin_reason: str,
                         reason: str = "") -> Stability:
    """No equilibria and an undecided basin: a step's fallback, or a complex ``ℓ``'s."""
    return Stability(classes, float(smoothing), (), Basin("undecided", reason=basin_reason),
                     "undecided", reason)


def _complex_verdicts(zero: ZeroError, binary: BinaryView, classes: int, smoothing: float,
                      reason: str) -> tuple[ZeroError, BinaryView, Stability]:
    """A complex-valued ``ℓ``: the zero-error, binary and stability verdicts undecided,
    with ``reason``; the derived expressions kept."""
    return (ZeroError(zero.limit, None, zero.leading_order, False, reason),
            BinaryView(binary.expression, binary.derivative, None, None, None, reason=reason),
            _undecided_stability(classes, smoothing, reason, reason))
