"""Size checks made before any expansion, and exact-zero tests for constants.

The time and memory guard (:mod:`symloss.guard`) stops what runs too long; the
checks here refuse what would be too large before it starts: the degree a
polynomial would have once expanded (nested powers multiplied out, products
summed), and the highest power after flattening nested powers.

>>> from symloss.symbols import h, y
>>> int(flat_exponent(((h**4)**4 + y)**3))
48
>>> expanded_degree(((h + y + 1)**16 + h)**4)
64
>>> is_zero_number(sp.log(2) + sp.log(3) - sp.log(6))
True
"""

from __future__ import annotations

import sympy as sp

from symloss.guard import guarded

#: The highest polynomial degree an expression may have before it is expanded.
MAX_EXPAND_DEGREE = 48
#: The most nodes an expression may have before it is expanded.
MAX_EXPAND_NODES = 20_000
#: A constant whose value, computed to 80 digits, is below this is taken as exactly zero
#: (after sympy's exact tests, ``is_zero`` and ``equals(0)``, leave it open).
ZERO_TOLERANCE = sp.Float("1e-60", 80)


class TooLarge(ValueError):
    """An expression too large to expand within the bounds; the step is undecided."""


def flat_exponent(expression: sp.Basic) -> float:
    """The largest power in ``expression`` with nested powers multiplied out.

    ``((h**16)**16)**16`` is ``h**4096``: 4096, whatever sympy has done to it.
    Non-numeric exponents (``exp``) count as 1.
    """
    if isinstance(expression, sp.Pow):
        exponent = expression.exp
        power = abs(float(exponent)) if exponent.is_number and exponent.is_real else 1.0
        return max(power, 1.0) * flat_exponent(expression.base)
    if not expression.args:
        return 1
    return max(flat_exponent(argument) for argument in expression.args)


def expanded_degree(expression: sp.Basic) -> float:
    """An upper bound on the total degree ``expand`` would produce.

    Sums take the largest degree, products add, powers multiply; a function's
    arguments are expanded inside it, so it counts as its arguments' degree.
    """
    if expression.is_Atom:
        return 0 if expression.is_number else 1
    if isinstance(expression, sp.Pow):
        exponent = expression.exp
        if exponent.is_Integer and exponent > 0:
            return int(exponent) * expanded_degree(expression.base)
        return expanded_degree(expression.base)
    degrees = [expanded_degree(argument) for argument in expression.args]
    if isinstance(expression, sp.Mul):
        return sum(degrees)
    return max(degrees, default=0)


def node_count(expression: sp.Basic) -> int:
    """Nodes in the expression tree (a tree walk, nothing expanded)."""
    return sum(1 for _ in sp.preorder_traversal(expression))


def check_expandable(expression: sp.Basic, what: str = "the expression") -> None:
    """Raise :class:`TooLarge` if expanding ``expression`` could blow up.

    >>> from symloss.symbols import h
    >>> check_expandable((h + 1)**60, "γ")
    Traceback (most recent call last):
    ...
    symloss.bounds.TooLarge: γ has degree 60 when expanded, more than 48: not expanded
    """
    degree = expanded_degree(expression)
    if degree > MAX_EXPAND_DEGREE:
        raise TooLarge(f"{what} has degree {degree:g} when expanded, "
                       f"more than {MAX_EXPAND_DEGREE}: not expanded")
    nodes = node_count(expression)
    if nodes > MAX_EXPAND_NODES:
        raise TooLarge(f"{what} has {nodes} nodes, more than {MAX_EXPAND_NODES}: not expanded")


def expand(expression: sp.Expr, what: str = "the expression") -> sp.Expr:
    """``sp.expand`` after :func:`check_expandable`."""
    check_expandable(expression, what)
    return sp.expand(expression)


def is_zero_number(value: sp.Expr) -> bool | None:
    """Whether a constant is exactly zero; ``None`` for a non-constant.

    sympy's own tests first (``is_zero``; a strict 30-digit evaluation that
    cannot tell it from zero; ``equals(0)``), then the stated tolerance:
    ``|value| < 1e-60`` at 80 digits.

    >>> is_zero_number(sp.tanh(1) - (sp.exp(2) - 1) / (sp.exp(2) + 1))
    True
    >>> is_zero_number(sp.Integer(10)**-50), is_zero_number(sp.Symbol("a"))
    (False, None)
    """
    if not value.is_number:
        return None
    if value.is_zero is not None:
        return bool(value.is_zero)
    try:
        approximation = value.evalf(30, strict=True)
        if approximation.is_number and approximation != 0:
            return False
    except (sp.core.evalf.PrecisionExhausted, ValueError, TypeError, ArithmeticError):
        pass  # cannot be told from zero at 30 digits: ask equals
    equal = guarded(lambda: value.equals(0), seconds=1.0,
                    undecided_on=(NotImplementedError, TypeError, ValueError, ArithmeticError))
    if equal is not None:
        return bool(equal)
    try:
        return bool(abs(value.evalf(80)) < ZERO_TOLERANCE)
    except (TypeError, ValueError, ArithmeticError):
        return None


def zero_constants(expression: sp.Expr) -> sp.Expr:
    """``expression`` with every constant sum that is exactly zero replaced by ``0``.

    ``h*y*(log(2) + log(3) - log(6))`` is the zero loss; sympy keeps the sum.

    >>> from symloss.symbols import h, y
    >>> zero_constants(h * y * (sp.log(2) + sp.log(3) - sp.log(6)) + h**2)
    h**2
    """
    replacements = {}
    for node in sp.preorder_traversal(expression):
        if isinstance(node, sp.Add) and node.is_number and is_zero_number(node):
            replacements[node] = sp.Integer(0)
    return expression.xreplace(replacements) if replacements else expression
