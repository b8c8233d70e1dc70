"""Equilibria of the one-step dynamics, and where the null epoch goes (conventions §2.2–2.3).

See docs/conventions.md §2.2–2.3 for Δ(ε) and the attraction A(ε).

In the symmetric state one SGD step moves the target logit by ``η' ε(1−ε)·Δ(ε)``,
so the target probability grows (ε falls) where ``Δ > 0`` and shrinks (ε rises)
where ``Δ < 0``: ``sign A = sign Δ``. An **equilibrium** is a zero ``ε*`` of Δ
in ``(0, (n−1)/n]``. It **attracts** (``stable``) when ε is pushed back from both
sides — ``Δ < 0`` just below ``ε*`` (ε rises toward it) and ``Δ > 0`` just above
(ε falls toward it); it **repels** with the signs reversed; where Δ touches zero
without changing sign it attracts from one side only (``stable = None``).

That is the small-step (flow) limit. A finite step ``η`` (the papers' scale)
overshoots an attracting ``ε*`` once the map ``ε ↦ ε − A(ε)`` has slope below
−1, i.e. ``η ≥ 2(n−1) / ((ε*(1−ε*))² Δ'(ε*))``: each equilibrium reports that
bound as ``max_stable_lr``.

The **null epoch's basin**: a training that starts at ``ε = (n−1)/n`` either does
not leave it (``collapse``: Δ ≤ 0 there, untrainable), or ε falls until the first
zero of Δ below the null epoch (``equilibrium``, target probability ``1 − ε*``),
or it falls all the way (``zero_error``: Δ > 0 on all of ``(0, (n−1)/n]``).
An equilibrium's **implied label smoothing** is the α whose smoothed one-hot
target has the same probabilities: ``1 − ε* = 1 − α + α/n``, ``α = ε*·n/(n−1)``.

Methods: **exact** when Δ is rational in ε (its numerator's real roots isolated
exactly, poles from its denominator) or ``solveset`` finds finitely many zeros;
otherwise **numeric**: sign changes of float64 Δ on a grid, refined by bisection
to a bracket (a sign change of a continuous function holds a zero; a bracket
where |Δ| grows is a pole, not an equilibrium). Zeros that touch without a sign
change, or two zeros in one grid cell, can escape the numeric method; ε below
:data:`SCAN_MIN` is decided by the zero-error limit. What neither decides is
*undecided*, with the reason.

One module, just over the ~400-line aim: the exact and the numeric methods fill the
same :class:`Equilibrium` and :class:`Basin` values and :func:`stability` falls back
from one to the other; split, the fallback would span two files.

>>> from symloss.catalog import loss
>>> result = stability(loss("baikal"), classes=10)
>>> [(str(e.exact), round(e.target_probability, 4), e.stable) for e in result.equilibria]
[('1 - sqrt(10)/10', 0.3162, True)]
>>> result.null_epoch_basin.kind, stability(loss("cross_entropy"), 10).null_epoch_basin.kind
('equilibrium', 'zero_error')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from symloss.bounds import TooLarge
from symloss.dynamics import (
    UNDECIDED,
    Classes,
    Smoothing,
    _classes,
    _smoothing,
    delta,
    null_epoch,
    sign_verdict,
    zero_error,
)
from symloss.guard import bounded
from symloss.loss import Loss
from symloss.symbols import epsilon

#: Smallest ε the numeric scan looks at; below it the zero-error limit decides.
SCAN_MIN = 1e-12
#: Grid points of the numeric scan (a quarter of them geometric toward ε = 0).
SCAN_POINTS = 2048
#: Bisection halvings of each numeric bracket (down to float64 resolution).
BISECTIONS = 64
#: The highest degree of Δ's numerator whose real roots are isolated exactly.
MAX_EXACT_DEGREE = 24
BASIN_KINDS = ("zero_error", "equilibrium", "collapse", "undecided")


def implied_smoothing(eps: float, classes: int) -> float:
    """The label smoothing α whose target probability ``1 − α + α/n`` is ``1 − ε``.

    >>> implied_smoothing(0.09, 10)   # cross-entropy with α = 0.1 rests at ε = 0.09
    0.1
    """
    return eps / (classes - 1) * classes


def max_stable_lr(eps: float, slope: float, classes: int) -> float:
    """The papers' step ``η`` beyond which one step overshoots an attracting ``ε*``.

    ``A'(ε*) = η (ε*(1−ε*))² Δ'(ε*) / (n−1)`` (differentiate docs/conventions.md §2.3
    at ``Δ = 0``); the map ``ε ↦ ε − A(ε)`` contracts iff ``0 < A'(ε*) < 2``.
    ``inf`` when ``Δ'(ε*) ≤ 0`` is not finite-step limited (it does not attract).
    """
    curvature = (eps * (1 - eps)) ** 2 * slope
    return 2 * (classes - 1) / curvature if curvature > 0 else math.inf


@dataclass(frozen=True)
class Equilibrium:
    """A zero of Δ in ``(0, (n−1)/n]``; ``interval`` brackets it (a point when exact)."""

    epsilon: float
    target_probability: float
    stable: bool | None
    implied_smoothing: float
    interval: tuple[float, float]
    exact: sp.Expr | None = None
    max_stable_lr: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "target_probability": self.target_probability,
                "stable": self.stable, "implied_smoothing": self.implied_smoothing,
                "interval": list(self.interval),
                "exact": None if self.exact is None else str(self.exact),
                "max_stable_lr": self.max_stable_lr}


@dataclass(frozen=True)
class Basin:
    """Where one-step training from the null epoch goes: one of :data:`BASIN_KINDS`."""

    kind: str
    epsilon: float | None = None
    target_probability: float | None = None
    implied_smoothing: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": self.kind, "epsilon": self.epsilon,
                                  "target_probability": self.target_probability,
                                  "implied_smoothing": self.implied_smoothing}
        if self.reason:
            result["reason"] = self.reason
        return result


@dataclass(frozen=True)
class Stability:
    """The equilibria (ascending ε), the null epoch's basin, and how they were found."""

    classes: int
    smoothing: float
    equilibria: tuple[Equilibrium, ...]
    null_epoch_basin: Basin
    method: str  # "exact", "numeric" or "undecided"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"equilibria": [e.to_dict() for e in self.equilibria],
                "null_epoch_basin": self.null_epoch_basin.to_dict(),
                "method": self.method, **({"reason": self.reason} if self.reason else {})}


@dataclass(frozen=True)
class Scan:
    """The numeric scan's brackets: zeros (with the signs of Δ either side), poles, undefined."""

    zeros: tuple[tuple[float, float, float, float], ...]  # (low, high, sign below, sign above)
    poles: tuple[tuple[float, float], ...]
    undefined: tuple[tuple[float, float], ...]


def scan_grid(top: float, points: int = SCAN_POINTS) -> np.ndarray:
    """ε from :data:`SCAN_MIN` (geometric) then linear to ``top``, the null epoch included."""
    knee = min(0.01, top / 2)
    return np.unique(np.concatenate([np.geomspace(SCAN_MIN, knee, points // 4),
                                     np.linspace(knee, top, points - points // 4)]))


def scan(function: Callable[[np.ndarray], np.ndarray], top: float,
         points: int = SCAN_POINTS) -> Scan:
    """Sign changes of a vectorized ``Δ(ε)`` on :func:`scan_grid`, bisected to brackets.

    >>> found = scan(lambda e: e - 0.25, 0.9)
    >>> low, high, below, above = found.zeros[0]
    >>> round(low, 12), below, above, found.poles
    (0.25, -1.0, 1.0, ())
    """
    grid = scan_grid(top, points)
    with np.errstate(all="ignore"):
        values = np.asarray(function(grid), dtype=float)
    finite = np.isfinite(values)
    signs = np.where(finite, np.sign(values), np.nan)
    zeros, poles = [], []
    for start, stop in _runs(finite & (values == 0)):  # Δ exactly zero on grid points
        below = signs[start - 1] if start > 0 else np.nan
        above = signs[stop + 1] if stop + 1 < len(grid) else np.nan
        zeros.append((grid[start], grid[stop], below, above))
    cells = np.flatnonzero(finite[:-1] & finite[1:] & (signs[:-1] * signs[1:] < 0))
    low, high = grid[cells], grid[cells + 1]
    value_low = values[cells]
    with np.errstate(all="ignore"):
        for _ in range(BISECTIONS):
            middle = (low + high) / 2
            value = np.asarray(function(middle), dtype=float)
            same = np.sign(value) == np.sign(value_low)
            low, value_low = np.where(same, middle, low), np.where(same, value, value_low)
            high = np.where(same | (value == 0), np.where(value == 0, middle, high), middle)
            low = np.where(value == 0, middle, low)
        ends = np.abs(np.asarray(function(np.concatenate([low, high])), dtype=float))
    start = np.minimum(np.abs(values[cells]), np.abs(values[cells + 1]))
    end = np.maximum(ends[:len(cells)], ends[len(cells):])
    for index, cell in enumerate(cells):
        if np.isfinite(end[index]) and end[index] <= start[index]:
            zeros.append((low[index], high[index], signs[cell], signs[cell + 1]))
        else:
            poles.append((float(low[index]), float(high[index])))
    undefined = [(grid[max(a - 1, 0)], grid[min(b + 1, len(grid) - 1)])
                 for a, b in _runs(~finite)]
    zeros = [tuple(float(v) for v in z) for z in sorted(zeros)]
    return Scan(tuple(zeros), tuple(poles), tuple((float(a), float(b)) for a, b in undefined))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` index of each run of ``True``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def _classify(below: float, above: float) -> bool | None:
    if below < 0 < above:
        return True
    if below > 0 > above:
        return False
    return None


def basin(trainable: bool | None, equilibria: tuple[Equilibrium, ...], top: float,
          obstacles: tuple[tuple[float, float], ...] = (), reason: str = "") -> Basin:
    """Where the null epoch is carried, given its verdict, the zeros and any poles or gaps.

    ``obstacles`` are brackets where Δ is undefined or has a pole: a training that
    meets one before a zero is undecided.
    """
    if trainable is None:
        return Basin("undecided", reason=reason or "the null epoch's verdict is undecided")
    if not trainable:
        return Basin("collapse", top, 1 - top, None,
                     "Δ ≤ 0 at the null epoch: the target probability does not grow")
    below = [e for e in equilibria if e.interval[1] < top]
    stop = max(below, key=lambda e: e.epsilon, default=None)
    blocked = [b for b in obstacles if b[0] < top and (stop is None or b[1] > stop.epsilon)]
    if blocked:
        low, high = max(blocked)
        return Basin("undecided", reason=f"Δ has a pole or is undefined on ε ∈ [{low:.6g}, "
                     f"{high:.6g}], between the null epoch and any equilibrium")
    if stop is None:
        return Basin("zero_error", reason=reason)
    return Basin("equilibrium", stop.epsilon, stop.target_probability, stop.implied_smoothing,
                 reason)


def stability(loss: Loss, classes: Classes, smoothing: Smoothing = 0.0, *,
              seconds: float = 5.0) -> Stability:
    """The equilibria of Δ and the null epoch's basin (see the module docstring).

    >>> from symloss.catalog import loss
    >>> smoothed = stability(loss("cross_entropy"), classes=10, smoothing=0.1)
    >>> [(str(e.exact), e.implied_smoothing) for e in smoothed.equilibria]
    [('9/100', 0.1)]
    """
    n = int(_classes(classes))
    alpha = float(_smoothing(smoothing))
    if loss.is_family:
        return _undecided(n, alpha, "depends on the parameters (a family: see "
                          "symloss.stability_batch)")
    top = sp.Rational(n - 1, n)
    expression = delta(loss, n, alpha)
    if expression.has(sp.nan, sp.zoo):
        return _undecided(n, alpha, "Δ(ε) is undefined at the labels")
    trainable = bounded(lambda: null_epoch(loss, n, alpha).trainable, seconds=seconds,
                        undecided_on=UNDECIDED).value  # None: undecided, as the basin says
    exact = expression.xreplace({f: sp.Rational(f) for f in expression.atoms(sp.Float)})
    outcome = bounded(lambda: _exact_zeros(exact, top), seconds=seconds, undecided_on=UNDECIDED)
    function = _real(sp.lambdify(epsilon, expression, modules="numpy"))
    found = None
    if outcome.value is not None:
        zeros, poles = outcome.value
        if poles is None:  # not rational: continuity from the scan, which must agree
            found = scan(function, float(top))
            obstacles = found.poles + found.undefined
            if not all(any(low - 1e-9 <= float(z) <= high + 1e-9 for z in zeros)
                       for low, high, *_ in found.zeros):
                outcome = outcome.__class__(None, "solveset missed a sign change")
        else:
            obstacles = tuple((float(p), float(p)) for p in poles)
    if outcome.value is not None:
        critical = sorted([*zeros, *(sp.Float(a) for a, _ in obstacles)], key=float)
        equilibria = tuple(_exact_equilibrium(exact, z, critical, top, n) for z in zeros)
        return Stability(n, alpha, equilibria, basin(trainable, equilibria, float(top),
                                                     obstacles), "exact")
    found = found or scan(function, float(top))
    equilibria = tuple(numeric_equilibrium(z, n, function) for z in found.zeros)
    result = basin(trainable, equilibria, float(top), found.poles + found.undefined)
    if result.kind == "zero_error":
        result = _near_zero(result, loss, n, alpha, seconds)
    return Stability(n, alpha, equilibria, result, "numeric",
                     f"no exact zeros ({outcome.reason or 'sympy finds no finite set'}): "
                     f"sign changes on {SCAN_POINTS} points, bisected")


def _undecided(n: int, alpha: float, reason: str) -> Stability:
    return Stability(n, alpha, (), Basin("undecided", reason=reason), "undecided", reason)


def _near_zero(result: Basin, loss: Loss, n: int, alpha: float, seconds: float) -> Basin:
    """Below :data:`SCAN_MIN` the zero-error limit decides whether Δ stays positive."""
    if zero_error(loss, n, alpha, seconds=seconds).attractor:
        return result
    return Basin("undecided", reason=f"no zero of Δ on [{SCAN_MIN:g}, (n−1)/n] but the "
                 "zero-error limit does not confirm Δ > 0 below it")


def _real(function: Callable) -> Callable[[np.ndarray], np.ndarray]:
    def evaluate(eps: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            values = np.asarray(function(eps))
        if np.iscomplexobj(values):
            values = np.where(values.imag == 0, values.real, np.nan)
        return np.broadcast_to(values.astype(float), np.shape(eps)).copy()
    return evaluate


def numeric_equilibrium(zero: tuple[float, float, float, float], n: int,
                        function: Callable) -> Equilibrium:
    """An equilibrium from a :func:`scan` zero bracket (slope by central difference)."""
    low, high, below, above = zero
    eps = high  # a run of zeros: a training arriving from above stops at its top
    stable = _classify(below, above)
    step = max(abs(high) * 1e-6, 1e-12)
    slope = float(np.diff(function(np.array([eps - step, eps + step])))[0] / (2 * step))
    bound = max_stable_lr(eps, slope, n) if stable and math.isfinite(slope) else math.inf
    return Equilibrium(eps, 1 - eps, stable, implied_smoothing(eps, n), (low, high), None, bound)


def _exact_zeros(exact: sp.Expr, top: sp.Rational):
    """Exact zeros of Δ on ``(0, top]`` and, when Δ is rational, its poles there.

    ``None`` when sympy cannot list the zeros (or Δ ≡ 0, a continuum); poles ``None``
    when Δ is not rational (the numeric scan finds them).
    """
    if exact.is_rational_function(epsilon):
        numerator, denominator = sp.fraction(sp.cancel(sp.together(exact)))
        numerator, denominator = sp.Poly(numerator, epsilon), sp.Poly(denominator, epsilon)
        if numerator.is_zero:
            return None
        if max(numerator.degree(), denominator.degree()) > MAX_EXACT_DEGREE:
            raise TooLarge(f"Δ's numerator or denominator has degree above {MAX_EXACT_DEGREE}")
        return _in_range(_real_roots(numerator), top), _in_range(_real_roots(denominator), top)
    found = sp.solveset(exact, epsilon, sp.Interval.Lopen(0, top))
    if isinstance(found, sp.Intersection):  # roots in radicals, intersected with the interval
        finite = [a for a in found.args if isinstance(a, sp.FiniteSet)]
        found = finite[0] if len(finite) == 1 else found
    if not isinstance(found, sp.FiniteSet):
        return None
    return _in_range(found, top), None


def _real_roots(poly: sp.Poly) -> list[sp.Expr]:
    """The real roots, in radicals where each evaluates to 30 digits, else as ``CRootOf``.

    Radicals read well (Baikal's ε* = 1 − √10/10) but can cancel beyond what evalf
    resolves: with a coefficient of 1e-190, (−b + √(b² − 4ac))/2a came out as 0
    (found by hypothesis). ``CRootOf`` isolates each root by intervals, so it
    evaluates to any precision.
    """
    roots = poly.real_roots()
    try:
        for root in roots:
            sp.N(root, 30, strict=True)
    except sp.core.evalf.PrecisionExhausted:
        return poly.real_roots(radicals=False)
    return roots


#: Imaginary parts below this (at 30 digits) are rounding in roots written with radicals.
IMAGINARY_TOLERANCE = 1e-25


def _in_range(values, top: sp.Rational) -> list[sp.Expr]:
    """The real values in ``(0, top]``, ascending, each once (30-digit comparisons)."""
    kept = {}
    for value in values:
        real, imaginary = (float(part) for part in sp.N(value, 30).as_real_imag())
        if abs(imaginary) <= IMAGINARY_TOLERANCE and real > 0 and \
                real <= float(top) * (1 + 1e-15):
            kept.setdefault(round(real, 15), value)
    return [kept[key] for key in sorted(kept)]


def _exact_equilibrium(expression: sp.Expr, value: sp.Expr, critical: list[sp.Expr],
                       top: sp.Rational, n: int) -> Equilibrium:
    """Signs of Δ halfway to the neighbouring zeros or poles (constant in between)."""
    index = critical.index(value)
    lower = critical[index - 1] if index > 0 else sp.Integer(0)
    upper = critical[index + 1] if index + 1 < len(critical) else (1 + top) / 2
    signs = [_sign_at(expression, (float(value) + float(side)) / 2) for side in (lower, upper)]
    stable = _classify(*signs)
    eps = float(sp.N(value, 17))
    slope = complex(sp.N(sp.diff(expression, epsilon).subs(epsilon, value), 17)).real
    bound = max_stable_lr(eps, slope, n) if stable else math.inf
    alpha = float(sp.N(value * n / (n - 1), 17))
    return Equilibrium(eps, float(sp.N(1 - value, 17)), stable, alpha, (eps, eps), value, bound)


def _sign_at(expression: sp.Expr, point: float) -> float:
    value = sp.N(expression.subs(epsilon, sp.Rational(point)), 30)
    verdict = sign_verdict(value)
    if verdict is None:
        return math.nan
    return 1.0 if verdict else (-1.0 if sign_verdict(-value) else 0.0)
