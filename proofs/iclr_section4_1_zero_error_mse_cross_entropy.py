"""ICLR §4.1, eq. 13–15: the zero-training-error regime of MSE and cross-entropy.

**Claim.** (eq. 13) For MSE, ``γ = 2y − 2h = 0`` once ``h = y``: no update at zero
error. (eq. 14–15) For cross-entropy, the non-target ``γ = y/h`` is ``0/0`` at zero
error; approached as a limit (non-targets ``h = ε``, target ``1 − (n−1)ε``,
``ε → 0⁺``) the non-target coefficient is 0 and the target's is 1, so the rule keeps
raising the target: zero error attracts.

**Proof.** Substitute; take the limits; compute ``Δ(ε) = γ_T(1−ε) − γ_N(ε/(n−1))``
(docs/conventions.md §2.2, whose sign is the sign of the target logit's step, see the Theorem 2
proof) for every ``n ≥ 2`` and compare with the engine's ``delta``/``zero_error``.
MSE beyond the paper: γ vanishes at zero error, but ``Δ(ε) = 2nε/(n−1) > 0`` for
every ``ε > 0``, so zero error still attracts from outside, with a force vanishing
linearly in ε.

**Verdict.** CONFIRMED.
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._state import N_GENERAL, delta_first_principles
from symloss.symbols import epsilon, h, n, y

CLAIM = "At zero error MSE's γ is 0; CE's 0/0 resolves to (non-target 0, target 1): attractor"
PLACE = "ICLR §4.1, eq. 13–15"
EXPECTED = "CONFIRMED"

#: Concrete class counts on which the engine is checked besides the general n.
CLASS_COUNTS = (2, 3, 10, 100)


def prove() -> Verdict:
    proof = Proof()
    mse, ce = 2 * y - 2 * h, y / h

    # eq. 13: MSE.
    proof.identity("eq. 13: MSE γ(y, h = y) = 0", mse.subs(h, y), 0)
    delta_mse = delta_first_principles(mse, N_GENERAL)
    proof.identity("MSE Δ(ε) = 2nε/(n−1)", delta_mse, 2 * N_GENERAL * epsilon / (N_GENERAL - 1))
    proof.limit("MSE lim_{ε→0+} Δ = 0 (eq. 13's 'no change')", delta_mse, epsilon, 0, 0)
    proof.positive("MSE Δ(ε) > 0 for every ε > 0, n ≥ 2 (attracts from outside)", delta_mse)
    proof.identity("engine delta(mse, n) equals the derivation",
                   symloss.delta(symloss.loss("mse"), classes=n), delta_mse.subs(N_GENERAL, n))
    for classes in CLASS_COUNTS:
        result = symloss.zero_error(symloss.loss("mse"), classes=classes)
        proof.step(f"engine zero_error(mse, {classes}): limit 0, attractor, leading order 1",
                   result.limit == 0 and result.attractor is True and result.leading_order == 1,
                   str(result))

    # eq. 14: CE is 0/0 at exact zero error on a non-target.
    proof.step("eq. 14: CE's non-target γ at h = y = 0 is the indeterminate 0/0",
               ce.subs({y: 0, h: 0}) is sp.nan)
    # The paper's parametrization: each non-target h = ε, the target 1 − (n−1)ε.
    proof.limit("eq. 15: CE non-target coefficient → 0", ce.subs({y: 0, h: epsilon}),
                epsilon, 0, 0)
    proof.limit("eq. 15: CE target coefficient → 1",
                ce.subs({y: 1, h: 1 - (N_GENERAL - 1) * epsilon}), epsilon, 0, 1)
    delta_ce = delta_first_principles(ce, N_GENERAL)
    proof.identity("CE Δ(ε) = 1/(1−ε) (docs/conventions.md parametrization)", delta_ce,
                   1 / (1 - epsilon))
    proof.limit("CE lim_{ε→0+} Δ = 1 > 0: zero error attracts", delta_ce, epsilon, 0, 1)
    unit = sp.Symbol("u", positive=True)  # ε = u/(1+u) ∈ (0, 1)
    proof.positive("CE Δ(ε) > 0 on all of (0, 1): the pull never stops",
                   delta_ce.subs(epsilon, unit / (1 + unit)))
    proof.identity("engine delta(cross_entropy, n) = 1/(1−ε)",
                   symloss.delta(symloss.loss("cross_entropy"), classes=n), 1 / (1 - epsilon))
    for classes in (*CLASS_COUNTS, n):
        result = symloss.zero_error(symloss.loss("cross_entropy"), classes=classes)
        proof.step(f"engine zero_error(cross_entropy, {classes}) = 1, attractor",
                   result.limit == 1 and result.attractor is True, str(result))
    return proof.verdict("CONFIRMED", "MSE: γ(h = y) ≡ 0 (yet Δ = 2nε/(n−1) > 0 attracts from "
                         "outside); CE: 0/0 resolves to Δ → 1 > 0, an attractor")
