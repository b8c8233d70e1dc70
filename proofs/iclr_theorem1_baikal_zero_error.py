"""ICLR Theorem 1 (App. D.1, eq. 31–34): zero training error is not an attractor of Baikal.

**Claim.** Near zero error (non-targets ``h = ε/(n−1)``, target ``1 − ε``, ``ε → 0⁺``)
Baikal's coefficients are ``γ_N = (n−1)/ε`` and ``γ_T = 1/(1−ε) + 1/(1−ε)²
= (2−ε)/(1−2ε+ε²)`` (eq. 33–34); the non-target term dominates, so the update moves
the network away from zero error: ε grows.

**Proof.** From ``γ = 1/h + y/h²`` (eq. 9): substitute (eq. 33), combine (eq. 34);
``Δ(ε) = γ_T − γ_N`` has ``ε·Δ → −(n−1) < 0``, so ``Δ → −∞`` for every ``n ≥ 2``;
more strongly, ``Δ < 0`` on the whole interval ``0 < ε < 1 − 1/√2`` for every
``n ≥ 2`` (a sign argument on ``ε(1−ε)²Δ``). By the logit step of App. D.3
(``Δf_T = η' ε(1−ε) Δ``, proven in the Theorem 2 file) the target logit falls and ε
grows there. For ``n = 2`` the sign change is exactly at ``h_T = 1/√2``, the minimum
of GLO's binary Baikal (GLO §V-A). Engine: ``delta``, ``logit_step``, ``zero_error``.

**Verdict.** CONFIRMED.
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._state import N_GENERAL, delta_first_principles, m
from symloss.symbols import epsilon, eta, h, n, y

CLAIM = "Zero training error is not an attractor of Baikal (Δ(ε) → −∞)"
PLACE = "ICLR Theorem 1, App. D.1 (eq. 31–34)"
EXPECTED = "CONFIRMED"

CLASS_COUNTS = (2, 3, 10, 100)


def prove() -> Verdict:
    proof = Proof()
    gamma = 1 / h + y / h**2
    gamma_nontarget = gamma.subs({y: 0, h: epsilon / (N_GENERAL - 1)})
    gamma_target = gamma.subs({y: 1, h: 1 - epsilon})
    proof.identity("eq. 33: γ_N(ε/(n−1)) = (n−1)/ε", gamma_nontarget, (N_GENERAL - 1) / epsilon)
    proof.identity("eq. 33: γ_T(1−ε) = 1/(1−ε) + 1/(1−ε)²", gamma_target,
                   1 / (1 - epsilon) + 1 / (1 - epsilon) ** 2)
    proof.identity("eq. 34: γ_T(1−ε) = (2−ε)/(1−2ε+ε²)", gamma_target,
                   (2 - epsilon) / (1 - 2 * epsilon + epsilon**2))
    proof.positive("D.1: both coefficients are positive near zero error (γ_N)", gamma_nontarget)
    proof.limit("D.1: the non-target case dominates, γ_N/γ_T → ∞",
                gamma_nontarget / gamma_target, epsilon, 0, sp.oo)

    delta = delta_first_principles(gamma, N_GENERAL)
    proof.identity("Δ = γ_T − γ_N", delta, gamma_target - gamma_nontarget)
    proof.limit("ε·Δ(ε) → −(n−1)", epsilon * delta, epsilon, 0, -(N_GENERAL - 1))
    proof.negative("−(n−1) < 0 for n ≥ 2", -(N_GENERAL - 1))
    proof.limit("Theorem 1: lim_{ε→0+} Δ(ε) = −∞ for every n ≥ 2", delta, epsilon, 0, -sp.oo)

    # Δ < 0 on (0, 1 − 1/√2), for all n ≥ 2: ε(1−ε)²Δ = −(2ε² − 4ε + 1) − (n−2)(1−ε)².
    numerator = sp.expand(epsilon * (1 - epsilon) ** 2 * delta)
    root_low, root_high = 1 - 1 / sp.sqrt(2), 1 + 1 / sp.sqrt(2)
    proof.identity("ε(1−ε)²Δ = −2(ε − (1−1/√2))(ε − (1+1/√2)) − m(1−ε)²  (n = m + 2)",
                   numerator, -2 * (epsilon - root_low) * (epsilon - root_high)
                   - m * (1 - epsilon) ** 2)
    inside = sp.Symbol("t", positive=True)  # ε = (1 − 1/√2)·t/(1+t) ∈ (0, 1 − 1/√2)
    below = root_low * inside / (1 + inside)
    proof.negative("for such ε: ε − (1 − 1/√2) < 0", sp.factor(below - root_low))
    proof.negative("for such ε: ε − (1 + 1/√2) < 0", sp.factor(below - root_high))
    proof.positive("for such ε: 1 − ε > 0, ε > 0", sp.factor(1 - below) * below)
    proof.step("sign argument: −2·(neg)·(neg) − m·(pos)² < 0 with m ≥ 0, over ε(1−ε)² > 0, "
               "so Δ < 0 on (0, 1 − 1/√2) for every n ≥ 2", m.is_nonnegative is True)
    proof.identity("n = 2: Δ vanishes exactly at h_T = 1 − ε = 1/√2 (GLO's binary minimum)",
                   delta.subs({m: 0, epsilon: root_low}), 0)

    # The engine agrees, and its logit step moves the target logit down near zero error.
    engine_delta = symloss.delta(symloss.loss("baikal"), classes=n)
    proof.identity("engine delta(baikal, n) equals the derivation", engine_delta,
                   delta.subs(m, n - 2))
    target_step, _ = symloss.logit_step(symloss.loss("baikal"), classes=n)
    proof.identity("engine logit_step: Δf_T = (η/n)·ε(1−ε)·Δ", target_step,
                   eta / n * epsilon * (1 - epsilon) * engine_delta)
    for classes in CLASS_COUNTS:
        result = symloss.zero_error(symloss.loss("baikal"), classes=classes)
        proof.step(f"engine zero_error(baikal, {classes}) = −∞, not an attractor",
                   result.limit == -sp.oo and result.attractor is False, str(result))
    proof.spot_check("n = 10, ε = 0.01: Δ < 0 (numeric)",
                     float(delta.subs({m: 8, epsilon: sp.Rational(1, 100)})) < 0)
    return proof.verdict("CONFIRMED", "eq. 33–34 exact; Δ(ε) → −∞ (ε·Δ → −(n−1)), and Δ < 0 on "
                         "(0, 1 − 1/√2) for every n ≥ 2, so ε grows: zero error repels")
