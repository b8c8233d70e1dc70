"""Learning dynamics derived from ``ℓ(y, h)`` (docs/conventions.md §2.1–2.5; ICLR §3–4, D.3).

Every quantity is derived from the loss's sympy expression by ``diff``, ``subs``
and ``limit``; nothing is written per loss. Symbols: ``ε`` is the deviation from
memorization, the symmetric state ``h_T = 1 − ε``, ``h_N = ε/(n−1)``.

One module, over the ~400-line aim: γ, Δ(ε), the null epoch and the zero-error limit
are one derivation chain from ``ℓ`` sharing its conventions (``labels``, ``at``,
``tidy``, the class and smoothing checks); split, each step would import the previous
one's private helpers.

>>> from symloss.catalog import loss
>>> gamma(loss("cross_entropy"))
y/h
>>> delta(loss("cross_entropy"), classes=10)
1/(1 - epsilon)
>>> zero_error(loss("baikal"), classes=10).limit
-oo
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from symloss.bounds import TooLarge, expanded_degree, is_zero_number, zero_constants
from symloss.bounds import expand as bounded_expand
from symloss.branches import has_kinks, near_zero, one_sided
from symloss.guard import bounded
from symloss.loss import Loss
from symloss.symbols import epsilon, eta, h, y

Classes = int | sp.Symbol
Smoothing = float | sp.Expr

#: The smallest non-zero label smoothing (smaller ones would only carry huge denominators).
MIN_SMOOTHING = 1e-9
#: What sympy may raise on an expression it cannot handle: the step is undecided.
UNDECIDED = (NotImplementedError, TypeError, ValueError, AttributeError, ArithmeticError,
             TooLarge)


def _classes(classes: Classes) -> sp.Expr:
    if isinstance(classes, sp.Symbol):
        return classes
    if isinstance(classes, sp.Integer) and classes >= 2:
        return classes
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    return sp.Integer(int(classes))


def _smoothing(smoothing: Smoothing) -> sp.Expr:
    if isinstance(smoothing, sp.Basic):
        return smoothing
    value = float(smoothing)
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if 0.0 < value < MIN_SMOOTHING:
        raise ValueError(f"smoothing must be 0 or at least {MIN_SMOOTHING:g}, got {smoothing!r}")
    return sp.Rational(str(value)) if value else sp.Integer(0)


def tidy(expression: sp.Expr) -> sp.Expr:
    """A readable form at little cost: one fraction, common factors pulled out.

    ``sp.simplify`` would be tidier but costs ~0.5 s on first use (it imports
    ``sympy.physics.units``), which is most of ``symloss analyze``'s cold budget.

    Polynomials (a family's null-epoch Δ) are expanded instead, when small
    enough (:func:`symloss.bounds.check_expandable`); larger ones stay as they are.

    >>> tidy(1 / (1 - epsilon) + epsilon / (1 - epsilon))
    (epsilon + 1)/(1 - epsilon)
    """
    try:
        if expression.is_polynomial():
            return bounded_expand(expression)
    except TooLarge:
        return expression
    return _evaluated(sp.factor_terms(sp.together(expression)))


def _evaluated(expression: sp.Expr) -> sp.Expr:
    # factor_terms can leave unevaluated products such as Mul(-1, 1, 5); rebuild them.
    if not expression.args:
        return expression
    return expression.func(*(_evaluated(argument) for argument in expression.args))


def at(expression: sp.Expr, symbol: sp.Symbol, value: sp.Expr) -> sp.Expr:
    """``expression`` with ``symbol = value``; ``nan`` where sympy finds it undefined.

    A loss may be undefined at a label or a probability (``Max(1/Abs(y), …)`` at
    ``y = 0``); sympy then raises while building the substituted expression. That
    is an *undefined* value for the derivations, which report it as undecided.

    >>> at(1 / y, y, 0), at(sp.Max(h / sp.Abs(y), y), y, 0)
    (zoo, nan)
    """
    try:
        return expression.subs(symbol, value)
    except (ValueError, TypeError):
        return sp.nan


def labels(classes: Classes, smoothing: Smoothing = 0.0) -> tuple[sp.Expr, sp.Expr]:
    """Target and non-target label values after smoothing by α (ICLR App. D.2).

    ``y → y(1−α) + α/n``: the target gets ``1 − α + α/n``, a non-target ``α/n``.

    >>> labels(10, 0.1)
    (91/100, 1/100)
    """
    n, a = _classes(classes), _smoothing(smoothing)
    return 1 - a + a / n, a / n


def gamma(loss: Loss) -> sp.Expr:
    """The learning-rule coefficient ``γ(y, h) = −∂ℓ/∂h`` (ICLR eq. 3).

    Bound values are substituted; a family keeps its parameters.

    >>> from symloss.catalog import loss
    >>> gamma(loss("mse"))
    -2*h + 2*y
    """
    return _gamma(loss.expr).xreplace(loss.substitution) if loss.values else _gamma(loss.expr)


@lru_cache(maxsize=4096)
def _gamma(expr: sp.Expr) -> sp.Expr:
    # A constant sum that is exactly zero (log 2 + log 3 − log 6) is zero: γ must know it.
    return -sp.diff(zero_constants(expr), h)


def gamma_target(loss: Loss, classes: Classes = 2, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``γ_T(h)``: γ at the target label (``y = 1`` one-hot)."""
    return at(gamma(loss), y, labels(classes, smoothing)[0])


def gamma_nontarget(loss: Loss, classes: Classes = 2, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``γ_N(h)``: γ at a non-target label (``y = 0`` one-hot)."""
    return at(gamma(loss), y, labels(classes, smoothing)[1])


def delta(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``Δ(ε) = γ_T(1−ε) − γ_N(ε/(n−1))`` (docs/conventions.md §2.2).

    >>> from symloss.catalog import loss
    >>> tidy(delta(loss("mse"), classes=10))
    20*epsilon/9
    """
    n = _classes(classes)
    return (at(gamma_target(loss, n, smoothing), h, 1 - epsilon)
            - at(gamma_nontarget(loss, n, smoothing), h, epsilon / (n - 1)))


def logit_step(
    loss: Loss, classes: Classes, lr: float | sp.Expr = eta, smoothing: Smoothing = 0.0,
) -> tuple[sp.Expr, sp.Expr]:
    """One SGD step on the logits in the symmetric state (ICLR App. D.3, eq. 52–56).

    Derived from the softmax Jacobian ``∂h_k/∂f_j = h_k(δ_kj − h_j)``:
    ``Δf_j = (η/n) Σ_k γ_k ∂h_k/∂f_j``, which in the symmetric state is
    ``Δf_T = η' ε(1−ε) Δ(ε)`` and ``Δf_N = −Δf_T/(n−1)``, ``η' = η/n``.

    >>> from symloss.catalog import loss
    >>> target, nontarget = logit_step(loss("cross_entropy"), classes=3, lr=1)
    >>> tidy(target), tidy(nontarget)
    (epsilon/3, -epsilon/6)
    """
    n = _classes(classes)
    gamma_t = at(gamma_target(loss, n, smoothing), h, 1 - epsilon)
    gamma_n = at(gamma_nontarget(loss, n, smoothing), h, epsilon / (n - 1))
    h_target, h_nontarget = 1 - epsilon, epsilon / (n - 1)
    # Σ_k γ_k h_k(δ_kj − h_j) = h_j (γ_j − Σ_k γ_k h_k): the softmax Jacobian applied to γ.
    mean_gamma = gamma_t * h_target + (n - 1) * gamma_n * h_nontarget
    step = sp.sympify(lr) / n
    return (step * h_target * (gamma_t - mean_gamma),
            step * h_nontarget * (gamma_n - mean_gamma))


def attraction(
    loss: Loss, classes: Classes, lr: float | sp.Expr = 1, smoothing: Smoothing = 0.0,
) -> sp.Expr:
    """``A(ε)``: the change of the target probability after one step (ICLR Theorem 2).

    ``A = (1−ε)e^D / (ε + (1−ε)e^D) − (1−ε)``, ``D = Δf_T − Δf_N``; ``sign A = sign Δ``.
    Positive pulls toward memorization, negative pushes away (regularization).
    """
    target, nontarget = logit_step(loss, classes, lr, smoothing)
    growth = sp.exp(target - nontarget)
    return (1 - epsilon) * growth / (epsilon + (1 - epsilon) * growth) - (1 - epsilon)


def attraction_function(
    loss: Loss, classes: int, lr: float = 1.0, smoothing: float = 0.0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorized numpy ``A(ε)`` for a concrete loss, computed stably.

    ``A = (1−ε)·ε·(e^D − 1) / (ε + (1−ε)e^D)``, evaluated with ``expm1``.

    >>> from symloss.catalog import loss
    >>> curve = attraction_function(loss("cross_entropy"), classes=10, lr=0.1)
    >>> bool(np.all(curve(np.linspace(0.01, 0.9, 5)) > 0))
    True
    """
    _require_bound(loss, "attraction_function")
    n = int(_classes(classes))
    delta_numeric = delta_function(loss, n, smoothing)
    scale = lr / n * n / (n - 1)

    def curve(eps: np.ndarray) -> np.ndarray:
        eps = np.asarray(eps, dtype=float)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            exponent = scale * eps * (1 - eps) * delta_numeric(eps)
            growth = np.expm1(exponent)
            value = (1 - eps) * eps * growth / (eps + (1 - eps) * (growth + 1))
            # e^D overflowed: the target probability went to 1.
            value = np.where(np.isinf(growth) & (exponent > 0), eps, value)
        return value

    return curve


def delta_function(
    loss: Loss, classes: int, smoothing: float = 0.0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorized numpy ``Δ(ε)`` for a concrete loss."""
    _require_bound(loss, "delta_function")
    expression = delta(loss, classes, smoothing)
    if expression.has(sp.zoo, sp.nan):
        raise ValueError(f"loss {loss.name!r} is undefined at the labels (Δ(ε) = {expression}); "
                         "a loss must be finite at y = 0 and y = 1")
    function = sp.lambdify(epsilon, expression, modules="numpy")

    def evaluate(eps: np.ndarray) -> np.ndarray:
        eps = np.asarray(eps, dtype=float)
        with np.errstate(all="ignore"):
            values = np.asarray(function(eps))
            if np.iscomplexobj(values):  # e.g. a log of a negative: not a real Δ there
                values = np.where(values.imag == 0, values.real, np.nan)
            return np.broadcast_to(values.astype(float), eps.shape).copy()

    return evaluate


def _require_bound(loss: Loss, what: str) -> None:
    if loss.is_family:
        names = ", ".join(str(p) for p in loss.parameters)
        raise ValueError(f"{what} needs a concrete loss; bind the parameters {names} first")


@dataclass(frozen=True)
class NullEpoch:
    """γ at the null epoch, all ``h_k = 1/n`` (ICLR App. C).

    ``delta_range`` is set at a kink exactly at ``h = 1/n``: the lowest and highest Δ
    over the subgradients there; the verdict is decided only when they agree.
    ``reason`` says why ``trainable`` is undecided (or what it depends on).
    """

    gamma_target: sp.Expr
    gamma_nontarget: sp.Expr
    delta: sp.Expr
    trainable: bool | None
    delta_range: tuple[sp.Expr, sp.Expr] | None = None
    reason: str = ""


def null_epoch(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> NullEpoch:
    """γ_T(1/n), γ_N(1/n) and whether the target probability grows (docs/conventions.md §2.4).

    ``Δ = γ_T(1/n) − γ_N(1/n)``: the target grows iff ``Δ > 0`` (ε = (n−1)/n in
    :func:`logit_step`). ``trainable`` is ``None`` while Δ depends on parameters,
    when γ is not real there, and at a kink whose subgradients disagree.

    >>> from symloss.catalog import loss
    >>> result = null_epoch(loss("baikal"), classes=10)
    >>> result.gamma_target, result.gamma_nontarget, result.trainable
    (110, 10, True)
    >>> kinked = null_epoch(loss("(1-y)*Abs(h-0.1) - 0.5*y*h"), classes=10)
    >>> kinked.trainable, [float(bound) for bound in kinked.delta_range]
    (None, [-0.5, 1.5])
    """
    n = _classes(classes)
    target, nontarget = gamma_target(loss, n, smoothing), gamma_nontarget(loss, n, smoothing)
    gamma_t = tidy(at(target, h, 1 / n))
    gamma_n = tidy(at(nontarget, h, 1 / n))
    difference = tidy(gamma_t - gamma_n)
    verdict = sign_verdict(difference)
    if any(value.is_number and value.is_extended_real is False for value in (gamma_t, gamma_n)):
        return NullEpoch(gamma_t, gamma_n, difference, None,
                         reason="γ is not real at the null epoch (a complex-valued loss)")
    if not (has_kinks(target) or has_kinks(nontarget)) or not n.is_number:
        reason = "" if verdict is not None or not difference.free_symbols else \
            "depends on the parameters"
        return NullEpoch(gamma_t, gamma_n, difference, verdict, reason=reason)
    return _kinked_null_epoch(target, nontarget, n, gamma_t, gamma_n, difference, verdict)


def _kinked_null_epoch(target, nontarget, n, gamma_t, gamma_n, difference, verdict) -> NullEpoch:
    sides_t, sides_n = one_sided(target, h, 1 / n), one_sided(nontarget, h, 1 / n)
    values = [*sides_t, *sides_n, gamma_t, gamma_n]
    if any(v.has(sp.nan, sp.zoo) or v.free_symbols or v.is_extended_real is False
           for v in values):
        return NullEpoch(gamma_t, gamma_n, difference, None, reason=(
            "γ may have a kink at the null epoch and its one-sided values are undecided"))
    if all(is_zero_number(a - b) for a, b in (sides_t, sides_n, (sides_t[0], gamma_t),
                                               (sides_n[0], gamma_n))):
        return NullEpoch(gamma_t, gamma_n, difference, verdict)  # smooth at 1/n after all
    low = tidy(sp.Min(*sides_t, gamma_t) - sp.Max(*sides_n, gamma_n))
    high = tidy(sp.Max(*sides_t, gamma_t) - sp.Min(*sides_n, gamma_n))
    if sign_verdict(low):
        decided = True
    elif sign_verdict(high) is False:
        decided = False
    else:
        decided = None
    reason = (f"γ has a kink at the null epoch h = 1/n: Δ ranges over [{low}, {high}] across "
              "its subgradients" + ("; the verdict depends on the subgradient"
                                    if decided is None else ""))
    return NullEpoch(gamma_t, gamma_n, difference, decided, (low, high), reason)


def sign_verdict(value: sp.Expr) -> bool | None:
    """``True`` if ``value > 0``, ``False`` if ``≤ 0``, ``None`` if undecidable.

    A constant that is exactly zero (:func:`symloss.bounds.is_zero_number`) is
    ``≤ 0`` however sympy wrote it; a complex one is undecidable.

    >>> sign_verdict(sp.Integer(3)), sign_verdict(-sp.oo), sign_verdict(sp.Symbol("a"))
    (True, False, None)
    >>> sign_verdict(sp.oo)   # sympy: oo.is_positive is False, oo.is_extended_positive True
    True
    >>> sign_verdict(sp.log(2) + sp.log(3) - sp.log(6)), sign_verdict(sp.I)
    (False, None)
    """
    if value.has(sp.zoo, sp.nan):
        return None
    if value.is_number:
        if value.is_extended_real is False:
            return None
        if is_zero_number(value):
            return False
    positive = value.is_extended_positive
    if positive is not None:
        return bool(positive)
    if value.is_number:
        numeric = value.evalf(30)
        if numeric.is_real and numeric.is_finite is not False:
            return bool(numeric > 0)
    return None


@dataclass(frozen=True)
class ZeroError:
    """The zero-training-error regime (ICLR §4.1): ``lim_{ε→0+} Δ(ε)``.

    ``attractor`` is ``True`` when Δ > 0 near ε = 0 (zero error pulls), ``False``
    when it is negative there (it repels, as Baikal's in Theorem 1), ``None`` when
    undecided or ``neutral`` (Δ ≡ 0 near ε = 0: no step moves). ``leading_order``
    is the power of ε that decided a zero limit (MSE's Δ vanishes like ε; it may
    be fractional, ε^1.5), ``None`` when no power was found. ``reason`` says why a
    verdict is undecided or neutral.
    """

    limit: sp.Expr | None
    attractor: bool | None
    leading_order: int | float | None = 0
    neutral: bool = False
    reason: str = ""


#: The highest integer order of ε tried by limits when Δ's series cannot be taken.
MAX_LEADING_ORDER = 24


def zero_error(
    loss: Loss, classes: Classes, smoothing: Smoothing = 0.0, *, seconds: float = 5.0,
) -> ZeroError:
    """``lim_{ε→0+} Δ(ε)`` with indeterminate forms resolved as limits (docs/conventions.md §2.5).

    A zero limit is resolved by Δ's leading term, at whatever order it comes.

    >>> from symloss.catalog import loss
    >>> zero_error(loss("cross_entropy"), classes=10)
    ZeroError(limit=1, attractor=True, leading_order=0, neutral=False, reason='')
    >>> zero_error(loss("mse"), classes=10)
    ZeroError(limit=0, attractor=True, leading_order=1, neutral=False, reason='')
    >>> zero_error(loss("(h - y)**6"), classes=10).leading_order
    5
    >>> zero_error(loss("Max(0, 0.9 - h)*y"), classes=10).neutral
    True
    """
    expression = delta(loss, classes, smoothing)
    if expression.has(sp.nan, sp.zoo):
        return ZeroError(None, None, None, reason="Δ(ε) is undefined at the labels")
    expression = near_zero(expression, epsilon)
    if expression == 0:
        return _neutral()
    if expression.is_polynomial(epsilon):
        return _polynomial_zero_error(expression)
    outcome = bounded(lambda: sp.limit(expression, epsilon, 0, "+"), seconds=seconds,
                      undecided_on=UNDECIDED)
    value = outcome.value
    if value is None or value.has(sp.Limit, sp.AccumBounds, sp.nan, sp.zoo):
        return ZeroError(None, None, None, reason=f"lim ε→0+ Δ(ε) is undecided: "
                         f"{outcome.reason or 'sympy returns no value'}")
    if value.is_extended_real is False:
        return ZeroError(None, None, None, reason="Δ(ε) is not real near ε = 0")
    if not is_zero_number(value):
        return ZeroError(value, sign_verdict(value), 0)
    return _leading_order(expression, seconds)


def _neutral() -> ZeroError:
    return ZeroError(sp.Integer(0), None, None, True,
                     "Δ(ε) ≡ 0 near ε = 0: no step moves toward or away from zero error")


def _order(exponent: sp.Expr) -> int | float:
    number = float(exponent)
    return int(number) if number.is_integer() else number


def _polynomial_zero_error(expression: sp.Expr) -> ZeroError:
    """Δ's Taylor coefficients at ε = 0, lowest first, until one is non-zero."""
    current = expression
    for order in range(int(expanded_degree(expression)) + 1):
        coefficient = tidy(current.subs(epsilon, 0) / math.factorial(order))
        if coefficient.is_number and is_zero_number(coefficient):
            current = sp.diff(current, epsilon)
            continue
        verdict = sign_verdict(coefficient)
        reason = "" if verdict is not None or not coefficient.free_symbols else \
            "depends on the parameters"
        if order == 0:
            return ZeroError(coefficient, verdict, 0, reason=reason)
        return ZeroError(sp.Integer(0), verdict, order, reason=reason)
    return _neutral()


def _leading_order(expression: sp.Expr, seconds: float) -> ZeroError:
    zero = sp.Integer(0)
    outcome = bounded(lambda: expression.leadterm(epsilon), seconds=seconds,
                      undecided_on=UNDECIDED)
    if outcome.value is not None:
        coefficient, exponent = outcome.value
        decided = (exponent.is_number and exponent.is_positive and coefficient.is_number
                   and is_zero_number(coefficient) is False)
        if decided:
            return ZeroError(zero, sign_verdict(coefficient), _order(exponent))
    for order in range(1, MAX_LEADING_ORDER + 1):
        term = expression / epsilon**order
        outcome = bounded(lambda t=term: sp.limit(t, epsilon, 0, "+"), seconds=seconds,
                          undecided_on=UNDECIDED)
        coefficient = outcome.value
        if coefficient is None or coefficient.has(sp.Limit, sp.AccumBounds, sp.nan, sp.zoo):
            return ZeroError(zero, None, None, reason=(
                f"the coefficient of ε^{order} in Δ(ε) is undecided: "
                f"{outcome.reason or 'sympy returns no value'}"))
        if coefficient.is_infinite:
            return ZeroError(zero, sign_verdict(coefficient), None, reason=(
                f"Δ(ε) vanishes faster than ε^{order - 1} but slower than ε^{order}"))
        if not is_zero_number(coefficient):
            return ZeroError(zero, sign_verdict(coefficient), order)
    return ZeroError(zero, None, None, reason=(
        f"Δ(ε) vanishes faster than ε^{MAX_LEADING_ORDER} as ε → 0+: undecided "
        "(no non-zero term found up to that order)"))


def decompose(loss: Loss) -> dict[str, sp.Expr] | None:
    """γ's coefficients over monomials ``h^i y^j`` (ICLR eq. 12), or ``None`` if not polynomial.

    Names follow the paper: ``c1`` for the constant, then one ``h`` per power
    of h and one ``y`` per power of y (``ch``, ``chh``, ``chy``, ``cy``, ``cyy``).

    >>> from symloss.catalog import loss
    >>> decompose(loss("mse"))
    {'c1': 0, 'ch': -2, 'chh': 0, 'chy': 0, 'cy': 2, 'cyy': 0}

    Raises :class:`symloss.bounds.TooLarge` for a γ too large to expand.
    """
    coefficient = gamma(loss)
    if not coefficient.is_polynomial(h, y):
        return None
    expression = bounded_expand(coefficient, "γ")
    polynomial = sp.Poly(expression, h, y)
    coefficients = {_monomial_name(i, j): c for (i, j), c in polynomial.terms()}
    degree = max(polynomial.total_degree(), 2)
    names = [_monomial_name(i, j) for total in range(degree + 1)
             for i in range(total, -1, -1) for j in [total - i]]
    standard = ["c1", "ch", "chh", "chy", "cy", "cyy"]
    ordered = standard + sorted(set(names) - set(standard), key=lambda s: (len(s), s))
    return {name: coefficients.get(name, sp.Integer(0)) for name in ordered
            if name in coefficients or name in standard}


def _monomial_name(h_power: int, y_power: int) -> str:
    return "c" + ("h" * h_power + "y" * y_power or "1")


def zero_error_polynomial(loss: Loss) -> dict[str, sp.Expr] | None:
    """γ at ``h = y`` as a polynomial ``a + b·y + c·y² + …`` (ICLR eq. 20–23).

    >>> from symloss.catalog import loss
    >>> zero_error_polynomial(loss("mse"))
    {'a': 0, 'b': 0, 'c': 0}

    Powers are named ``a``, ``b``, ``c``, … up to ``z``, then ``y^26``, ``y^27``, …
    Raises :class:`symloss.bounds.TooLarge` for a γ too large to expand.
    """
    collapsed = at(gamma(loss), h, y)
    if not collapsed.is_polynomial(y):
        return None
    polynomial = sp.Poly(bounded_expand(collapsed, "γ(y, y)"), y)
    degree = max(polynomial.degree(), 2)
    return {_power_name(power): polynomial.coeff_monomial(y**power)
            for power in range(degree + 1)}


def _power_name(power: int) -> str:
    return string.ascii_lowercase[power] if power < 26 else f"y^{power}"
