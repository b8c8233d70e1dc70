"""Trainability (docs/conventions.md §2.6): shift invariance, the paper's invariant, the filter.

Oracles: ``Σ_k ∂h_k/∂θ = 0``, so ``γ → γ + c`` must change no first-principles
verdict; ICLR Theorem 3 / App. D.4 eq. 69–70 written out by hand with eq. 12's
coefficients; per-candidate symbolic verdicts for the vectorized mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symloss.catalog import family, loss, taylorglo
from symloss.dynamics import attraction, delta, logit_step, null_epoch, zero_error
from symloss.loss import Loss
from symloss.symbols import epsilon, h, n
from symloss.trainability import (
    candidate_filter,
    is_trainable,
    paper_condition,
    paper_trainable,
    trainability_condition,
)
from tests.strategies import losses

SETTINGS = settings(deadline=None, max_examples=40, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

#: Shifted and unshifted numeric step / attraction agree to float64 rounding of the shift.
SHIFT_RTOL = 1e-9

L0, L1, L2, L3, L4, L5, L6, L7 = sp.symbols("lambda_0:8", real=True)
SHIFT = sp.Symbol("c", real=True)


def _defined(item: Loss, classes: int) -> bool:
    return not delta(item, classes).has(sp.zoo, sp.nan)


def _values(expression: sp.Expr, points=(0.05, 0.4, 0.8)) -> list[complex]:
    return [complex(sp.N(expression.subs(epsilon, point), 20)) for point in points]


# --- scalar, family, error --------------------------------------------------------------------

def test_trainability_condition_scalar_cases():
    # Δ at the null epoch by hand from ICLR App. C eq. 25–27: CE n − 0; Baikal n²; MSE 2.
    assert trainability_condition(loss("cross_entropy"), 10) == 10
    assert trainability_condition(loss("baikal"), 10) == 100
    assert trainability_condition(loss("mse"), n) == 2
    assert is_trainable(loss("baikal"), 10) is True
    assert is_trainable(taylorglo(3, [0] * 8), 10) is False  # λ = 0: zero gradients (ICLR §5)


def test_trainability_condition_taylorglo3_by_hand():
    # γ_T(1/n) − γ_N(1/n) = chy/n + cy + cyy with eq. 12's coefficients.
    expected = 2 * L6 / n + L5 - 2 * L1 * L6 - 2 * L7 * L0 + L7
    assert sp.simplify(trainability_condition(taylorglo(3), n) - expected) == 0
    assert is_trainable(taylorglo(3), 10) is None  # depends on λ: undecided, not False


def _eq_12(n_: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    c1 = L2 - 2 * L1 * L3 - L5 * L0 + 2 * L1 * L6 * L0 + L7 * L0**2 + 3 * L4 * L1**2
    ch, chh = 2 * L3 - 2 * L6 * L0 - 6 * L1 * L4, 3 * L4
    chy, cy, cyy = 2 * L6, L5 - 2 * L1 * L6 - 2 * L7 * L0, L7
    # ICLR eq. 69: c1 + cy + cyy + ch/n + chy/n + chh/n² < (n−1)(c1 + ch/n + chh/n²).
    eq_69 = (c1 + cy + cyy + ch / n_ + chy / n_ + chh / n_**2
             - (n_ - 1) * (c1 + ch / n_ + chh / n_**2))
    # ICLR eq. 70 (= eq. 19): cy + cyy + chy/n < (n−2)(c1 + ch/n + chh/n²).
    eq_70 = cy + cyy + chy / n_ - (n_ - 2) * (c1 + ch / n_ + chh / n_**2)
    return eq_69, eq_70


@pytest.mark.parametrize("classes", [2, 10, n])
def test_paper_condition_is_iclr_eq_69_and_70(classes):
    eq_69, eq_70 = _eq_12(sp.sympify(classes))
    condition = paper_condition(taylorglo(3), classes)
    assert sp.simplify(condition - eq_69) == 0
    assert sp.simplify(condition - eq_70) == 0  # eq. 19 is eq. 18 rearranged


def test_paper_trainable_scalar_cases():
    assert paper_trainable(loss("cross_entropy"), 10) is True
    assert paper_trainable(taylorglo(3), 10) is None


# --- shift invariance --------------------------------------------------------------------------

@SETTINGS
@given(losses(), st.integers(2, 12),
       st.floats(-20, 20, allow_nan=False).filter(lambda c: abs(c) > 1e-3) | st.integers(-20, 20))
def test_first_principles_verdicts_are_shift_invariant(item, classes, constant):
    assume(_defined(item, classes))
    shifted = item.shifted(constant)
    assert null_epoch(shifted, classes).trainable == null_epoch(item, classes).trainable
    assert is_trainable(shifted, classes) == is_trainable(item, classes)
    assert sp.simplify(trainability_condition(shifted, classes)
                       - trainability_condition(item, classes)) == 0
    assert sp.simplify(delta(shifted, classes) - delta(item, classes)) == 0
    for mine, theirs in zip(logit_step(shifted, classes, lr=0.1),
                            logit_step(item, classes, lr=0.1), strict=True):
        for a, b in zip(_values(mine), _values(theirs), strict=True):
            assert a == pytest.approx(b, rel=SHIFT_RTOL, abs=SHIFT_RTOL) or not np.isfinite(b)
    for a, b in zip(_values(attraction(shifted, classes, lr=0.1)),
                    _values(attraction(item, classes, lr=0.1)), strict=True):
        assert a == pytest.approx(b, rel=SHIFT_RTOL, abs=SHIFT_RTOL) or not np.isfinite(b)


@settings(deadline=None, max_examples=25, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(losses(), st.integers(2, 12), st.integers(-20, 20))
def test_zero_error_verdict_is_shift_invariant(item, classes, constant):
    assume(_defined(item, classes))
    assert (zero_error(item.shifted(constant), classes).attractor
            == zero_error(item, classes).attractor)


@pytest.mark.parametrize("item", [loss("baikal"), loss("focal"), taylorglo(3)],
                         ids=lambda item: item.name)
def test_trainability_condition_is_shift_invariant_symbolically(item):
    shifted = Loss("shifted", item.expr - SHIFT * h, (*item.parameters, SHIFT))
    assert sp.simplify(trainability_condition(shifted, n) - trainability_condition(item, n)) == 0
    # The paper's condition moves by c − (n−1)c = (2 − n)c: invariant only at n = 2.
    moved = paper_condition(shifted, n) - paper_condition(item, n)
    assert sp.simplify(moved - (2 - n) * SHIFT) == 0


def test_paper_invariant_is_not_shift_invariant_for_more_than_two_classes():
    # γ = y/h + 10 at n = 10: γ_T(1/10) = 20, γ_N(1/10) = 10; 20 < 9·10, so the
    # paper rejects it, though the updates are cross-entropy's (Δ = 10 > 0).
    shifted = loss("cross_entropy").shifted(10)
    assert paper_trainable(loss("cross_entropy"), 10) is True
    assert paper_trainable(shifted, 10) is False
    assert is_trainable(shifted, 10) is True
    assert paper_condition(shifted, 10) == -70


@SETTINGS
@given(losses(), st.integers(-20, 20))
def test_paper_invariant_coincides_with_first_principles_at_two_classes(item, constant):
    assume(_defined(item, 2))
    for candidate in (item, item.shifted(constant)):
        condition = trainability_condition(candidate, 2)
        assert sp.simplify(paper_condition(candidate, 2) - condition) == 0
        exact, paper = is_trainable(candidate, 2), paper_trainable(candidate, 2)
        assume(exact is not None and paper is not None)
        if sp.simplify(condition) != 0:
            assert exact == paper


def test_two_class_boundary_where_the_two_verdicts_differ():
    """At Δ = 0 (no update at all) the paper's ``≥`` passes what ``> 0`` rejects.

    λ = 0 is the paper's own degenerate example (ICLR §5), and every loss whose
    γ ignores y (here −log h) is the same case.
    """
    for item in (taylorglo(3, [0] * 8), loss("-log(h)")):
        assert trainability_condition(item, 2) == 0
        assert is_trainable(item, 2) is False
        assert paper_trainable(item, 2) is True


# --- candidate_filter --------------------------------------------------------------------------

@settings(deadline=None, max_examples=8, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from([2, 3, 10]), st.sampled_from([0.0, 0.1]),
       st.sampled_from(["exact", "paper"]))
def test_mask_agrees_with_per_candidate_verdicts(seed, classes, smoothing, rule):
    rng = np.random.default_rng(seed)
    candidates = rng.uniform(-3, 3, size=(25, 8))
    mask = candidate_filter(taylorglo(3), classes, smoothing, rule=rule).mask(candidates)
    verdict = is_trainable if rule == "exact" else paper_trainable
    expected = [verdict(taylorglo(3).bind(row), classes, smoothing) for row in candidates]
    assert mask.dtype == bool and mask.shape == (25,)
    assert mask.tolist() == expected


def test_mask_for_a_user_family_and_special_rows():
    keep = candidate_filter(family("a*log(h) + b*y/h", ["a", "b"]), 10)
    # By hand: γ = −a/h + b·y/h², so Δ(null) = γ_T(1/n) − γ_N(1/n) = b·n²: trainable iff b > 0.
    mask = keep.mask(np.array([[-1, 1], [5, -1], [0, 0], [1, np.nan], [1, np.inf]]))
    assert mask.tolist() == [True, False, False, False, False]
    assert keep.mask(np.array([-1.0, 1.0])).tolist() == [True]  # one vector: one row


def test_taylorglo_mask_doc_example():
    keep = candidate_filter(taylorglo(3), classes=10)
    assert keep.mask(np.array([[0, 0, 0, -1, 0, 2, 0, 0], [0.0] * 8])).tolist() == [True, False]


def test_rule_none_keeps_everything_and_bad_rule_raises():
    assert candidate_filter(taylorglo(3), 10, rule="none").mask(np.zeros((3, 8))).all()
    with pytest.raises(ValueError, match="rule must be one of exact, paper, none, got 'strict'"):
        candidate_filter(taylorglo(3), 10, rule="strict")


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 8), (7,), (4, 9)])
def test_mask_shape_errors_name_the_shape(shape):
    keep = candidate_filter(taylorglo(3), 10)
    expected = shape if len(shape) != 1 else (1, *shape)
    with pytest.raises(ValueError, match=rf"shape \[N, 8\], got {tuple(expected)!r}".replace(
            "(", r"\(").replace(")", r"\)")):
        keep.mask(np.zeros(shape))


def test_candidate_filter_bad_classes():
    with pytest.raises(ValueError, match="classes"):
        candidate_filter(taylorglo(3), 1)
