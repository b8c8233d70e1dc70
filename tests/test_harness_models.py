"""The model zoo: shapes, a few real SGD steps, determinism with a seed."""

from __future__ import annotations

import pytest
import torch

from symloss.catalog import loss
from symloss.harness.losses import torch_loss
from symloss.harness.models import MODELS, Normalized, build_model, resolve_model

#: (name, input shape, overrides that keep the step test fast; shapes use the defaults).
CASES = [
    ("mlp", (40,), {}),
    ("mlp", (64,), {"hidden": (32,)}),
    ("cnn1d", (40,), {}),
    ("glo_mnist_cnn", (1, 28, 28), {}),
    ("glo_cifar_cnn", (3, 24, 24), {}),
    ("allcnn_c", (3, 32, 32), {"width": 8}),
    ("preresnet20", (3, 32, 32), {}),
    ("wide_resnet", (3, 32, 32), {"depth": 10, "width": 1}),
]


def test_registry_covers_every_case():
    assert {name for name, _, _ in CASES} == set(MODELS)


@pytest.mark.parametrize(("name", "shape", "small"), CASES, ids=[c[0] + str(c[1]) for c in CASES])
def test_default_model_output_shape(name, shape, small):
    torch.manual_seed(0)
    model = build_model(name, input_shape=shape, classes=10)
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize(("name", "shape", "small"), CASES, ids=[c[0] + str(c[1]) for c in CASES])
def test_a_few_sgd_steps_are_finite_and_deterministic(name, shape, small):
    def run() -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(1)
        model = build_model(name, input_shape=shape, classes=10, **small)
        inputs = torch.randn(8, *shape, generator=torch.Generator().manual_seed(2))
        labels = torch.arange(8) % 10
        criterion = torch_loss(loss("cross_entropy"))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        values = []
        for _ in range(3):
            value = criterion(model(inputs), labels)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            values.append(value.item())
        return values, next(model.parameters()).detach().clone()

    first, second = run(), run()
    assert all(torch.isfinite(torch.tensor(first[0])))
    assert first[0] == second[0] and torch.equal(first[1], second[1])


def test_paper_sizes():
    """Parameter counts of the published architectures (ResNet-20: 0.27M; WRN-16-8: 11.0M)."""
    def count(name: str, **kwargs) -> int:
        model = build_model(name, input_shape=(3, 32, 32), classes=10, **kwargs)
        return sum(p.numel() for p in model.parameters())

    assert round(count("preresnet20") / 1e6, 2) == 0.27
    assert round(count("wide_resnet") / 1e6, 1) == 11.0
    glo = build_model("glo_mnist_cnn", input_shape=(1, 28, 28), classes=10)
    linear_sizes = [m.out_features for m in glo.modules() if isinstance(m, torch.nn.Linear)]
    dropouts = [m.p for m in glo.modules() if isinstance(m, torch.nn.Dropout)]
    assert linear_sizes == [1024, 10] and dropouts == [0.4]


def test_names_aliases_and_errors():
    assert resolve_model("wrn-28-5") == ("wide_resnet", {"depth": 28, "width": 5})
    assert resolve_model("PreResNet56") == ("preresnet20", {"depth": 56})
    assert resolve_model("alexnet") == ("glo_cifar_cnn", {})
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", input_shape=(3, 32, 32), classes=10)
    with pytest.raises(ValueError, match="depth must be 6k \\+ 4, got 15"):
        build_model("wide_resnet", input_shape=(3, 32, 32), classes=10, depth=15)


def test_normalized_applies_mean_and_std_first():
    inner = torch.nn.Identity()
    model = Normalized(inner, torch.tensor([0.5]), torch.tensor([0.25]))
    assert torch.equal(model(torch.tensor([[1.0, 0.5]])), torch.tensor([[2.0, 0.0]]))
