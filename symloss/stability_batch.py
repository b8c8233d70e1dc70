"""The null epoch's basin for a whole family at once, vectorized over candidates.

:mod:`symloss.stability` for one loss; here for ``[N, p]`` batches of a family's
parameters, as :func:`symloss.trainability.candidate_filter` does for the
null-epoch condition. Derived once per (family, n, α):

* ``Δ(ε)`` polynomial of degree ≤ 2 in ε (TaylorGLO-3: ``γ`` is quadratic in ``h``):
  its coefficients are lambdified in λ and the largest zero below the null epoch
  comes from the quadratic formula (the cancellation-free form), per candidate;
* anything else: ``Δ(ε, λ)`` lambdified and scanned on a grid from the null epoch
  down, the first sign change bisected (a bracket where |Δ| grows is a pole: the
  basin is then undecided). The scan stops at :data:`symloss.stability.SCAN_MIN`.

Kinds are :data:`symloss.stability.BASIN_KINDS`, coded by their index.

>>> import numpy as np
>>> from symloss.catalog import taylorglo
>>> family = family_stability(taylorglo(3), classes=10)
>>> basins = family.basins(np.array([[0, 0, 0, -1, 0, 2, 0, 0], [0.0] * 8]))   # MSE, zero
>>> basins.kinds()
['zero_error', 'collapse']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from symloss.bounds import TooLarge, expand
from symloss.dynamics import _classes, _smoothing, delta
from symloss.loss import Loss
from symloss.stability import BASIN_KINDS, BISECTIONS, scan_grid
from symloss.symbols import epsilon
from symloss.trainability import trainability_condition

ZERO_ERROR, EQUILIBRIUM, COLLAPSE, UNDECIDED = range(4)
#: The ``stable`` search filter's default lowest target probability of the null epoch's
#: equilibrium. Evidence (MNIST-1D, the search's CNN, 3 seeds, 1,500 steps = 5× a search's
#: 300): along ``ℓ = (−log h + c·y/h)/(1 + c)``, whose equilibrium moves with c, losses
#: resting at target probability 0.25, 0.316 (Baikal), 0.4 reached 0.933, 0.955, 0.948 test
#: accuracy against cross-entropy's 0.885; at 0.2 it was 0.872 (par), at 0.15 0.739 and at
#: 0.12 0.455. 0.25 keeps every Baikal-like loss that beat cross-entropy and drops those
#: that fell behind. The bound is necessary, not sufficient: smoothed cross-entropy resting
#: at the same probabilities trained far worse (0.44 at 0.25), its step being smaller.
DEFAULT_MIN_TARGET_PROBABILITY = 0.25
#: Grid points of the batched scan (non-quadratic Δ).
BATCH_SCAN_POINTS = 256


@dataclass(frozen=True)
class Basins:
    """Per candidate: the basin's kind code and its equilibrium ε (NaN where none)."""

    kind: np.ndarray
    epsilon: np.ndarray

    @property
    def target_probability(self) -> np.ndarray:
        return 1 - self.epsilon

    def kinds(self) -> list[str]:
        return [BASIN_KINDS[k] for k in self.kind]


@dataclass(frozen=True)
class FamilyStability:
    """A family's basin, compiled (see the module docstring)."""

    parameters: tuple[sp.Symbol, ...]
    classes: int
    coefficients: Callable[..., list] | None  # λ columns → [c0, c1, c2] of Δ(ε) = Σ c_k ε^k
    function: Callable[..., np.ndarray]  # (ε, λ columns…) → Δ, broadcasting
    null_delta: Callable[..., np.ndarray]  # λ columns → Δ at the null epoch, simplified exactly

    def _columns(self, candidates: np.ndarray) -> np.ndarray:
        candidates = np.asarray(candidates, dtype=float)
        if candidates.ndim == 1:
            candidates = candidates[None, :]
        if candidates.ndim != 2 or candidates.shape[1] != len(self.parameters):
            raise ValueError(f"candidates must have shape [N, {len(self.parameters)}], "
                             f"got {candidates.shape}")
        return np.ascontiguousarray(candidates.T)

    def basins(self, candidates: np.ndarray) -> Basins:
        """The null epoch's basin of each row of an ``[N, p]`` array."""
        columns = self._columns(candidates)
        size = columns.shape[1]
        top = (self.classes - 1) / self.classes
        with np.errstate(all="ignore"):
            null = np.broadcast_to(np.asarray(self.null_delta(*columns), dtype=float), (size,))
            if self.coefficients is not None:
                kind, eps = _quadratic(
                    *(np.broadcast_to(np.asarray(c, dtype=float), (size,))
                      for c in self.coefficients(*columns)), top)
            else:
                kind, eps = _scan(self.function, columns, top)
            # Δ at the null epoch from its exact form: no float rounding decides a zero there.
            kind = np.where(np.isfinite(null), np.where(null > 0, kind, COLLAPSE), UNDECIDED)
        kind = np.where(np.isfinite(columns).all(axis=0), kind, UNDECIDED)
        return Basins(kind, np.where(kind == EQUILIBRIUM, eps, np.nan))

    def mask(self, candidates: np.ndarray, min_target_probability: float) -> np.ndarray:
        """``True`` where the basin is zero error, or an equilibrium at least that confident."""
        found = self.basins(candidates)
        return (found.kind == ZERO_ERROR) | ((found.kind == EQUILIBRIUM) & (
            found.target_probability >= min_target_probability))


def basin_reason(kind: str, target_probability: float, min_target_probability: float) -> str | None:
    """Why a candidate fails the stability rule (``None``: it passes).

    >>> basin_reason("equilibrium", 0.2, 0.3)
    "the null epoch's basin is an equilibrium at target probability 0.2 < 0.3"
    """
    if kind == "zero_error" or (kind == "equilibrium"
                                and target_probability >= min_target_probability):
        return None
    if kind == "collapse":
        return "untrainable at the null epoch"
    if kind == "equilibrium":
        return (f"the null epoch's basin is an equilibrium at target probability "
                f"{target_probability:.4g} < {min_target_probability:g}")
    return "the null epoch's basin is undecided"


def _quadratic(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, top: float):
    """Largest zero of ``c0 + c1 ε + c2 ε²`` in ``(0, top)`` when Δ(top) > 0."""
    trainable = c0 + top * (c1 + top * c2) > 0
    discriminant = c1 * c1 - 4 * c2 * c0
    root = np.sqrt(np.where(discriminant >= 0, discriminant, np.nan))
    q = -0.5 * (c1 + np.copysign(root, c1))
    first, second = q / c2, c0 / q
    first = np.where((first > 0) & (first < top), first, -np.inf)
    second = np.where((second > 0) & (second < top), second, -np.inf)
    largest = np.maximum(first, second)
    found = np.isfinite(largest)
    kind = np.where(~trainable, COLLAPSE, np.where(found, EQUILIBRIUM, ZERO_ERROR))
    kind = np.where(np.isfinite(c0 + c1 + c2), kind, UNDECIDED)
    return kind, np.where(found, largest, np.nan)


def _scan(function: Callable, columns: np.ndarray, top: float):
    """From the null epoch down the grid to the first ε where Δ > 0 stops; bisect there."""
    grid = scan_grid(top, BATCH_SCAN_POINTS)
    rows = [c[:, None] for c in columns]
    values = np.broadcast_to(np.asarray(function(grid[None, :], *rows), dtype=float),
                             (columns.shape[1], len(grid)))
    trainable = values[:, -1] > 0
    stops = ~(values > 0)
    any_stop = stops.any(axis=1)
    last = len(grid) - 1 - np.argmax(stops[:, ::-1], axis=1)
    at_stop = values[np.arange(len(last)), last]
    kind = np.where(~trainable, COLLAPSE, np.where(any_stop, EQUILIBRIUM, ZERO_ERROR))
    kind = np.where(np.isfinite(values[:, -1]), kind, UNDECIDED)
    eps = np.where(any_stop, grid[last], np.nan)
    crossing = (kind == EQUILIBRIUM) & (at_stop != 0)
    kind = np.where(crossing & ~np.isfinite(at_stop), UNDECIDED, kind)
    index = np.flatnonzero(crossing & np.isfinite(at_stop))
    if len(index):
        low, high = grid[last[index]], grid[last[index] + 1]
        start = np.minimum(np.abs(at_stop[index]), np.abs(values[index, last[index] + 1]))
        chosen = [c[index] for c in columns]
        for _ in range(BISECTIONS):
            middle = (low + high) / 2
            positive = np.asarray(function(middle, *chosen), dtype=float) > 0
            low, high = np.where(positive, low, middle), np.where(positive, middle, high)
        end = np.maximum(np.abs(function(low, *chosen)), np.abs(function(high, *chosen)))
        eps[index] = high
        kind[index] = np.where(np.isfinite(end) & (end <= start), EQUILIBRIUM, UNDECIDED)
    return kind, eps


def family_stability(family: Loss, classes: int, smoothing: float = 0.0) -> FamilyStability:
    """Compile the family's null-epoch basin (see the module docstring)."""
    return _compile(family.unbind(), int(_classes(classes)), float(_smoothing(smoothing)))


@lru_cache(maxsize=128)
def _compile(family: Loss, classes: int, smoothing: float) -> FamilyStability:
    expression = delta(family, classes, smoothing)
    if expression.has(sp.nan, sp.zoo):
        raise ValueError(f"family {family.name!r} is undefined at the labels (Δ(ε) = "
                         f"{expression})")
    coefficients = None
    if expression.is_polynomial(epsilon):
        try:
            polynomial = sp.Poly(expand(expression, "Δ(ε)"), epsilon)
        except TooLarge:
            polynomial = None
        if polynomial is not None and polynomial.degree() <= 2:
            terms = [polynomial.coeff_monomial(epsilon**k) for k in range(3)]
            coefficients = sp.lambdify(family.parameters, terms, modules="numpy", cse=True)
    function = sp.lambdify((epsilon, *family.parameters), expression, modules="numpy", cse=True)
    null = trainability_condition(family, classes, smoothing)
    null_delta = sp.lambdify(family.parameters, null, modules="numpy", cse=True)
    return FamilyStability(family.parameters, classes, coefficients, function, null_delta)
