"""ICLR Theorem 3 (eq. 18–19; App. D.4, eq. 66–70): the TaylorGLO trainability invariant.

**Claim.** A TaylorGLO-3 loss is *not trainable* when (eq. 18 = eq. 69)

    c1 + cy + cyy + (ch + chy)/n + chh/n²  <  (n−1)·(c1 + ch/n + chh/n²),

i.e. ``γ_T(1/n) < (n−1)·γ_N(1/n)``, equivalently (eq. 19 = eq. 70)
``cy + cyy + chy/n < (n−2)(c1 + ch/n + chh/n²)``; the converse is used as an
invariant that filters candidates (ICLR Table 1). Eq. 68's first form is
``γ_T(1/n) < 0``.

**First principles.** At the null epoch (``ε = (n−1)/n``) one step moves the target
logit by ``η' ε(1−ε)(γ_T(1/n) − γ_N(1/n))`` (Theorem 2 file), so the target
probability grows iff ``γ_T(1/n) − γ_N(1/n) > 0``, i.e. ``cy + cyy + chy/n > 0``.
Adding a constant ``s`` to γ (``ℓ → ℓ − s·h``) changes the loss by ``−s/n`` — a
constant, since ``Σ_k h_k = 1`` — so it changes no update and cannot change
trainability.

**Proof.** (1) eq. 67/69 are γ at ``h = 1/n``; eq. 19 ⇔ eq. 18. (2) The engine's
``paper_condition`` is eq. 18, its ``trainability_condition`` the first-principles one.
(3) ``Σ_k ∂h_k/∂f_j = 0`` (for every n) and the shifted loss has the same logit
step. (4) Under ``γ → γ + s`` the first-principles condition is unchanged while the
paper's changes by ``−(n−2)s``. (5) For ``n = 2`` the two coincide (up to the boundary
``Δ = 0``, where nothing moves at first order but eq. 18 is not satisfied). (6)
Counterexamples at ``n = 10``: cross-entropy shifted by 10 (``ℓ = −y log h − 10h``,
the same loss up to the constant ``−10/n``), and the TaylorGLO member
``λ = [0, 0, 1, −1, 0, 2, 0, 0]`` (MSE plus ``−h``): both satisfy eq. 18 — "not
trainable" — yet train exactly like CE and MSE. Eq. 68 fails the same way (CE shifted by
−20 has ``γ_T(1/n) < 0`` and trains like CE).

**Verdict.** CORRECTED — the factor ``(n−1)`` in eq. 18 (``n−2`` in eq. 19) must be 1
(0): a loss is not trainable at the null epoch iff ``γ_T(1/n) ≤ γ_N(1/n)``, i.e.
``cy + cyy + chy/n ≤ 0``; that condition is shift invariant and coincides with eq. 18
for n = 2 only.
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._paper import C_COEFFICIENTS, C_SYMBOLS, GAMMA_C, c1, ch, chh, chy, cy, cyy
from symloss.proofs._state import N_GENERAL, m
from symloss.symbols import epsilon, h, n, y

CLAIM = "TaylorGLO-3 is not trainable if γ_T(1/n) < (n−1)·γ_N(1/n) (eq. 18 ⇔ eq. 19)"
PLACE = "ICLR Theorem 3, eq. 18–19; App. D.4 (eq. 66–70)"
EXPECTED = "CORRECTED"


def _shift_changes_no_update(proof: Proof) -> None:
    # Σ_k ∂h_k/∂f_j = Σ_k h_k(δ_kj − h_j) = h_j − h_j·Σ_k h_k = 0 (Jacobian from Theorem 2).
    h_j, total = sp.symbols("h_j S", positive=True)
    proof.identity("Σ_k h_k(δ_kj − h_j) = h_j − h_j·Σ_k h_k, which is 0 when Σ_k h_k = 1",
                   (h_j - h_j * total).subs(total, 1), 0)
    for classes in (2, 3, 5):
        logits = sp.symbols(f"f0:{classes}", real=True)
        denominator = sum(sp.exp(f) for f in logits)
        column = sum(sp.diff(sp.exp(f) / denominator, logits[0]) for f in logits)
        proof.identity(f"n = {classes}: Σ_k ∂softmax_k/∂f_0 = 0 (full softmax)", column, 0)
    shift = sp.Symbol("s", real=True)
    for name in ("cross_entropy", "taylorglo"):
        loss = symloss.loss(name)
        moved = symloss.logit_step(loss.shifted(shift), classes=n)
        still = symloss.logit_step(loss, classes=n)
        proof.identity(f"engine: {name} shifted by s has the same Δf_T", moved[0], still[0])
        proof.identity(f"engine: {name} shifted by s has the same Δf_N", moved[1], still[1])


def prove() -> Verdict:
    proof = Proof()
    uniform = 1 / N_GENERAL
    gamma_t, gamma_n = GAMMA_C.subs({y: 1, h: uniform}), GAMMA_C.subs({y: 0, h: uniform})
    proof.identity("eq. 67: γ_N(1/n) = c1 + ch/n + chh/n²", gamma_n,
                   c1 + ch / N_GENERAL + chh / N_GENERAL**2)
    proof.identity("eq. 67: γ_T(1/n) = c1 + cy + cyy + (ch + chy)/n + chh/n²", gamma_t,
                   c1 + cy + cyy + (ch + chy) / N_GENERAL + chh / N_GENERAL**2)
    paper = gamma_t - (N_GENERAL - 1) * gamma_n          # eq. 18: "not trainable" iff < 0
    eq19 = (cy + cyy + chy / N_GENERAL) - (N_GENERAL - 2) * gamma_n
    proof.identity("eq. 19 is eq. 18 rearranged (same left − right)", paper, eq19)
    first_principles = gamma_t - gamma_n
    proof.identity("first principles: γ_T(1/n) − γ_N(1/n) = cy + cyy + chy/n",
                   first_principles, cy + cyy + chy / N_GENERAL)
    proof.identity("the logit step at ε = (n−1)/n: Δf_T = η' (n−1)/n² · (γ_T(1/n) − γ_N(1/n))",
                   (epsilon * (1 - epsilon)).subs(epsilon, (N_GENERAL - 1) / N_GENERAL),
                   (N_GENERAL - 1) / N_GENERAL**2)

    # The engine implements both, over λ.
    family = symloss.taylorglo(3)
    in_lambda = {symbol: C_COEFFICIENTS[str(symbol)] for symbol in C_SYMBOLS}
    proof.identity("engine paper_condition(taylorglo3, n) = eq. 18's left − right",
                   symloss.paper_condition(family, classes=n),
                   paper.subs(in_lambda).subs(m, n - 2))
    proof.identity("engine trainability_condition(taylorglo3, n) = cy + cyy + chy/n",
                   symloss.trainability_condition(family, classes=n),
                   first_principles.subs(in_lambda).subs(m, n - 2))

    _shift_changes_no_update(proof)
    shift = sp.Symbol("s", real=True)
    shifted_t, shifted_n = gamma_t + shift, gamma_n + shift
    proof.identity("γ → γ + s leaves the first-principles condition unchanged",
                   shifted_t - shifted_n, first_principles)
    proof.identity("γ → γ + s moves the paper's condition by −(n−2)s",
                   shifted_t - (N_GENERAL - 1) * shifted_n, paper - (N_GENERAL - 2) * shift)
    proof.identity("n = 2: the paper's condition is the first-principles one",
                   paper.subs(m, 0), first_principles.subs(m, 0))
    constant = symloss.loss("-h")
    proof.step("n = 2 boundary Δ = 0 (ℓ = −h, a constant loss): eq. 18 is not satisfied "
               "(paper: trainable), first principles: nothing moves (not trainable)",
               symloss.paper_trainable(constant, classes=2) is True
               and symloss.is_trainable(constant, classes=2) is False)

    # Counterexamples at n = 10.
    ce = symloss.loss("cross_entropy")
    proof.identity("CE − 10h is CE plus the constant −10/n once Σ h = 1",
                   sp.diff(ce.shifted(10).expression - ce.expression, h), -10)
    ce_null = symloss.null_epoch(ce.shifted(10), classes=10)
    proof.step("CE + 10 at n = 10: γ_T(1/10) = 20, γ_N(1/10) = 10",
               ce_null.gamma_target == 20 and ce_null.gamma_nontarget == 10)
    proof.step("… eq. 18 holds (20 < 9·10): the paper says not trainable",
               ce_null.gamma_target < 9 * ce_null.gamma_nontarget)
    proof.step("… engine paper_trainable says False, is_trainable says True",
               symloss.paper_trainable(ce.shifted(10), classes=10) is False
               and symloss.is_trainable(ce.shifted(10), classes=10) is True)
    proof.step("… while plain CE passes both",
               symloss.paper_trainable(ce, classes=10) is True
               and symloss.is_trainable(ce, classes=10) is True)
    shifted_member = family.bind([0, 0, 1, -1, 0, 2, 0, 0])
    mse_member = family.bind([0, 0, 0, -1, 0, 2, 0, 0])
    proof.identity("λ = [0,0,1,−1,0,2,0,0] is MSE's member minus h",
                   shifted_member.expression, mse_member.expression - h)
    member_t = symloss.gamma(shifted_member).subs({y: 1, h: sp.Rational(1, 10)})
    member_n = symloss.gamma(shifted_member).subs({y: 0, h: sp.Rational(1, 10)})
    proof.step("… at n = 10: γ_T = 14/5 < 9·γ_N = 36/5: eq. 18 says not trainable",
               member_t == sp.Rational(14, 5) and member_n == sp.Rational(4, 5)
               and member_t < 9 * member_n)
    proof.step("… engine: paper_trainable False for it, True for MSE; is_trainable True for both",
               symloss.paper_trainable(shifted_member, classes=10) is False
               and symloss.paper_trainable(mse_member, classes=10) is True
               and symloss.is_trainable(shifted_member, classes=10) is True
               and symloss.is_trainable(mse_member, classes=10) is True)
    rule = symloss.candidate_filter(family, classes=10, rule="paper")
    exact = symloss.candidate_filter(family, classes=10, rule="exact")
    batch = [[0, 0, 0, -1, 0, 2, 0, 0], [0, 0, 1, -1, 0, 2, 0, 0]]
    proof.step("engine candidate_filter: 'paper' rejects the shifted MSE, 'exact' keeps both",
               rule.mask(batch).tolist() == [True, False]
               and exact.mask(batch).tolist() == [True, True])
    ce_down = symloss.null_epoch(ce.shifted(-20), classes=10)
    proof.step("eq. 68: CE − 20 has γ_T(1/10) = −10 < 0 ('degenerate') yet Δ = 10 > 0",
               ce_down.gamma_target == -10 and ce_down.delta == 10)
    proof.mismatch("Theorem 3 / eq. 18, 69: factor on γ_N(1/n)", "(n − 1)",
                   "1 (γ_T(1/n) < γ_N(1/n) ⇔ target shrinks); with (n−1) the condition is not "
                   "shift invariant: CE − 10h at n = 10 satisfies it yet trains as CE")
    proof.mismatch("eq. 19, 70: factor on (c1 + ch/n + chh/n²)", "(n − 2)", "0")
    return proof.verdict("CORRECTED", "eq. 19 ⇔ eq. 18, but eq. 18 is not invariant under γ → "
                         "γ + s (no-op): false for n > 2; right with (n−1) → 1, i.e. cy + cyy + "
                         "chy/n ≤ 0; equal at n = 2")
