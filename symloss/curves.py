"""Attraction curves (docs/conventions.md §2.3; ICLR Fig. 3) and the binary view plot (GLO Fig. 6).

``A(ε)`` and ``Δ(ε)`` over ``ε ∈ (0, (n−1)/n]`` for any concrete loss, as
arrays, a CSV and a matplotlib figure (Agg backend, imported only when plotting).

>>> from symloss.catalog import loss
>>> table = attraction_table([loss("cross_entropy"), loss("baikal")], classes=10, points=5)
>>> [row["loss"] for row in table][:2], round(table[-1]["epsilon"], 3)
(['cross_entropy', 'cross_entropy'], 0.9)
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from symloss.binary import binary_view
from symloss.dynamics import UNDECIDED, _classes, attraction_function, delta_function
from symloss.figures import display_name, figure_format, new_figure, save_figure, wide_range_scale
from symloss.guard import bounded
from symloss.loss import Loss
from symloss.scale import paper_learning_rate
from symloss.stability import stability

#: The binary plot's top is the steepest loss's value at this p.
BINARY_TOP_AT = 0.15
#: Smallest ε on a curve (ε = 0 is memorization itself, where A vanishes).
EPSILON_MIN = 1e-3


def epsilon_grid(classes: int, points: int = 200) -> np.ndarray:
    """``ε`` from :data:`EPSILON_MIN` to the null epoch ``(n−1)/n``."""
    classes = int(_classes(classes))
    return np.linspace(EPSILON_MIN, (classes - 1) / classes, points)


def attraction_table(
    losses: Sequence[Loss], classes: int, lr: float = 0.1, smoothing: float = 0.0,
    points: int = 200, scale: str = "paper",
) -> list[dict[str, float | str]]:
    """Rows ``{loss, epsilon, delta, attraction}`` for each loss over the ε grid.

    ``lr`` is a learning rate on ``scale`` (:mod:`symloss.scale`): ``"paper"`` (the
    papers' ``η``, the default of the Python API) or ``"sum"`` (the rate the trainer
    uses, ``η_paper = n·lr``).
    """
    grid = epsilon_grid(classes, points)
    eta = paper_learning_rate(lr, int(_classes(classes)), scale)
    rows: list[dict[str, float | str]] = []
    for item in losses:
        deltas = delta_function(item, classes, smoothing)(grid)
        attractions = attraction_function(item, classes, eta, smoothing)(grid)
        rows += [{"loss": item.name, "epsilon": float(e), "delta": float(d),
                  "attraction": float(a)} for e, d, a in zip(grid, deltas, attractions,
                                                             strict=True)]
    return rows


def write_csv(rows: list[dict[str, float | str]], path: str | Path) -> None:
    """Write :func:`attraction_table` rows with columns ``loss,epsilon,delta,attraction``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["loss", "epsilon", "delta", "attraction"])
        writer.writeheader()
        writer.writerows(rows)


def plot_attraction(
    losses: Sequence[Loss], classes: int, path: str | Path, lr: float = 0.1,
    smoothing: float = 0.0, points: int = 400, scale: str = "paper",
) -> Path:
    """Draw :func:`attraction_figure` to ``path`` (PNG, PDF or SVG by its extension)."""
    figure_format(path)  # a wrong extension is refused before anything is computed
    return save_figure(attraction_figure(losses, classes, lr, smoothing, points, scale), path)


def attraction_figure(
    losses: Sequence[Loss], classes: int, lr: float = 0.1, smoothing: float = 0.0,
    points: int = 400, scale: str = "paper",
):
    """``Δ(ε)`` and ``A(ε)`` for each loss, side by side (a matplotlib ``Figure``).

    ``lr`` on ``scale`` as in :func:`attraction_table`. Δ spans orders of magnitude
    near ε → 0, so its axis is ``asinh`` (:mod:`symloss.figures`). Equilibria
    (zeros of Δ, :func:`symloss.stability.stability`) are marked on both panels:
    filled when they attract, hollow when they repel.
    """
    rows = attraction_table(losses, classes, lr, smoothing, points, scale)
    eta = paper_learning_rate(lr, int(_classes(classes)), scale)
    figure, (left, right) = new_figure(columns=2, width=11, height=4.2)
    for item in losses:
        mine = [r for r in rows if r["loss"] == item.name]
        eps = [r["epsilon"] for r in mine]
        name = display_name(item.name)
        line = left.plot(eps, [r["delta"] for r in mine], label=name)[0]
        right.plot(eps, [r["attraction"] for r in mine], label=name)
        _mark_equilibria((left, right), item, classes, smoothing, line.get_color())
    wide_range_scale(left)
    left.set_title(r"$\Delta(\varepsilon) = \gamma_T\,(1-\varepsilon) - "
                   r"\gamma_N\,\varepsilon/(n-1)$" + f",  $n$ = {classes}")
    left.set_ylabel(r"$\Delta(\varepsilon)$ (asinh scale)")
    right.set_title(r"attraction after one step, $\eta$ = " + f"{lr:g}" + (
        "" if scale == "paper" else f" on the {scale} scale (papers' " + r"$\eta$" +
        f" = {eta:g})"))
    right.set_ylabel(r"$A(\varepsilon)$")
    for axis in (left, right):
        axis.axhline(0, color="black", linewidth=0.7)
        axis.set_xlabel(r"deviation from memorization $\varepsilon$")
        axis.grid(alpha=0.3)
    left.legend()
    return figure


def _mark_equilibria(axes, item: Loss, classes: int, smoothing: float, color: str) -> None:
    """Each zero of Δ on both panels: filled if it attracts, hollow if not (symloss.stability).

    Bounded (:func:`symloss.guard.bounded`): where the equilibria cannot be found within
    the budget, the curves are drawn without markers."""
    found = bounded(lambda: stability(item, classes, smoothing).equilibria,
                    undecided_on=UNDECIDED)
    for equilibrium in found.value or ():
        face = color if equilibrium.stable else "white"
        for axis in axes:
            axis.plot([equilibrium.epsilon], [0.0], marker="o", markersize=7, color=color,
                      markerfacecolor=face, linestyle="none", zorder=5)
        axes[1].annotate(r"$\varepsilon^*$" + f" = {equilibrium.epsilon:.3f}",
                         (equilibrium.epsilon, 0.0), textcoords="offset points",
                         xytext=(4, 6), fontsize=8, color=color)


def plot_binary(losses: Sequence[Loss], path: str | Path, points: int = 400) -> Path:
    """Draw :func:`binary_figure` to ``path`` (PNG, PDF or SVG by its extension)."""
    figure_format(path)
    return save_figure(binary_figure(losses, points), path)


def binary_figure(losses: Sequence[Loss], points: int = 400):
    """GLO Fig. 6: the binary loss ``L(p)`` of each loss, its minimum marked (a ``Figure``).

    Linear axes, as the paper draws it; the top is set where the steepest loss is
    at ``p`` = :data:`BINARY_TOP_AT`, so the minima stay visible while ``L → ∞`` at
    ``p → 0`` leaves the frame.
    """
    import sympy as sp

    from symloss.binary import p as probability

    grid = np.linspace(0.02, 0.999, points)
    figure, (axis,) = new_figure(width=6, height=4.2)
    top = 0.0
    for item in losses:
        view = binary_view(item)
        values = sp.lambdify(probability, view.expression, modules="numpy")(grid)
        values = np.broadcast_to(np.asarray(values, dtype=float), grid.shape)
        shifted = values - np.nanmin(values)
        line = axis.plot(grid, shifted, label=display_name(item.name))[0]
        top = max(top, float(np.interp(BINARY_TOP_AT, grid, shifted)))
        if view.interior:
            axis.axvline(view.minimum_at, color=line.get_color(), linestyle=":",
                         label=f"minimum at p = {view.minimum_at:.3f}")
    axis.set_xlabel(r"predicted probability of the true class $p$")
    axis.set_ylabel(r"$L(p) - \min_p L$")
    if np.isfinite(top) and top > 0:
        axis.set_ylim(0, 1.05 * top)
    axis.legend()
    axis.grid(alpha=0.3)
    return figure
