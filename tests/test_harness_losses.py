"""The generated torch loss against the symbolic core.

Oracle: ICLR eq. 3 with the softmax Jacobian (docs/conventions.md §1, §2.2) —
``∂L/∂f_j = −(1/(nB)) Σ_b Σ_k γ_k h_k (δ_kj − h_j)`` for ``L`` the batch mean
of ``(1/n) Σ_k ℓ(y_k, h_k)`` and ``γ = −∂ℓ/∂h`` evaluated by sympy/numpy,
independently of the torch printer. Compared with autograd in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symloss.catalog import loss, taylorglo
from symloss.dynamics import gamma
from symloss.harness.codegen import generate, term_source
from symloss.harness.losses import torch_loss
from symloss.loss import Loss
from symloss.symbols import h, y

#: autograd vs symbolic gradient, float64: relative tolerance (a few ulps of the sums involved).
GRADIENT_RTOL = 1e-7
GRADIENT_ATOL = 1e-10

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def gamma_expr(term: Loss) -> sp.Expr:
    return gamma(term)


def symbolic_gradient(term: Loss, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ICLR eq. 3 on the trainer's scale (no 1/n, docs/conventions.md §1):
    −(1/B) Σ_k γ_k h_k(δ_kj − h_j), per sample b, γ from sympy."""
    gamma = sp.lambdify((y, h), gamma_expr(term).xreplace(term.substitution), "numpy")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    gammas = np.broadcast_to(gamma(labels, probabilities), probabilities.shape)
    batch = logits.shape[0]
    weighted = gammas * probabilities  # γ_k h_k
    jacobian_product = weighted - probabilities * weighted.sum(axis=1, keepdims=True)
    return -jacobian_product / batch


def autograd_gradient(term: Loss, logits: np.ndarray, target: torch.Tensor,
                      label_smoothing: float = 0.0, scale: str = "sum") -> np.ndarray:
    tensor = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = torch_loss(term, label_smoothing=label_smoothing, scale=scale)(tensor, target)
    (gradient,) = torch.autograd.grad(value, tensor)
    return gradient.numpy()


def assert_gradients_agree(term: Loss, logits: np.ndarray, classes_of: np.ndarray) -> None:
    labels = np.eye(logits.shape[1])[classes_of]
    expected = symbolic_gradient(term, logits, labels)
    assume(np.all(np.isfinite(expected)))
    actual = autograd_gradient(term, logits, torch.tensor(classes_of))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL * scale)


@st.composite
def batches(draw) -> tuple[np.ndarray, np.ndarray]:
    batch = draw(st.integers(1, 4))
    classes = draw(st.integers(2, 6))
    values = st.floats(-4.0, 4.0, allow_nan=False)
    logits = np.array(draw(st.lists(values, min_size=batch * classes, max_size=batch * classes)))
    targets = draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch))
    return logits.reshape(batch, classes), np.array(targets)


CONSTANTS = (sp.Integer(1), sp.Integer(-1), sp.Integer(2), sp.Rational(1, 2), sp.Integer(3))
UNARY = (sp.log, sp.sqrt, sp.exp, lambda a: a**2)
BINARY = (sp.Add, lambda a, b: a - b, sp.Mul, lambda a, b: a / b)


def formulas() -> st.SearchStrategy[sp.Expr]:
    """Random GP-like trees over y, h and small constants (GLO §III-A operators, plus exp)."""
    leaves = st.sampled_from((y, h, h, *CONSTANTS))
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.tuples(st.sampled_from(UNARY), children).map(lambda t: t[0](t[1])),
            st.tuples(st.sampled_from(BINARY), children, children).map(lambda t: t[0](t[1], t[2])),
        ),
        max_leaves=6,
    ).filter(lambda expr: isinstance(expr, sp.Expr) and expr.has(h) and not expr.has(sp.zoo))


CATALOG_MEMBERS = {
    "mse": loss("mse"),
    "cross_entropy": loss("cross_entropy"),
    "baikal": loss("baikal"),
    "baikal_cma": loss("baikal_cma"),
    "focal": loss("focal"),
    "taylorglo3": taylorglo(3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9]),
}


@pytest.mark.parametrize("name", sorted(CATALOG_MEMBERS))
@SETTINGS
@given(batch=batches())
def test_catalog_gradient_matches_symbolic(name, batch):
    assert_gradients_agree(CATALOG_MEMBERS[name], *batch)


@SETTINGS
@given(expr=formulas(), batch=batches())
def test_random_formula_gradient_matches_symbolic(expr, batch):
    logits, targets = batch
    labels = np.eye(logits.shape[1])[targets]
    with np.errstate(all="ignore"):
        value = sp.lambdify((y, h), expr, "numpy")(labels, np.full_like(labels, 0.3))
    assume(np.all(np.isfinite(value)))
    assert_gradients_agree(Loss("random", expr), logits, targets)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(values=st.lists(st.floats(-3.0, 3.0), min_size=8, max_size=8), batch=batches())
def test_taylorglo_candidates_gradient_matches_symbolic(values, batch):
    assert_gradients_agree(taylorglo(3, values), *batch)


def test_label_smoothing_replaces_y_by_smoothed_labels():
    """docs/conventions.md §2.7: smoothing by α is ℓ evaluated at y(1−α) + α/n."""
    logits = np.array([[1.0, -0.5, 0.25, 2.0], [0.0, 0.3, -1.0, 0.5]])
    targets = np.array([3, 1])
    alpha = 0.1
    smoothed = np.eye(4)[targets] * (1 - alpha) + alpha / 4
    expected = symbolic_gradient(loss("baikal"), logits, smoothed)
    actual = autograd_gradient(loss("baikal"), logits, torch.tensor(targets), alpha)
    np.testing.assert_allclose(actual, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL)
    probability_target = torch.tensor(smoothed)
    direct = autograd_gradient(loss("baikal"), logits, probability_target)
    np.testing.assert_allclose(direct, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL)


def test_shift_invariance_of_gradients():
    """docs/conventions.md §2.6: ℓ − c·h adds c to γ, changes no gradient (Σ_k ∂h_k/∂f = 0)."""
    logits = np.array([[0.2, -1.0, 3.0], [1.0, 1.0, -2.0]])
    targets = torch.tensor([2, 0])
    base = autograd_gradient(loss("baikal"), logits, targets)
    shifted = autograd_gradient(loss("baikal").shifted(2.5), logits, targets)
    np.testing.assert_allclose(shifted, base, rtol=1e-12, atol=1e-14)


def test_cross_entropy_is_torch_cross_entropy_and_paper_scale_divides_by_n():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([0, 6, 3, 3, 1])
    ours = torch_loss(loss("cross_entropy"))(logits, targets)
    reference = torch.nn.functional.cross_entropy(logits, targets)
    assert torch.allclose(ours, reference, rtol=1e-12)
    paper = torch_loss(loss("cross_entropy"), scale="paper")(logits, targets)
    assert torch.allclose(paper, reference / 7, rtol=1e-12)  # ICLR eq. 3's L = (1/n) Σ_k


def test_paper_scale_gradient_is_the_sum_scale_gradient_over_n():
    """symloss.scale: the factor only rescales the step, for any loss."""
    logits = np.array([[0.3, -1.2, 2.0, 0.1], [1.0, 0.0, -0.5, 0.25]])
    targets = torch.tensor([2, 0])
    for name in ("baikal", "mse", "cross_entropy"):
        summed = autograd_gradient(loss(name), logits, targets)
        paper = autograd_gradient(loss(name), logits, targets, scale="paper")
        np.testing.assert_allclose(paper * 4, summed, rtol=1e-12, atol=1e-15)


def test_reductions_scalar_and_batched():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    targets = torch.tensor([1, 0, 1])
    per_sample = torch_loss(loss("mse"), reduction="none")(logits, targets)
    assert per_sample.shape == (3,)
    h_target = torch.softmax(logits, 1)[torch.arange(3), targets]
    assert torch.allclose(per_sample, 2 * (1 - h_target) ** 2)  # n = 2: both terms (1 − h_T)²
    assert torch.allclose(torch_loss(loss("mse"), reduction="sum")(logits, targets),
                          per_sample.sum())
    assert torch.allclose(torch_loss(loss("mse"))(logits, targets), per_sample.mean())


def test_a_confidently_wrong_sample_keeps_a_finite_value_and_its_push():
    """float32, h_T = e^-80 (far below eps): Baikal's 1/h_T = e^80 is representable, and
    the target logit is pushed up (gradient descent), no clamp in the way."""
    logits = torch.tensor([[40.0, -40.0, 0.0]], requires_grad=True)
    value = torch_loss(loss("baikal"))(logits, torch.tensor([1]))
    value.backward()
    assert value.item() == pytest.approx(80.0 + np.exp(80.0), rel=1e-5)
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1].item() == pytest.approx(-np.exp(80.0), rel=1e-5)


def test_candidate_swap_does_not_regenerate_code():
    family = taylorglo(3)
    criterion = torch_loss(family.bind([0, 0, 0, -1, 0, 2, 0, 0]))
    misses = generate.cache_info().misses
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 2, 3, 4])
    other = [0.1, 0.2, 1.0, -0.5, 0.3, 1.5, 0.0, 0.2]
    criterion.set_values(other)
    torch_loss(family.bind(other))
    assert generate.cache_info().misses == misses
    fresh_value = torch_loss(family.bind(other))(logits, targets)
    assert torch.allclose(criterion(logits, targets), fresh_value)
    assert criterion.loss.values == tuple(other)


def test_candidate_swap_does_not_recompile():
    compilations = []

    def counting_backend(graph_module, example_inputs):
        compilations.append(graph_module)
        return graph_module.forward

    criterion = torch_loss(taylorglo(3, [0, 0, 0, -1, 0, 2, 0, 0]))
    compiled = torch.compile(criterion, backend=counting_backend, dynamic=False)
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(2))
    targets = torch.arange(8)
    first = compiled(logits, targets)
    criterion.set_values([0.5, 0.1, 1.0, -2.0, 0.4, 1.0, 0.3, -0.7])
    second = compiled(logits, targets)
    assert len(compilations) == 1
    assert not torch.allclose(first, second)
    assert torch.allclose(second, criterion(logits, targets))


def test_printer_fixes_constants_and_max_min():
    expr = sp.log(2) * h + sp.sqrt(2) * y + sp.Max(h, sp.Rational(1, 10)) + sp.Min(h, y, 2)
    term = generate(expr, ()).term
    h_values = torch.tensor([0.05, 0.5, 0.9], dtype=torch.float64)
    y_values = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    expected = sp.lambdify((y, h), expr, "numpy")(y_values.numpy(), h_values.numpy())
    actual = term(y_values, torch.log(h_values), None, ())
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-14)
    assert "torch.log(2" not in term_source(expr) and "torch.max(" not in term_source(expr)


def test_powers_printed_as_products_or_pow():
    source = term_source((h - y) ** 2 + (h - y) ** 3 + 1 / sp.sqrt(h + 1) + 1 / (h + 2))
    assert "(_t1*_t1)" in source and "torch.pow(_t1, 3.0)" in source
    assert "torch.rsqrt(" in source and "torch.reciprocal(" in source
    term = generate(y / h**2, ()).term  # in log space: y·exp(−2 log h)
    assert float(term(torch.tensor(2.0), torch.log(torch.tensor(0.5)), None, ())) == 8.0


def test_log_space_rewrites_are_derived_from_the_formula():
    """h = exp(L): log h → L, 1/h → exp(−L); 1 − h in a log or root → exp(M), M = log(1 − h);
    1 − exp(x) → −expm1(x); a label factor guards the exponential it multiplies."""
    from symloss.harness.codegen import LOG_H, LOG_REST, log_space

    assert log_space(-y * sp.log(h)) == -y * LOG_H
    assert log_space(y / h) == y * sp.exp(-LOG_H)
    assert log_space(sp.log(1 - h) + sp.sqrt(2 - 2 * h)) == LOG_REST + sp.sqrt(2) * sp.exp(
        LOG_REST / 2)
    assert log_space(sp.log(h - h**2)) == LOG_H + LOG_REST  # factored: h·(1 − h)
    generated = generate(-y * (1 - h) ** 2 * sp.log(h), ())
    assert "torch.expm1(log_h)" in generated.source and not generated.uses_complement
    assert "torch.where(y == 0, 0.0, -log_h)" in generate(y / h, ()).source
    assert generate(sp.log(1 - h), ()).uses_complement


def test_codegen_refuses_what_it_cannot_translate():
    with pytest.raises(NotImplementedError, match="no torch translation for g"):
        term_source(sp.Function("g")(h))
    with pytest.raises(ValueError, match="not a finite real number"):
        term_source(h + sp.I)
    with pytest.raises(ValueError, match="not y, h or its parameters"):
        term_source(h + sp.Symbol("z"))


def test_torch_loss_errors_name_the_bad_value():
    """Types as torch's (tests/test_torch_exact.py); messages name the value."""
    with pytest.raises(ValueError, match="is a family; bind its 8 parameters"):
        torch_loss(taylorglo(3))
    with pytest.raises(ValueError, match="got 'avg'"):
        torch_loss(loss("mse"), reduction="avg")
    with pytest.raises(RuntimeError, match="label_smoothing must be in"):
        torch_loss(loss("mse"), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match=r"got \(2, 3\)"):
        torch_loss(loss("mse"))(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="takes 8 parameter values, got 2"):
        torch_loss(taylorglo(3, [0] * 8)).set_values([1, 2])


def test_terms_that_reduce_to_constants_keep_the_dtype():
    """ℓ = y − log h: ℓ(1, ·) − ℓ(0, ·) = 1 and ∂ℓ(1, ·)/∂L = −1 are constants; they come
    out in the logits' dtype, per sample Σ_k −L_k + 1."""
    from symloss.harness.batched import PopulationLoss

    logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(4),
                         dtype=torch.float64)
    target = torch.tensor([0, 3, 4, 1])
    expected = (1 - torch.log_softmax(logits, -1).sum(-1)).mean(-1)
    for k in range(2):
        assert torch.allclose(torch_loss("y - log(h)")(logits[k], target), expected[k])
    values, _ = PopulationLoss([loss("y - log(h)")] * 2, dtype=torch.float64).value_and_grad(
        logits, target)
    assert values.dtype == torch.float64 and torch.allclose(values, expected)


def test_a_term_not_finite_at_one_hot_labels_is_evaluated_with_its_labels():
    """ℓ = h·log y is −∞·h at y = 0: no ℓ(0, ·) to generate, so class targets go through
    the labels — finite once smoothed, as the formula is."""
    generated = generate(h * sp.log(y), ())
    assert not generated.by_target and "raise NotImplementedError" in generated.source
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    labels = torch.nn.functional.one_hot(target, 4).double() * 0.9 + 0.1 / 4
    expected = (torch.softmax(logits, -1) * torch.log(labels)).sum(-1).mean()
    ours = torch_loss(Loss("f", h * sp.log(y)), label_smoothing=0.1)(logits, target)
    assert torch.allclose(ours, expected, rtol=1e-10)


def test_exponentials_are_factored_to_show_what_vanishes_at_h_1():
    """2h − h² − h^1.5 = h(1 − √h)(√h + 2): printed with expm1, L of the largest class exact."""
    generated = generate((1 - 2 * h) / (2 * h - h**2 - h ** sp.Rational(3, 2)), ())
    assert "torch.expm1(_t0)" in generated.source and "_t0 = (0.5)*log_h" in generated.source
    assert generated.exact_top
    assert not generate(loss("baikal").expr, ()).exact_top
