"""Label smoothing as a change of a family's parameters (docs/conventions.md §2.7; ICLR App. D.2).

Oracle: the defining identity ``γ_λ̂(y, h) ≡ γ_λ(y(1−α) + α/n, h)``, checked
symbolically (``expand(...) == 0``) and numerically at random points.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symloss.catalog import family, loss, taylorglo
from symloss.dynamics import gamma
from symloss.smoothing import SmoothingMap, label_smoothing_map
from symloss.symbols import alpha, h, n, y
from symloss.trainability import is_trainable, trainability_condition
from tests.strategies import taylorglo_values

#: γ at λ̂ vs γ at smoothed labels, float64 (sums of a few dozen O(100) terms).
SMOOTHING_RTOL = 1e-9


def _smoothed_gamma(item) -> sp.Expr:
    return gamma(item).subs(y, y * (1 - alpha) + alpha / n)


@pytest.mark.parametrize("order", [3, 4])
def test_map_reproduces_smoothed_gamma_identically(order):
    family_ = taylorglo(order)
    result = label_smoothing_map(family_)
    assert result.exists and result.reason == ""
    mapped = gamma(family_).xreplace(result.mapping)
    assert sp.expand(mapped - _smoothed_gamma(family_)) == 0


def test_map_exists_for_taylorglo2():
    family_ = taylorglo(2)
    result = label_smoothing_map(family_)
    assert result.exists
    assert sp.expand(gamma(family_).xreplace(result.mapping) - _smoothed_gamma(family_)) == 0


def test_a_map_exists_for_taylorglo2_by_hand():
    """The oracle for the test above: the map written by hand satisfies the identity."""
    l0, _, l2, _, l4 = taylorglo(2).parameters
    by_hand = {l2: l2 + alpha * l4 * (1 / n - l0), l4: (1 - alpha) * l4}
    mapped = gamma(taylorglo(2)).xreplace(by_hand)
    assert sp.expand(mapped - _smoothed_gamma(taylorglo(2))) == 0


def test_taylorglo3_map_by_hand():
    l0, _, _, l3, l4, _, l6, l7 = taylorglo(3).parameters
    mapping = label_smoothing_map(taylorglo(3)).mapping
    # Matching y², y·h, y, h, h², 1 of ICLR eq. 11 at y(1−α) + α/n, by hand:
    assert sp.simplify(mapping[l7] - (1 - alpha) ** 2 * l7) == 0
    assert sp.simplify(mapping[l6] - (1 - alpha) * l6) == 0
    assert mapping[l4] == l4 and mapping[l0] == l0
    assert sp.simplify(mapping[l3] - (l3 + alpha * l6 * (1 / n - l0))) == 0


@settings(deadline=None, max_examples=30, derandomize=True)
@given(taylorglo_values(8), st.floats(0.001, 0.5), st.integers(2, 100),
       st.floats(0, 1), st.floats(0.01, 1))
def test_apply_reproduces_smoothed_gamma_numerically(values, smoothing, classes, label, prob):
    family_ = taylorglo(3)
    hats = label_smoothing_map(family_).apply(family_, values, classes, smoothing)
    numeric = sp.lambdify((*family_.parameters, y, h), gamma(family_), modules="numpy")
    smoothed_label = label * (1 - smoothing) + smoothing / classes
    expected = numeric(*values, smoothed_label, prob)
    got = numeric(*hats, label, prob)
    assert got == pytest.approx(expected, rel=SMOOTHING_RTOL, abs=SMOOTHING_RTOL)
    # The null-epoch verdict with smoothing equals the verdict of λ̂ without it
    # (away from the boundary Δ = 0, where float rounding of λ̂ may decide).
    condition = float(trainability_condition(family_.bind(values), classes, smoothing))
    if abs(condition) > 1e-9:
        assert (is_trainable(family_.bind(hats), classes)
                == is_trainable(family_.bind(values), classes, smoothing))


@settings(deadline=None, max_examples=10, derandomize=True)
@given(taylorglo_values(17), st.floats(0.001, 0.5), st.integers(2, 100))
def test_apply_order_4(values, smoothing, classes):
    family_ = taylorglo(4)
    hats = label_smoothing_map(family_).apply(family_, values[:len(family_.parameters)],
                                              classes, smoothing)
    numeric = sp.lambdify((*family_.parameters, y, h), gamma(family_), modules="numpy")
    values = values[:len(family_.parameters)]
    for label, prob in [(0.0, 0.3), (1.0, 0.9), (0.4, 0.05)]:
        expected = numeric(*values, label * (1 - smoothing) + smoothing / classes, prob)
        assert numeric(*hats, label, prob) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_concrete_classes_and_smoothing():
    result = label_smoothing_map(taylorglo(3), classes=10, smoothing=0.1)
    l7 = taylorglo(3).parameters[7]
    assert result.exists and result.mapping[l7] == sp.Rational(81, 100) * l7  # (1 − 0.1)²


def test_family_with_no_mapping_says_why():
    result = label_smoothing_map(family("a*h**2 + b*h*y", ["a", "b"]))
    # γ = −2ah − by; smoothing adds the constant −bα/n, and no parameter multiplies 1.
    assert result.exists is False and "no solution" in result.reason
    with pytest.raises(ValueError, match="no label-smoothing map"):
        result.apply(family("a*h**2 + b*h*y", ["a", "b"]), [1, 2], 10, 0.1)


def test_loss_without_parameters_and_non_polynomial_gamma():
    assert label_smoothing_map(loss("mse")).exists is False
    assert "no parameters" in label_smoothing_map(loss("mse")).reason
    result = label_smoothing_map(family("a*log(h) + b*y/h", ["a", "b"]))
    assert result.exists is False and "not polynomial" in result.reason


def test_family_whose_gamma_ignores_y_maps_to_itself():
    result = label_smoothing_map(family("a*h**2 + b*h", ["a", "b"]))
    assert result.exists and all(key == value for key, value in result.mapping.items())


def test_apply_wrong_length_raises():
    result = label_smoothing_map(taylorglo(3))
    with pytest.raises(ValueError):
        result.apply(taylorglo(3), [1.0] * 7, 10, 0.1)


@pytest.mark.parametrize(("classes", "smoothing"), [(1, 0.1), (10, 1.5), (10, -0.2)])
def test_apply_rejects_bad_classes_and_smoothing(classes, smoothing):
    with pytest.raises(ValueError):
        label_smoothing_map(taylorglo(3)).apply(taylorglo(3), [1.0] * 8, classes, smoothing)


def test_smoothing_map_is_immutable_value():
    result = label_smoothing_map(taylorglo(3))
    assert isinstance(result, SmoothingMap)
    with pytest.raises(AttributeError):
        result.exists = False  # type: ignore[misc]
    assert np.isfinite(result.apply(taylorglo(3), [0.5] * 8, 10, 0.0)).all()
    assert result.apply(taylorglo(3), [0.5] * 8, 10, 0.0) == (0.5,) * 8  # α = 0: identity
