"""Learning dynamics (symloss.dynamics) against the papers and against direct numerics.

Oracles: ICLR App. C eq. 25–27 (null epoch), Theorem 1 and §4.1 (zero error),
hand derivations stated next to each value, and — for γ, Δf and A(ε) — float64
numerics that share no code with symloss: central finite differences of ℓ, and
one SGD step on the logits of a numpy softmax.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symloss
from symloss.catalog import loss, taylorglo
from symloss.dynamics import (
    attraction,
    attraction_function,
    decompose,
    delta,
    delta_function,
    gamma,
    gamma_nontarget,
    gamma_target,
    labels,
    logit_step,
    null_epoch,
    zero_error,
    zero_error_polynomial,
)
from symloss.symbols import alpha, epsilon, eta, h, n, y
from tests.strategies import losses

#: γ against central differences of ℓ (step 1e-6·h): relative to |γ| + |ℓ|/h.
GAMMA_RTOL = 1e-6
#: Logit step against finite differences of the numpy loss (step FD_STEP in f).
STEP_RTOL = 1e-6
FD_STEP = 1e-6
#: Attraction: absolute, A is bounded by 1 and 1-Lipschitz in the logits.
ATTRACTION_ATOL = 1e-7

SETTINGS = settings(deadline=None, max_examples=60, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

L0, L1, L2, L3, L4, L5, L6, L7 = sp.symbols("lambda_0:8", real=True)


def _numeric_loss(item: symloss.Loss):
    return sp.lambdify((y, h), item.expression, modules="numpy")


def _evaluate(expression: sp.Expr, eps: float) -> float:
    value = complex(sp.N(expression.subs(epsilon, sp.Float(eps, 30)), 30))
    return value.real if value.imag == 0 else math.nan


# --- γ -----------------------------------------------------------------------------------------

@SETTINGS
@given(losses(), st.floats(0.0, 1.0), st.floats(0.05, 0.95))
def test_gamma_is_minus_the_h_derivative_numerically(item, label, probability):
    value = _numeric_loss(item)
    step = 1e-6 * probability
    with np.errstate(all="ignore"):
        center = float(value(label, probability))
        numeric = -(float(value(label, probability + step))
                    - float(value(label, probability - step))) / (2 * step)
    assume(all(math.isfinite(v) for v in (center, numeric)))
    symbolic = complex(gamma(item).subs({y: label, h: probability}).evalf())
    assume(symbolic.imag == 0 and math.isfinite(symbolic.real))
    tolerance = GAMMA_RTOL * (abs(numeric) + abs(center) / probability + 1)
    assert abs(symbolic.real - numeric) <= tolerance


def test_gamma_family_keeps_parameters_and_bound_member_substitutes():
    family = taylorglo(3)
    assert gamma(family).free_symbols == {y, h, *family.parameters}
    member = family.bind([0, 0, 0, -1, 0, 2, 0, 0])
    assert sp.expand(gamma(member) - (2 * y - 2 * h)) == 0  # MSE, docs/conventions.md §1


def test_gamma_target_and_nontarget():
    baikal = loss("baikal")
    assert gamma_target(baikal) == 1 / h + 1 / h**2     # y = 1 in ICLR eq. 9
    assert gamma_nontarget(baikal) == 1 / h              # y = 0
    # smoothing α = 0.1, n = 10: y_T = 0.91, y_N = 0.01 (ICLR App. D.2)
    assert gamma_target(baikal, 10, 0.1) == 1 / h + sp.Rational(91, 100) / h**2
    assert gamma_nontarget(baikal, 10, 0.1) == 1 / h + sp.Rational(1, 100) / h**2


# --- labels ------------------------------------------------------------------------------------

def test_labels():
    assert labels(10) == (1, 0)
    assert labels(10, 0.1) == (sp.Rational(91, 100), sp.Rational(1, 100))
    target, nontarget = labels(n, alpha)
    assert sp.simplify(target - (1 - alpha + alpha / n)) == 0 and nontarget == alpha / n
    assert labels(np.int64(4), 0.2) == (sp.Rational(85, 100), sp.Rational(5, 100))


# --- error paths shared by every function taking classes / smoothing ---------------------------

CLASSES_FUNCTIONS = [
    lambda c: labels(c),
    lambda c: gamma_target(loss("mse"), c),
    lambda c: gamma_nontarget(loss("mse"), c),
    lambda c: delta(loss("mse"), c),
    lambda c: logit_step(loss("mse"), c),
    lambda c: attraction(loss("mse"), c),
    lambda c: null_epoch(loss("mse"), c),
    lambda c: zero_error(loss("mse"), c),
    lambda c: delta_function(loss("mse"), c),
    lambda c: symloss.trainability_condition(loss("mse"), c),
    lambda c: symloss.paper_condition(loss("mse"), c),
    lambda c: symloss.is_trainable(loss("mse"), c),
    lambda c: symloss.paper_trainable(loss("mse"), c),
    lambda c: symloss.analyze(loss("mse"), c),
    lambda c: symloss.label_smoothing_map(taylorglo(3), c, 0.1),
]


@pytest.mark.parametrize("classes", [1, 0, -3, 2.5, True, "10", None])
@pytest.mark.parametrize("call", CLASSES_FUNCTIONS)
def test_bad_classes_raise_value_error_naming_the_value(call, classes):
    with pytest.raises((ValueError, TypeError), match="classes"):
        call(classes)


@pytest.mark.parametrize("classes", [2.5, "3"])
@pytest.mark.parametrize("call", [
    lambda c: attraction_function(loss("mse"), c),
    lambda c: symloss.candidate_filter(taylorglo(3), c),
])
def test_numeric_builders_reject_non_integer_classes(call, classes):
    with pytest.raises(ValueError, match="classes"):
        call(classes)


SMOOTHING_FUNCTIONS = [
    lambda s: labels(10, s),
    lambda s: gamma_target(loss("mse"), 10, s),
    lambda s: delta(loss("mse"), 10, s),
    lambda s: logit_step(loss("mse"), 10, smoothing=s),
    lambda s: null_epoch(loss("mse"), 10, s),
    lambda s: attraction_function(loss("mse"), 10, smoothing=s),
    lambda s: symloss.is_trainable(loss("mse"), 10, s),
    lambda s: symloss.analyze(loss("mse"), 10, s),
    lambda s: symloss.binary_view(loss("mse"), s),
    lambda s: symloss.label_smoothing_map(taylorglo(3), 10, s),
]


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5, math.nan])
@pytest.mark.parametrize("call", SMOOTHING_FUNCTIONS)
def test_bad_smoothing_raises_value_error(call, smoothing):
    with pytest.raises(ValueError, match="smoothing"):
        call(smoothing)


@pytest.mark.parametrize("call", [
    lambda item: attraction_function(item, 10),
    lambda item: delta_function(item, 10),
    lambda item: symloss.attraction_table([item], 10),
])
def test_numeric_functions_refuse_a_family(call):
    with pytest.raises(ValueError, match="bind the parameters lambda_0"):
        call(taylorglo(3))


# --- Δ(ε) and the logit step (docs/conventions.md §2.2; ICLR App. D.3) ----------------------

def test_delta_scalar_cases():
    # By hand from γ: CE Δ = 1/(1−ε); MSE Δ = 2ε + 2ε/(n−1) = 2εn/(n−1).
    assert sp.simplify(delta(loss("cross_entropy"), 10) - 1 / (1 - epsilon)) == 0
    assert sp.simplify(delta(loss("mse"), n) - 2 * epsilon * n / (n - 1)) == 0


def test_delta_function_is_vectorized_and_matches_delta():
    grid = np.linspace(0.01, 0.9, 7)
    values = delta_function(loss("mse"), 10)(grid)
    assert values.shape == grid.shape
    np.testing.assert_allclose(values, 20 * grid / 9, rtol=1e-12)  # MSE Δ = 20ε/9 at n = 10
    scalar = delta_function(loss("mse"), 10)(0.45)
    assert scalar.shape == () and np.isclose(scalar, 1.0)


@pytest.mark.parametrize("item", [loss("cross_entropy"), loss("baikal"), loss("mse"),
                                  loss("focal"), taylorglo(3)], ids=lambda item: item.name)
@pytest.mark.parametrize("classes", [3, n])
def test_logit_step_is_spec_formula(item, classes):
    # docs/conventions.md §2.2: Δf_T = η' ε(1−ε)Δ(ε), Δf_N = −Δf_T/(n−1), η' = η/n.
    target, nontarget = logit_step(item, classes)
    expected = eta / classes * epsilon * (1 - epsilon) * delta(item, classes)
    assert sp.simplify(target - expected) == 0
    assert sp.simplify(nontarget + expected / (classes - 1)) == 0


def test_logit_step_cross_entropy_by_hand():
    target, nontarget = logit_step(loss("cross_entropy"), 3, lr=1)
    # Δ = 1/(1−ε): Δf_T = (1/3)·ε(1−ε)/(1−ε) = ε/3, Δf_N = −ε/6.
    assert sp.simplify(target - epsilon / 3) == 0 and sp.simplify(nontarget + epsilon / 6) == 0


@pytest.mark.parametrize("item", [loss("cross_entropy"), loss("baikal"), taylorglo(3)],
                         ids=lambda item: item.name)
def test_attraction_is_spec_formula(item):
    # docs/conventions.md §2.3: A = (1−ε)e^D/(ε + (1−ε)e^D) − (1−ε), D = η' ε(1−ε)Δ n/(n−1).
    d = eta / 10 * epsilon * (1 - epsilon) * delta(item, 10) * 10 / 9
    expected = (1 - epsilon) * sp.exp(d) / (epsilon + (1 - epsilon) * sp.exp(d)) - (1 - epsilon)
    target, nontarget = logit_step(item, 10)
    assert sp.simplify(target - nontarget - d) == 0  # D = Δf_T − Δf_N, symbolically
    difference = attraction(item, 10, lr=eta) - expected
    for point in [(0.05, 0.1), (0.5, 1.0), (0.8, 0.01)]:  # the rest: 30-digit spot checks
        value = sp.N(difference.subs({epsilon: point[0], eta: point[1]}), 30)
        if item.is_family:
            value = sp.N(value.subs(dict.fromkeys(item.parameters, sp.Rational(1, 3))), 30)
        assert abs(value) < 1e-25


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def _simulate_step(value, classes: int, eps: float, lr: float, smoothing: float = 0.0):
    """One SGD step on the logits of the symmetric state, by numpy only.

    f_T = log(1−ε), f_N = log(ε/(n−1)); L(f) = (1/n) Σ_k ℓ(y_k, softmax(f)_k);
    ∇L by central differences; f ← f − η∇L. Returns (Δf_T, Δf_N, A, |L|).
    """
    logits = np.full(classes, math.log(eps / (classes - 1)))
    logits[0] = math.log(1 - eps)
    label = np.full(classes, smoothing / classes)
    label[0] = 1 - smoothing + smoothing / classes
    offsets = np.vstack([np.eye(classes), -np.eye(classes)]) * FD_STEP
    with np.errstate(all="ignore"):
        probabilities = _softmax(logits + offsets)
        losses_ = np.mean(np.asarray(value(label, probabilities), dtype=float) + 0 * label,
                          axis=-1)
        center = float(np.mean(np.asarray(value(label, _softmax(logits)), dtype=float)
                               + 0 * label))
        gradient = (losses_[:classes] - losses_[classes:]) / (2 * FD_STEP)
    step = -lr * gradient
    moved = _softmax(logits + step)
    return step[0], step[1], moved[0] - (1 - eps), gradient, center


@SETTINGS
@given(losses(), st.floats(0.01, 0.95), st.integers(2, 20), st.floats(0.001, 1.0),
       st.sampled_from([0.0, 0.0, 0.1]))
def test_logit_step_and_attraction_match_a_numpy_sgd_step(item, eps, classes, lr, smoothing):
    value = _numeric_loss(item)
    target, nontarget, moved, gradient, center = _simulate_step(
        value, classes, eps, lr, smoothing)
    assume(np.all(np.isfinite(gradient)) and math.isfinite(center))
    assume(abs(target - nontarget) < 30)  # keep e^D representable for the symbolic A
    symbolic_target, symbolic_nontarget = logit_step(item, classes, lr=lr, smoothing=smoothing)
    expected_target = _evaluate(symbolic_target, eps)
    expected_nontarget = _evaluate(symbolic_nontarget, eps)
    assume(math.isfinite(expected_target) and math.isfinite(expected_nontarget))
    scale = lr * (np.max(np.abs(gradient)) + abs(center) + 1)
    assert abs(expected_target - target) <= STEP_RTOL * scale
    assert abs(expected_nontarget - nontarget) <= STEP_RTOL * scale
    # Every non-target moves alike (the state stays symmetric).
    expected_attraction = _evaluate(attraction(item, classes, lr=lr, smoothing=smoothing), eps)
    numeric_attraction = float(attraction_function(item, classes, lr, smoothing)(eps))
    tolerance = ATTRACTION_ATOL + 2 * STEP_RTOL * scale
    assert abs(expected_attraction - moved) <= tolerance
    assert abs(numeric_attraction - moved) <= tolerance


@pytest.mark.parametrize("name", ["cross_entropy", "baikal", "mse", "baikal_cma", "focal"])
@pytest.mark.parametrize("classes", [2, 10])
def test_catalog_logit_step_matches_numpy_sgd_step(name, classes):
    item = loss(name)
    value = _numeric_loss(item)
    for eps in (0.02, 0.3, (classes - 1) / classes):
        target, nontarget, moved, gradient, center = _simulate_step(value, classes, eps, 0.1)
        symbolic_target, symbolic_nontarget = logit_step(item, classes, lr=0.1)
        scale = 0.1 * (np.max(np.abs(gradient)) + abs(center) + 1)
        assert abs(_evaluate(symbolic_target, eps) - target) <= STEP_RTOL * scale
        assert abs(_evaluate(symbolic_nontarget, eps) - nontarget) <= STEP_RTOL * scale
        assert abs(float(attraction_function(item, classes, 0.1)(eps)) - moved) <= (
            ATTRACTION_ATOL + 2 * STEP_RTOL * scale)


@SETTINGS
@given(losses(), st.floats(0.01, 0.95), st.integers(2, 20))
def test_sign_of_attraction_is_sign_of_delta(item, eps, classes):
    assume(not delta(item, classes).has(sp.zoo, sp.nan))  # ℓ undefined at a one-hot label
    delta_value = float(delta_function(item, classes)(eps))
    value = float(attraction_function(item, classes, lr=0.1)(eps))
    assume(math.isfinite(delta_value) and abs(delta_value) > 1e-9 and math.isfinite(value))
    assert np.sign(value) == np.sign(delta_value) or value == 0.0


def test_attraction_function_is_stable_when_the_step_overflows():
    huge = attraction_function(loss("cross_entropy"), 10, lr=1e6)  # e^D overflows
    grid = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(huge(grid), grid, rtol=1e-12)  # h_T → 1, so A → ε
    repel = attraction_function(loss("cross_entropy").shifted(0), 10, lr=1e6, smoothing=0.5)
    assert repel(np.array([1e-3]))[0] == pytest.approx(-(1 - 1e-3))  # h_T → 0: A → −(1−ε)


def test_attraction_function_vectorized_shapes():
    curve = attraction_function(loss("baikal"), 10, lr=0.1)
    assert curve(np.linspace(0.01, 0.9, 11)).shape == (11,)
    assert curve(np.ones((2, 3)) * 0.5).shape == (2, 3)


# --- null epoch (ICLR App. C) ------------------------------------------------------------------

@pytest.mark.parametrize(("name", "gamma_t", "gamma_n"), [
    ("cross_entropy", n, 0),        # ICLR eq. 26
    ("baikal", n + n**2, n),        # ICLR eq. 27
    ("mse", 2 - 2 / n, -2 / n),     # ICLR eq. 25
])
def test_null_epoch_is_iclr_app_c(name, gamma_t, gamma_n):
    result = null_epoch(loss(name), n)
    assert sp.simplify(result.gamma_target - gamma_t) == 0
    assert sp.simplify(result.gamma_nontarget - gamma_n) == 0
    assert result.trainable is True
    concrete = null_epoch(loss(name), 10)
    assert concrete.gamma_target == sp.sympify(gamma_t).subs(n, 10)
    assert concrete.gamma_nontarget == sp.sympify(gamma_n).subs(n, 10)


def test_null_epoch_family_is_undecided():
    result = null_epoch(taylorglo(3), 10)
    assert result.trainable is None and result.delta.free_symbols


def test_null_epoch_iclr_eq_28_to_30():
    # ICLR eq. 28: γ_N = −373.917 − 130.264h − 11.2188h², γ_T = −372.470735 − 131.47h − 11.2188h²;
    # eq. 30 at n = 10: γ_N = −386.9546188, γ_T = −385.729923, and the target grows.
    # eq. 30's γ_N does not follow from eq. 28 (−373.917 − 13.0264 − 0.112188 = −387.055588);
    # its γ_T does. We check eq. 28 evaluated by hand, and eq. 30's γ_T.
    text = ("373.917*h + 130.264*h**2/2 + 11.2188*h**3/3 "
            "+ y*(-1.446265*h + 1.206*h**2/2)")
    result = null_epoch(loss(text), 10)
    assert float(result.gamma_nontarget) == pytest.approx(-387.055588, abs=1e-6)
    assert float(result.gamma_target) == pytest.approx(-385.729923, abs=1e-6)
    assert result.trainable is True  # both negative, the non-target more so (App. C)


# --- zero-error regime (ICLR §4.1, Theorem 1) --------------------------------------------------

@pytest.mark.parametrize("classes", [2, 10, 100])
def test_baikal_zero_error_repels_theorem_1(classes):
    result = zero_error(loss("baikal"), classes)
    assert result.limit == -sp.oo and result.attractor is False  # ICLR Theorem 1


def test_baikal_zero_error_repels_for_symbolic_n():
    assert zero_error(loss("baikal"), n).attractor is False


@pytest.mark.parametrize("classes", [2, 10, n])
def test_cross_entropy_zero_error_attracts(classes):
    # Δ = 1/(1−ε) → 1 (the non-target 0/0 resolved as a limit).
    result = zero_error(loss("cross_entropy"), classes)
    assert result.limit == 1 and result.attractor is True


def test_cross_entropy_with_label_smoothing_repels():
    # By hand: Δ = y_T/(1−ε) − y_N(n−1)/ε with y_N = α/n > 0, so Δ → −∞.
    result = zero_error(loss("cross_entropy"), 10, 0.1)
    assert result.limit == -sp.oo and result.attractor is False


@pytest.mark.parametrize("text", [
    "y*log(1 - h)",                 # γ = y/(1 − h): Δ = 1/ε
    "-y*log(h) + (1 - y)*log(h)",   # γ = y/h − (1 − y)/h: Δ = 1/(1 − ε) + (n − 1)/ε
])
def test_positive_infinite_zero_error_limit(text):
    # By hand, both Δ → +∞ as ε → 0+: zero error pulls (docs/conventions.md §2.5).
    result = zero_error(loss(text), 10)
    assert result.limit == sp.oo


@pytest.mark.parametrize("text", ["y*log(1 - h)", "-y*log(h) + (1 - y)*log(h)"])
def test_positive_infinite_zero_error_limit_is_an_attractor(text):
    assert zero_error(loss(text), 10).attractor is True


def test_sign_verdict_of_positive_infinity():
    from symloss.dynamics import sign_verdict

    assert sign_verdict(sp.oo) is True


def test_mse_zero_error_is_decided_at_order_epsilon():
    result = zero_error(loss("mse"), 10)  # Δ = 20ε/9
    assert (result.limit, result.attractor, result.leading_order) == (0, True, 1)


@pytest.mark.parametrize("classes", [10, n])
def test_taylorglo3_zero_error_limit_is_b_plus_c(classes):
    # ICLR §4.1: lim Δ = γ(1, 1) − γ(0, 0) = (a + b + c) − a = b + c, eq. 22–23.
    b = 2 * L3 - 2 * L6 * L0 - 2 * L1 * L6 + L5 - 2 * L7 * L0 - 6 * L4 * L1
    c = 2 * L6 + L7 + 3 * L4
    result = zero_error(taylorglo(3), classes)
    assert sp.expand(result.limit - (b + c)) == 0 and result.attractor is None


def test_zero_error_undecided_when_delta_vanishes():
    result = zero_error(loss("h"), 10)  # γ ≡ −1: Δ ≡ 0 at every order
    assert result.attractor is None


# --- decompose / zero_error_polynomial ---------------------------------------------------------

def test_decompose_scalar_and_non_polynomial():
    assert decompose(loss("mse")) == {"c1": 0, "ch": -2, "chh": 0, "chy": 0, "cy": 2, "cyy": 0}
    assert decompose(loss("baikal")) is None  # γ = 1/h + y/h² is not polynomial
    higher = decompose(taylorglo(4))
    assert "chhh" in higher and list(higher)[:6] == ["c1", "ch", "chh", "chy", "cy", "cyy"]


def test_zero_error_polynomial_scalar_and_non_polynomial():
    assert zero_error_polynomial(loss("mse")) == {"a": 0, "b": 0, "c": 0}  # γ(y, y) = 0
    assert zero_error_polynomial(loss("cross_entropy")) == {"a": 1, "b": 0, "c": 0}  # y/y = 1
    assert zero_error_polynomial(loss("baikal")) is None  # γ(y, y) = 2/y is not polynomial
    family = zero_error_polynomial(taylorglo(3))
    assert family["c"].free_symbols == {L4, L6, L7}  # eq. 23


def test_numeric_curves_of_a_loss_undefined_at_one_hot_labels_are_a_clear_error():
    # ℓ = h·log(y) is undefined at y = 0 (log 0): a ValueError naming it, not a KeyError.
    with pytest.raises(ValueError, match="undefined at the labels"):
        delta_function(loss("h*log(y)"), 10)
    with pytest.raises(ValueError, match="undefined at the labels"):
        attraction_function(loss("h*log(y)"), 10)
