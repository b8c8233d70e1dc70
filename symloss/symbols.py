"""The symbols every derivation shares (docs/conventions.md §1).

``y`` is one class's label value (1/0 one-hot, or smoothed), ``h`` that class's
predicted probability, ``epsilon`` the deviation from memorization. Their
assumptions are what make limits and simplifications right: a probability is
positive, and so is a label's deviation.

>>> from symloss.symbols import y, h
>>> h.is_positive, y.is_real
(True, True)
"""

from __future__ import annotations

import sympy as sp

y = sp.Symbol("y", real=True)
h = sp.Symbol("h", positive=True)
epsilon = sp.Symbol("epsilon", positive=True)
alpha = sp.Symbol("alpha", nonnegative=True)
n = sp.Symbol("n", positive=True, integer=True)
eta = sp.Symbol("eta", positive=True)

__all__ = ["alpha", "epsilon", "eta", "h", "n", "y"]
