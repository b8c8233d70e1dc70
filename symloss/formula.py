"""Parse a user's loss formula into sympy without ``eval``.

The text is parsed by Python's :mod:`ast` and every node is checked against an
allowlist, then the sympy expression is built by our own code. sympy's
``sympify``/``parse_expr`` are never called on user text: both end in ``eval``.

Accepted: numbers, the names ``y`` and ``h`` (plus parameter names the caller
allows), ``+ - * /``, ``**`` and ``^`` (power) with a bounded numeric exponent
(nested powers multiplied out: ``(h**16)**16`` is refused),
and the functions ``log exp sqrt Abs Max Min tanh sigmoid`` (``abs``, ``max``,
``min``, ``ln`` as aliases). Everything else is a :class:`FormulaError` that
names the offending piece.

>>> parse_formula("-log(h) + y/h")
-log(h) + y/h
>>> parse_formula("(h - y)^2")
(h - y)**2
>>> parse_formula("__import__('os')")
Traceback (most recent call last):
...
symloss.formula.FormulaError: function '__import__' is not allowed; allowed functions: Abs, ...
"""

from __future__ import annotations

import ast
import encodings.unicode_escape  # noqa: F401 - ast.unparse would import it mid-parse
import math
import warnings
from collections.abc import Callable, Mapping

import sympy as sp

from symloss.bounds import flat_exponent
from symloss.guard import guarded
from symloss.symbols import h, y

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_CONSTANT = 1e12
MAX_EXPONENT = 16
MAX_DIGITS = 40
MAX_MAGNITUDE = 100  # largest |log10| of a constant power, and of any constant's size
#: The longest building a formula's expression may take (a guard, not a benchmark).
MAX_SECONDS = 1.0


class FormulaError(ValueError):
    """A formula that is not an accepted loss expression."""


def _sigmoid(x: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-x))


_FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], int | None]] = {
    "log": (sp.log, 1),
    "ln": (sp.log, 1),
    "exp": (sp.exp, 1),
    "sqrt": (sp.sqrt, 1),
    "Abs": (sp.Abs, 1),
    "abs": (sp.Abs, 1),
    "tanh": (sp.tanh, 1),
    "sigmoid": (_sigmoid, 1),
    "Max": (sp.Max, None),
    "max": (sp.Max, None),
    "Min": (sp.Min, None),
    "min": (sp.Min, None),
}

_BINARY: dict[type[ast.operator], Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}

ALLOWED_FUNCTIONS = tuple(sorted(_FUNCTIONS))


def _describe(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every parsed node
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


class _Builder:
    def __init__(self, names: Mapping[str, sp.Symbol], source: str = ""):
        self.names = names
        self.source = source
        self.nodes = 0

    def build(self, node: ast.AST, depth: int = 0) -> sp.Expr:
        """The expression of ``node``; every constant part is checked the moment it is built.

        Checking each numeric subexpression as soon as it exists keeps every
        operand of the next step within ``1e±MAX_MAGNITUDE``: ``exp(exp(exp(9)))``
        is refused at its second ``exp`` before sympy tries to evaluate a tower.
        """
        result = self._build(node, depth)
        if result.is_number:
            self._check_constant(result, node)
        return result

    def _check_constant(self, value: sp.Expr, node: ast.AST) -> None:
        try:
            number = complex(value.evalf(15))
        except (TypeError, ValueError, ArithmeticError):  # zoo, nan, an overflowing float
            raise FormulaError(f"constant {_describe(node)!r} is undefined or exceeds "
                               f"1e{MAX_MAGNITUDE} in size") from None
        if not (math.isfinite(number.real) and math.isfinite(number.imag)):
            raise FormulaError(f"constant {_describe(node)!r} is undefined or exceeds "
                               f"1e{MAX_MAGNITUDE} in size")
        if abs(number) > 10.0**MAX_MAGNITUDE:
            raise FormulaError(f"constant {_describe(node)!r} exceeds 1e{MAX_MAGNITUDE} in size")
        if number.imag != 0 or value.is_extended_real is False:
            raise FormulaError(f"constant {_describe(node)!r} is complex; a loss is real")

    def _build(self, node: ast.AST, depth: int) -> sp.Expr:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            allowed = ", ".join(sorted(self.names))
            raise FormulaError(f"unknown name {node.id!r}; allowed names: {allowed}")
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            raise FormulaError(
                f"operator in {_describe(node)!r} is not allowed; allowed: + - * / ** ^")
        if isinstance(node, ast.BinOp):
            return self._binop(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise FormulaError(
            f"{type(node).__name__.lower()} {_describe(node)!r} is not allowed; "
            "a formula uses numbers, y, h, + - * / ** ^ and "
            + ", ".join(ALLOWED_FUNCTIONS)
        )

    def _constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormulaError(f"constant {_describe(node)!r} is not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise FormulaError(f"constant {_describe(node)!r} is not finite")
        if value == 0 and isinstance(value, float):
            written = ast.get_source_segment(self.source, node) or ""
            if any(digit in "123456789" for digit in written.lower().split("e")[0]):
                raise FormulaError(f"constant {written!r} is too small for a float (the "
                                   f"smallest is {math.ulp(0.0):.0e}) and would read as 0; "
                                   "write 0 if you mean it")
        if abs(value) > MAX_CONSTANT:
            raise FormulaError(f"constant {_describe(node)!r} exceeds {MAX_CONSTANT:g} in size")
        if isinstance(value, int):
            return sp.Integer(value)
        return sp.Float(value)

    def _binop(self, node: ast.BinOp, depth: int) -> sp.Expr:
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            base = self.build(node.left, depth + 1)
            exponent = self.build(node.right, depth + 1)
            if not exponent.is_number:
                raise FormulaError(
                    f"exponent in {_describe(node)!r} must be a number, "
                    f"got {_describe(node.right)!r}"
                )
            if not exponent.is_real or abs(float(exponent)) > MAX_EXPONENT:
                raise FormulaError(
                    f"exponent {_describe(node.right)!r} must be real with "
                    f"|exponent| <= {MAX_EXPONENT}"
                )
            if base.is_number and base != 0:
                magnitude = abs(complex(base.evalf(15)))
                if magnitude > 0 and abs(math.log10(magnitude) * float(exponent)) > MAX_MAGNITUDE:
                    raise FormulaError(
                        f"constant {_describe(node)!r} exceeds 1e{MAX_MAGNITUDE} in size"
                    )
            if exponent.is_zero:  # h**0.0 is the constant 1, as h**0 is (sympy keeps 0.0)
                return sp.Integer(1)
            power = sp.Pow(base, exponent)
            if flat_exponent(power) > MAX_EXPONENT:  # (h**16)**16 is h**256
                raise FormulaError(
                    f"power {_describe(node)!r} amounts to exponent {flat_exponent(power):g} "
                    f"with nested powers multiplied out; |exponent| <= {MAX_EXPONENT}"
                )
            return power
        operation = _BINARY.get(type(node.op))
        if operation is None:
            raise FormulaError(
                f"operator in {_describe(node)!r} is not allowed; allowed: + - * / ** ^"
            )
        return operation(self.build(node.left, depth + 1), self.build(node.right, depth + 1))

    def _call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise FormulaError(
                f"call {_describe(node)!r} is not allowed; allowed functions: "
                + ", ".join(ALLOWED_FUNCTIONS)
            )
        name = node.func.id
        if name not in _FUNCTIONS:
            raise FormulaError(
                f"function {name!r} is not allowed; allowed functions: "
                + ", ".join(ALLOWED_FUNCTIONS)
            )
        if node.keywords:
            raise FormulaError(f"keyword arguments in {_describe(node)!r} are not allowed")
        function, arity = _FUNCTIONS[name]
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise FormulaError(f"starred arguments in {_describe(node)!r} are not allowed")
        if arity is not None and len(node.args) != arity:
            raise FormulaError(f"{name} takes {arity} argument, got {len(node.args)}")
        if arity is None and len(node.args) < 2:
            raise FormulaError(f"{name} takes at least 2 arguments, got {len(node.args)}")
        return function(*(self.build(arg, depth + 1) for arg in node.args))


def _build(body: ast.AST, names: Mapping[str, sp.Symbol], source: str) -> sp.Expr:
    """Build ``body`` (parsed from ``source``); any failure inside sympy is the formula's
    fault: a FormulaError."""
    try:
        return _Builder(names, source).build(body)
    except FormulaError:
        raise
    except RecursionError:
        raise FormulaError(f"formula is nested deeper than {MAX_DEPTH} levels") from None
    except (ArithmeticError, TypeError, ValueError, AttributeError, MemoryError) as error:
        raise FormulaError(f"formula cannot be built: {type(error).__name__}: "
                           f"{str(error)[:80]}") from None


def parse_formula(text: str, parameters: Mapping[str, sp.Symbol] | None = None) -> sp.Expr:
    """Build the sympy expression of a per-class loss ``ℓ(y, h)`` from text.

    ``parameters`` maps extra names (a family's coefficients) to their symbols.
    Raises :class:`FormulaError` for anything outside the allowlist.

    >>> parse_formula("max(h, 0.5) * sigmoid(y)")
    Max(0.5, h)/(1 + exp(-y))
    >>> parse_formula("h.__class__")
    Traceback (most recent call last):
    ...
    symloss.formula.FormulaError: attribute 'h.__class__' is not allowed; a formula uses ...
    """
    if not isinstance(text, str):
        raise FormulaError(f"formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is longer than {MAX_LENGTH} characters (got {len(text)})")
    if not text.strip():
        raise FormulaError("formula is empty")
    for token in text.replace("e+", " ").replace("e-", " ").split():
        digits = sum(character.isdigit() for character in token)
        if digits > MAX_DIGITS and token.isdigit():
            raise FormulaError(f"number {token[:20]}... has more than {MAX_DIGITS} digits")
    source = text.strip()
    try:
        with warnings.catch_warnings():  # "1if h else y" warns: refuse it, print nothing
            warnings.simplefilter("error")
            tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise FormulaError(f"formula is not valid syntax: {error.msg} in {text[:60]!r}") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise FormulaError(f"formula cannot be parsed: {type(error).__name__}") from None
    names: dict[str, sp.Symbol] = {"y": y, "h": h}
    if parameters:
        names.update(parameters)
    expression = guarded(lambda: _build(tree.body, names, source), seconds=MAX_SECONDS,
                         undecided_on=())
    if expression is None:
        raise FormulaError(f"formula {text[:60]!r} takes longer than {MAX_SECONDS:g} s to build")
    if expression.has(sp.zoo, sp.nan) or expression.has(sp.oo, -sp.oo):
        raise FormulaError(f"formula {text[:60]!r} is undefined (division by zero or infinity)")
    if expression.has(sp.I):
        raise FormulaError(f"formula {text[:60]!r} has a complex constant; a loss is real")
    return expression
