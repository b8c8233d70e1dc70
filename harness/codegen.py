"""Sympy → torch code generation for per-class loss terms ``ℓ(y, h)``.

A loss term is printed once per expression *structure* into the source of a
Python function ``term(y, h, parameters)`` that works elementwise on tensors;
a family's parameters (TaylorGLO's λ, a GP tree's coefficients) are unpacked
from ``parameters`` — a 1-D tensor (what :class:`symloss.harness.losses.SymbolicLoss`
passes under ``torch.compile``, so a new candidate does not recompile) or a
tuple of floats (what it passes in eager mode, where Python scalars are the
faster operands) — so a new candidate of the same family reuses the code.

The printer is sympy's :class:`~sympy.printing.pytorch.TorchPrinter`, with the
parts that are wrong for elementwise losses replaced (docs/conventions.md §1 conventions):

* every constant subexpression (``log(2)``, ``sqrt(2)``, ``pi``, ``1/3``) is
  evaluated to a Python float — sympy prints ``torch.log(2)``, which fails on
  an ``int``;
* ``Max``/``Min`` fold with ``torch.maximum``/``torch.minimum`` and numbers
  become ``clamp_min``/``clamp_max`` — sympy prints ``torch.max(x, 0.1)``,
  which is a reduction, not an elementwise maximum;
* integer powers: squares are written as products, ``x**-1`` as
  ``torch.reciprocal``, ``x**±1/2`` as ``torch.sqrt``/``torch.rsqrt``; other
  powers stay ``torch.pow`` (measured: a product is faster only for squares,
  see ``benchmarks/bench_torch_loss.py``);
* common subexpressions are named once (``sympy.cse``);
* a function with no torch translation is refused at generation time.

>>> from symloss.catalog import loss
>>> print(generate(loss("baikal").expr, ()).source)
def term(y, h, parameters):
    return y/h - torch.log(h)
<BLANKLINE>
>>> import torch
>>> term = generate(loss("baikal").expr, ()).function
>>> round(float(term(torch.tensor(1.0), torch.tensor(0.5), None)), 6)  # 1/0.5 + log 2
2.693147
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
import torch
from sympy.printing.precedence import precedence
from sympy.printing.pytorch import TorchPrinter

from symloss.symbols import h, y

#: Integer exponents up to this are written as repeated products (measured faster for 2 only).
PRODUCT_MAX_EXPONENT = 2

#: The generated function's name and arguments.
FUNCTION_NAME = "term"


class LossPrinter(TorchPrinter):
    """TorchPrinter for elementwise loss terms; see the module docstring for what it changes.

    ``names`` maps each free symbol to the Python name it has in the generated
    function; ``prelude`` collects the temporaries a power of a compound base needs.
    """

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__()
        self._names = dict(names)
        self.prelude: list[str] = []
        self._temporaries = 0

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Basic) and expr.is_number:
            return self._print_constant(expr)
        return super()._print(expr, **kwargs)

    def _print_constant(self, expr: sp.Basic) -> str:
        value = complex(sp.N(expr, 17))
        if value.imag != 0 or value.real != value.real or abs(value.real) == float("inf"):
            raise ValueError(f"loss has a constant that is not a finite real number: {expr}")
        return repr(value.real)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr in self._names:
            return self._names[expr]
        raise ValueError(f"unexpected symbol {expr} in a loss term; allowed: y, h, parameters")

    def _print_Function(self, expr) -> str:
        if type(expr) not in self.mapping:
            raise NotImplementedError(
                f"no torch translation for {type(expr).__name__} in {expr}; "
                "extend symloss.harness.codegen.LossPrinter"
            )
        return super()._print_Function(expr)

    _print_Expr = _print_Function
    _print_Application = _print_Function

    def _print_Add(self, expr, order=None) -> str:
        """Like sympy's, but a positive term leads when there is one (``y - a``, not ``-a + y``:
        one tensor operation fewer)."""
        parts = []
        for term in self._as_ordered_terms(expr, order=order):
            text = self._print(term)
            sign = "-" if text.startswith("-") and not term.is_Add else "+"
            text = text[1:] if sign == "-" else text
            if precedence(term) < precedence(expr) or term.is_Add:
                text = f"({text})"
            parts.append((sign, text))
        parts.sort(key=lambda part: part[0] == "-")  # stable: positives first
        first_sign, first = parts[0]
        return ("-" if first_sign == "-" else "") + first + "".join(
            f" {sign} {text}" for sign, text in parts[1:])

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exponent = expr.args
        if exponent == sp.S.Half:
            return f"torch.sqrt({self._print(base)})"
        if exponent == -sp.S.Half:
            return f"torch.rsqrt({self._print(base)})"
        if exponent == -1:
            return f"torch.reciprocal({self._print(base)})"
        if exponent.is_Integer and 2 <= int(exponent) <= PRODUCT_MAX_EXPONENT:
            factor = self._atom(base)
            return "(" + "*".join([factor] * int(exponent)) + ")"
        exponent_text = self._print(exponent)
        return f"torch.pow({self._print(base)}, {exponent_text})"

    def _atom(self, base: sp.Expr) -> str:
        """A name for ``base``: itself if it is a symbol, else a new temporary."""
        if base.is_Symbol:
            return self._print(base)
        name = f"_p{self._temporaries}"
        self._temporaries += 1
        self.prelude.append(f"{name} = {self._print(base)}")
        return name

    def _minmax(self, expr, fold: str, clamp: str, pick: Callable) -> str:
        numbers = [a for a in expr.args if a.is_number]
        others = [self._print(a) for a in expr.args if not a.is_number]
        text = others[0]
        for other in others[1:]:
            text = f"{fold}({text}, {other})"
        if numbers:
            bound = pick(float(sp.N(a)) for a in numbers)
            text = f"torch.{clamp}({text}, {bound!r})"
        return text

    def _print_Max(self, expr) -> str:
        return self._minmax(expr, "torch.maximum", "clamp_min", max)

    def _print_Min(self, expr) -> str:
        return self._minmax(expr, "torch.minimum", "clamp_max", min)

    def _print_Heaviside(self, expr) -> str:
        """The step ``Max``/``Min`` differentiate to; ``H(0)`` as sympy's (1/2 unless given),
        which is also torch's gradient of ``maximum``/``minimum`` at a tie."""
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"torch.heaviside({self._print(expr.args[0])}, {self._constant_tensor(at_zero)})"

    def _constant_tensor(self, value: sp.Basic) -> str:
        # heaviside needs its value at 0 as a tensor; a 0-d one broadcasts and keeps the dtype
        return f"h.new_tensor({self._print_constant(value)})"


@dataclass(frozen=True)
class GeneratedTerm:
    """A compiled loss term: ``function(y, h, parameters)`` and the ``source`` it came from.

    ``expr`` is a tuple when the function returns several outputs
    (:func:`generate_with_derivative`)."""

    expr: sp.Expr | tuple[sp.Expr, ...]
    parameters: tuple[sp.Symbol, ...]
    source: str
    function: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def term_source(expr: sp.Expr | tuple[sp.Expr, ...],
                parameters: tuple[sp.Symbol, ...] = ()) -> str:
    """The Python source of ``term(y, h, parameters)`` for ``ℓ = expr``.

    A tuple of expressions gives a function that returns a tuple, their common
    subexpressions computed once (:func:`generate_with_derivative`).

    >>> from symloss.catalog import taylorglo
    >>> print(term_source(taylorglo(2).expr, taylorglo(2).parameters))
    def term(y, h, parameters):
        lambda_0, lambda_1, lambda_2, lambda_3, lambda_4 = parameters
        _t0 = h - lambda_1
        return -(_t0*_t0)*lambda_3 - _t0*lambda_2 - _t0*lambda_4*(y - lambda_0)
    <BLANKLINE>
    """
    outputs = tuple(map(sp.sympify, expr)) if isinstance(expr, tuple) else (sp.sympify(expr),)
    stray = set().union(*(o.free_symbols for o in outputs)) - {y, h, *parameters}
    if stray:
        raise ValueError(f"loss term has symbols {sorted(map(str, stray))} that are not "
                         "y, h or its parameters")
    names: dict[sp.Symbol, str] = {y: "y", h: "h"}
    identifiers = [str(p) if str(p).isidentifier() and str(p) not in _RESERVED else f"p{i}"
                   for i, p in enumerate(parameters)]
    if len(set(identifiers)) != len(identifiers):
        identifiers = [f"p{i}" for i in range(len(parameters))]
    names.update(zip(parameters, identifiers, strict=True))
    temporaries = sp.numbered_symbols("_t")
    assignments, reduced = sp.cse(list(outputs), symbols=temporaries)
    for symbol, _ in assignments:
        names[symbol] = str(symbol)
    printer = LossPrinter(names)
    body: list[str] = []
    if parameters:
        unpacked = ", ".join(identifiers) + ("," if len(identifiers) == 1 else "")
        body.append(f"{unpacked} = parameters")
    for symbol, value in assignments:
        text = printer.doprint(value)
        body.extend(printer.prelude)
        printer.prelude.clear()
        body.append(f"{symbol} = {text}")
    results = [printer.doprint(item) for item in reduced]
    body.extend(printer.prelude)
    body.append("return " + ", ".join(results))
    return f"def {FUNCTION_NAME}(y, h, parameters):\n" + "".join(f"    {line}\n" for line in body)


_RESERVED = frozenset({"y", "h", "parameters", "torch", FUNCTION_NAME})


def derivative(expr: sp.Expr) -> sp.Expr:
    """``∂ℓ/∂h`` of a loss term, what the batched trainer back-propagates instead of autograd.

    >>> from symloss.catalog import loss
    >>> derivative(loss("baikal").expr)
    -1/h - y/h**2
    """
    return sp.diff(sp.sympify(expr), h)


@functools.lru_cache(maxsize=512)
def generate_with_derivative(expr: sp.Expr,
                             parameters: tuple[sp.Symbol, ...] = ()) -> GeneratedTerm:
    """:func:`generate` for ``(ℓ, ∂ℓ/∂h)`` in one function, shared subexpressions once.

    Raises :class:`NotImplementedError` when the derivative has no torch
    translation (say a ``DiracDelta``); callers fall back to autograd. Cached like
    :func:`generate`, so the derivative is taken once per expression, not per chunk.

    >>> from symloss.catalog import loss
    >>> print(generate_with_derivative(loss("baikal").expr).source)
    def term(y, h, parameters):
        _t0 = torch.reciprocal(h)
        return _t0*y - torch.log(h), -_t0 - y/(h*h)
    <BLANKLINE>
    """
    return generate((sp.sympify(expr), derivative(expr)), tuple(parameters))


@functools.lru_cache(maxsize=512)
def generate(expr: sp.Expr | tuple[sp.Expr, ...],
             parameters: tuple[sp.Symbol, ...] = ()) -> GeneratedTerm:
    """Print and compile ``ℓ = expr`` once per (structure, parameter symbols).

    Sympy expressions compare and hash structurally, so the cache key is the
    expression tree itself; ``generate.cache_info().misses`` counts code
    generations. The source is registered with :mod:`linecache` so tracebacks
    through the generated function show its lines.
    """
    source = term_source(expr, parameters)
    filename = f"<symloss-term-{generate.cache_info().misses}>"
    namespace: dict[str, object] = {"torch": torch}
    # Our printer's output for a sympy tree we built, not user text (STYLE: no eval of strings).
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    expr = tuple(map(sp.sympify, expr)) if isinstance(expr, tuple) else sp.sympify(expr)
    return GeneratedTerm(expr, tuple(parameters), source, namespace[FUNCTION_NAME])
