"""Sympy → torch code generation for per-class loss terms ``ℓ(y, h)``, in log space.

**The rewrite** (derived at generation time, for any formula; docs/conventions.md §1):
the torch side never forms ``h = softmax(f)`` and takes its logarithm; it gets
``L = log h = log_softmax(f)``, exact for every logit gap. So ``ℓ`` is rewritten
with ``h = exp(L)`` for a real symbol ``L`` (:func:`log_space`): sympy's own
rules turn ``log(h)`` into ``L``, ``log(c·h)`` into ``log(c) + L``, ``1/h`` into
``exp(−L)``, ``√h`` into ``exp(L/2)``. Where ``1 − h`` is the argument of a log,
or the base of a root or a denominator — the places where its *relative*
precision matters and ``1 − exp(L)`` loses it as ``h → 1`` — it becomes
``exp(M)`` with ``M = log(1 − h)``, which the caller computes exactly from the
logits (:func:`symloss.harness.losses.log_complement`). What is left is
printed with sympy's ``expm1``/``log1p`` rewrites (``1 − exp(x)`` →
``−expm1(x)``, ``log(1 + x)`` → ``log1p(x)``). Nothing is clamped.

**Four functions per formula**, in one generated source:

* ``term(y, log_h, log_rest, parameters)`` — ``ℓ`` for any label values
  (probability targets, smoothed labels). A label factor ``y`` multiplying an
  exponential has the exponential's argument zeroed where ``y = 0``, so
  ``0·exp(−L)`` is 0 for a non-target class however small its ``h`` (with
  ``exp(−L)`` alone it overflows to ``0·inf = nan``);
* ``off_target_term`` and ``on_target_term`` ``(log_h, log_rest, parameters)`` —
  ``ℓ(0, ·)`` and ``ℓ(1, ·)``, for one-hot class targets: the symbolic ``y = 0``
  removes those products outright, and cross-entropy's non-target term is
  the constant 0 (no work at all). Used when ``ℓ`` is not a polynomial in
  ``(y, h)`` (:attr:`GeneratedTerm.by_target`); a polynomial has no ``0·∞`` and
  is cheaper evaluated once with one-hot ``y``;
* ``target_difference`` — ``ℓ(1, ·) − ℓ(0, ·)``, simplified: a sample's loss is
  ``Σ_k ℓ(0, h_k)`` plus it at the target where that adds without cancelling
  (:attr:`GeneratedTerm.adds_at_target`; Baikal: ``Σ_k −L_k + exp(−L_T)``).

``parameters`` unpacks a family's parameters (TaylorGLO's λ, a GP tree's
coefficients): a 1-D tensor (what :class:`symloss.harness.losses.SymbolicLoss`
passes under ``torch.compile``, so a new candidate does not recompile), a tuple
of floats (eager mode, where Python scalars are the faster operands) or of
per-candidate tensors (the population trainer) — a new candidate of the same
family reuses the code. :func:`generate_with_derivative` adds ``∂ℓ/∂L`` beside
each value, what the population trainer back-propagates without autograd.

The printer is sympy's :class:`~sympy.printing.pytorch.TorchPrinter`, with the
parts that are wrong for elementwise losses replaced:

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

One module, over the ~400-line aim: the log-space rewrite, the printer and the
generated source are one translation. The printer's choices (the label guard, the
``expm1`` forms, the reserved names) assume the rewrite's output, and the cache keys
the source they make together; split, each part would restate the others' conventions.

>>> from symloss.catalog import loss
>>> print(generate(loss("baikal").expr, ()).source)
def term(y, log_h, log_rest, parameters):
    return y*torch.exp(torch.where(y == 0, 0.0, -log_h)) - log_h
<BLANKLINE>
def off_target_term(log_h, log_rest, parameters):
    return -log_h
<BLANKLINE>
def on_target_term(log_h, log_rest, parameters):
    return torch.exp(-log_h) - log_h
<BLANKLINE>
def target_difference(log_h, log_rest, parameters):
    return torch.exp(-log_h)
<BLANKLINE>
>>> import torch
>>> on_target = generate(loss("baikal").expr, ()).on_target_term
>>> round(float(on_target(torch.tensor(-1000.0), None, ())), 1)  # h = e^-1000: 1/h overflows
inf
>>> round(float(on_target(torch.log(torch.tensor(0.5)), None, ())), 6)  # 1/0.5 + log 2
2.693147
"""

from __future__ import annotations

import functools
import keyword
import linecache
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
import torch
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.precedence import precedence
from sympy.printing.pytorch import TorchPrinter

from symloss.symbols import h, y

#: Integer exponents up to this are written as repeated products (measured faster for 2 only).
PRODUCT_MAX_EXPONENT = 2

#: ``L = log h`` and ``M = log(1 − h)``: the generated functions' ``log_h`` and ``log_rest``.
LOG_H = sp.Dummy("log_h", real=True, nonpositive=True)
LOG_REST = sp.Dummy("log_rest", real=True, nonpositive=True)

#: The generated functions: (name, arguments, label value substituted for ``y``).
FUNCTIONS = (("term", "y, log_h, log_rest, parameters", None),
             ("off_target_term", "log_h, log_rest, parameters", sp.S.Zero),
             ("on_target_term", "log_h, log_rest, parameters", sp.S.One),
             ("target_difference", "log_h, log_rest, parameters", "difference"))

#: Python names the generated source defines or uses; a parameter never takes one.
RESERVED = frozenset({"y", "log_h", "log_rest", "parameters", "torch",
                      *(name for name, _, _ in FUNCTIONS)})


class _LabelGuard(sp.Function):
    """``E`` where the label ``y`` is non-zero, 0 where it is zero: the argument of an
    exponential that a label factor multiplies (printed as ``torch.where``)."""


class LossPrinter(TorchPrinter):
    """TorchPrinter for elementwise loss terms; see the module docstring for what it changes.

    ``names`` maps each free symbol to the Python name it has in the generated
    function; ``scalars`` are the symbols that hold one number per candidate (a
    family's parameters); ``prelude`` collects the temporaries a power of a compound
    base needs.
    """

    def __init__(self, names: dict[sp.Symbol, str],
                 scalars: frozenset[sp.Symbol] = frozenset()) -> None:
        super().__init__()
        self.mapping = {**self.mapping, expm1: "torch.expm1", log1p: "torch.log1p"}
        self._names = dict(names)
        self._scalars = scalars
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

    _print_Dummy = _print_Symbol

    def _print_Function(self, expr) -> str:
        if type(expr) not in self.mapping:
            raise NotImplementedError(
                f"no torch translation for {type(expr).__name__} in {expr}; "
                "extend symloss.harness.codegen.LossPrinter"
            )
        return super()._print_Function(expr)

    _print_Expr = _print_Function
    _print_Application = _print_Function

    def _print__LabelGuard(self, expr) -> str:
        return f"torch.where({self._names[y]} == 0, 0.0, {self._print(expr.args[0])})"

    def _print_Add(self, expr, order=None) -> str:
        """Like sympy's, but a positive term leads when there is one (``y - a``, not ``-a + y``:
        one tensor operation fewer), and a negative term with a number or a parameter
        factor is added with that factor negated (``+ x*(-2.0)``, ``+ x*(-lambda_2)``: a
        subtraction costs a tensor negation in the backward pass, a scalar's is free)."""
        parts = []
        for term in self._as_ordered_terms(expr, order=order):
            negated = self._negated_scalar(term)
            if negated is not None:
                parts.append(("+", negated))
                continue
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

    def _print_Mul(self, expr: sp.Mul) -> str:
        """Scalar factors (numbers, parameters) multiplied together first: ``λ0*λ5*t``
        is one tensor operation, ``t*λ0*λ5`` two."""
        scalar = [f for f in expr.args if f.free_symbols <= self._scalars]
        tensor = [f for f in expr.args if not f.free_symbols <= self._scalars]
        if len(scalar) < 2 or not tensor:
            return super()._print_Mul(expr)
        scalars, tensors = sp.Mul(*scalar), sp.Mul(*tensor)
        return (f"{self.parenthesize(scalars, precedence(expr))}*"
                f"{self.parenthesize(tensors, precedence(expr))}")

    def _negated_scalar(self, term: sp.Expr) -> str | None:
        """``term`` (a negative product with a tensor factor) as its scalar factors, one of
        them negated, times its tensor factors (``(-lambda_4)*_t0``), or ``None``."""
        coefficient, rest = term.as_coeff_Mul()
        if not coefficient.is_negative or rest.free_symbols <= self._scalars:
            return None  # a subtraction of scalars costs no tensor negation
        factors = sp.Mul.make_args(rest)
        scalar = [f for f in factors if f.free_symbols <= self._scalars]
        tensor = sp.Mul(*(f for f in factors if not f.free_symbols <= self._scalars))
        if coefficient != -1:
            negated = f"({self._print(coefficient)})"
        else:
            symbol = next((f for f in scalar if f.is_Symbol), None)
            if symbol is None:
                return None
            negated, scalar = f"(-{self._print(symbol)})", [f for f in scalar if f != symbol]
        mul = precedence(sp.Mul(2, sp.Symbol("x"), evaluate=False))
        return "*".join([negated, *(self.parenthesize(f, mul) for f in scalar),
                         self.parenthesize(tensor, mul)])

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
        # heaviside wants its value at 0 as a tensor; a 0-d one of log_h's dtype broadcasts
        return (f"torch.heaviside({self._print(expr.args[0])}, "
                f"{self._names[LOG_H]}.new_tensor({self._print_constant(at_zero)}))")


def log_space(expr: sp.Expr) -> sp.Expr:
    """``ℓ`` in ``L = log h`` (:data:`LOG_H`) and, where it needs it, ``M = log(1 − h)``
    (:data:`LOG_REST`); see the module docstring.

    >>> from symloss.catalog import loss
    >>> log_space(loss("baikal_cma").expr)  # log(1.5352 h) = log(1.5352) + L
    -2.69052777*_log_h + 4.95334423628582*y*exp(-_log_h) - 1.15332342500308
    >>> log_space(-sp.log(1 - h) + sp.sqrt(1 - h))  # 1 − h as exp(M): exact as h → 1
    -_log_rest + exp(_log_rest/2)
    """
    rewritten = sp.expand_log(sp.sympify(expr).xreplace({h: sp.exp(LOG_H)}))
    complemented = _complement(rewritten)
    return rewritten if complemented == rewritten else sp.expand_log(complemented)


def _complement(expr: sp.Expr) -> sp.Expr:
    """``c·(1 − exp(L))`` → ``c·exp(M)`` inside logs and non-polynomial powers, bottom up."""
    if expr.is_Atom:
        return expr
    args = [_complement(argument) for argument in expr.args]
    if isinstance(expr, sp.log):
        return sp.log(_complement_factors(args[0]))
    if expr.is_Pow and not (args[1].is_Integer and args[1] > 0):
        return sp.Pow(_complement_factors(args[0]), args[1])
    return expr.func(*args) if args != list(expr.args) else expr


def _complement_factors(argument: sp.Expr) -> sp.Expr:
    """``argument`` factored where that shows a ``1 − h`` (made ``exp(M)``) or an
    ``exp(x) − 1`` (printed ``expm1``): ``h − h²`` is ``h·(1 − h)``."""
    if not argument.has(LOG_H):
        return argument
    factored = _factor_exponentials(argument) if argument.is_Add else argument
    factors = [_one_complement(f) for f in sp.Mul.make_args(factored)]
    changed = any(new is not old for new, old in zip(factors, sp.Mul.make_args(factored),
                                                      strict=True))
    if not changed and not any(_expm1_form(f.base if f.is_Pow else f) is not None
                               for f in factors):
        return argument
    return sp.Mul(*factors)


def _factor_exponentials(argument: sp.Expr) -> sp.Expr:
    """``sp.factor`` with ``exp(k·L)`` (k rational) as powers of one ``u = exp(L/d)``, which
    sympy's factor does not relate: ``2h − h² − h^1.5 = −h·(√h − 1)·(√h + 2)``."""
    exponentials = [e for e in argument.atoms(sp.exp) if e.args[0].has(LOG_H)]
    rates = [sp.simplify(e.args[0] / LOG_H) for e in exponentials]
    if not all(rate.is_Rational for rate in rates):
        return sp.factor(argument)
    common = sp.ilcm(*(rate.q for rate in rates)) if len(rates) > 1 else (
        rates[0].q if rates else 1)
    power = sp.Dummy("u", positive=True)
    polynomial = argument.xreplace({e: power ** (rate * common)
                                    for e, rate in zip(exponentials, rates, strict=True)})
    return sp.factor(polynomial).xreplace({power: sp.exp(LOG_H / common)})


def _one_complement(factor: sp.Expr) -> sp.Expr:
    if factor.is_Pow and factor.exp.is_Integer:
        return _one_complement(factor.base) ** factor.exp
    if not factor.is_Add:
        return factor
    coefficients = factor.as_coefficients_dict()
    exponential = sp.exp(LOG_H)
    if set(coefficients) == {sp.S.One, exponential} and coefficients[sp.S.One] != 0 \
            and coefficients[exponential] == -coefficients[sp.S.One]:
        return coefficients[sp.S.One] * sp.exp(LOG_REST)
    return factor


def stable_forms(expr: sp.Expr) -> sp.Expr:
    """``c − c·exp(x)`` (among an Add's terms) → ``−c·expm1(x)`` and ``log(1 + x)`` →
    ``log1p(x)``: the forms that keep their relative precision as ``x → 0``.

    >>> x = sp.Symbol("x", real=True)
    >>> stable_forms(sp.log(1 + x**2) + 2 - 2 * sp.exp(x) - x)
    -x - 2*expm1(x) + log1p(x**2)
    """
    def log_one_plus(node: sp.Expr) -> sp.Expr:
        constant, rest = node.args[0].as_coeff_Add()
        if constant == 1:
            return log1p(rest)
        shifted = _expm1_form(sp.Add(constant - 1, rest)) if constant != 0 else None
        return node if shifted is None else log1p(shifted)  # log(2 − e^x) = log1p(−expm1 x)

    rewritten = expr.replace(lambda node: node.is_Add,
                             lambda node: _expm1_form(node) or node)
    return rewritten.replace(lambda node: isinstance(node, sp.log), log_one_plus)


def _expm1_form(node: sp.Expr) -> sp.Expr | None:
    """``c − c·exp(x) + rest`` as ``−c·expm1(x) + rest``, or ``None``."""
    if not node.is_Add:
        return None
    constant, rest = node.as_coeff_Add()
    for term in sp.Add.make_args(rest) if constant != 0 else ():
        coefficient, factor = term.as_coeff_Mul()
        if isinstance(factor, sp.exp) and coefficient == -constant:
            return -constant * expm1(factor.args[0]) + (rest - term)
    return None


def _guard_labels(expr: sp.Expr) -> sp.Expr:
    """In each product with a factor ``y**k`` (k > 0), the exponentials' arguments are
    ``_LabelGuard``-ed: 0 where ``y`` is (so the product is an exact 0, never ``0·inf``)."""
    def guarded(product: sp.Expr) -> sp.Expr:
        return product.func(*(sp.exp(_LabelGuard(f.args[0])) if isinstance(f, sp.exp) else f
                              for f in product.args))

    def is_labelled_product(node: sp.Basic) -> bool:
        return node.is_Mul and any(isinstance(f, sp.exp) for f in node.args) and any(
            f == y or (f.is_Pow and f.base == y and f.exp.is_positive) for f in node.args)

    return expr.replace(is_labelled_product, guarded)


@dataclass(frozen=True, eq=False)
class GeneratedTerm:
    """The compiled functions of one loss term (see the module docstring) and their ``source``.

    ``uses_complement``: the functions read ``log_rest`` (``M = log(1 − h)``);
    ``by_target``: class-index targets go through ``off_target_term``/``on_target_term``;
    ``adds_at_target``: a sample's loss may be summed as ``Σ_k ℓ(0, h_k)`` plus
    ``target_difference`` ``ℓ(1, h_T) − ℓ(0, h_T)`` at the target, with no cancellation
    (Baikal: ``Σ_k −L_k + exp(−L_T)``; cross-entropy: ``−L_T`` alone);
    ``exact_top``: the functions need ``L`` of the largest class to relative precision
    (:func:`_smooth_in_log_h`), which :func:`symloss.harness.losses.exact_top` gives;
    ``with_derivative``: each function returns ``(ℓ, ∂ℓ/∂L)``. A pickle or a deep copy
    holds the expression, and regenerates the functions (from the cache) when loaded.
    """

    expr: sp.Expr
    parameters: tuple[sp.Symbol, ...]
    with_derivative: bool
    source: str
    term: Callable
    off_target_term: Callable
    on_target_term: Callable
    target_difference: Callable
    uses_complement: bool
    by_target: bool
    adds_at_target: bool
    exact_top: bool

    def __reduce__(self):
        return (_regenerate, (self.expr, self.parameters, self.with_derivative))


def _regenerate(expr: sp.Expr, parameters: tuple[sp.Symbol, ...],
                with_derivative: bool) -> GeneratedTerm:
    return (generate_with_derivative if with_derivative else generate)(expr, parameters)


def _variants(expr: sp.Expr, parameters: tuple[sp.Symbol, ...],
              with_derivative: bool) -> list[tuple[sp.Expr, ...]]:
    """Per generated function, its outputs in log space: ``(ℓ,)`` or ``(ℓ, ∂ℓ/∂L)``."""
    stray = expr.free_symbols - {y, h, *parameters}
    if stray:
        raise ValueError(f"loss term has symbols {sorted(map(str, stray))} that are not "
                         "y, h or its parameters")
    values = {label: log_space(expr if label is None else expr.xreplace({y: label}))
              for _, _, label in FUNCTIONS if label != "difference"}
    values["difference"] = values[sp.S.One] - values[sp.S.Zero]  # like terms cancel here
    variants = []
    for _, _, label in FUNCTIONS:
        outputs = [values[label]]
        if with_derivative:
            if outputs[0].has(LOG_REST) or not _smooth_in_log_h(outputs[0]):
                raise NotImplementedError(
                    "the hand-derived gradient of a term with log(1 - h), or with log h where "
                    "its relative precision matters, loses precision as h -> 1; autograd "
                    "differentiates it (symloss.harness.losses.log_complement, exact_top)")
            outputs.append(sp.diff(outputs[0], LOG_H))
        outputs = [stable_forms(o) for o in outputs]
        variants.append(tuple(_guard_labels(o) if label is None else o for o in outputs))
    return variants


def _smooth_in_log_h(expr: sp.Expr) -> bool:
    """Whether ``expr`` needs ``L = log h`` only to absolute precision: no log, root,
    denominator or other non-Lipschitz function of ``L`` whose argument may vanish where
    ``h = 1`` (``L = 0``, where ``log_softmax`` rounds the largest class's ``L`` to 0).
    Otherwise — ``log(−L)``, ``1/L``, ``√(1 − √h)`` — the largest class's ``L`` is
    recomputed exactly (:func:`symloss.harness.losses.exact_top`).

    >>> _smooth_in_log_h(log_space(sp.log(h) + y / h + sp.Abs(h - y)))
    True
    >>> _smooth_in_log_h(log_space(sp.log(-sp.log(h))))
    False
    """
    for node in sp.preorder_traversal(expr):
        if node.is_Atom or not node.has(LOG_H) or isinstance(node, _LIPSCHITZ):
            continue
        if node.is_Pow:
            if node.exp.is_Integer and node.exp > 0:
                continue
            argument = node.base
        elif isinstance(node, log1p):
            argument = 1 + node.args[0]
        elif isinstance(node, sp.log) or node.is_Function:
            argument = node.args[0]
        else:
            continue
        at_one = argument.xreplace({LOG_H: sp.S.Zero})
        if argument.has(LOG_H) and (at_one.has(y) or at_one.is_zero is not False):
            return False
    return True


#: Functions whose value keeps the absolute precision of their argument.
_LIPSCHITZ = (sp.exp, expm1, sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside, _LabelGuard)


def _adds_at_target(expr: sp.Expr) -> bool:
    """Whether ``Σ_k ℓ(0, h_k) + [ℓ(1, ·) − ℓ(0, ·)](h_T)`` adds no term that cancels one of
    the sum's: the difference, simplified, keeps no term of ``−ℓ(0, ·)``."""
    off = log_space(expr.xreplace({y: sp.S.Zero}))
    difference = log_space(expr.xreplace({y: sp.S.One})) - off
    return not set(sp.Add.make_args(difference)) & set(sp.Add.make_args(-off))


def _parameter_names(parameters: tuple[sp.Symbol, ...]) -> list[str]:
    """Each parameter's Python name: its own when that is a safe identifier, else ``p{i}``."""
    names = [str(p) if _safe_identifier(str(p)) else f"p{i}" for i, p in enumerate(parameters)]
    if len(set(names)) != len(names):
        names = [f"p{i}" for i in range(len(parameters))]
    return names


def _safe_identifier(name: str) -> bool:
    return (name.isidentifier() and not keyword.iskeyword(name)
            and not keyword.issoftkeyword(name) and name not in RESERVED
            and not name.startswith("_"))


def _function_source(name: str, arguments: str, outputs: tuple[sp.Expr, ...],
                     names: dict[sp.Symbol, str], parameters: tuple[sp.Symbol, ...]) -> str:
    temporaries = sp.numbered_symbols("_t")
    assignments, reduced = sp.cse(list(outputs), symbols=temporaries)
    scalars = set(parameters)
    for symbol, value in assignments:  # temporaries of parameters alone are scalars too
        if value.free_symbols <= scalars:
            scalars.add(symbol)
    printer = LossPrinter({**names, **{symbol: str(symbol) for symbol, _ in assignments}},
                          frozenset(scalars))
    body: list[str] = []
    used = set().union(*(o.free_symbols for o in outputs))
    unpacked = [names[p] if p in used else "_" for p in parameters]
    if any(n != "_" for n in unpacked):
        body.append(", ".join(unpacked) + ("," if len(unpacked) == 1 else "") + " = parameters")
    for symbol, value in assignments:
        text = printer.doprint(value)
        body.extend(printer.prelude)
        printer.prelude.clear()
        body.append(f"{symbol} = {text}")
    results = [printer.doprint(item) for item in reduced]
    body.extend(printer.prelude)
    body.append("return " + ", ".join(results))
    return f"def {name}({arguments}):\n" + "".join(f"    {line}\n" for line in body)


def term_source(expr: sp.Expr, parameters: tuple[sp.Symbol, ...] = (), *,
                with_derivative: bool = False) -> str:
    """The Python source of the three functions of ``ℓ = expr`` (the module docstring).

    >>> from symloss.catalog import taylorglo
    >>> print(term_source(taylorglo(1).expr, taylorglo(1).parameters).split("\\n\\n")[0])
    def term(y, log_h, log_rest, parameters):
        _, lambda_1, lambda_2 = parameters
        return (-lambda_2)*(torch.exp(log_h) - lambda_1)
    """
    expr, parameters = sp.sympify(expr), tuple(parameters)
    return _source(_variants(expr, parameters, with_derivative), parameters)[0]


def _source(variants: list[tuple[sp.Expr, ...]],
            parameters: tuple[sp.Symbol, ...]) -> tuple[str, bool]:
    """The generated source, and whether ``ℓ(0, ·)``, ``ℓ(1, ·)`` print (are finite reals:
    ``log(y)`` at ``y = 0`` is not, and such a term is evaluated with its labels)."""
    names: dict[sp.Symbol, str] = dict(zip(parameters, _parameter_names(parameters),
                                           strict=True))
    names.update({y: "y", LOG_H: "log_h", LOG_REST: "log_rest"})
    texts, specialized = [], True
    for (name, arguments, label), outputs in zip(FUNCTIONS, variants, strict=True):
        try:
            if label is not None and any(o.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I)
                                         for o in outputs):
                raise ValueError(f"{name} is not a finite real number")
            texts.append(_function_source(name, arguments, outputs, names, parameters))
        except ValueError:
            if label is None:
                raise
            specialized = False
            texts.append(f"def {name}({arguments}):\n    raise NotImplementedError("
                         f"{'l(0, h) or l(1, h) is not a finite real number: use term'!r})\n")
    return "\n".join(texts), specialized


@functools.lru_cache(maxsize=512)
def generate_with_derivative(expr: sp.Expr,
                             parameters: tuple[sp.Symbol, ...] = ()) -> GeneratedTerm:
    """:func:`generate` for ``(ℓ, ∂ℓ/∂L)`` in each function, shared subexpressions once.

    ``∂ℓ/∂L = h·∂ℓ/∂h`` is taken in log space, so it stays exact where ``h`` underflows;
    the softmax Jacobian then gives ``∂ℓ/∂f_j = g_j − h_j Σ_k g_k``. Raises
    :class:`NotImplementedError` when a derivative has no torch translation (say a
    ``DiracDelta``) or the term needs ``M = log(1 − h)`` (its hand-derived gradient
    would lose precision as ``h → 1``); callers fall back to autograd. Cached like
    :func:`generate`.

    >>> from symloss.catalog import loss
    >>> print(generate_with_derivative(loss("baikal").expr).source.split("\\n\\n")[2])
    def on_target_term(log_h, log_rest, parameters):
        _t0 = torch.exp(-log_h)
        return _t0 - log_h, -_t0 - 1.0
    <BLANKLINE>
    """
    return _compile(sp.sympify(expr), tuple(parameters), True)


@functools.lru_cache(maxsize=512)
def generate(expr: sp.Expr, parameters: tuple[sp.Symbol, ...] = ()) -> GeneratedTerm:
    """Print and compile ``ℓ = expr`` once per (structure, parameter symbols).

    Sympy expressions compare and hash structurally, so the cache key is the
    expression tree itself; ``generate.cache_info().misses`` counts code
    generations. The source is registered with :mod:`linecache` so tracebacks
    through the generated functions show its lines.
    """
    return _compile(sp.sympify(expr), tuple(parameters), False)


def _compile(expr: sp.Expr, parameters: tuple[sp.Symbol, ...],
             with_derivative: bool) -> GeneratedTerm:
    variants = _variants(expr, parameters, with_derivative)
    source, specialized = _source(variants, parameters)
    filename = f"<symloss-term-{generate.cache_info().misses}-{int(with_derivative)}>"
    namespace: dict[str, object] = {"torch": torch}
    # Our printer's output for a sympy tree we built, not user text (STYLE: no eval of strings).
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    functions = [namespace[name] for name, _, _ in FUNCTIONS]
    used = variants if specialized else variants[:1]
    return GeneratedTerm(expr, parameters, with_derivative, source, *functions,
                         uses_complement=any(o.has(LOG_REST) for v in used for o in v),
                         by_target=specialized and not expr.is_polynomial(h, y),
                         adds_at_target=specialized and _adds_at_target(expr),
                         exact_top=not all(_smooth_in_log_h(o) for v in used for o in v))
