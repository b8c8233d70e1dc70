"""ICLR §4.1, eq. 16: TaylorGLO-3 in the zero-training-error regime.

**Claim.** At zero error (``h = y``) the rule is ``a·D_j h_k`` on non-targets and
``(a + b + c)·D_j h_k`` on the target (eq. 16); one-hot labels satisfy ``y^w = y``.
TaylorGLO reproduces cross-entropy's zero-error behaviour whenever ``a = 0`` and
``b + c > 0``, i.e. whenever ``λ2 = 2λ1λ3 + λ5λ0 − 2λ1λ6λ0 − λ7λ0² − 3λ4λ1²``.
For the AllCNN-C loss (``a = −373.917, b = −129.928, c = −11.3145``) all three are
negative, the rule has two competing processes — "one that aims to minimize all
non-target scaled logits (increasing the … entropy), and one that aims to minimize
the target scaled logit (decreasing the … entropy)" — and zero error is not an
attractor for some TaylorGLO-3 losses.

**Proof.** Substitute ``h = y`` at ``y = 0, 1``; ``lim_{ε→0+} Δ(ε) = b + c`` for
every λ and every ``n ≥ 2`` (engine: ``zero_error``); solve ``a = 0`` for λ2; for
AllCNN-C ``b + c < 0``, so ``Δ < 0`` near zero error and it repels. The entropy of
the symmetric state rises with ε on ``(0, (n−1)/n)``: lowering the target raises
entropy and lowering the non-targets lowers it — the opposite of the parenthetical
labels printed in §4.1.

**Verdict.** CONFIRMED (eq. 16 and its consequences hold; the swapped entropy labels
in the prose are reported as a mismatch).
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._paper import ALLCNN_ABC, APPENDIX_B, EQ11_GAMMA, L0, L1, L2, L3, L4, L5, L6, L7
from symloss.proofs._state import N_GENERAL, delta_first_principles, entropy_rises_with_epsilon
from symloss.symbols import epsilon, h, n, y

CLAIM = "TaylorGLO-3 at zero error: a on non-targets, a+b+c on the target; Δ → b + c"
PLACE = "ICLR §4.1, eq. 16"
EXPECTED = "CONFIRMED"


def prove() -> Verdict:
    proof = Proof()
    a, b, c = APPENDIX_B["a"], APPENDIX_B["b"], APPENDIX_B["c"]
    proof.identity("eq. 16: γ(y = 0, h = 0) = a", EQ11_GAMMA.subs({y: 0, h: 0}), a)
    proof.identity("eq. 16: γ(y = 1, h = 1) = a + b + c", EQ11_GAMMA.subs({y: 1, h: 1}), a + b + c)
    proof.step("one-hot labels: y^w = y for y ∈ {0, 1}, w = 1…5",
               all(value**w == value for value in (0, 1) for w in range(1, 6)))

    delta = delta_first_principles(EQ11_GAMMA, N_GENERAL)
    proof.limit("lim_{ε→0+} Δ(ε) = b + c for every λ, n ≥ 2", delta, epsilon, 0, b + c)
    engine = symloss.zero_error(symloss.taylorglo(3), classes=n)
    proof.identity("engine zero_error(taylorglo3, n).limit = b + c", engine.limit, b + c)
    proof.step("engine leaves the family's attractor verdict undecided (it depends on λ)",
               engine.attractor is None)

    # CE-like behaviour: a = 0 ⇔ λ2 = …; then (γ_N, γ_T) = (0, b + c) ∝ CE's (0, 1).
    (solution,) = sp.solve(sp.Eq(a, 0), L2)
    proof.identity("§4.1: a = 0 ⇔ λ2 = 2λ1λ3 + λ5λ0 − 2λ1λ6λ0 − λ7λ0² − 3λ4λ1²", solution,
                   2 * L1 * L3 + L5 * L0 - 2 * L1 * L6 * L0 - L7 * L0**2 - 3 * L4 * L1**2)
    proof.identity("§4.1: with a = 0, γ_T/γ_N at zero error is (b+c)·(CE's 1, 0)",
                   (a + b + c).subs(L2, solution), b + c)

    # AllCNN-C.
    a_value, b_value, c_value = (sp.Rational(ALLCNN_ABC[k]) for k in "abc")
    proof.step("AllCNN-C: a, b, c are all negative", a_value < 0 and b_value < 0 and c_value < 0)
    proof.step("AllCNN-C: b + c < 0 → Δ(ε) < 0 near zero error: not an attractor",
               b_value + c_value < 0)
    proof.step("AllCNN-C: the target's coefficient a+b+c is more negative than the non-targets' a",
               a_value + b_value + c_value < a_value)

    entropy_rises_with_epsilon(proof)
    proof.mismatch("§4.1 AllCNN-C prose: which process raises entropy",
                   "minimizing non-target scaled logits increases entropy; minimizing the "
                   "target decreases it",
                   "swapped: dH/dε > 0, so lowering the target (ε up) raises entropy and "
                   "lowering the non-targets (ε down) lowers it")
    return proof.verdict("CONFIRMED", "eq. 16 exact; lim Δ = b + c for all λ, n; a = 0 ⇔ printed "
                         "λ2; AllCNN-C b + c < 0 repels (prose's entropy labels swapped)")
