"""Hypothesis strategies shared by the symbolic-core tests.

:func:`formula_pairs` draws a random per-class loss ``ℓ(y, h)`` twice over: as
the **text** a user would type (so :func:`symloss.parse_formula` is exercised)
and as the sympy expression built directly from the same random tree (an
oracle for the parser). Leaves are ``y``, ``h`` and small constants; operators
``+ − * /``, ``log``, ``exp``, ``sqrt`` and squares. Only formulas that depend
on ``h`` are kept (a loss without ``h`` has no gradient).

>>> from hypothesis import find
>>> find(formulas(), lambda text: "log" in text)
'log(h)'
"""

from __future__ import annotations

from typing import NamedTuple

import sympy as sp
from hypothesis import strategies as st

from symloss.catalog import loss as make_loss
from symloss.loss import Loss
from symloss.symbols import h, y

#: Deepest operator nesting of a random formula (keeps sympy's limits fast).
MAX_DEPTH = 3


class Formula(NamedTuple):
    """One random loss: the text a user types and the sympy expression it means."""

    text: str
    expr: sp.Expr


_LEAVES = [
    Formula("y", y),
    Formula("h", h),
    Formula("1", sp.Integer(1)),
    Formula("2", sp.Integer(2)),
    Formula("3", sp.Integer(3)),
    Formula("1/2", sp.Rational(1, 2)),
]


def _atomic(text: str) -> bool:
    """True when ``text`` needs no parentheses as an operand: a name, an integer, a call."""
    if text.isidentifier() or text.isdigit():
        return True
    head, _, rest = text.partition("(")
    if head not in ("log", "exp", "sqrt") or not rest.endswith(")"):
        return False
    level = 1
    for character in rest[:-1]:
        level += {"(": 1, ")": -1}.get(character, 0)
        if level == 0:  # the call's parenthesis closes before the end: not one call
            return False
    return True


def _operand(text: str) -> str:
    return text if _atomic(text) else f"({text})"


def _unary(inner: Formula, name: str) -> Formula:
    if name == "square":
        return Formula(f"{_operand(inner.text)}**2", sp.Pow(inner.expr, 2))
    if name == "neg":
        return Formula(f"-{_operand(inner.text)}", -inner.expr)
    function = {"log": sp.log, "exp": sp.exp, "sqrt": sp.sqrt}[name]
    return Formula(f"{name}({inner.text})", function(inner.expr))


def _binary(left: Formula, right: Formula, operator: str) -> Formula:
    expr = {"+": sp.Add, "-": lambda a, b: a - b, "*": sp.Mul,
            "/": lambda a, b: a / b}[operator](left.expr, right.expr)
    return Formula(f"{_operand(left.text)} {operator} {_operand(right.text)}", expr)


def _extend(children: st.SearchStrategy[Formula]) -> st.SearchStrategy[Formula]:
    unary = st.builds(_unary, children,
                      st.sampled_from(["log", "exp", "sqrt", "square", "neg"]))
    binary = st.builds(_binary, children, children, st.sampled_from(["+", "-", "*", "/"]))
    return unary | binary


def _usable(formula: Formula) -> bool:
    expr = formula.expr
    return (expr.has(h) and not expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I)
            and _depth(expr) <= MAX_DEPTH + 2)


def _depth(expr: sp.Basic) -> int:
    return 1 + max((_depth(a) for a in expr.args), default=0)


def formula_pairs() -> st.SearchStrategy[Formula]:
    """Random ``(text, sympy expression)`` pairs of losses that depend on ``h``."""
    tree = st.recursive(st.sampled_from(_LEAVES), _extend, max_leaves=2 ** MAX_DEPTH)
    usable = tree.filter(_usable)
    return st.deferred(lambda: usable)  # a short repr: the recursive one runs to 30 kB


def formulas() -> st.SearchStrategy[str]:
    """Random loss formulas as text, in ``y`` and ``h``, each depending on ``h``."""
    return formula_pairs().map(lambda pair: pair.text)


def losses() -> st.SearchStrategy[Loss]:
    """Random concrete losses, parsed from :func:`formulas` text by :func:`symloss.loss`."""
    return formulas().map(make_loss)


def taylorglo_values(count: int = 8, bound: float = 3.0) -> st.SearchStrategy[list[float]]:
    """Random parameter vectors λ for a family with ``count`` parameters."""
    return st.lists(st.floats(-bound, bound, allow_nan=False, allow_infinity=False),
                    min_size=count, max_size=count)
