"""Piecewise losses near a point: which branch of ``Abs``, ``Max``, ``sign``… applies.

Next to ``t = 0⁺`` every non-smooth function whose argument is not zero at
``t = 0`` (or leaves zero with a known sign) sits on one branch, so it can be
replaced by that branch: ``Heaviside(t − 0.1)`` is ``0`` on ``(0, 0.1)``. The
result equals the expression on a right neighbourhood of 0, which is all that a
limit, a series or a one-sided value there needs (docs/conventions.md §2.5: Δ(ε) as ε → 0⁺).

>>> t = sp.Symbol("t", positive=True)
>>> near_zero(sp.Heaviside(t - sp.Rational(1, 10)) * t + sp.Max(1, 1 + t), t)
t + 1
>>> one_sided(-sp.sign(sp.Symbol("h", positive=True) - sp.Rational(1, 10)),
...           sp.Symbol("h", positive=True), sp.Rational(1, 10))
(1, -1)
"""

from __future__ import annotations

import sympy as sp

from symloss.guard import guarded

#: Functions that are smooth except where an argument crosses a threshold.
NON_SMOOTH = (sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min)

_UNDECIDED = (NotImplementedError, TypeError, ValueError, AttributeError, ArithmeticError)


def has_kinks(expression: sp.Basic) -> bool:
    """Whether ``expression`` holds a non-smooth function (or a Piecewise)."""
    return expression.has(*NON_SMOOTH, sp.Piecewise)


def side_sign(expression: sp.Expr, t: sp.Symbol) -> int | None:
    """The sign of ``expression`` for ``t`` just above 0, or ``None`` if unknown.

    >>> t = sp.Symbol("t", positive=True)
    >>> side_sign(t - t**2, t), side_sign(-3 + t, t), side_sign(t * 0, t)
    (1, -1, 0)
    """
    if expression == 0:
        return 0
    try:
        start = expression.subs(t, 0)
    except _UNDECIDED:
        return None
    if start.is_number and start.is_extended_real and start.is_zero is False:
        return 1 if start.is_extended_positive else -1
    if start != 0 and not start.is_zero:
        return None
    lead = guarded(lambda: expression.leadterm(t), seconds=1.0, undecided_on=_UNDECIDED)
    if lead is None:
        return None
    coefficient = lead[0]
    if coefficient.is_number and coefficient.is_extended_real and coefficient.is_zero is False:
        return 1 if coefficient.is_extended_positive else -1
    return None


def near_zero(expression: sp.Expr, t: sp.Symbol) -> sp.Expr:
    """``expression`` on a right neighbourhood of ``t = 0``, with its branches fixed."""
    if not has_kinks(expression) or not expression.has(t):
        return expression
    return _fix(expression, t)


def _fix(node: sp.Basic, t: sp.Symbol) -> sp.Basic:
    if not node.args or not node.has(t):
        return node
    node = node.func(*(_fix(argument, t) for argument in node.args))
    if isinstance(node, (sp.Heaviside, sp.sign, sp.Abs)):
        argument = node.args[0]
        sign = side_sign(argument, t)
        if sign is None or (sign == 0 and isinstance(node, sp.Heaviside)):
            return node
        if isinstance(node, sp.Heaviside):
            return sp.Integer(1 if sign > 0 else 0)
        if isinstance(node, sp.sign):
            return sp.Integer(sign)
        return sign * argument
    if isinstance(node, (sp.Max, sp.Min)):
        want = 1 if isinstance(node, sp.Max) else -1
        for candidate in node.args:
            if all(other is candidate or side_sign(candidate - other, t) in (want, 0)
                   for other in node.args):
                return candidate
    return node


def one_sided(expression: sp.Expr, symbol: sp.Symbol, point: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """``(value just left of point, value just right of it)``; ``nan`` where unknown."""
    step = sp.Dummy("step", positive=True)
    values = []
    for direction in (-1, 1):
        shifted = expression.xreplace({symbol: point + direction * step})
        near = near_zero(shifted, step)
        value = sp.nan
        if not has_kinks(near):
            try:
                value = near.subs(step, 0)
            except _UNDECIDED:
                value = sp.nan
        if value.has(sp.nan, sp.zoo) or not value.is_number:
            limit = guarded(lambda n=near: sp.limit(n, step, 0, "+"), seconds=2.0,
                            undecided_on=_UNDECIDED)
            value = sp.nan if limit is None or limit.has(sp.Limit) else limit
        values.append(value)
    return values[0], values[1]
