"""The symmetric state of docs/conventions.md §1, written out from first principles for the proofs.

Target probability ``h_T = 1 − ε``, each of the ``n − 1`` non-targets ``h_N = ε/(n−1)``.
``m = n − 2 ≥ 0`` lets sympy know that ``n ≥ 2`` (``symloss.symbols.n`` only knows
``n ≥ 1``), which limits and sign arguments over a general ``n`` need.
"""

from __future__ import annotations

import sympy as sp

from symloss.proofs._framework import Proof
from symloss.symbols import epsilon, h, y

#: n − 2, so that n = m + 2 is provably ≥ 2.
m = sp.Symbol("m", integer=True, nonnegative=True)
N_GENERAL = m + 2


def delta_first_principles(gamma: sp.Expr, classes: sp.Expr, target: sp.Expr = 1,
                           nontarget: sp.Expr = 0) -> sp.Expr:
    """``Δ(ε) = γ(y_T, 1−ε) − γ(y_N, ε/(n−1))`` from a γ written by hand."""
    return (gamma.subs({y: target, h: 1 - epsilon})
            - gamma.subs({y: nontarget, h: epsilon / (classes - 1)}))


def entropy(classes: sp.Expr) -> sp.Expr:
    """Shannon entropy of the symmetric state: ``−(1−ε)log(1−ε) − ε log(ε/(n−1))``."""
    return -(1 - epsilon) * sp.log(1 - epsilon) - epsilon * sp.log(epsilon / (classes - 1))


def entropy_rises_with_epsilon(proof: Proof) -> None:
    """Steps: ``dH/dε = log((1−ε)(n−1)/ε) > 0`` on ``(0, (n−1)/n)``, for every ``n ≥ 2``."""
    slope = sp.diff(entropy(N_GENERAL), epsilon)
    proof.identity("entropy of the state: dH/dε = log((1−ε)(n−1)/ε)",
                   sp.expand_log(slope, force=True),
                   sp.expand_log(sp.log((1 - epsilon) * (N_GENERAL - 1) / epsilon), force=True))
    t = sp.Symbol("t", positive=True)  # ε = ((n−1)/n)·t/(1+t) ∈ (0, (n−1)/n)
    inside = (N_GENERAL - 1) / N_GENERAL * t / (1 + t)
    proof.identity("with ε = ((n−1)/n)·t/(1+t), t > 0: (1−ε)(n−1)/ε = 1 + n/t",
                   (1 - inside) * (N_GENERAL - 1) / inside, 1 + N_GENERAL / t)
    proof.positive("so (1−ε)(n−1)/ε > 1, and dH/dε > 0 on (0, (n−1)/n): entropy rises with ε",
                   N_GENERAL / t)


__all__ = ["N_GENERAL", "delta_first_principles", "entropy", "entropy_rises_with_epsilon", "m"]
