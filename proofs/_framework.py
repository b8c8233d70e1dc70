"""What every proof file uses: a step recorder, the verdict value, printed-number checks.

A proof is a sequence of steps; each is its own assertion and names itself when it
fails. Symbolic identities are decided by ``sp.simplify(lhs - rhs) == 0``; limits by
``sp.limit``; sign arguments by sympy's assumptions. Numeric spot checks exist too,
but they are labelled as such (``spot_check``) and never stand in for a step.

>>> x = sp.Symbol("x")
>>> proof = Proof()
>>> proof.identity("(x+1)^2 expands", (x + 1) ** 2, x**2 + 2 * x + 1)
>>> proof.number("a printed sum", "-387.055588", sp.Rational("-387.055588"))
True
>>> proof.verdict("CONFIRMED", "fine").verdict
'CONFIRMED'
>>> proof.identity("a false identity", x, x + 1)
Traceback (most recent call last):
...
symloss.proofs._framework.StepFailed: step 'a false identity' failed: simplify(lhs - rhs) = -1, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import sympy as sp

VERDICTS = ("CONFIRMED", "CORRECTED", "REFUTED")


class StepFailed(AssertionError):
    """A proof step did not hold; the message names the step."""


class Mismatch(NamedTuple):
    """A value the paper prints against the value recomputed here."""

    what: str
    paper: str
    recomputed: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of one proof file."""

    verdict: str
    reason: str
    mismatches: tuple[Mismatch, ...] = ()
    steps: int = 0
    spot_checks: int = 0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")


@dataclass
class Proof:
    """Records the steps of one proof; ``verdict`` turns them into a :class:`Verdict`."""

    steps: list[str] = field(default_factory=list)
    spot_checks: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    # -- proof steps ------------------------------------------------------------------
    def step(self, name: str, condition: object, detail: str = "") -> None:
        """A step whose truth is ``condition`` (a Python bool or a sympy boolean)."""
        if condition is not True and condition is not sp.true:
            message = f"step {name!r} failed"
            raise StepFailed(f"{message}: {detail}" if detail else message)
        self.steps.append(name)

    def identity(self, name: str, lhs: sp.Expr, rhs: sp.Expr) -> None:
        """The step ``simplify(lhs − rhs) == 0``."""
        difference = sp.simplify(sp.sympify(lhs) - sp.sympify(rhs))
        self.step(name, difference == 0, f"simplify(lhs - rhs) = {difference}, not 0")

    def limit(
        self, name: str, expr: sp.Expr, symbol: sp.Symbol, point: sp.Expr, expected: sp.Expr,
        direction: str = "+",
    ) -> None:
        """The step ``lim_{symbol → point^direction} expr = expected``."""
        value = sp.limit(expr, symbol, point, direction)
        infinite = value in (sp.oo, -sp.oo) or expected in (sp.oo, -sp.oo)
        holds = value == expected if infinite else sp.simplify(value - expected) == 0
        self.step(name, holds, f"limit is {value}, expected {expected}")

    def positive(self, name: str, expr: sp.Expr) -> None:
        """The sign step ``expr > 0``, decided by sympy's assumptions (no numerics)."""
        self.step(name, sp.simplify(expr).is_positive is True, f"{expr} is not provably > 0")

    def negative(self, name: str, expr: sp.Expr) -> None:
        """The sign step ``expr < 0``, decided by sympy's assumptions (no numerics)."""
        self.step(name, sp.simplify(expr).is_negative is True, f"{expr} is not provably < 0")

    # -- labelled numerics -----------------------------------------------------------
    def spot_check(self, name: str, condition: object, detail: str = "") -> None:
        """A numeric spot check, recorded as such: evidence, never a proof step."""
        if not bool(condition):
            message = f"spot check {name!r} failed"
            raise StepFailed(f"{message}: {detail}" if detail else message)
        self.spot_checks.append(name)

    # -- the paper's printed numbers --------------------------------------------------
    def number(self, what: str, printed: str, recomputed: sp.Expr) -> bool:
        """Compare a number the paper prints with the exact recomputed value.

        They agree when the recomputed value rounds to the printed one at the printed
        number of decimals. A disagreement is recorded as a :class:`Mismatch`.
        """
        exact = sp.sympify(recomputed)
        value = exact if exact.is_Rational else sp.Rational(str(sp.N(exact, 40)))
        decimals = len(printed.split(".")[1]) if "." in printed else 0
        tolerance = sp.Rational(5, 10 ** (decimals + 1))
        agrees = abs(value - sp.Rational(printed)) <= tolerance
        if not agrees:
            shown = sp.Float(value, max(decimals + 4, 12))
            self.mismatches.append(Mismatch(what, printed, f"{shown}".rstrip("0")))
        return bool(agrees)

    def mismatch(self, what: str, paper: str, recomputed: str) -> None:
        """Record a mismatch that is not a single printed number (a sign, a formula)."""
        self.mismatches.append(Mismatch(what, paper, recomputed))

    def verdict(self, verdict: str, reason: str) -> Verdict:
        return Verdict(verdict, reason, tuple(self.mismatches), len(self.steps),
                       len(self.spot_checks))


def is_zero(expr: sp.Expr) -> bool:
    """``simplify(expr) == 0`` (for steps that need the boolean first)."""
    return sp.simplify(expr) == 0


__all__ = ["VERDICTS", "Mismatch", "Proof", "StepFailed", "Verdict", "is_zero"]
