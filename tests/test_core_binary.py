"""The binary view (docs/conventions.md §2.8; GLO §V-A, Fig. 6), the attraction curves.

Oracles: Baikal's minimum by hand (dL/dp = 0 ⇔ 2p² − 1 = 0, p = 1/√2; GLO §V-A
says ≈ 0.71), BaikalCMA's ≈ 0.77 (GLO §V-A), and a dense grid of L(p).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings

from symloss.binary import BinaryView, binary_loss, binary_view, p
from symloss.catalog import loss, taylorglo
from symloss.curves import (
    EPSILON_MIN,
    attraction_table,
    epsilon_grid,
    plot_attraction,
    plot_binary,
    write_csv,
)
from tests.strategies import losses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_binary_loss_scalar_cases():
    # L(p) = ½[ℓ(1, p) + ℓ(0, 1 − p)], by hand.
    assert sp.simplify(binary_loss(loss("mse")) - (p - 1) ** 2) == 0
    assert sp.simplify(binary_loss(loss("cross_entropy")) + sp.log(p) / 2) == 0
    expected = (-sp.log(p) + 1 / p - sp.log(1 - p)) / 2  # Baikal, GLO Fig. 6
    assert sp.simplify(binary_loss(loss("baikal")) - expected) == 0


def test_binary_loss_with_smoothing():
    # α = 0.2, n = 2: y_T = 0.9, y_N = 0.1 → L = −½[0.9 log p + 0.1 log(1 − p)].
    expected = -(sp.Rational(9, 10) * sp.log(p) + sp.Rational(1, 10) * sp.log(1 - p)) / 2
    assert sp.simplify(binary_loss(loss("cross_entropy"), 0.2) - expected) == 0
    view = binary_view(loss("cross_entropy"), 0.2)
    assert view.interior and view.minimum_at == pytest.approx(0.9, abs=1e-9)  # argmin = y_T


def test_baikal_minimum_is_one_over_root_two():
    view = binary_view(loss("baikal"))
    assert view.interior is True
    assert view.minimum_at == pytest.approx(1 / math.sqrt(2), abs=1e-9)  # by hand; GLO ≈ 0.71


def test_baikal_cma_minimum_is_near_077():
    view = binary_view(loss("baikal_cma"))
    assert view.interior is True
    assert round(view.minimum_at, 2) == 0.77  # GLO §V-A


def test_cross_entropy_minimum_is_at_the_boundary():
    view = binary_view(loss("cross_entropy"))
    assert (view.minimum_at, view.interior) == (1.0, False)


def test_binary_view_of_a_family_is_undecided():
    view = binary_view(taylorglo(3))
    assert isinstance(view, BinaryView)
    assert (view.minimum_at, view.minimum_value, view.interior) == (None, None, None)


def test_binary_view_bad_smoothing():
    with pytest.raises(ValueError, match="smoothing"):
        binary_view(loss("baikal"), 1.0)


@settings(deadline=None, max_examples=40, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(losses())
def test_binary_minimum_is_no_worse_than_a_dense_grid(item):
    try:
        view = binary_view(item)
    except (ValueError, KeyError):  # the two bugs pinned below
        assume(False)
    assume(view.minimum_at is not None)
    value = sp.lambdify(p, view.expression, modules="numpy")
    grid = np.linspace(1e-6, 1 - 1e-6, 20001)
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(value(grid), dtype=float), grid.shape)
    finite = values[np.isfinite(values)]
    assume(finite.size)
    assert view.minimum_value <= finite.min() + 1e-6 * (1 + abs(finite.min()))


def test_binary_view_of_a_loss_with_a_cusp_does_not_raise():
    view = binary_view(loss("sqrt(Abs(h - 1/3))"))
    # L(p) = ½[√|p − 1/3| + √|2/3 − p|]: minima √(1/3)/2 at p = 1/3 and p = 2/3.
    assert view.minimum_value == pytest.approx(math.sqrt(1 / 3) / 2, abs=1e-6)


def test_binary_view_of_a_loss_undefined_at_label_zero_does_not_crash():
    view = binary_view(loss("h - log(y)"))
    assert view.minimum_at is None


# --- curves ------------------------------------------------------------------------------------

def test_epsilon_grid_ends_at_the_null_epoch():
    grid = epsilon_grid(10, 5)
    assert grid[0] == EPSILON_MIN and grid[-1] == pytest.approx(0.9)


def test_attraction_table_rows():
    rows = attraction_table([loss("cross_entropy"), loss("baikal")], classes=10, points=7)
    assert len(rows) == 14 and set(rows[0]) == {"loss", "epsilon", "delta", "attraction"}
    baikal = [r for r in rows if r["loss"] == "baikal"]
    assert baikal[0]["attraction"] < 0 < baikal[-1]["attraction"]  # ICLR Fig. 3(d)
    assert all(r["attraction"] > 0 for r in rows if r["loss"] == "cross_entropy")  # Fig. 3(a)


def test_write_csv_and_plots(tmp_path):
    rows = attraction_table([loss("mse")], classes=3, points=4)
    write_csv(rows, tmp_path / "sub" / "a.csv")
    with (tmp_path / "sub" / "a.csv").open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["loss", "epsilon", "delta", "attraction"] and len(read) == 4
    for path in (plot_attraction([loss("mse"), loss("baikal")], 10, tmp_path / "a.png", points=20),
                 plot_binary([loss("baikal"), loss("cross_entropy")], tmp_path / "b.png", 50)):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_family_cases_and_errors_of_the_plotting_functions(tmp_path):
    family_view = binary_loss(taylorglo(2))
    assert family_view.free_symbols >= set(taylorglo(2).parameters) - {taylorglo(2).parameters[0]}
    with pytest.raises(ValueError, match="bind the parameters"):
        plot_attraction([taylorglo(3)], 10, tmp_path / "never.png")
    with pytest.raises(ValueError, match="classes"):
        plot_attraction([loss("mse")], 1, tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()
