"""The papers' formulas, typed in once from the text (ICLR eq. 10–12, GLO eq. 1–2).

These are written here by hand, independently of :mod:`symloss.catalog`, so that a
proof can check the engine against the paper rather than against itself.
Convention (docs/conventions.md §1): the per-class loss term is ``ℓ = −f`` and ``γ = −∂ℓ/∂h``.
"""

from __future__ import annotations

import sympy as sp

from symloss.symbols import h, y

#: TaylorGLO-3's parameters λ0…λ7 (the engine's symbols: same names, same assumptions).
LAMBDAS = sp.symbols("lambda_0:8", real=True)
L0, L1, L2, L3, L4, L5, L6, L7 = LAMBDAS

#: ICLR eq. 10: the third-order TaylorGLO f(y, h) (the loss is L = −(1/n) Σ f).
TAYLORGLO3_F = (L2 * (h - L1) + L3 * (h - L1) ** 2 + L4 * (h - L1) ** 3
                + L5 * (y - L0) * (h - L1) + L6 * (y - L0) * (h - L1) ** 2
                + L7 * (y - L0) ** 2 * (h - L1))

#: ICLR eq. 11, term by term as printed.
EQ11_GAMMA = (2 * L3 * h - 2 * L1 * L3 + 2 * L6 * h * y - 2 * L6 * L0 * h
              - 2 * L1 * L6 * y + 2 * L1 * L6 * L0 + L2 + L5 * y - L5 * L0 + L7 * y**2
              - 2 * L7 * L0 * y + L7 * L0**2 + 3 * L4 * h**2 - 6 * L1 * L4 * h
              + 3 * L4 * L1**2)

#: ICLR eq. 12's coefficients over [1, h, h², h·y, y, y²], read off eq. 11.
C_COEFFICIENTS = {
    "c1": L2 - 2 * L1 * L3 - L5 * L0 + 2 * L1 * L6 * L0 + L7 * L0**2 + 3 * L4 * L1**2,
    "ch": 2 * L3 - 2 * L6 * L0 - 6 * L1 * L4,
    "chh": 3 * L4,
    "chy": 2 * L6,
    "cy": L5 - 2 * L1 * L6 - 2 * L7 * L0,
    "cyy": L7,
}

#: ICLR App. B, eq. 21–23, as printed.
APPENDIX_B = {
    "a": L2 - 2 * L1 * L3 - L5 * L0 + 2 * L1 * L6 * L0 + L7 * L0**2 + 3 * L4 * L1**2,
    "b": 2 * L3 - 2 * L6 * L0 - 2 * L1 * L6 + L5 - 2 * L7 * L0 - 6 * L4 * L1,
    "c": 2 * L6 + L7 + 3 * L4,
}

#: Free symbols for the six decomposition coefficients (ICLR eq. 12).
c1, ch, chh, chy, cy, cyy = sp.symbols("c1 ch chh chy cy cyy", real=True)
C_SYMBOLS = (c1, ch, chh, chy, cy, cyy)

#: γ written with the free coefficients of eq. 12.
GAMMA_C = c1 + ch * h + chh * h**2 + chy * h * y + cy * y + cyy * y**2

#: GLO eq. 2's coefficients c0…c5, as printed.
BAIKAL_CMA_PRINTED = ("2.7279", "0.9863", "1.5352", "-1.1135", "1.3716", "-0.8411")

#: The AllCNN-C TaylorGLO loss (ICLR §4.1): a, b, c as printed.
ALLCNN_ABC = {"a": "-373.917", "b": "-129.928", "c": "-11.3145"}

#: ICLR App. C eq. 28: γ_N(h) and γ_T(h) of that loss, coefficients of 1, h, h² as printed.
ALLCNN_GAMMA_NONTARGET = ("-373.917", "-130.264", "-11.2188")
ALLCNN_GAMMA_TARGET = ("-372.470735", "-131.47", "-11.2188")


def polynomial(coefficients: tuple[str, ...], variable: sp.Symbol = h) -> sp.Expr:
    """``Σ_i c_i·variable^i`` with the printed decimals as exact rationals."""
    return sum(sp.Rational(c) * variable**i for i, c in enumerate(coefficients))


__all__ = [
    "ALLCNN_ABC", "ALLCNN_GAMMA_NONTARGET", "ALLCNN_GAMMA_TARGET", "APPENDIX_B",
    "BAIKAL_CMA_PRINTED", "C_COEFFICIENTS", "C_SYMBOLS", "EQ11_GAMMA", "GAMMA_C", "LAMBDAS",
    "TAYLORGLO3_F", "c1", "ch", "chh", "chy", "cy", "cyy", "polynomial",
]
