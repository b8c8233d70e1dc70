"""ICLR Theorem 2 (eq. 17; App. D.3, eq. 49–65): one SGD step on the logits, entropy criticality.

**Claim.** In the symmetric state (target ``h_T = 1 − ε``, every non-target
``h_N = ε/(n−1)``) one step of ``θ ← θ + η(1/n) Σ_k γ_k ∂h_k/∂θ``, with the logits as
the parameters, changes the target probability by an amount whose sign says whether
the output entropy falls (> 0) or rises (< 0); eq. 17/65 prints that amount as a
function of ``γ_T, γ_N, ε, n``.

**Proof (first principles).** (i) The softmax Jacobian is ``∂h_k/∂f_j = h_k(δ_kj − h_j)``
(eq. 50), for every n. (ii) Summing ``(η/n) Σ_k γ_k ∂h_k/∂f_j`` over the state gives
``Δf_T = η' ε(1−ε) Δ`` and ``Δf_N = −η' ε(1−ε) Δ/(n−1)`` with ``Δ = γ_T − γ_N`` and
``η' = η/n`` — checked by the general-n sum and, independently, by the full n×n
softmax for n = 3, 4. (iii) The new target probability is
``(1−ε)e^D/(ε + (1−ε)e^D)`` with ``D = Δf_T − Δf_N = η' ε(1−ε)Δ·n/(n−1)``, so
``A(ε) = ε(1−ε)(e^D − 1)/(ε + (1−ε)e^D)`` and ``sign A = sign Δ``. (iv) The state
stays symmetric, ``ε' = ε − A``, and entropy rises with ε on ``(0, (n−1)/n)``: A > 0
means entropy falls.

**The printed formula.** Eq. 17 has exactly the structure of ``A`` (with ``η' = 1``)
— but its non-target exponent is ``[ε(ε−1)γ_T(n−1) + εγ_N(ε(n−3) + n−1)]/(n−1)²``,
whereas the Jacobian gives ``[ε(ε−1)γ_T(n−1) + εγ_N(n−1)(1−ε)]/(n−1)²``. The
difference, ``2(n−2)ε²γ_N/(n−1)²``, is a sign slip in eq. 56: eq. 54's term
``(n−2)γ_N(−h_N h_N)`` enters eq. 56 with a ``+``. It vanishes only for n = 2. A
concrete failure: ``ℓ = −h`` (γ ≡ 1) makes the loss the constant ``−1/n``, so nothing
moves, yet eq. 17 is non-zero for n > 2.

**Verdict.** CORRECTED — with eq. 56's ``+γ_N(n−2)ε²/(n−1)²`` corrected to ``−``,
eq. 17 equals ``A(ε)`` identically (η' = 1) and its sign is the sign of
``Δ = γ_T(1−ε) − γ_N(ε/(n−1))``.
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._state import N_GENERAL, entropy_rises_with_epsilon, m
from symloss.symbols import epsilon, eta, n

CLAIM = "One logit step in the symmetric state; sign of the target's change = sign of Δ"
PLACE = "ICLR Theorem 2, eq. 17; App. D.3 (eq. 49–65)"
EXPECTED = "CORRECTED"

gamma_t, gamma_n = sp.symbols("gamma_T gamma_N", real=True)


def _jacobian_general_n(proof: Proof) -> None:
    f_k, f_j = sp.symbols("f_k f_j", real=True)
    rest = sp.Symbol("R", positive=True)  # Σ of the other classes' e^{f}
    total = sp.exp(f_k) + sp.exp(f_j) + rest
    h_k, h_j = sp.exp(f_k) / total, sp.exp(f_j) / total
    proof.identity("eq. 50, k ≠ j: ∂h_k/∂f_j = −h_k h_j (any n)", sp.diff(h_k, f_j), -h_k * h_j)
    alone = sp.exp(f_k) / (sp.exp(f_k) + rest)
    proof.identity("eq. 50, k = j: ∂h_k/∂f_k = h_k(1 − h_k) (any n)", sp.diff(alone, f_k),
                   alone * (1 - alone))


def _symmetric_step(n_: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(Δf_T, Δf_N)/η' by summing γ_k·h_k(δ_kj − h_j) over the symmetric state."""
    h_t, h_n = 1 - epsilon, epsilon / (n_ - 1)
    target = gamma_t * h_t * (1 - h_t) + (n_ - 1) * gamma_n * h_n * (-h_t)
    nontarget = (gamma_n * h_n * (1 - h_n) + (n_ - 2) * gamma_n * h_n * (-h_n)
                 + gamma_t * h_t * (-h_n))
    return target, nontarget


def _full_softmax_step(proof: Proof, classes: int) -> None:
    """Independent check: the full classes×classes softmax at logits realizing the state."""
    logits = sp.symbols(f"f0:{classes}", real=True)
    total = sum(sp.exp(f) for f in logits)
    probabilities = [sp.exp(f) / total for f in logits]
    state = {logits[0]: sp.log((1 - epsilon) * (classes - 1) / epsilon),
             **{f: 0 for f in logits[1:]}}
    proof.identity(f"n = {classes}: logits (log((1−ε)(n−1)/ε), 0, …) give h_T = 1 − ε",
                   probabilities[0].subs(state), 1 - epsilon)
    gammas = [gamma_t] + [gamma_n] * (classes - 1)
    steps = [eta / classes * sum(g * sp.diff(p, f) for g, p in zip(gammas, probabilities,
                                                                    strict=True)).subs(state)
             for f in logits[:2]]
    target, nontarget = _symmetric_step(sp.Integer(classes))
    proof.identity(f"n = {classes}: full-softmax Δf_T equals the general-n sum",
                   steps[0], eta / classes * target)
    proof.identity(f"n = {classes}: full-softmax Δf_N equals the general-n sum",
                   steps[1], eta / classes * nontarget)


def prove() -> Verdict:
    proof = Proof()
    _jacobian_general_n(proof)
    big_n = N_GENERAL
    delta = gamma_t - gamma_n
    target, nontarget = _symmetric_step(big_n)
    proof.identity("Δf_T/η' = ε(1−ε)(γ_T − γ_N)", target, epsilon * (1 - epsilon) * delta)
    proof.identity("Δf_N/η' = −ε(1−ε)(γ_T − γ_N)/(n−1)", nontarget,
                   -epsilon * (1 - epsilon) * delta / (big_n - 1))
    proof.identity("eq. 55 (target), as printed: γ_Tε − γ_Tε² + γ_N(n−1)(ε−1)ε/(n−1)", target,
                   gamma_t * epsilon - gamma_t * epsilon**2
                   + gamma_n * (big_n - 1) * (epsilon - 1) * epsilon / (big_n - 1))
    for classes in (3, 4):
        _full_softmax_step(proof, classes)

    # The engine's logit_step, for concrete losses and the family, at general n.
    for name in ("cross_entropy", "mse", "baikal", "taylorglo"):
        loss = symloss.loss(name)
        delta_engine = symloss.delta(loss, classes=n)
        step_t, step_n = symloss.logit_step(loss, classes=n)
        proof.identity(f"engine logit_step({name}): Δf_T = (η/n)ε(1−ε)Δ", step_t,
                       eta / n * epsilon * (1 - epsilon) * delta_engine)
        proof.identity(f"engine logit_step({name}): Δf_N = −Δf_T/(n−1)", step_n,
                       -step_t / (n - 1))

    # (iii) the target probability after the step.
    phi, rate = sp.Symbol("phi", real=True), sp.Symbol("eta_prime", positive=True)
    f_t = phi + sp.log((1 - epsilon) * (big_n - 1) / epsilon)
    before = sp.exp(f_t) / (sp.exp(f_t) + (big_n - 1) * sp.exp(phi))
    proof.identity("eq. 60–62: e^{f_T} = ((n−1)/ε − n + 1)e^{f_N} realizes h_T = 1 − ε",
                   before, 1 - epsilon)
    step_t, step_n = rate * target, rate * nontarget
    # Exponentials of the steps as positive symbols keep the identity rational:
    # e^{f + Δf} = e^f·e^{Δf}, and e^D = e^{Δf_T}/e^{Δf_N}.
    grow_t, grow_n = sp.symbols("E_T E_N", positive=True)
    after = (sp.exp(f_t) * grow_t / (sp.exp(f_t) * grow_t + (big_n - 1) * sp.exp(phi) * grow_n))
    ratio = grow_t / grow_n
    proof.identity("h_T after the step = (1−ε)e^D/(ε + (1−ε)e^D), e^D = e^{Δf_T}/e^{Δf_N}",
                   after, (1 - epsilon) * ratio / (epsilon + (1 - epsilon) * ratio))
    exponent = step_t - step_n
    spec_form = (1 - epsilon) * sp.exp(exponent) / (epsilon + (1 - epsilon) * sp.exp(exponent))
    proof.identity("… so D = Δf_T − Δf_N", sp.exp(step_t) / sp.exp(step_n), sp.exp(exponent))
    proof.identity("D = η' ε(1−ε)Δ·n/(n−1)", exponent,
                   rate * epsilon * (1 - epsilon) * delta * big_n / (big_n - 1))
    d = sp.Symbol("D", real=True)
    attraction = (1 - epsilon) * sp.exp(d) / (epsilon + (1 - epsilon) * sp.exp(d)) - (1 - epsilon)
    factored = epsilon * (1 - epsilon) * (sp.exp(d) - 1) / (epsilon + (1 - epsilon) * sp.exp(d))
    proof.identity("A = ε(1−ε)(e^D − 1)/(ε + (1−ε)e^D)", attraction, factored)
    u = sp.Symbol("u", positive=True)  # ε = u/(1+u) ∈ (0, 1)
    proof.positive("for 0 < ε < 1: ε(1−ε)/(ε + (1−ε)e^D) > 0",
                   (epsilon * (1 - epsilon) / (epsilon + (1 - epsilon) * sp.exp(d))
                    ).subs(epsilon, u / (1 + u)))
    proof.identity("e^D − 1 vanishes at D = 0", (sp.exp(d) - 1).subs(d, 0), 0)
    proof.positive("d(e^D − 1)/dD = e^D > 0 for real D: strictly increasing, so "
                   "sign(e^D − 1) = sign D", sp.diff(sp.exp(d) - 1, d))
    proof.positive("D/Δ = η'ε(1−ε)n/(n−1) > 0: sign A = sign D = sign Δ",
                   (rate * epsilon * (1 - epsilon) * big_n / (big_n - 1)).subs(epsilon,
                                                                               u / (1 + u)))
    ce = symloss.loss("cross_entropy")
    proof.identity("engine attraction(cross_entropy, n) is A with D from its logit step",
                   symloss.attraction(ce, classes=n, lr=eta),
                   attraction.subs(d, eta / n * epsilon * (1 - epsilon)
                                   * symloss.delta(ce, classes=n) * n / (n - 1)))
    proof.identity("the next state is symmetric again (all non-targets get the same Δf_N), "
                   "with ε' = 1 − h_T' = ε − A", 1 - spec_form,
                   epsilon - (spec_form - (1 - epsilon)))
    entropy_rises_with_epsilon(proof)

    # The printed eq. 17/65.
    def printed_17(e1: sp.Expr, e2: sp.Expr) -> sp.Expr:
        return (epsilon * (epsilon - 1) * (sp.exp(e1) - sp.exp(e2))
                / ((epsilon - 1) * sp.exp(e1) - epsilon * sp.exp(e2)))

    e1 = epsilon * (epsilon - 1) * (gamma_n - gamma_t)
    e2_printed = (epsilon * (epsilon - 1) * gamma_t * (big_n - 1)
                  + epsilon * gamma_n * (epsilon * (big_n - 3) + big_n - 1)) / (big_n - 1) ** 2
    proof.identity("eq. 17's first exponent ε(ε−1)(γ_N − γ_T) is Δf_T/η'", e1, target)
    big_x, big_y = sp.symbols("X Y", positive=True)  # e^{E1}, e^{E2}
    structure = (epsilon * (epsilon - 1) * (big_x - big_y)
                 / ((epsilon - 1) * big_x - epsilon * big_y))
    proof.identity("eq. 17's structure, X = e^{E1}, Y = e^{E2}, is A(ε) at e^D = X/Y: with "
                   "E1 = Δf_T/η', E2 = Δf_N/η' (η' = 1) eq. 17 would be A(ε) exactly",
                   structure, (1 - epsilon) * (big_x / big_y)
                   / (epsilon + (1 - epsilon) * big_x / big_y) - (1 - epsilon))

    eq56_printed = (gamma_n * epsilon / (big_n - 1) * (1 - epsilon / (big_n - 1))
                    + gamma_n * (big_n - 2) * epsilon**2 / (big_n**2 - 2 * big_n + 1)
                    + gamma_t * (epsilon - 1) * epsilon / (big_n - 1))
    proof.identity("eq. 56 (non-target) as printed is eq. 17's second exponent", eq56_printed,
                   e2_printed)
    proof.identity("printed − derived non-target change = 2(n−2)ε²γ_N/(n−1)²",
                   e2_printed - nontarget, 2 * (big_n - 2) * epsilon**2 * gamma_n
                   / (big_n - 1) ** 2)
    proof.identity("n = 2 (m = 0): the printed exponent is right",
                   (e2_printed - nontarget).subs(m, 0), 0)
    proof.mismatch("eq. 56 / 17 / 65: non-target logit change (per η')",
                   "[ε(ε−1)γ_T(n−1) + εγ_N(ε(n−3) + n−1)]/(n−1)²",
                   "[ε(ε−1)γ_T(n−1) + εγ_N(n−1)(1−ε)]/(n−1)² = −ε(1−ε)(γ_T−γ_N)/(n−1); "
                   "eq. 56's (n−2)γ_N ε²/(n−1)² term needs a minus sign")

    # Concrete failure of the printed formula: ℓ = −h, a constant loss.
    constant = symloss.loss("-h")
    proof.identity("ℓ = −h: γ ≡ 1, Δ ≡ 0", symloss.delta(constant, classes=n), 0)
    proof.identity("ℓ = −h: engine attraction ≡ 0", symloss.attraction(constant, classes=10), 0)
    at = {gamma_t: 1, gamma_n: 1, m: 8, epsilon: sp.Rational(1, 2)}
    value = sp.nsimplify(printed_17(e1, e2_printed).subs(at))
    proof.negative("ℓ = −h, n = 10, ε = 1/2: printed eq. 17 is < 0 (claims entropy rises)", value)
    proof.mismatch("eq. 17 for ℓ = −h (a constant loss), n = 10, ε = 1/2",
                   f"{float(value):.6g} (entropy would rise)",
                   "0 (nothing moves)")
    return proof.verdict("CORRECTED", "eq. 17's non-target exponent carries a sign slip from eq. "
                         "56 (off by 2(n−2)ε²γ_N/(n−1)²); fixed, eq. 17 ≡ A(ε) and sign A = sign Δ")

