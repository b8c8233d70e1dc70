"""The catalog and the Loss value: γ of each paper loss against the papers' equations.

Oracles are the equations written out by hand here (ICLR eq. 7, 9, 11, App. B
eq. 21–23; GLO eq. 1–2), translated to docs/conventions.md §1's convention (``ℓ = −f``).
"""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

import symloss
from symloss.catalog import BAIKAL_CMA_COEFFICIENTS, CATALOG, family, loss, taylorglo
from symloss.dynamics import decompose, gamma, zero_error_polynomial
from symloss.formula import FormulaError
from symloss.loss import Loss
from symloss.symbols import h, y

L0, L1, L2, L3, L4, L5, L6, L7 = sp.symbols("lambda_0:8", real=True)


def _same(left: sp.Expr, right: sp.Expr) -> bool:
    return sp.simplify(sp.expand(left - right)) == 0


# --- γ of the catalog (ICLR §3) ----------------------------------------------------------------

def test_cross_entropy_gamma_is_iclr_eq_7():
    assert _same(gamma(loss("cross_entropy")), y / h)  # ICLR eq. 7: γ = y/h


def test_baikal_gamma_is_iclr_eq_9():
    assert _same(gamma(loss("baikal")), 1 / h + y / h**2)  # ICLR eq. 9: γ = 1/h + y/h²


def test_mse_gamma():
    assert _same(gamma(loss("mse")), 2 * y - 2 * h)  # docs/conventions.md §1 table: γ = 2y − 2h


def test_taylorglo3_gamma_is_iclr_eq_11():
    # ICLR eq. 11, written out by hand term by term.
    expected = (2 * L3 * h - 2 * L1 * L3 + 2 * L6 * h * y - 2 * L6 * L0 * h - 2 * L1 * L6 * y
                + 2 * L1 * L6 * L0 + L2 + L5 * y - L5 * L0 + L7 * y**2 - 2 * L7 * L0 * y
                + L7 * L0**2 + 3 * L4 * h**2 - 6 * L1 * L4 * h + 3 * L4 * L1**2)
    assert sp.expand(gamma(taylorglo(3)) - expected) == 0


def test_taylorglo3_zero_error_coefficients_are_iclr_app_b():
    coefficients = zero_error_polynomial(taylorglo(3))
    # ICLR App. B, eq. 21–23 (docs/conventions.md: correct as printed).
    a = L2 - 2 * L1 * L3 - L5 * L0 + 2 * L1 * L6 * L0 + L7 * L0**2 + 3 * L4 * L1**2
    b = 2 * L3 - 2 * L6 * L0 - 2 * L1 * L6 + L5 - 2 * L7 * L0 - 6 * L4 * L1
    c = 2 * L6 + L7 + 3 * L4
    assert set(coefficients) == {"a", "b", "c"}
    assert sp.expand(coefficients["a"] - a) == 0
    assert sp.expand(coefficients["b"] - b) == 0
    assert sp.expand(coefficients["c"] - c) == 0


def test_taylorglo3_decomposition_is_iclr_eq_12():
    parts = decompose(taylorglo(3))
    # ICLR eq. 12: γ = c1 + ch·h + chh·h² + chy·h·y + cy·y + cyy·y², coefficients by hand
    # from eq. 11 above.
    expected = {
        "c1": L2 - 2 * L1 * L3 - L5 * L0 + 2 * L1 * L6 * L0 + L7 * L0**2 + 3 * L4 * L1**2,
        "ch": 2 * L3 - 2 * L6 * L0 - 6 * L1 * L4,
        "chh": 3 * L4,
        "chy": 2 * L6,
        "cy": L5 - 2 * L1 * L6 - 2 * L7 * L0,
        "cyy": L7,
    }
    assert list(parts) == ["c1", "ch", "chh", "chy", "cy", "cyy"]
    for name, value in expected.items():
        assert sp.expand(parts[name] - value) == 0, name


def test_mse_is_taylorglo_member_up_to_a_constant():
    member = taylorglo(3).bind([0, 0, 0, -1, 0, 2, 0, 0])  # conventions §1 "checks"
    assert _same(gamma(member), gamma(loss("mse")))
    assert sp.expand(member.expression - loss("mse").expression + y**2) == 0


def test_baikal_cma_is_glo_eq_2():
    c0, c1, _c2, c3, c4, c5 = (sp.Float(c) for c in BAIKAL_CMA_COEFFICIENTS)
    # c2 drops out: ∂/∂h log(c2·h) = 1/h.
    # GLO eq. 2, f = c0·(c1·log(c2·h) − c3·c4·y/(c5·h)), ℓ = −f; γ = −∂ℓ/∂h by hand.
    expected = c0 * (c1 / h + c3 * c4 * y / (c5 * h**2))
    difference = sp.lambdify((y, h), gamma(loss("baikal_cma")) - expected)
    for point in [(0.0, 0.3), (1.0, 0.7), (0.5, 0.01)]:
        assert abs(difference(*point)) < 1e-9


def test_every_catalog_entry_depends_on_y_and_h():
    for name in CATALOG:
        item = loss(name)
        assert item.expr.has(h) and item.expr.has(y), name


# --- taylorglo(order) --------------------------------------------------------------------------

@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_taylorglo_terms_are_all_a_plus_b_up_to_order_with_b_positive(order):
    terms = symloss.taylorglo_terms(order)
    expected = {(a, b) for a in range(order + 1) for b in range(1, order + 1) if a + b <= order}
    assert sorted(terms) == sorted(expected) and len(terms) == len(expected)
    assert len(taylorglo(order).parameters) == len(terms) + 2


def test_taylorglo_order_3_follows_eq_10_parameter_order():
    assert symloss.taylorglo_terms(3) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1)]


@pytest.mark.parametrize("order", [0, -1, 2.5, True, "3"])
def test_taylorglo_rejects_bad_order(order):
    with pytest.raises(ValueError, match="order must be an integer"):
        taylorglo(order)


def test_taylorglo_values_bind():
    member = taylorglo(2, values=[0, 0, 1, 0, 0])
    assert not member.is_family and member.expression == -h


# --- loss() and family() -----------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "name"), [("ce", "cross_entropy"), ("L2", "mse"),
                                             ("BaikalCMA", "baikal_cma"), (" baikal ", "baikal")])
def test_aliases(alias, name):
    assert loss(alias).name == name


def test_formula_loss_is_parsed():
    item = loss("-log(h) + y/h")
    assert item.name == "formula" and item.expression == loss("baikal").expression


def test_loss_accepts_a_loss():
    item = loss("mse")
    assert loss(item) is item


@pytest.mark.parametrize(("spec", "error", "message"), [
    ("hinge", FormulaError, "catalog losses"),
    ("y**2", FormulaError, "does not depend on h"),
    ("h +", FormulaError, "not valid syntax"),
])
def test_loss_errors(spec, error, message):
    with pytest.raises(error, match=message):
        loss(spec)


def test_loss_params_errors():
    with pytest.raises(ValueError, match="has no parameters"):
        loss("mse", params=[1.0])
    with pytest.raises(ValueError, match="takes 8 parameter values, got 2"):
        loss("taylorglo", params=[1, 2])


def test_family_builds_parameters():
    item = family("a*log(h) + b*y/h", ["a", "b"])
    a, b = item.parameters
    assert item.is_family and item.expr == a * sp.log(h) + b * y / h
    assert item.bind([-1, 1]).expression == loss("baikal").expression


@pytest.mark.parametrize("bad", ["y", "h", "log", "1a", "a b", 3])
def test_family_rejects_bad_parameter_names(bad):
    with pytest.raises(ValueError, match="parameter names"):
        family("h", [bad])


# --- the Loss value ----------------------------------------------------------------------------

def test_loss_is_frozen():
    item = loss("mse")
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.name = "other"  # type: ignore[misc]


def test_loss_rejects_stray_symbols_and_non_expressions():
    with pytest.raises(ValueError, match=r"unknown symbols \['z'\]"):
        Loss("bad", sp.Symbol("z") * h)
    with pytest.raises(TypeError, match="sympy expression"):
        Loss("bad", "h")  # type: ignore[arg-type]


def test_bind_unbind_round_trip_and_wrong_length():
    family_ = taylorglo(3)
    member = family_.bind(range(8))
    assert member.values == tuple(float(v) for v in range(8)) and not member.is_family
    assert member.unbind() == family_
    with pytest.raises(ValueError, match="takes 8 parameter values, got 7"):
        family_.bind(range(7))
    with pytest.raises(ValueError, match="takes 8 parameter values, got 9"):
        family_.bind(range(9))


def test_bind_never_mutates():
    family_ = taylorglo(3)
    family_.bind([1] * 8)
    assert family_.values is None


@pytest.mark.parametrize("constant", [10, -2.5, sp.Rational(1, 3)])
def test_shifted_adds_a_constant_to_gamma(constant):
    for item in (loss("baikal"), taylorglo(3), taylorglo(3).bind(range(8))):
        shifted = item.shifted(constant)
        assert sp.expand(gamma(shifted) - gamma(item) - constant) == 0
        assert shifted.parameters == item.parameters and shifted.values == item.values


def test_shifted_by_a_symbolic_constant():
    c = sp.Symbol("c", real=True)
    assert sp.expand(gamma(loss("baikal").shifted(c)) - gamma(loss("baikal")) - c) == 0


def test_latex_and_str():
    assert loss("baikal").latex() == r"- \log{\left(h \right)} + \frac{y}{h}"
    assert str(loss("mse")) == "(h - y)**2"
    assert "lambda" in taylorglo(2).latex()
