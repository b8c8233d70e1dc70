"""The filter registry (symloss.rules): one definition per rule, three forms that agree.

Oracles: Baikal's null-epoch Δ is n² (ICLR App. C eq. 25–27, by hand) and its basin
an equilibrium at target probability 1/√10 ≈ 0.3162 for n = 10 (Δ(ε) = 0 solved by
hand); cross-entropy shifted by γ → γ + 10 makes the same updates (Σ_k ∂h_k/∂θ = 0)
but fails ICLR Theorem 3 (10 + 10 < 9·(0 + 10)).
"""

from __future__ import annotations

import numpy as np
import pytest

from symloss.catalog import loss, taylorglo
from symloss.gp import from_prefix
from symloss.loss import Loss
from symloss.rules import RULES, Verdict, compile_rule, get_rule, rule_names
from symloss.trainability import candidate_filter

BAIKAL_TREE = ["sub", "log", "h", "div", "y", "h"]  # ℓ = −log h + y/h


def test_one_list_of_names_each_explained():
    assert rule_names() == ("exact", "paper", "stable", "lasting", "equilibrium", "none")
    assert all(RULES[name].name == name and RULES[name].explanation for name in RULES)
    with pytest.raises(TypeError):
        RULES["mine"] = RULES["exact"]  # the registry is read-only


def test_unknown_names_are_one_line_with_a_hint():
    with pytest.raises(ValueError, match=r"unknown filter 'stabel' \(did you mean 'stable'\?\)"):
        get_rule("stabel")
    with pytest.raises(ValueError, match="unknown filter None"):
        get_rule(None)
    with pytest.raises(ValueError, match="rule must be one of exact, paper, none, got 'stable'"):
        compile_rule("stable", taylorglo(3), 10)


def test_scalar_verdicts_by_hand():
    shifted = loss("cross_entropy").shifted(10)
    assert get_rule("exact").verdict(shifted, 10) == Verdict(True)
    assert get_rule("paper").verdict(shifted, 10) == Verdict(
        False, "untrainable at the null epoch (paper rule)")
    assert get_rule("none").verdict(taylorglo(3, [0] * 8), 10) == Verdict(True)
    baikal = get_rule("stable").verdict(loss("baikal"), 10, min_target_probability=0.5)
    assert baikal.passes is False
    assert "equilibrium at target probability 0.3162 < 0.5 (stable rule)" in baikal.reason
    assert get_rule("stable").verdict(loss("baikal"), 10).passes is True  # 0.3162 >= 0.25


def test_an_unbound_family_is_undecided_not_false():
    verdict = get_rule("exact").verdict(taylorglo(3), 10)
    assert verdict.passes is None and "undecided" in verdict.reason


@pytest.mark.parametrize("name", ["exact", "paper", "stable", "none"])
def test_batch_agrees_with_scalar(name):
    rule = get_rule(name)
    vectors = np.random.default_rng(7).normal(size=(12, 8))
    vectors[0] = [0, 0, 0, -1, 0, 2, 0, 0]  # MSE: trainable (Δ = 2)
    vectors[1] = 0.0  # the zero loss: no update
    batch = rule.reasons(taylorglo(3), vectors, 10)
    scalar = [rule.verdict(taylorglo(3, list(v)), 10) for v in vectors]
    assert [reason is None for reason in batch] == [v.passes is True for v in scalar]
    # the zero loss sits on the boundary Δ = 0: Theorem 3 keeps it (≥), first principles not
    assert batch[0] is None and (name in ("none", "paper")) == (batch[1] is None)


@pytest.mark.parametrize(("name", "bound", "passes"), [
    ("exact", 0.25, True), ("paper", 0.25, True), ("stable", 0.25, True),
    ("stable", 0.5, False), ("none", 0.5, True)])
def test_tree_agrees_with_scalar(name, bound, passes):
    rule = get_rule(name)
    tree_reason = rule.tree_reason(from_prefix(BAIKAL_TREE), 10, min_target_probability=bound)
    verdict = rule.verdict(loss("baikal"), 10, min_target_probability=bound)
    assert (tree_reason is None) is passes and verdict.passes is passes
    assert tree_reason == verdict.reason or "0.3162 < 0.5 (stable rule)" in tree_reason


def test_shift_invariance_only_for_exact():
    # γ → γ + c changes no update: the exact rule must not see it; Theorem 3 does.
    for shift in (-3, 0.5, 10):
        shifted = loss("cross_entropy").shifted(shift)
        assert get_rule("exact").verdict(shifted, 10).passes is True
    assert get_rule("paper").verdict(loss("cross_entropy").shifted(10), 10).passes is False


def test_candidate_filter_is_the_registry_compiled():
    assert candidate_filter(taylorglo(3), 10, rule="paper") is \
        get_rule("paper").compiled(taylorglo(3), 10)
    assert not candidate_filter(taylorglo(3), 10, rule="paper").strict


# the pre-registered rules (issue 23): lim Δ at zero error, ICLR §4.1. Oracles by hand:
# cross-entropy's γ = −1/h gives Δ(ε) = γ_T − γ_N with γ_N = 0 (y = 0 terms vanish from
# ∂ℓ/∂h_k) … its limit is 1 (docs/conventions.md §2.5); MSE's is 0; Baikal's null epoch
# rests at an equilibrium (target probability 1/√10).
CE_TREE = ["mul", "y", "log", "h"]  # f = y·log h, so ℓ = −f = −y·log h (GLO negates its tree)


def test_lasting_keeps_gentle_zero_error_and_equilibria_and_names_the_pull():
    lasting, equilibrium = get_rule("lasting"), get_rule("equilibrium")
    for name in ("cross_entropy", "mse", "baikal"):
        assert lasting.verdict(loss(name), 10).passes is True, name
    assert equilibrium.verdict(loss("baikal"), 10).passes is True
    assert equilibrium.verdict(loss("cross_entropy"), 10) == Verdict(
        False, "the null epoch runs to zero training error (equilibrium rule)")
    # 4·CE pulls toward zero error with lim Δ = 4 > 3: the same updates, four times the step
    four = Loss("four", 4 * loss("cross_entropy").expr)
    assert lasting.verdict(four, 10).reason == (
        "zero training error pulls with lim Δ = 4 > 3 (such losses collapsed when trained "
        "longer) (lasting rule)")
    tree = from_prefix(CE_TREE)
    assert lasting.tree_reason(tree, 10) is None
    assert equilibrium.tree_reason(tree, 10) == equilibrium.verdict(
        loss("cross_entropy"), 10).reason
    assert lasting.tree_reason(from_prefix(BAIKAL_TREE), 10) is None


@pytest.mark.parametrize("name", ["lasting", "equilibrium"])
def test_pre_registered_rules_batch_agrees_with_scalar(name):
    rule = get_rule(name)
    vectors = np.random.default_rng(11).normal(scale=1.2, size=(24, 8))
    vectors[0] = [0, 0, 0, -1, 0, 2, 0, 0]  # MSE: zero error, lim Δ = 0
    batch = rule.reasons(taylorglo(3), vectors, 10)
    scalar = [rule.verdict(taylorglo(3, list(v)), 10) for v in vectors]
    assert [reason is None for reason in batch] == [v.passes is True for v in scalar]
    assert [r for r in batch if r] == [v.reason for v in scalar if v.reason is not None
                                       and v.passes is False]
    assert (batch[0] is None) == (name == "lasting")
    assert any(r and "pulls with lim" in r for r in batch) or name == "equilibrium"
