"""ICLR App. B, eq. 20–23: TaylorGLO-3's γ at zero training error is ``a + b·y + c·y²``.

**Claim.** Substituting ``h = y`` into γ (eq. 11) gives ``γ = a + b·y + c·y²`` with

* ``a = λ2 − 2λ1λ3 − λ5λ0 + 2λ1λ6λ0 + λ7λ0² + 3λ4λ1²`` (eq. 21),
* ``b = 2λ3 − 2λ6λ0 − 2λ1λ6 + λ5 − 2λ7λ0 − 6λ4λ1`` (eq. 22),
* ``c = 2λ6 + λ7 + 3λ4`` (eq. 23).

In terms of eq. 12's coefficients: ``a = c1``, ``b = ch + cy``, ``c = chh + chy + cyy``.
The AllCNN-C loss of §4.1 prints ``a = −373.917, b = −129.928, c = −11.3145``; App. C
eq. 28 prints its γ_N(h), γ_T(h). The two sets of printed numbers must agree:
``γ_N(0) = a`` and ``γ_T(1) = a + b + c``.

**Proof.** Substitute, expand, match coefficients of ``1, y, y²``; compare with the
engine's ``zero_error_polynomial``; then check the printed numbers against each other
to the digits printed (eq. 28 determines ``c1, ch, chh, chy`` and ``cy + cyy``).

**Verdict.** CONFIRMED (eq. 21–23 exact; the printed a, b, c and eq. 28 agree to the
printed digits).
"""

from __future__ import annotations

from decimal import Decimal

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._paper import (
    ALLCNN_ABC,
    ALLCNN_GAMMA_NONTARGET,
    ALLCNN_GAMMA_TARGET,
    APPENDIX_B,
    C_COEFFICIENTS,
    EQ11_GAMMA,
)
from symloss.symbols import h, y

CLAIM = "TaylorGLO-3's γ at h = y is a + b·y + c·y² with a, b, c of eq. 21–23"
PLACE = "ICLR App. B, eq. 20–23"
EXPECTED = "CONFIRMED"


def prove() -> Verdict:
    proof = Proof()
    collapsed = sp.Poly(sp.expand(EQ11_GAMMA.subs(h, y)), y)
    proof.step("eq. 20: γ(h = y) has degree 2 in y", collapsed.degree() == 2)
    for power, name in enumerate("abc"):
        proof.identity(f"eq. {21 + power}: coefficient {name} of y^{power}",
                       collapsed.coeff_monomial(y**power), APPENDIX_B[name])
    c = C_COEFFICIENTS
    proof.identity("a = c1", APPENDIX_B["a"], c["c1"])
    proof.identity("b = ch + cy", APPENDIX_B["b"], c["ch"] + c["cy"])
    proof.identity("c = chh + chy + cyy", APPENDIX_B["c"], c["chh"] + c["chy"] + c["cyy"])

    engine = symloss.zero_error_polynomial(symloss.taylorglo(3))
    proof.step("engine zero_error_polynomial names a, b, c", engine is not None
               and set(engine) == {"a", "b", "c"})
    for name in "abc":
        proof.identity(f"engine zero_error_polynomial: {name}", engine[name], APPENDIX_B[name])

    # The AllCNN-C loss: eq. 28's printed polynomials against §4.1's printed a, b, c.
    c1, ch, chh = (sp.Rational(v) for v in ALLCNN_GAMMA_NONTARGET)
    t0, t1, t2 = (sp.Rational(v) for v in ALLCNN_GAMMA_TARGET)
    # γ_T(h) = (c1 + cy + cyy) + (ch + chy) h + chh h² (eq. 12 at y = 1).
    proof.step("eq. 28: γ_N and γ_T share chh (the h² coefficient does not depend on y)",
               t2 == chh)
    chy, cy_plus_cyy = t1 - ch, t0 - c1
    b = sp.Rational(ALLCNN_ABC["b"])
    proof.step("a = γ_N(0) = c1, to the printed digits",
               proof.number("AllCNN-C a (§4.1) vs γ_N(0) (eq. 28)", ALLCNN_ABC["a"], c1))
    proof.step("a + b + c = γ_T(1), to the printed digits",
               proof.number("AllCNN-C a+b+c (§4.1) vs γ_T(1) (eq. 28)",
                            str(sum(Decimal(ALLCNN_ABC[k]) for k in "abc")),
                            t0 + t1 + t2))
    # b fixes cy = b − ch, hence cyy, hence c = chh + chy + cyy: must match the printed c.
    cy = b - ch
    cyy = cy_plus_cyy - cy
    proof.step("c = chh + chy + cyy with cy = b − ch, to the printed digits",
               proof.number("AllCNN-C c (§4.1) vs chh + chy + cyy (eq. 28 with b)",
                            ALLCNN_ABC["c"], chh + chy + cyy))
    return proof.verdict("CONFIRMED", "eq. 21–23 are γ(h = y)'s coefficients exactly; the "
                         "AllCNN-C a, b, c agree with eq. 28 to the printed digits")
