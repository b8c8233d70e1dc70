"""Figures fit for a paper: format by extension, labelled axes, no scale kinks, papers' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from symloss.catalog import loss
from symloss.curves import attraction_figure, binary_figure, plot_attraction, plot_binary
from symloss.figures import display_name, figure_format

MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}


def _labelled(figure) -> None:
    for axis in figure.axes:
        assert axis.get_xlabel().strip(), axis
        assert axis.get_ylabel().strip(), axis


@pytest.mark.parametrize("kind", ["png", "pdf", "svg"])
def test_the_extension_picks_the_format(tmp_path, kind):
    path = plot_attraction([loss("baikal")], 10, tmp_path / f"curve.{kind.upper()}", points=20)
    assert path.read_bytes().startswith(MAGIC[kind])
    assert plot_binary([loss("mse")], tmp_path / f"b.{kind}", points=20).read_bytes() \
        .startswith(MAGIC[kind])


def test_an_unknown_extension_is_refused_before_drawing(tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.pdf or \.svg .*'.*curve\.jpg'"):
        plot_attraction([loss("baikal")], 10, tmp_path / "curve.jpg")
    with pytest.raises(ValueError, match="by the file's extension"):
        figure_format("figure.eps")
    assert figure_format("no-extension") == "png"
    assert list(tmp_path.iterdir()) == []


def test_attraction_figure_axes_are_labelled_and_kink_free():
    figure = attraction_figure([loss("cross_entropy"), loss("baikal")], 10, points=30)
    _labelled(figure)
    delta_axis, attraction_axis = figure.axes
    assert delta_axis.get_yscale() == "asinh"  # symlog creased the curve at its threshold
    assert "varepsilon" in delta_axis.get_xlabel() and "Delta" in delta_axis.get_ylabel()
    legend = [text.get_text() for text in delta_axis.get_legend().get_texts()]
    assert legend == ["Cross-entropy", "Baikal"]
    # Baikal's equilibrium is annotated in mathtext on the attraction panel
    assert any("varepsilon^*" in t.get_text() for t in attraction_axis.texts)


def test_binary_figure_is_linear_and_shows_the_minima():
    figure = binary_figure([loss("baikal"), loss("baikal_cma")], points=60)
    _labelled(figure)
    (axis,) = figure.axes
    assert axis.get_yscale() == "linear"
    bottom, top = axis.get_ylim()
    assert bottom == 0 and 0 < top < 100  # the p → 0 blow-up leaves the frame


def test_no_figure_uses_symlog():
    root = Path(__file__).resolve().parents[1]
    sources = [p for folder in ("symloss", "harness", "reproduce", "proofs")
               for p in (root / folder).rglob("*.py")]
    assert sources
    assert [p.name for p in sources if '"symlog"' in p.read_text()] == []


def test_display_names():
    assert display_name("cross_entropy") == "Cross-entropy"
    assert display_name("taylorglo3") == "TaylorGLO (order 3)"
    assert display_name("taylorglo_x") == "taylorglo_x"


def test_search_progress_figure(tmp_path):
    from symloss.harness.search.final import plot_progress, progress_figure

    summary = [{"generation": g, "best_fitness": b, "median_fitness": m}
               for g, b, m in [(0, 0.5, 0.3), (1, 0.45, 0.35), (2, 0.7, 0.4)]]
    counts = {0: {"ok": 10, "filtered": 5}, 1: {"ok": 8, "diverged": 2, "filtered": 5},
              2: {"ok": 15}}
    figure = progress_figure(summary, counts)
    _labelled(figure)
    fitness_axis, count_axis = figure.axes
    for axis in figure.axes:
        figure.canvas.draw()
        assert all(float(t).is_integer() for t in axis.get_xticks()), axis.get_xticks()
    best_so_far = fitness_axis.get_lines()[2].get_ydata()
    assert list(best_so_far) == [0.5, 0.5, 0.7]
    heights = {}
    for container in count_axis.containers:
        heights[container.get_label()] = [bar.get_height() for bar in container]
    assert heights == {"ok": [10, 8, 15], "filtered": [5, 5, 0], "diverged": [0, 2, 0]}
    assert plot_progress(summary, counts, tmp_path / "p.svg").read_bytes().startswith(b"<?xml")


def test_curve_cli_writes_the_format_of_out(tmp_path, capsys):
    from symloss.cli import main

    assert main(["curve", "baikal", "cross_entropy", "--out", str(tmp_path / "c.pdf")]) == 0
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    capsys.readouterr()
    assert main(["curve", "baikal", "--out", str(tmp_path / "c.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".png, .pdf or .svg" in err, err
    assert not (tmp_path / "c.jpg").exists()
