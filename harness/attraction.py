"""Per-sample attraction toward zero training error during training (ICLR Fig. 1).

For a seeded subset of training samples, each epoch logs the target
probability ``h_T``, the mean non-target probability, and the attraction
``A(ε)`` at ``ε = 1 − h_T`` (docs/conventions.md §2.3, ICLR Theorem 2)::

    A(ε) = (1−ε)e^D / (ε + (1−ε)e^D) − (1−ε),  D = η' ε(1−ε) Δ(ε) n/(n−1),
    Δ(ε) = γ_T(1−ε) − γ_N(ε/(n−1)),  η' = η/n,

with ``A`` from the symbolic core (:func:`symloss.dynamics.attraction_function`),
at the (possibly smoothed) labels and the learning rate of that epoch.
Positive: the loss pulls the sample toward memorization; negative: it pushes away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from symloss.dynamics import attraction_function
from symloss.loss import Loss


@dataclass(frozen=True, eq=False)
class AttractionLog:
    """One row per (epoch, sample): probabilities and attraction, as flat arrays."""

    epoch: np.ndarray
    sample: np.ndarray
    target_probability: np.ndarray
    nontarget_probability: np.ndarray
    attraction: np.ndarray

    def to_dict(self) -> dict[str, list]:
        return {name: getattr(self, name).tolist() for name in self.__dataclass_fields__}

    def save(self, path: str | Path) -> Path:
        """Write the rows as CSV."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = list(self.__dataclass_fields__)
        table = np.column_stack([getattr(self, name) for name in columns])
        np.savetxt(path, table, delimiter=",", header=",".join(columns), comments="",
                   fmt=["%d", "%d", "%.9g", "%.9g", "%.9g"])
        return path

    def plot(self, path: str | Path, *, title: str = "") -> Path:
        """Scatter of attraction against epoch (ICLR Fig. 1); PNG, PDF or SVG by extension."""
        from symloss.figures import figure_format, new_figure, save_figure

        figure_format(path)
        figure, (axes,) = new_figure(width=6, height=4)
        rng = np.random.default_rng(0)
        jitter = rng.uniform(-0.3, 0.3, size=self.epoch.shape)
        axes.scatter(self.epoch + jitter, self.attraction, s=4, alpha=0.3, linewidths=0)
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.set_xlabel("epoch")
        axes.set_ylabel(r"attraction toward zero training error $A(\varepsilon)$")
        axes.set_title(title)
        return save_figure(figure, path)


class AttractionRecorder:
    """Logs a fixed, seeded subset of training samples at each :meth:`record` call."""

    def __init__(self, loss: Loss, inputs: torch.Tensor, labels: torch.Tensor, classes: int, *,
                 samples: int, rng: np.random.Generator, label_smoothing: float = 0.0) -> None:
        chosen = np.sort(rng.choice(len(inputs), size=min(samples, len(inputs)), replace=False))
        self.indices = chosen
        self.inputs = inputs[torch.from_numpy(chosen).to(inputs.device)]
        self.labels = labels[torch.from_numpy(chosen).to(labels.device)]
        self.loss, self.classes, self.label_smoothing = loss, classes, label_smoothing
        self._rows: list[tuple[np.ndarray, ...]] = []

    @torch.no_grad()
    def record(self, model: torch.nn.Module, epoch: int, lr: float,
               transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        was_training = model.training
        model.eval()
        inputs = transform(self.inputs) if transform is not None else self.inputs
        probabilities = torch.softmax(model(inputs).double(), dim=-1).cpu()
        model.train(was_training)
        target = probabilities.gather(1, self.labels.cpu()[:, None])[:, 0].numpy()
        nontarget = (1.0 - target) / (self.classes - 1)
        function = attraction_function(self.loss, self.classes, lr, self.label_smoothing)
        values = function(1.0 - target)
        self._rows.append((np.full(len(target), epoch), self.indices, target, nontarget, values))

    def log(self) -> AttractionLog:
        if not self._rows:
            empty = np.zeros(0)
            return AttractionLog(empty.astype(int), empty.astype(int), empty, empty, empty)
        columns = [np.concatenate(parts) for parts in zip(*self._rows, strict=True)]
        return AttractionLog(*columns)
