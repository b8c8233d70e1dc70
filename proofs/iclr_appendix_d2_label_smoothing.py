"""ICLR App. D.2 (eq. 35–48): label smoothing is representable within TaylorGLO-3.

**Claim.** Smoothing by α sets the target label to ``1 − α(n−1)/n`` and non-targets to
``α/n``. For every TaylorGLO-3 loss and every ``α ∈ (0, 1)`` there are coefficients
``ĉ`` whose *unsmoothed* rule equals the original's *smoothed* rule (eq. 36–37), namely

* ``ĉ1 = c1 + cy·α/n + cyy·α²/n²`` (eq. 43), ``ĉh = ch + chy·α/n`` (eq. 44),
  ``ĉhh = chh`` (eq. 45),
* ``ĉhy = chy(1 − α(n−1)/n) − chy·α/n`` (eq. 46),
  ``ĉy = cy(1 − α(n−1)/n) − cy·α/n`` (eq. 47),
  ``ĉyy = cyy(1 − α(n−1)/n)² − cyy·α²/n²`` (eq. 48),

and hence a λ̂ for every λ.

**Proof.** Smoothing is ``y → y(1−α) + α/n``; substitute into eq. 12 (eq. 35); check
that eq. 43–48 make the two rules equal at ``y = 0`` and at ``y = 1`` identically in
h (eq. 36–37); simplify eq. 46–48. Matching *every* monomial ``h^i y^j`` (docs/conventions.md §2.7,
the engine's ``label_smoothing_map``) gives ``ĉy = cy(1−α) + 2cyy·α(1−α)/n`` and
``ĉyy = cyy(1−α)²`` instead; the two maps differ by ``2cyy·α(1−α)/n·(y² − y)``, which
vanishes exactly on one-hot labels — the paper matched the two cases y ∈ {0, 1},
so its map is right for what it claims. The map c → λ (eq. 12) is, for fixed λ0, λ1,
an affine bijection of λ2…λ7 (its Jacobian determinant is a non-zero constant), so
every ĉ is some λ̂. The engine's λ-space map is verified by substitution.

**Verdict.** CONFIRMED (eq. 46 simplifies to ``chy(1−α)``, eq. 47 to ``cy(1−α)``; eq.
47–48 hold for one-hot labels, not identically in y).
"""

from __future__ import annotations

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.proofs._paper import C_COEFFICIENTS, GAMMA_C, LAMBDAS, c1, ch, chh, chy, cy, cyy
from symloss.symbols import alpha, h, n, y

CLAIM = "Label smoothing by α is a change of TaylorGLO-3's parameters (eq. 43–48)"
PLACE = "ICLR App. D.2, eq. 35–48"
EXPECTED = "CONFIRMED"


def prove() -> Verdict:
    proof = Proof()
    smoothed_label = y * (1 - alpha) + alpha / n
    proof.identity("target label: 1·(1−α) + α/n = 1 − α(n−1)/n", smoothed_label.subs(y, 1),
                   1 - alpha * (n - 1) / n)
    proof.identity("non-target label: α/n", smoothed_label.subs(y, 0), alpha / n)
    smoothed = GAMMA_C.subs(y, smoothed_label)
    proof.identity("eq. 35 (y = 0): c1 + ch h + chh h² + chy h α/n + cy α/n + cyy α²/n²",
                   smoothed.subs(y, 0), c1 + ch * h + chh * h**2 + chy * h * alpha / n
                   + cy * alpha / n + cyy * alpha**2 / n**2)

    paper = {
        c1: c1 + cy * alpha / n + cyy * alpha**2 / n**2,
        ch: ch + chy * alpha / n,
        chh: chh,
        chy: chy * (1 - alpha * (n - 1) / n) - chy * alpha / n,
        cy: cy * (1 - alpha * (n - 1) / n) - cy * alpha / n,
        cyy: cyy * (1 - alpha * (n - 1) / n) ** 2 - cyy * alpha**2 / n**2,
    }
    proof.identity("eq. 46 simplifies to ĉhy = chy(1−α)", paper[chy], chy * (1 - alpha))
    proof.identity("eq. 47 simplifies to ĉy = cy(1−α)", paper[cy], cy * (1 - alpha))
    proof.identity("eq. 48 simplifies to ĉyy = cyy((1−α)² + 2α(1−α)/n)", paper[cyy],
                   cyy * ((1 - alpha) ** 2 + 2 * alpha * (1 - alpha) / n))
    with_paper = GAMMA_C.xreplace(paper)
    for label in (0, 1):
        proof.identity(f"eq. {36 + label}: with eq. 43–48 the unsmoothed rule at y = {label} "
                       "equals the smoothed one, for all h",
                       with_paper.subs(y, label), smoothed.subs(y, label))
    proof.identity("… but not identically in y: the difference is 2cyy·α(1−α)/n·(y² − y)",
                   with_paper - smoothed, 2 * cyy * alpha * (1 - alpha) / n * (y**2 - y))

    # Matching every monomial: the map identical in y (what the engine derives).
    hats = sp.symbols("hat_c1 hat_ch hat_chh hat_chy hat_cy hat_cyy", real=True)
    candidate = GAMMA_C.xreplace(dict(zip((c1, ch, chh, chy, cy, cyy), hats, strict=True)))
    (solution,) = sp.linsolve(sp.Poly(sp.expand(candidate - smoothed), h, y).coeffs(), hats)
    identity_map = dict(zip((c1, ch, chh, chy, cy, cyy), solution, strict=True))
    expected = {**paper, chy: chy * (1 - alpha),
                cy: cy * (1 - alpha) + 2 * cyy * alpha * (1 - alpha) / n,
                cyy: cyy * (1 - alpha) ** 2}
    for symbol, value in expected.items():
        proof.identity(f"coefficient matching in (h, y): ĉ of {symbol}", identity_map[symbol],
                       value)
    proof.mismatch("eq. 47–48 vs the map identical in y (equivalent on one-hot labels)",
                   "ĉy = cy(1−α), ĉyy = cyy[(1−α(n−1)/n)² − α²/n²]",
                   "ĉy = cy(1−α) + 2cyy·α(1−α)/n, ĉyy = cyy(1−α)²; same γ at y ∈ {0, 1}")

    # Every ĉ is reachable: λ2…λ7 ↦ (c1…cyy) is affine with a constant non-zero Jacobian.
    order = ("c1", "ch", "chh", "chy", "cy", "cyy")
    jacobian = sp.Matrix([[sp.diff(C_COEFFICIENTS[name], lam) for lam in LAMBDAS[2:]]
                          for name in order])
    determinant = sp.simplify(jacobian.det())
    proof.step("∂(c1…cyy)/∂(λ2…λ7) is a constant matrix (c is affine in λ2…λ7)",
               not (jacobian.free_symbols & set(LAMBDAS[2:])))
    proof.step("… with determinant a non-zero constant: every ĉ has a λ̂ (for any λ0, λ1)",
               determinant.is_number and determinant != 0, f"det = {determinant}")

    # The engine's λ-space map, by substitution.
    family = symloss.taylorglo(3)
    result = symloss.label_smoothing_map(family)
    proof.step("engine label_smoothing_map(taylorglo3) exists", result.exists, result.reason)
    gamma = symloss.gamma(family)
    mapped = gamma.xreplace(result.mapping)
    proof.identity("engine map: γ_λ̂(y, h) ≡ γ_λ(y(1−α) + α/n, h) identically in (y, h)",
                   mapped, gamma.subs(y, smoothed_label))
    engine_c = symloss.decompose(_smoothed_family(family, result.mapping))
    in_c = {name: expected[symbol] for name, symbol in zip(order, (c1, ch, chh, chy, cy, cyy),
                                                            strict=True)}
    to_lambda = {symbol: C_COEFFICIENTS[str(symbol)] for symbol in (c1, ch, chh, chy, cy, cyy)}
    for name in order:
        proof.identity(f"engine map in c-space: ĉ{name[1:]} is the identical-in-y map",
                       engine_c[name], in_c[name].xreplace(to_lambda))
    values = (0.3, -0.2, 1.5, -2.0, 0.7, 3.0, -1.1, 0.4)
    hat_values = result.apply(family, values, classes=10, smoothing=0.1)
    original = sp.lambdify((y, h), symloss.gamma(family.bind(values)))
    hatted = sp.lambdify((y, h), symloss.gamma(family.bind(hat_values)))
    points = [(label, p) for label in (0.0, 1.0, 0.37) for p in (0.05, 0.5, 0.93)]
    proof.spot_check("numeric: SmoothingMap.apply at n = 10, α = 0.1 on 9 (y, h) points",
                     all(abs(hatted(label, p) - original(label * 0.9 + 0.01, p)) < 1e-9
                         for label, p in points))
    return proof.verdict("CONFIRMED", "eq. 43–48 make the rules equal at y = 0, 1 (they differ "
                         "from the identical-in-y map by 2cyy·α(1−α)/n·(y²−y)); c → λ is onto")


def _smoothed_family(family: symloss.Loss, mapping: dict) -> symloss.Loss:
    """The family with each λ replaced by λ̂(λ, α, n) (α, n become parameters too)."""
    expression = family.expr.xreplace(mapping)
    return symloss.Loss("taylorglo3-smoothed", expression,
                        (*family.parameters, alpha, n))
