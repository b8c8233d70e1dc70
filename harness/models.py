"""The model zoo, by name, with each paper's architecture and training defaults.

=================  ===========================================================  ==============
name               architecture                                                 source
=================  ===========================================================  ==============
``mlp``            ReLU MLP, hidden (100, 100)                                  MNIST-1D paper
``cnn1d``          3 strided 1-D convolutions (25 channels), linear head        MNIST-1D paper
``glo_mnist_cnn``  5×5 conv 32, pool, 5×5 conv 64, pool, FC 1024, dropout 0.4   GLO §IV-A-1
``glo_cifar_cnn``  AlexNet-like: 2×(5×5 conv 64, 3×3/2 pool, LRN), FC 384, 192  GLO §IV-A-2
``allcnn_c``       All-CNN-C (no pooling, 3×3 convolutions, global average)     Springenberg+
``preresnet20``    pre-activation ResNet-20 (16/32/64 channels)                 He et al. 2016
``wide_resnet``    WRN-depth-width, default 16-8 (``wrn28_5`` etc. also work)   Zagoruyko+
=================  ===========================================================  ==============

Models take inputs already normalized; :class:`Normalized` puts a dataset's
mean/std in front (so attacks work in raw input units).

>>> import torch
>>> model = build_model("cnn1d", input_shape=(40,), classes=10)
>>> model(torch.zeros(3, 40)).shape
torch.Size([3, 10])
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, the training settings its paper used, and the axes
    of one input its first layer reads (``None``: any shape, flattened)."""

    builder: Callable[..., nn.Module]
    description: str
    defaults: dict[str, object] = field(default_factory=dict)
    training: dict[str, object] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None


class Normalized(nn.Module):
    """``model((x − mean) / std)``."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def _flat_size(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(module(torch.zeros(1, *input_shape)).numel())


def mlp(input_shape: tuple[int, ...], classes: int, *, hidden: tuple[int, ...] = (100, 100),
        dropout: float = 0.0) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(input_shape).prod())
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def cnn1d(input_shape: tuple[int, ...], classes: int, *, channels: int = 25) -> nn.Module:
    """MNIST-1D's ConvBase: conv(5, stride 2), conv(3, stride 2), conv(3, stride 2), linear."""
    features = nn.Sequential(
        nn.Unflatten(1, (1, -1)) if len(input_shape) == 1 else nn.Identity(),
        nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(_flat_size(features, input_shape), classes))


def glo_mnist_cnn(input_shape: tuple[int, ...], classes: int, *, dropout: float = 0.4,
                  hidden: int = 1024) -> nn.Module:
    """GLO §IV-A-1 (the TensorFlow tutorial's CNN, 'same' padding)."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(_flat_size(features, input_shape), hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, classes))


def glo_cifar_cnn(input_shape: tuple[int, ...], classes: int) -> nn.Module:
    """GLO §IV-A-2; TF's LRN (depth radius 4, α = 0.001/9) is torch's size 9, α = 0.001."""
    def lrn() -> nn.Module:
        return nn.LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0)

    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 64, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1), lrn(),
        nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), lrn(),
        nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
    )
    return nn.Sequential(features, nn.Linear(_flat_size(features, input_shape), 384), nn.ReLU(),
                         nn.Linear(384, 192), nn.ReLU(), nn.Linear(192, classes))


def allcnn_c(input_shape: tuple[int, ...], classes: int, *, width: int = 96,
             batch_norm: bool = False) -> nn.Module:
    """All-CNN-C (Springenberg et al. 2015, Table 2), with its input and block dropout."""
    wide = 2 * width

    def conv(inputs: int, outputs: int, kernel: int, stride: int = 1, padding: int = 1):
        layers = [nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=padding)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(outputs))
        return [*layers, nn.ReLU()]

    return nn.Sequential(
        nn.Dropout(0.2),
        *conv(input_shape[0], width, 3), *conv(width, width, 3), *conv(width, width, 3, stride=2),
        nn.Dropout(0.5),
        *conv(width, wide, 3), *conv(wide, wide, 3), *conv(wide, wide, 3, stride=2),
        nn.Dropout(0.5),
        *conv(wide, wide, 3, padding=0), *conv(wide, wide, 1, padding=0),
        nn.Conv2d(wide, classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


class PreActBlock(nn.Module):
    """BN-ReLU-conv ×2 with an identity (or 1×1 projection) shortcut; optional dropout."""

    def __init__(self, inputs: int, outputs: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(inputs), nn.BatchNorm2d(outputs)
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = (nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False)
                         if stride != 1 or inputs != outputs else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


def _preact_resnet(input_shape: tuple[int, ...], classes: int, blocks: int,
                   widths: tuple[int, int, int], dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)]
    inputs = 16
    for stage, width in enumerate(widths):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(PreActBlock(inputs, width, stride, dropout))
            inputs = width
    layers += [nn.BatchNorm2d(inputs), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(inputs, classes)]
    return nn.Sequential(*layers)


def preresnet(input_shape: tuple[int, ...], classes: int, *, depth: int = 20) -> nn.Module:
    """Pre-activation ResNet for CIFAR (He et al. 2016): ``(depth − 2)/6`` blocks per stage."""
    if (depth - 2) % 6:
        raise ValueError(f"PreResNet depth must be 6k + 2, got {depth!r}")
    return _preact_resnet(input_shape, classes, (depth - 2) // 6, (16, 32, 64), 0.0)


def wide_resnet(input_shape: tuple[int, ...], classes: int, *, depth: int = 16, width: int = 8,
                dropout: float = 0.0) -> nn.Module:
    """WRN-depth-width (Zagoruyko & Komodakis 2016): ``(depth − 4)/6`` blocks per stage."""
    if (depth - 4) % 6:
        raise ValueError(f"Wide ResNet depth must be 6k + 4, got {depth!r}")
    return _preact_resnet(input_shape, classes, (depth - 4) // 6,
                          (16 * width, 32 * width, 64 * width), dropout)


#: Ours (SGD; the MNIST-1D paper used Adam): tuned so baikal and cross-entropy both train
#: (0.05 on the trainer's sum scale is the 0.5 these were tuned at on the papers' 1/n scale).
_MNIST1D = {"lr": 0.05, "momentum": 0.9, "batch_size": 100, "schedule": "cosine", "epochs": 30}
_CIFAR_RESNET = {"momentum": 0.9, "weight_decay": 1e-4, "lr": 0.1, "batch_size": 128,
                 "schedule": "step", "milestones": (0.5, 0.75), "gamma": 0.1}

#: What the convolutional models read: one image.
IMAGE = ("channels", "height", "width")

MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(mlp, "ReLU MLP", {"hidden": (100, 100)}, _MNIST1D),
    "cnn1d": ModelSpec(cnn1d, "MNIST-1D 1-D CNN", {"channels": 25}, _MNIST1D, ("length",)),
    "glo_mnist_cnn": ModelSpec(glo_mnist_cnn, "GLO MNIST CNN", {"dropout": 0.4},
                               {"lr": 0.01, "momentum": 0.0, "batch_size": 100,
                                "steps": 20000, "schedule": "constant"}, IMAGE),
    "glo_cifar_cnn": ModelSpec(glo_cifar_cnn, "GLO CIFAR-10 AlexNet-like CNN", {},
                               {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.004,
                                "batch_size": 1024, "schedule": "step", "step_epochs": 350,
                                "gamma": 0.1, "augment": True}, IMAGE),
    "allcnn_c": ModelSpec(allcnn_c, "All-CNN-C", {"width": 96},
                          {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3,
                           "batch_size": 128, "epochs": 350, "schedule": "step",
                           "milestones": (200 / 350, 250 / 350, 300 / 350), "gamma": 0.1},
                          IMAGE),
    "preresnet20": ModelSpec(preresnet, "PreResNet-20", {"depth": 20}, _CIFAR_RESNET, IMAGE),
    "wide_resnet": ModelSpec(wide_resnet, "Wide ResNet", {"depth": 16, "width": 8},
                             {**_CIFAR_RESNET, "weight_decay": 5e-4, "epochs": 200,
                              "milestones": (0.3, 0.6, 0.8), "gamma": 0.2}, IMAGE),
}

ALIASES = {"mnist_cnn": "glo_mnist_cnn", "cifar_cnn": "glo_cifar_cnn", "alexnet": "glo_cifar_cnn",
           "allcnn": "allcnn_c", "preresnet": "preresnet20", "wrn": "wide_resnet"}

#: The model each dataset trains by default.
DEFAULT_MODELS = {"mnist1d": "cnn1d", "digits": "mlp", "mnist": "glo_mnist_cnn",
                  "fashion_mnist": "glo_mnist_cnn", "cifar10": "glo_cifar_cnn"}


def resolve_model(name: str) -> tuple[str, dict[str, object]]:
    """The registry key for ``name`` and the overrides its name encodes (``wrn28_5``).

    >>> resolve_model("WRN-28-5")
    ('wide_resnet', {'depth': 28, 'width': 5})
    """
    key = name.strip().lower().replace("-", "_")
    match = re.fullmatch(r"(?:wrn|wide_resnet)_?(\d+)_(\d+)", key)
    if match:
        return "wide_resnet", {"depth": int(match[1]), "width": int(match[2])}
    match = re.fullmatch(r"preresnet_?(\d+)", key)
    if match:
        return "preresnet20", {"depth": int(match[1])}
    key = ALIASES.get(key, key)
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return key, {}


def build_model(name: str, *, input_shape: tuple[int, ...], classes: int,
                **overrides: object) -> nn.Module:
    """Build a registered model for inputs of ``input_shape`` (without the batch axis).

    >>> build_model("resnet", input_shape=(3, 32, 32), classes=10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown model 'resnet'; available: mlp, cnn1d, glo_mnist_cnn, ...
    """
    key, encoded = resolve_model(name)
    spec = MODELS[key]
    return spec.builder(tuple(input_shape), classes, **{**spec.defaults, **encoded, **overrides})


def check_model_input(name: str, input_shape: tuple[int, ...], classes: int, *,
                      source: str = "the data", **overrides: object) -> None:
    """Refuse, before any training, inputs of a shape the model cannot take.

    The model is built and one zero batch passed through it (on the CPU, in eval mode,
    without touching torch's global random state); if that fails, the ``ValueError``
    names ``source`` (a dataset, a file), the shape, and what the model reads: the axes
    of :attr:`ModelSpec.inputs` and the smallest square image it takes, found by
    trying sizes (:func:`smallest_image`).

    >>> check_model_input("glo_mnist_cnn", (1, 28, 28), 10)
    >>> check_model_input("glo_mnist_cnn", (64,), 10, source="digits")
    Traceback (most recent call last):
    ...
    ValueError: model glo_mnist_cnn cannot take the inputs of digits, of shape (64,): it reads images (channels, height, width) of at least 4×4
    """  # noqa: E501 - a doctest's expected line
    shape = tuple(int(n) for n in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"the inputs of {source} have shape {shape}, with no values: no model "
                         "can read them")
    if _input_problem(name, shape, classes, overrides) is None:
        return
    key, _ = resolve_model(name)
    axes = MODELS[key].inputs
    needs = "inputs of any shape" if axes is None else f"{_what(axes)} ({', '.join(axes)})"
    if axes == IMAGE:
        channels = input_shape[0] if len(input_shape) == len(IMAGE) and input_shape[0] else 1
        side = smallest_image(name, channels, classes, **overrides)
        needs += "" if side is None else f" of at least {side}×{side}"
    raise ValueError(f"model {name} cannot take the inputs of {source}, of shape {shape}: "
                     f"it reads {needs}")


def _what(axes: tuple[str, ...]) -> str:
    return "images" if axes == IMAGE else "vectors"


def _input_problem(name: str, input_shape: tuple[int, ...], classes: int,
                   overrides: dict[str, object]) -> str | None:
    """Why ``name`` cannot take a batch of ``input_shape`` (``None`` if it can)."""
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model = build_model(name, input_shape=input_shape, classes=classes, **overrides)
            output = model.eval()(torch.zeros(2, *input_shape))
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if tuple(output.shape) != (2, classes):
        return f"its output has shape {tuple(output.shape)}"
    return None


#: The largest side :func:`smallest_image` tries (CIFAR's 32 and MNIST's 28 are far below).
LARGEST_TRIED_SIDE = 256


def smallest_image(name: str, channels: int, classes: int, **overrides: object) -> int | None:
    """The smallest side of a square ``channels``-channel image that model ``name`` takes
    (``None`` if none up to :data:`LARGEST_TRIED_SIDE`): doubling, then bisection (a model
    that takes a side takes every larger one).

    >>> smallest_image("glo_mnist_cnn", 1, 10)  # two 2×2 poolings: 4 → 2 → 1
    4
    """
    def fits(side: int) -> bool:
        return _input_problem(name, (channels, side, side), classes, overrides) is None

    high = 1
    while not fits(high):
        if high >= LARGEST_TRIED_SIDE:
            return None
        high *= 2
    low = high // 2  # does not fit (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high
