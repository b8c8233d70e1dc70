"""Losses as immutable values.

A :class:`Loss` holds the sympy expression of the per-class term ``ℓ(y, h)``
(docs/conventions.md §1: the loss is ``L = (1/n) Σ_k ℓ(y_k, h_k)``, minimized), the symbols of
its parameters, and their values once bound. Derivations take a ``Loss`` and
return new values; nothing here mutates.

>>> from symloss.catalog import taylorglo
>>> family = taylorglo(order=3)
>>> family.is_family, len(family.parameters)
(True, 8)
>>> member = family.bind([0, 0, 0, -1, 0, 2, 0, 0])
>>> member.is_family, member.expression
(False, h**2 - 2*h*y)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import sympy as sp

from symloss.symbols import h, y


@dataclass(frozen=True)
class Loss:
    """A per-class loss term ``ℓ(y, h)``, possibly a family with parameters.

    ``expr`` may contain ``parameters``; ``values`` (when not ``None``) binds
    them, one number each. ``name`` is for reports only.
    """

    name: str
    expr: sp.Expr
    parameters: tuple[sp.Symbol, ...] = ()
    values: tuple[float, ...] | None = None
    meta: tuple[tuple[str, object], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expr, sp.Expr):
            raise TypeError(f"Loss.expr must be a sympy expression, got {type(self.expr).__name__}")
        allowed = {y, h, *self.parameters}
        stray = sorted(str(s) for s in self.expr.free_symbols - allowed)
        if stray:
            raise ValueError(
                f"loss {self.name!r} has unknown symbols {stray}; allowed: y, h and its parameters"
            )
        if self.values is not None and len(self.values) != len(self.parameters):
            raise ValueError(
                f"loss {self.name!r} takes {len(self.parameters)} parameter values, "
                f"got {len(self.values)}"
            )

    @property
    def is_family(self) -> bool:
        """True when parameters are present and not bound to values."""
        return bool(self.parameters) and self.values is None

    @property
    def expression(self) -> sp.Expr:
        """``ℓ(y, h)`` with bound values substituted (the family's ``expr`` otherwise)."""
        if self.values is None or not self.parameters:
            return self.expr
        return self.expr.xreplace(self.substitution)

    @property
    def substitution(self) -> dict[sp.Symbol, sp.Expr]:
        """The parameter → value mapping of a bound loss (empty for a family)."""
        if self.values is None:
            return {}
        return {p: sp.Float(v) if not float(v).is_integer() else sp.Integer(int(v))
                for p, v in zip(self.parameters, self.values, strict=True)}

    def bind(self, values: Sequence[float]) -> Loss:
        """Return the member of this family with the given parameter values.

        >>> from symloss.catalog import taylorglo
        >>> taylorglo(order=3).bind([1, 2])
        Traceback (most recent call last):
        ...
        ValueError: loss 'taylorglo3' takes 8 parameter values, got 2
        """
        numbers = tuple(float(v) for v in values)
        bad = [v for v in numbers if not math.isfinite(v)]
        if bad:
            raise ValueError(f"parameter values must be finite numbers, got {bad[0]!r}")
        return Loss(self.name, self.expr, self.parameters, numbers, self.meta)

    def unbind(self) -> Loss:
        """The family this member belongs to."""
        return Loss(self.name, self.expr, self.parameters, None, self.meta)

    def shifted(self, constant: float | sp.Expr) -> Loss:
        """``ℓ − c·h``: adds ``c`` to γ, which changes no update (docs/conventions.md §2.6).

        A symbolic ``c`` becomes a parameter of the shifted loss (left unbound).
        """
        shift = sp.sympify(constant)
        extra = tuple(sorted(shift.free_symbols - set(self.parameters), key=str))
        if extra and self.values is not None:
            raise ValueError(f"cannot shift the bound loss {self.name!r} by the symbolic "
                             f"constant {shift}; shift its family instead")
        return Loss(f"{self.name}-shift", self.expr - shift * h, self.parameters + extra,
                    self.values, self.meta)

    def latex(self) -> str:
        r"""LaTeX of ``ℓ(y, h)``.

        >>> from symloss.catalog import loss
        >>> loss("baikal").latex()
        '- \\log{\\left(h \\right)} + \\frac{y}{h}'
        """
        return sp.latex(self.expression)

    def __str__(self) -> str:
        return str(self.expression)
