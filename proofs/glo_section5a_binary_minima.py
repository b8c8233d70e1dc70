"""GLO §V-A (eq. 1–4, Fig. 6): the binary Baikal and BaikalCMA losses and their minima.

**Claim.** For ``n = 2`` with true label ``x0 = 1`` (this project's ``y_T = 1``) and the
predicted probability ``p`` of the true class, the Baikal loss is, up to the factor
½, ``−log p + 1/p − log(1 − p)`` (eq. 3–4); it is minimal "near 0.71"; BaikalCMA
(eq. 2, ``c0…c5 = 2.7279, 0.9863, 1.5352, −1.1135, 1.3716, −0.8411``) is minimal "near
0.77"; cross-entropy decreases monotonically.

**Proof.** Build ``L(p) = ½[ℓ(1, p) + ℓ(0, 1 − p)]`` from GLO's formulas and compare with
eq. 4 and with the engine's ``binary_loss``. For the family
``ℓ = −A·log(k·h) + B·y/h`` (A, B > 0; Baikal: A = B = 1; BaikalCMA:
``A = c0c1``, ``B = c0c3c4/c5``), ``p²(1−p)·L'(p)/A·2 = 2p² + (β−1)p − β`` with
``β = B/A``: one root in (0, 1), ``p* = (1 − β + √((β−1)² + 8β))/4``, and ``L → +∞``
at both ends, so it is the global minimum. Baikal: ``2p² − 1 = 0``, ``p* = 1/√2``
exactly. BaikalCMA: ``β = c3c4/(c1c5)`` gives ``p* = 0.77194…``. Engine:
``binary_view``.

**Verdict.** CONFIRMED (1/√2 = 0.7071 ≈ 0.71; 0.7719 ≈ 0.77).
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.binary import p
from symloss.catalog import BAIKAL_CMA_COEFFICIENTS
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._paper import BAIKAL_CMA_PRINTED
from symloss.symbols import h, y

CLAIM = "Binary Baikal is minimal at p = 1/√2 ≈ 0.71, BaikalCMA at ≈ 0.77"
PLACE = "GLO §V-A, eq. 1–4, Fig. 6"
EXPECTED = "CONFIRMED"


def prove() -> Verdict:
    proof = Proof()
    # GLO eq. 1 with x → y, y → h, ℓ = −f; eq. 4 at x0 = 1.
    baikal = -sp.log(h) + y / h
    binary = (baikal.subs({y: 1, h: p}) + baikal.subs({y: 0, h: 1 - p})) / 2
    eq4 = -sp.log(p) + 1 / p - sp.log(1 - p) + 0 / (1 - p)
    proof.identity("eq. 3–4: binary Baikal at x0 = 1 is ½·(−log p + 1/p − log(1−p))",
                   binary, eq4 / 2)
    proof.identity("engine binary_loss(baikal) is that", symloss.binary_loss(
        symloss.loss("baikal")), binary)

    big_a, big_b, k = sp.symbols("A B k", positive=True)
    family = -big_a * sp.log(k * h) + big_b * y / h
    family_binary = (family.subs({y: 1, h: p}) + family.subs({y: 0, h: 1 - p})) / 2
    slope = sp.diff(family_binary, p)
    beta = big_b / big_a
    quadratic = 2 * p**2 + (beta - 1) * p - beta
    proof.identity("2·p²(1−p)·L'(p)/A = 2p² + (β−1)p − β, β = B/A",
                   2 * p**2 * (1 - p) * slope / big_a, quadratic)
    root = (1 - beta + sp.sqrt((beta - 1) ** 2 + 8 * beta)) / 4
    proof.identity("p* = (1 − β + √((β−1)² + 8β))/4 is a root", quadratic.subs(p, root), 0)
    proof.step("the quadratic is −β < 0 at p = 0 and 1 > 0 at p = 1: exactly one root in (0, 1)",
               (quadratic.subs(p, 0) + beta == 0) and sp.simplify(quadratic.subs(p, 1)) == 1)
    proof.limit("L → +∞ as p → 0⁺", family_binary, p, 0, sp.oo, "+")
    proof.limit("L → +∞ as p → 1⁻", family_binary, p, 1, sp.oo, "-")
    u = sp.Symbol("u", positive=True)  # p = u/(1+u) ∈ (0, 1)
    proof.positive("2p²(1−p)/A > 0 on (0, 1), so sign L' = sign of the quadratic: − on (0, p*), "
                   "+ on (p*, 1); p* is the global minimum on (0, 1)",
                   (2 * p**2 * (1 - p) / big_a).subs(p, u / (1 + u)))

    # Baikal: A = B = 1.
    proof.identity("Baikal: 2p² − 1 = 0", quadratic.subs({big_a: 1, big_b: 1}), 2 * p**2 - 1)
    baikal_min = root.subs({big_a: 1, big_b: 1})
    proof.identity("Baikal: p* = 1/√2 exactly", baikal_min, 1 / sp.sqrt(2))
    proof.step("GLO 'near 0.71': 1/√2 rounds to 0.71",
               proof.number("GLO §V-A Baikal binary minimum", "0.71", baikal_min))

    # BaikalCMA: ℓ = −c0(c1 log(c2 h) − c3c4 y/(c5 h)) = −(c0c1) log(c2 h) + (c0c3c4/c5) y/h.
    c0, c1, c2, c3, c4, c5 = (sp.Rational(c) for c in BAIKAL_CMA_PRINTED)
    cma = -c0 * (c1 * sp.log(c2 * h) - c3 * c4 * y / (c5 * h))
    proof.identity("eq. 2 is the family with A = c0c1, k = c2, B = c0c3c4/c5",
                   cma, family.subs({big_a: c0 * c1, k: c2, big_b: c0 * c3 * c4 / c5}))
    proof.step("BaikalCMA's A, B > 0 (so the analysis applies)",
               c0 * c1 > 0 and c0 * c3 * c4 / c5 > 0)
    proof.step("the catalog's BaikalCMA coefficients are eq. 2's printed ones",
               tuple(BAIKAL_CMA_COEFFICIENTS) == BAIKAL_CMA_PRINTED)
    catalog_gamma = sp.Poly(sp.expand(symloss.gamma(symloss.loss("baikal_cma")) * h**2), h, y)
    exact_gamma = sp.Poly(sp.expand(-sp.diff(cma, h) * h**2), h, y)
    proof.spot_check("floating point: the catalog's γ(baikal_cma) has eq. 2's coefficients to "
                     "1e-12 (it is built from 15-digit Floats)",
                     all(abs(catalog_gamma.coeff_monomial(mono) / value - 1) < 1e-12
                         for mono, value in zip(exact_gamma.monoms(), exact_gamma.coeffs(),
                                                strict=True)))
    cma_beta = c3 * c4 / (c1 * c5)
    cma_min = root.subs({big_a: c0 * c1, big_b: c0 * c3 * c4 / c5})
    proof.identity("BaikalCMA: β = c3c4/(c1c5), p* from the quadratic", cma_min,
                   (1 - cma_beta + sp.sqrt((cma_beta - 1) ** 2 + 8 * cma_beta)) / 4)
    proof.step("GLO 'near 0.77': p* = 0.77194… rounds to 0.77",
               proof.number("GLO §V-A BaikalCMA binary minimum", "0.77", cma_min))

    # The engine's numeric minimum finder against the closed forms.
    for name, exact in (("baikal", baikal_min), ("baikal_cma", cma_min)):
        view = symloss.binary_view(symloss.loss(name))
        proof.step(f"engine binary_view({name}) finds the interior minimum p* within 1e-9",
                   view.interior is True and abs(view.minimum_at - float(exact)) < 1e-9,
                   f"{view.minimum_at} vs {float(exact)}")
    ce_binary = symloss.binary_loss(symloss.loss("cross_entropy"))
    proof.identity("cross-entropy: L = −½ log p", ce_binary, -sp.log(p) / 2)
    proof.negative("… L' = −1/(2p) < 0: decreases monotonically (Fig. 6)", sp.diff(ce_binary, p))
    proof.step("engine binary_view(cross_entropy): minimum at the end p = 1",
               symloss.binary_view(symloss.loss("cross_entropy")).minimum_at == 1.0)
    return proof.verdict("CONFIRMED", f"Baikal: 2p² − 1 = 0, p* = 1/√2 ≈ 0.7071; BaikalCMA: "
                         f"p* = {float(cma_min):.5f} from a quadratic; engine agrees")
