"""A family's analysis derived once, evaluated per candidate in microseconds.

Inside a search every candidate is a member of one family (TaylorGLO's λ, a
GP tree's coefficients). Deriving γ, the null epoch and the zero-error limit
per candidate would repeat the same symbolic work; here it is done once, on
the family, and lambdified over the parameters. A candidate's analysis is then
a handful of numpy evaluations.

The zero-error limit is compiled only when the family's ``Δ(ε)`` is a
polynomial in ``ε`` (TaylorGLO: ``b + c``, ICLR §4.1); otherwise it stays
per candidate (:func:`symloss.dynamics.zero_error`).

>>> from symloss.catalog import taylorglo
>>> compiled = compile_family(taylorglo(3), classes=10)
>>> result = compiled.evaluate([0, 0, 0, -1, 0, 2, 0, 0])   # MSE
>>> result["null_epoch_delta"], result["trainable"], result["zero_error_limit"]
(2.0, True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from symloss.dynamics import delta, gamma_nontarget, gamma_target
from symloss.loss import Loss
from symloss.symbols import epsilon, h


@dataclass(frozen=True)
class CompiledFamily:
    """Numeric functions of the family's parameters (see the module docstring)."""

    family: Loss
    classes: int
    smoothing: float
    functions: dict[str, Callable[..., float]]  # scalar, on floats (the math module)
    vectorized: dict[str, Callable[..., np.ndarray]]  # on numpy columns

    def evaluate(self, values: Sequence[float]) -> dict[str, float | bool | None]:
        """The analysis of one member: null-epoch γ's, Δ, verdicts and the zero-error limit."""
        if len(values) != len(self.family.parameters):
            raise ValueError(f"{self.family.name} takes {len(self.family.parameters)} values, "
                             f"got {len(values)}")
        point = [float(v) for v in values]
        result: dict[str, float | bool | None] = {
            name: float(function(*point)) for name, function in self.functions.items()}
        result["trainable"] = bool(result["null_epoch_delta"] > 0)
        result["paper_trainable"] = bool(result["paper_condition"] >= 0)
        limit = result.get("zero_error_limit")
        result["zero_error_attractor"] = None if limit is None or limit == 0 else bool(limit > 0)
        return result

    def evaluate_batch(self, candidates: np.ndarray) -> dict[str, np.ndarray]:
        """The same for an ``[N, p]`` batch, vectorized."""
        columns = np.ascontiguousarray(np.asarray(candidates, dtype=float).T)
        size = columns.shape[1]
        return {name: np.broadcast_to(np.asarray(function(*columns), dtype=float), (size,))
                for name, function in self.vectorized.items()}


def compile_family(family: Loss, classes: int, smoothing: float = 0.0) -> CompiledFamily:
    """Derive the family's null epoch, conditions and zero-error limit; lambdify them."""
    return _compile(family.unbind(), int(classes), float(smoothing))


@lru_cache(maxsize=64)
def _compile(family: Loss, classes: int, smoothing: float) -> CompiledFamily:
    n = sp.Integer(classes)
    gamma_t = sp.expand(gamma_target(family, n, smoothing).subs(h, 1 / n))
    gamma_n = sp.expand(gamma_nontarget(family, n, smoothing).subs(h, 1 / n))
    expressions = {
        "null_epoch_gamma_target": gamma_t,
        "null_epoch_gamma_nontarget": gamma_n,
        "null_epoch_delta": sp.expand(gamma_t - gamma_n),
        "paper_condition": sp.expand(gamma_t - (n - 1) * gamma_n),
    }
    difference = sp.expand(delta(family, n, smoothing))
    if difference.is_polynomial(epsilon):
        expressions["zero_error_limit"] = difference.subs(epsilon, 0)
    functions = {name: sp.lambdify(family.parameters, expression, modules="math")
                 for name, expression in expressions.items()}
    vectorized = {name: sp.lambdify(family.parameters, expression, modules="numpy")
                  for name, expression in expressions.items()}
    return CompiledFamily(family, classes, smoothing, functions, vectorized)
