"""Figures: one place for the backend, the file formats, the scales and the names.

Every figure of the library is built here or with these helpers, so they agree:

- the format follows the file's extension (:data:`FORMATS`: PNG for screens, PDF
  and SVG for papers; PNG for a name without one, such as ``/dev/stdout``), and
  any other extension is refused before anything is drawn;
- a quantity that spans orders of magnitude of both signs (Δ(ε) near ε → 0, a
  binary loss near p → 0) is drawn on matplotlib's ``asinh`` scale, linear near
  zero and logarithmic far from it with no kink between — ``symlog``'s switch at
  its threshold drew a crease that the functions do not have;
- catalog losses appear under their papers' names (:func:`display_name`).

matplotlib is imported only when a figure is drawn, with the Agg backend.

>>> figure_format("fig3.PDF"), figure_format("out/curve.svg"), figure_format("/dev/stdout")
('pdf', 'svg', 'png')
>>> figure_format("curve.jpg")
Traceback (most recent call last):
...
ValueError: a figure is written as .png, .pdf or .svg (by the file's extension), got 'curve.jpg'
>>> display_name("baikal_cma"), display_name("my-formula")
('BaikalCMA', 'my-formula')
"""

from __future__ import annotations

from pathlib import Path

#: Figure formats, chosen by the file's extension.
FORMATS = ("png", "pdf", "svg")
#: Resolution of raster (PNG) figures.
DPI = 150

#: The papers' names for the catalog's losses (the catalog's keys are identifiers).
DISPLAY_NAMES = {
    "mse": "MSE",
    "cross_entropy": "Cross-entropy",
    "baikal": "Baikal",
    "baikal_cma": "BaikalCMA",
    "focal": "Focal (γ = 2)",
    "poly1": "Poly-1",
    "label_smoothed_cross_entropy": "Cross-entropy, label smoothing 0.1",
}


def display_name(name: str) -> str:
    """The name a reader knows a loss by: the paper's for a catalog loss, else ``name``."""
    if name.startswith("taylorglo") and name[len("taylorglo"):].isdigit():
        return f"TaylorGLO (order {name[len('taylorglo'):]})"
    return DISPLAY_NAMES.get(name, name)


def figure_format(path: str | Path) -> str:
    """The format of a figure file by its extension, or a ``ValueError`` naming the choices."""
    suffix = Path(path).suffix.lower().lstrip(".") or FORMATS[0]
    if suffix not in FORMATS:
        choices = ", ".join(f".{name}" for name in FORMATS[:-1]) + f" or .{FORMATS[-1]}"
        raise ValueError(f"a figure is written as {choices} (by the file's extension), "
                         f"got {str(path)!r}")
    return suffix


def new_figure(*, columns: int = 1, width: float = 6.0, height: float = 4.2):
    """A matplotlib figure (Agg canvas, no global pyplot state) and its ``columns`` axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, k + 1) for k in range(columns)]
    return figure, axes


def wide_range_scale(axis, linear_width: float = 1.0) -> None:
    """Put ``axis``'s y on the ``asinh`` scale: linear within ``linear_width``, log beyond."""
    axis.set_yscale("asinh", linear_width=linear_width)


def save_figure(figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` in the format its extension names; returns the path."""
    path = Path(path)
    kind = figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Creator": "symloss"} if kind in ("pdf", "svg") else {}
    figure.savefig(path, format=kind, dpi=DPI, metadata=metadata)
    return path
