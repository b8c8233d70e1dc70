"""Learning dynamics derived from ``ℓ(y, h)`` (SPEC §2.1–2.5; ICLR §3–4, App. C, D.3).

Every quantity is derived from the loss's sympy expression by ``diff``, ``subs``
and ``limit``; nothing is written per loss. Symbols: ``ε`` is the deviation from
memorization, the symmetric state ``h_T = 1 − ε``, ``h_N = ε/(n−1)``.

>>> from symloss.catalog import loss
>>> gamma(loss("cross_entropy"))
y/h
>>> delta(loss("cross_entropy"), classes=10)
1/(1 - epsilon)
>>> zero_error(loss("baikal"), classes=10).limit
-oo
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from symloss.guard import guarded
from symloss.loss import Loss
from symloss.symbols import epsilon, eta, h, y

Classes = int | sp.Symbol
Smoothing = float | sp.Expr


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
    if not 0.0 <= value < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    return sp.Rational(str(value)) if value else sp.Integer(0)


def tidy(expression: sp.Expr) -> sp.Expr:
    """A readable form at little cost: one fraction, common factors pulled out.

    ``sp.simplify`` would be tidier but costs ~0.5 s on first use (it imports
    ``sympy.physics.units``), which is most of ``symloss analyze``'s cold budget.

    Polynomials (a family's null-epoch Δ) are expanded instead.

    >>> tidy(1 / (1 - epsilon) + epsilon / (1 - epsilon))
    (epsilon + 1)/(1 - epsilon)
    """
    if expression.is_polynomial():
        return sp.expand(expression)
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
    return -sp.diff(expr, h)


def gamma_target(loss: Loss, classes: Classes = 2, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``γ_T(h)``: γ at the target label (``y = 1`` one-hot)."""
    return at(gamma(loss), y, labels(classes, smoothing)[0])


def gamma_nontarget(loss: Loss, classes: Classes = 2, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``γ_N(h)``: γ at a non-target label (``y = 0`` one-hot)."""
    return at(gamma(loss), y, labels(classes, smoothing)[1])


def delta(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> sp.Expr:
    """``Δ(ε) = γ_T(1−ε) − γ_N(ε/(n−1))`` (SPEC §2.2).

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
    """γ at the null epoch, all ``h_k = 1/n`` (ICLR App. C)."""

    gamma_target: sp.Expr
    gamma_nontarget: sp.Expr
    delta: sp.Expr
    trainable: bool | None


def null_epoch(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0) -> NullEpoch:
    """γ_T(1/n), γ_N(1/n) and whether the target probability grows (SPEC §2.4).

    ``Δ = γ_T(1/n) − γ_N(1/n)``: the target grows iff ``Δ > 0`` (ε = (n−1)/n in
    :func:`logit_step`). ``trainable`` is ``None`` while Δ depends on parameters.

    >>> from symloss.catalog import loss
    >>> result = null_epoch(loss("baikal"), classes=10)
    >>> result.gamma_target, result.gamma_nontarget, result.trainable
    (110, 10, True)
    """
    n = _classes(classes)
    gamma_t = tidy(at(gamma_target(loss, n, smoothing), h, 1 / n))
    gamma_n = tidy(at(gamma_nontarget(loss, n, smoothing), h, 1 / n))
    difference = tidy(gamma_t - gamma_n)
    return NullEpoch(gamma_t, gamma_n, difference, sign_verdict(difference))


def sign_verdict(value: sp.Expr) -> bool | None:
    """``True`` if ``value > 0``, ``False`` if ``≤ 0``, ``None`` if undecidable.

    >>> sign_verdict(sp.Integer(3)), sign_verdict(-sp.oo), sign_verdict(sp.Symbol("a"))
    (True, False, None)
    >>> sign_verdict(sp.oo)   # sympy: oo.is_positive is False, oo.is_extended_positive True
    True
    """
    if value.has(sp.zoo, sp.nan):
        return None
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
    undecided. ``leading_order`` is the power of ε whose coefficient decided a
    zero limit (MSE's Δ vanishes like ε).
    """

    limit: sp.Expr | None
    attractor: bool | None
    leading_order: int = 0


#: Orders of ε tried when the zero-error limit is exactly 0.
MAX_LEADING_ORDER = 3


def zero_error(
    loss: Loss, classes: Classes, smoothing: Smoothing = 0.0, *, seconds: float = 5.0,
) -> ZeroError:
    """``lim_{ε→0+} Δ(ε)`` with indeterminate forms resolved as limits (SPEC §2.5).

    >>> from symloss.catalog import loss
    >>> zero_error(loss("cross_entropy"), classes=10)
    ZeroError(limit=1, attractor=True, leading_order=0)
    >>> zero_error(loss("mse"), classes=10)
    ZeroError(limit=0, attractor=True, leading_order=1)
    """
    expression = delta(loss, classes, smoothing)
    value = guarded(lambda: sp.limit(expression, epsilon, 0, "+"), seconds=seconds)
    if value is None or value.has(sp.Limit, sp.AccumBounds, sp.nan, sp.zoo):
        return ZeroError(None, None)
    if value != 0:
        return ZeroError(value, sign_verdict(value))
    for order in range(1, MAX_LEADING_ORDER + 1):
        term = expression / epsilon**order
        coefficient = guarded(lambda t=term: sp.limit(t, epsilon, 0, "+"), seconds=seconds)
        if coefficient is None or coefficient.has(sp.Limit, sp.AccumBounds, sp.nan, sp.zoo):
            return ZeroError(value, None, order)
        if coefficient != 0:
            return ZeroError(value, sign_verdict(coefficient), order)
    return ZeroError(value, None, MAX_LEADING_ORDER)


def decompose(loss: Loss) -> dict[str, sp.Expr] | None:
    """γ's coefficients over monomials ``h^i y^j`` (ICLR eq. 12), or ``None`` if not polynomial.

    Names follow the paper: ``c1`` for the constant, then one ``h`` per power
    of h and one ``y`` per power of y (``ch``, ``chh``, ``chy``, ``cy``, ``cyy``).

    >>> from symloss.catalog import loss
    >>> decompose(loss("mse"))
    {'c1': 0, 'ch': -2, 'chh': 0, 'chy': 0, 'cy': 2, 'cyy': 0}
    """
    expression = sp.expand(gamma(loss))
    if not expression.is_polynomial(h, y):
        return None
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
    """
    collapsed = sp.expand(at(gamma(loss), h, y))
    if not collapsed.is_polynomial(y):
        return None
    polynomial = sp.Poly(collapsed, y)
    degree = max(polynomial.degree(), 2)
    names = "abcdefghijk"
    return {names[power]: polynomial.coeff_monomial(y**power) for power in range(degree + 1)}
