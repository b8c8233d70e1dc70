"""The torch loss as exact as torch's own (issue 21): both forms, ``torch_loss`` and an
exported module, on PyTorch's own ``CrossEntropyLoss`` test samples, at extreme logits,
in every dtype, under the transforms PyTorch users rely on, with torch's errors.

Oracles, each independent of the code under test:

* PyTorch's ``ModuleInfo`` samples for ``CrossEntropyLoss``
  (``torch.testing._internal.common_modules``), the value against torch's Python
  reference ``cross_entropy_loss_reference`` and the input gradient against
  ``nn.CrossEntropyLoss``, both in float64 on the same inputs, with the tolerances
  torch's own ``test_forward`` uses per dtype (``benchmarks/gpu_check.py``'s check,
  which runs them on CUDA where there is a GPU);
* for other formulas, ``ℓ`` and ``∂ℓ/∂h`` from sympy evaluated in mpmath at 60+
  digits, the softmax Jacobian applied by hand (docs/conventions.md §2.2).
"""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys

import mpmath
import pytest
import sympy as sp
import torch
from torch import nn

from symloss.catalog import loss, taylorglo
from symloss.harness.losses import torch_loss
from symloss.symbols import h, y
from tests.scripts import load_script

pytest.importorskip("expecttest")  # what torch.testing._internal needs

#: The ModuleInfo check, its dtypes and references: one source with the GPU check.
gpu_check = load_script("benchmarks/gpu_check.py")

#: Logit gaps of the extreme-logit checks (float32's exp overflows past 88).
GAPS = (20.0, 100.0, 1e3, 1e4)


@pytest.fixture(scope="module")
def samples():
    """The ModuleInfo samples per (dtype, requires_grad), seeded; the import takes seconds."""
    return gpu_check.module_info_samples()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name → the class of an exported module (cross-entropy, Baikal, a TaylorGLO member)."""
    folder = tmp_path_factory.mktemp("exported")
    losses = {"cross_entropy": loss("cross_entropy"), "baikal": loss("baikal"),
              "taylorglo": taylorglo(3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9])}
    yield {name: gpu_check.exported_class(item, folder, f"exported_{name}")
           for name, item in losses.items()}
    for name in losses:
        sys.modules.pop(f"exported_{name}", None)


def forms(exported, name="cross_entropy"):
    """The two forms under test, as constructors taking nn.CrossEntropyLoss's arguments."""
    return {"torch_loss": lambda *a, **k: torch_loss(name, *a, **k), "exported": exported[name]}


@pytest.mark.parametrize("dtype", gpu_check.DTYPES, ids=str)
def test_every_module_info_sample_matches_torch_in_value_dtype_and_gradient(samples, exported,
                                                                            dtype):
    """Value against torch's float64 reference, input gradient against nn.CrossEntropyLoss in
    float64, torch's test_forward tolerances, the result's dtype as torch's."""
    checked, failures = gpu_check.check_samples(
        forms(exported), {key: group for key, group in samples.items() if key[0] == dtype})
    assert failures == []
    assert checked == 2 * 2 * 105  # every sample, both forms, with and without gradients


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_a_confidently_wrong_sample_keeps_its_loss_and_gradient(exported, dtype):
    """At a logit gap g against the target, cross-entropy is g and the target logit's
    gradient −1 (the 1/C of the other classes aside): exact in log space, at every gap."""
    for gap in GAPS:
        logits = torch.tensor([[gap, 0.0, 0.0]], dtype=dtype)
        for name, make in forms(exported).items():
            leaf = logits.clone().requires_grad_()
            value = make()(leaf, torch.tensor([1]))
            (gradient,) = torch.autograd.grad(value, leaf)
            represented = torch.tensor(gap, dtype=dtype).item()  # bfloat16: 1e4 is 9984
            assert value.dtype == dtype and value.item() == represented, (name, gap)
            assert gradient[0, 1].item() == -1.0 and gradient[0, 0].item() == 1.0, (name, gap)


def test_infinite_logits_and_all_ignored_batches_as_torch(exported):
    inf = float("inf")
    logits = torch.tensor([[0.0, -inf, 1.0], [2.0, 0.5, -1.0]])
    for name, make in forms(exported).items():
        for target in (torch.tensor([0, 1]), torch.tensor([1, 0])):  # -inf off, on the target
            for options in ({}, {"label_smoothing": 0.1}, {"reduction": "none"}):
                ours = make(**options)(logits, target)
                theirs = nn.CrossEntropyLoss(**options)(logits, target)
                torch.testing.assert_close(ours, theirs, equal_nan=True, msg=name)
        leaf = logits.clone().requires_grad_()
        (gradient,) = torch.autograd.grad(make()(leaf, torch.tensor([0, 1])), leaf)
        assert torch.isfinite(gradient).all() and gradient[0, 1] == 0, name
        everything_ignored = torch.full((2,), -100)
        assert torch.isnan(make()(logits, everything_ignored)), name
        leaf = logits.clone().requires_grad_()
        summed = make(reduction="sum")(leaf, everything_ignored)
        (gradient,) = torch.autograd.grad(summed, leaf)
        assert summed.item() == 0.0 and torch.all(gradient == 0), name


# ---- other formulas against mpmath -------------------------------------------------------

EXTREME = {  # name → (loss, the largest gap whose float32 value is finite, or None: all)
    "baikal": (loss("baikal"), 40.0),  # the rows below reach log h = −2·gap; exp(80) < 3e38
    "focal": (loss("focal"), None),
    "poly1": (loss("poly1"), None),
    "taylorglo3": (taylorglo(3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9]), None),
    "log(1 - h)": (loss("-(1 - y)*log(1 - h) - y*log(h)"), None),
    "sqrt(1 - h)": (loss("sqrt(1 - h) - y*log(h)"), None),
    # log h to relative precision where h → 1 (exact_top; float32 holds 1 − h down to
    # e^-103, the rows below reach e^-gap), √h − h factored as √h·(1 − √h)
    "log(-log(h))": (loss("-log(-log(h))*y + h"), 80.0),
    "sqrt(sqrt(h) - h)": (loss("sqrt(sqrt(h) - h) - y*log(h)"), 80.0),
    "log(2 - h)": (loss("-y*log(h) - log(2 - h)"), None),
}


def _mpmath_value_and_gradient(term, logits, target, digits):
    """Σ over the batch of Σ_k ℓ(y_k, h_k), and its gradient ∂/∂f_j = Σ_k ℓ'_k h_k (δ_kj − h_j),
    in mpmath at ``digits`` digits (``1 − h`` of the largest class needs ~gap/2.3)."""
    mpmath.mp.dps = digits
    expr = term.expression
    value_of = sp.lambdify((y, h), expr, "mpmath")
    slope_of = sp.lambdify((y, h), sp.diff(expr, h), "mpmath")
    total, rows = mpmath.mpf(0), []
    for row, label in zip(logits.tolist(), target.tolist(), strict=True):
        top = max(row)
        weights = [mpmath.exp(mpmath.mpf(f) - top) for f in row]
        probabilities = [w / sum(weights) for w in weights]
        labels = [1 if k == label else 0 for k in range(len(row))]
        total += sum(value_of(a, b) for a, b in zip(labels, probabilities, strict=True))
        slopes = [slope_of(a, b) for a, b in zip(labels, probabilities, strict=True)]
        inner = sum(s * p for s, p in zip(slopes, probabilities, strict=True))
        rows.append([float(p * (s - inner)) for s, p in zip(slopes, probabilities, strict=True)])
    return float(total), torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(EXTREME))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_other_losses_match_a_high_precision_reference_at_extreme_logits(name, dtype):
    """Confidently wrong (target at −gap), confidently right, and a non-target near 1."""
    term, finite_up_to = EXTREME[name]
    eps = torch.finfo(dtype).eps
    for gap in (5.0, 20.0, 50.0, 80.0, 300.0):
        if dtype == torch.float32 and finite_up_to is not None and gap > finite_up_to:
            continue
        logits = torch.tensor([[0.0, -gap, gap / 2, 1.0], [gap, 0.0, -1.0, 0.5],
                               [gap, 0.0, -gap, 1.0]], dtype=torch.float64)
        target = torch.tensor([1, 0, 2])
        value, gradient = _mpmath_value_and_gradient(term, logits, target, 40 + int(gap))
        leaf = logits.to(dtype).requires_grad_()
        ours = torch_loss(term, reduction="sum")(leaf, target)
        (our_gradient,) = torch.autograd.grad(ours, leaf)
        tolerance = 16 * eps * (1 + gap)  # L = log_softmax carries eps·|f| absolute
        context = f"{name} gap {gap} {dtype}"
        assert ours.item() == pytest.approx(value, rel=tolerance, abs=tolerance), context
        scale = max(1.0, float(gradient.abs().max()))
        torch.testing.assert_close(our_gradient.double(), gradient, rtol=tolerance,
                                   atol=tolerance * scale, msg=context)


def test_the_population_gradient_is_the_same_at_extreme_logits():
    """The population trainer's hand-derived ∂ℓ/∂L (and its autograd fallback for log(1 − h))
    against autograd through torch_loss, float32, gaps up to 60."""
    from symloss.harness.batched import PopulationLoss

    logits = torch.tensor([[[0.0, -40.0, 20.0, 1.0], [40.0, 0.0, -1.0, 0.5],
                            [30.0, 0.0, -30.0, 1.0]]]).expand(len(EXTREME), 3, 4)
    target = torch.tensor([1, 0, 2])
    terms = [item for item, _ in EXTREME.values()]
    values, grad = PopulationLoss(terms).value_and_grad(logits, target)
    for k, term in enumerate(terms):
        leaf = logits[k].clone().requires_grad_()
        expected = torch_loss(term)(leaf, target)
        (expected_grad,) = torch.autograd.grad(expected, leaf)
        assert values[k].item() == pytest.approx(expected.item(), rel=1e-5), term.name
        torch.testing.assert_close(grad[k], expected_grad, rtol=1e-5,
                                   atol=1e-5 * float(expected_grad.abs().max()))


# ---- precision policy ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_is_computed_in_float32_and_returned_in_the_input_dtype(dtype):
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 5, generator=generator) * 8).to(dtype)
    target = torch.randint(0, 5, (6,), generator=generator)
    for name in ("cross_entropy", "baikal"):
        value = torch_loss(name)(logits, target)
        assert value.dtype == dtype
        assert value == torch_loss(name)(logits.float(), target).to(dtype)


def test_under_autocast_the_loss_is_float32_as_torch_s(exported):
    generator = torch.Generator().manual_seed(1)
    layer = nn.Linear(8, 5)
    inputs = torch.randn(6, 8, generator=generator)
    target = torch.randint(0, 5, (6,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(inputs)
        assert logits.dtype == torch.bfloat16
        theirs = nn.CrossEntropyLoss()(logits, target)
        for name, make in forms(exported).items():
            ours = make()(logits, target)
            assert ours.dtype == theirs.dtype == torch.float32, name
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# ---- transforms and persistence ------------------------------------------------------------

class _Model(nn.Module):
    """A model that holds its loss, as users write them."""

    def __init__(self, criterion):
        super().__init__()
        self.layer = nn.Linear(4, 3)
        self.criterion = criterion

    def forward(self, inputs, target):
        return self.criterion(self.layer(inputs), target)


def _batch(seed=0, classes=3):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(5, 4, generator=generator),
            torch.randint(0, classes, (5,), generator=generator))


def test_a_model_holding_the_loss_survives_pickle_save_load_and_deepcopy(exported):
    inputs, target = _batch()
    for criterion in (torch_loss("baikal", weight=[1.0, 2.0, 0.5], label_smoothing=0.1),
                      exported["baikal"](weight=torch.tensor([1.0, 2.0, 0.5]))):
        model = _Model(criterion)
        expected = model(inputs, target)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        for copied in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model),
                       torch.load(buffer, weights_only=False)):
            assert torch.equal(copied(inputs, target), expected)


def test_a_saved_model_loads_in_a_fresh_interpreter(tmp_path):
    """The generated code is not pickled: loading regenerates it from the formula."""
    inputs, target = _batch()
    model = _Model(torch_loss(taylorglo(3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9])))
    torch.save({"model": model, "inputs": inputs, "target": target,
                "expected": model(inputs, target)}, tmp_path / "model.pt")
    code = ("import torch\n"
            f"saved = torch.load({str(tmp_path / 'model.pt')!r}, weights_only=False)\n"
            "value = saved['model'](saved['inputs'], saved['target'])\n"
            "torch.testing.assert_close(value, saved['expected'], rtol=1e-6, atol=0)\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_state_dict_means_the_same_eager_and_compiled():
    """Loading another member's λ changes the loss in eager mode and under torch.compile."""
    inputs, target = _batch()
    logits = nn.Linear(4, 3)(inputs).detach()
    first = torch_loss(taylorglo(3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9]))
    other = torch_loss(taylorglo(3, [0.1, 0.0, -1.0, 0.5, 0.2, 1.0, 0.4, -0.3]))
    compiled = torch.compile(first, backend="eager", fullgraph=True)
    assert torch.equal(compiled(logits, target), first(logits, target))
    first.load_state_dict(other.state_dict())
    expected = other(logits, target)
    assert torch.equal(first(logits, target), expected)
    assert torch.allclose(compiled(logits, target), expected, rtol=1e-6)
    assert first.loss.values == other.loss.values  # what repr and reports show


def test_func_grad_vmap_and_compile_fullgraph(exported):
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, 3, generator=generator)  # 4 batches of 6
    target = torch.randint(0, 3, (4, 6), generator=generator)
    for name in ("cross_entropy", "baikal", "taylorglo"):
        for make in (lambda n=name: torch_loss(n if n != "taylorglo" else taylorglo(
                3, [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9])), exported[name]):
            criterion = make()
            looped = torch.stack([criterion(logits[i], target[i]) for i in range(4)])
            torch.testing.assert_close(torch.func.vmap(criterion)(logits, target), looped)
            leaf = logits[0].clone().requires_grad_()
            (expected,) = torch.autograd.grad(criterion(leaf, target[0]), leaf)
            gradient = torch.func.grad(lambda x, c=criterion: c(x, target[0]))(logits[0])
            torch.testing.assert_close(gradient, expected)
            compiled = torch.compile(criterion, backend="eager", fullgraph=True)
            torch.testing.assert_close(compiled(logits[0], target[0]), looped[0])


def test_torch_loss_takes_names_formulas_and_torch_s_positional_order():
    weight = torch.tensor([1.0, 2.0, 0.5])
    logits, target = torch.randn(5, 3, generator=torch.Generator().manual_seed(3)), \
        torch.tensor([0, 1, 2, 1, 1])
    ours = torch_loss("ce", weight, None, 1, None, "sum", 0.1)
    theirs = nn.CrossEntropyLoss(weight, None, 1, None, "sum", 0.1)
    torch.testing.assert_close(ours(logits, target), theirs(logits, target))
    assert torch_loss("-log(h) + y/h").loss.expression == loss("baikal").expression
    assert repr(ours) == ("SymbolicLoss(cross_entropy: ℓ(y, h) = -y*log(h), weight=[1.0, 2.0, "
                          "0.5], reduction='sum', ignore_index=1, label_smoothing=0.1, "
                          "scale='sum')")
    with pytest.raises(ValueError, match="unknown name 'hinge'"):
        torch_loss("hinge")
    with pytest.raises(TypeError, match="got int"):
        torch_loss(3)


# ---- errors like torch's -------------------------------------------------------------------

ERRORS = {  # situation → (input, target, constructor options)
    "class index out of range": (torch.zeros(2, 5), torch.tensor([0, 5]), {}),
    "negative class index": (torch.zeros(2, 5), torch.tensor([0, -3]), {}),
    "batch sizes differ": (torch.zeros(2, 5), torch.tensor([0, 1, 2]), {}),
    "spatial shapes differ": (torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long), {}),
    "probability target of another shape": (torch.zeros(2, 5), torch.rand(2, 3), {}),
    "ignore_index with probabilities": (torch.zeros(2, 5), torch.rand(2, 5),
                                        {"ignore_index": 1}),
    "weight of the wrong length": (torch.zeros(2, 5), torch.tensor([0, 1]),
                                   {"weight": torch.ones(3)}),
    "label_smoothing above 1": (torch.zeros(2, 5), torch.tensor([0, 1]),
                                {"label_smoothing": 1.5}),
    "boolean targets": (torch.zeros(2, 5), torch.tensor([True, False]), {}),
    "integer logits": (torch.zeros(2, 5, dtype=torch.long), torch.tensor([0, 1]), {}),
}


def _raised(function):
    try:
        function()
    except Exception as error:  # the type is what is compared
        return error
    return None


@pytest.mark.parametrize("situation", sorted(ERRORS))
def test_errors_have_torch_s_types(exported, situation):
    logits, target, options = ERRORS[situation]
    theirs = _raised(lambda: nn.CrossEntropyLoss(**options)(logits, target))
    assert theirs is not None
    for name, make in forms(exported).items():
        ours = _raised(lambda m=make: m(**options)(logits, target))
        assert type(ours) is type(theirs), (name, situation, ours, theirs)
        assert "\n" not in str(ours)
