"""Loss trees for GLO's genetic programming (docs/conventions.md §3; GLO §III-A).

The genotype is DEAP's :class:`deap.gp.PrimitiveTree` over the operators
``log``, ``square``, ``sqrt``, ``+``, ``−``, ``×``, ``÷`` and the leaves ``y``,
``h`` and integers (``1`` and ``−1`` at birth; the ±1 mutation makes others).
A tree is the GLO paper's ``f``; the loss is ``ℓ = −tree(y, h)``.

The operators here are GLO's own and differ from DEAP's stock ones in two
ways that matter: they draw from an injected :class:`numpy.random.Generator`
(DEAP's use the global ``random``), and they return new trees instead of
mutating their arguments. Trees become sympy by walking them — never
``gp.compile``, which ``eval``-s a string.

One module, over the ~400-line aim: the prefix representation (``PRIMITIVES``,
``_walk``, ``_subtree_end``) is what the conversions, the fast symengine verdicts and
the operators all read and edit; split, they would share private helpers across files.

>>> import numpy as np
>>> tree = from_prefix(["sub", "log", "h", "div", "y", "h"])   # GLO eq. 1: log(h) − y/h
>>> to_sympy(tree)
log(h) - y/h
>>> tree_loss(tree).expression   # Baikal: ℓ = −f
-log(h) + y/h
>>> str(random_tree(np.random.default_rng(0)))
'square(y)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import symengine as se
import sympy as sp
from deap import gp

from symloss.loss import Loss
from symloss.stability import Basin, Stability, basin, numeric_equilibrium, scan
from symloss.symbols import h, y

#: GLO's operators: name → (arity, sympy builder).
OPERATORS: dict[str, tuple[int, object]] = {
    "log": (1, sp.log),
    "square": (1, lambda a: a**2),
    "sqrt": (1, sp.sqrt),
    "add": (2, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b),
    "div": (2, lambda a, b: a / b),
}
#: Node weights of GLO's initial generation: log, y, h ×3; sqrt ×2; the rest ×1.
NODE_WEIGHTS: dict[str, float] = {
    "log": 3, "y": 3, "h": 3, "sqrt": 2,
    "square": 1, "add": 1, "sub": 1, "mul": 1, "div": 1, "1": 1, "-1": 1,
}
LEAVES = ("y", "h", "1", "-1")
MAX_INITIAL_DEPTH = 2
#: Deepest tree the variation operators may produce (keeps algebra and training bounded).
MAX_DEPTH = 8


def _primitive_set() -> gp.PrimitiveSet:
    primitives = gp.PrimitiveSet("GLO", 2)
    primitives.renameArguments(ARG0="y", ARG1="h")
    for name, (arity, _) in OPERATORS.items():
        # DEAP keeps a callable per primitive for gp.compile; we never compile.
        primitives.addPrimitive(_never_called, arity, name=name)
    return primitives


def _never_called(*_):  # pragma: no cover - trees are walked, not compiled
    raise RuntimeError("loss trees are converted by symloss.gp.to_sympy, never compiled")


PRIMITIVES = _primitive_set()
_BY_NAME = {p.name: p for p in PRIMITIVES.primitives[PRIMITIVES.ret]}
_ARGUMENTS = {t.value: t for t in PRIMITIVES.terminals[PRIMITIVES.ret]}  # "y", "h"


def _terminal(name: str) -> gp.Terminal:
    if name in _ARGUMENTS:
        return _ARGUMENTS[name]
    value = int(name)
    return gp.Terminal(value, False, PRIMITIVES.ret)


def _node(name: str):
    return _BY_NAME[name] if name in _BY_NAME else _terminal(name)


def from_prefix(names: Sequence[str | int]) -> gp.PrimitiveTree:
    """A tree from its prefix list of node names (operators, ``y``, ``h``, integers).

    >>> str(from_prefix(["sub", "y", 2]))
    'sub(y, 2)'
    """
    tree = gp.PrimitiveTree([_node(str(name)) for name in names])
    total = sum(1 - getattr(node, "arity", 0) for node in tree)
    if total != 1:
        raise ValueError(f"prefix list {list(names)!r} is not one complete tree")
    if not is_real(tree):
        raise ValueError(f"tree {tree} has a complex or undefined constant "
                         f"({_to_sympy(tuple(to_prefix(tree)))}); a loss is real")
    return tree


def is_real(tree: gp.PrimitiveTree) -> bool:
    """Whether the tree is free of complex or undefined constants (``log(-1)``, ``1/0``).

    >>> is_real(gp.PrimitiveTree([_node("log"), _node("-1")]))
    False
    """
    expression = _to_sympy(tuple(to_prefix(tree)))
    return not expression.has(sp.I, sp.zoo, sp.nan)


def to_prefix(tree: gp.PrimitiveTree) -> list[str]:
    """The prefix list of node names; :func:`from_prefix` inverts it."""
    return [node.name if isinstance(node, gp.Primitive) else _leaf_name(node) for node in tree]


def _leaf_name(node: gp.Terminal) -> str:
    return node.value if node.value in _ARGUMENTS else str(int(node.value))


def to_sympy(tree: gp.PrimitiveTree) -> sp.Expr:
    """Walk the tree into a sympy expression of ``f(y, h)`` (GLO's tree, before ``ℓ = −f``)."""
    return _to_sympy(tuple(to_prefix(tree)))


def _walk(prefix: Sequence[str], builders: dict, leaf):
    """Evaluate a prefix list bottom-up: operators through ``builders``, leaves through ``leaf``.

    One walker serves sympy, symengine and coefficient-symbol conversions.
    """
    stack: list = []
    for name in reversed(prefix):
        if name in OPERATORS:
            arity = OPERATORS[name][0]
            stack.append(builders[name](*[stack.pop() for _ in range(arity)]))
        else:
            stack.append(leaf(name))
    (expression,) = stack
    return expression


_SYMPY_BUILDERS = {name: build for name, (_, build) in OPERATORS.items()}


def _sympy_leaf(name: str) -> sp.Expr:
    return {"y": y, "h": h}.get(name) or sp.Integer(int(name))


@lru_cache(maxsize=65536)
def _to_sympy(prefix: tuple[str, ...]) -> sp.Expr:
    return _walk(prefix, _SYMPY_BUILDERS, _sympy_leaf)


def tree_loss(tree: gp.PrimitiveTree, name: str = "glo") -> Loss:
    """The loss of a tree: ``ℓ = −tree(y, h)`` (GLO maximizes f; docs/conventions.md §1)."""
    return Loss(name, -to_sympy(tree))


def has_inputs(tree: gp.PrimitiveTree) -> bool:
    """GLO gives fitness 0 to trees lacking ``y`` or ``h``."""
    names = set(to_prefix(tree))
    return "y" in names and "h" in names


def canonical_key(tree: gp.PrimitiveTree) -> str:
    """A key equal for trees that train identically.

    The update depends on ℓ only through γ = −∂ℓ/∂h, and adding a constant to γ
    changes no update (docs/conventions.md §2.6). The key is the expanded γ with its numeric
    constant term removed: commuted, regrouped or padded trees (``h + y`` vs
    ``y + h``, ``f + y²``, ``f − h``) share it. Computed with symengine, about 60×
    faster than sympy here (benchmarks/bench_symbolic.py); ``"undefined"`` for
    trees whose algebra breaks (a complex constant, a division by zero).

    >>> first, second = from_prefix(["add", "h", "y"]), from_prefix(["add", "y", "h"])
    >>> canonical_key(first) == canonical_key(second)
    True
    >>> canonical_key(from_prefix(["add", "log", "h", "square", "y"]))
    'h**(-1)'
    """
    coefficient = _fast_gamma(tuple(to_prefix(tree)))
    if coefficient is None:
        return "undefined"
    if isinstance(coefficient, se.Add):
        coefficient = se.Add(*[term for term in coefficient.args if not term.is_Number])
    elif coefficient.is_Number:
        coefficient = se.Integer(0)
    return str(coefficient)


_SE_Y, _SE_H = se.symbols("y h")
_SE_OPERATORS = {
    "log": se.log, "square": lambda a: a**2, "sqrt": se.sqrt, "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
}


@lru_cache(maxsize=65536)
def _fast_gamma(prefix: tuple[str, ...]):
    """γ = ∂f/∂h (ℓ = −f) of a tree, expanded, in symengine; ``None`` if undefined."""
    try:
        tree = _walk(prefix, _SE_OPERATORS, _symengine_leaf)
        return se.expand(se.diff(tree, _SE_H))
    except (RuntimeError, ZeroDivisionError, ValueError):
        return None


def _symengine_leaf(name: str):
    return {"y": _SE_Y, "h": _SE_H}.get(name) or se.Integer(int(name))


def null_epoch_gammas(
    tree: gp.PrimitiveTree, classes: int, smoothing: float = 0.0,
) -> tuple[float, float]:
    """``(γ_T(1/n), γ_N(1/n))`` of the tree's loss, in symengine (NaN where undefined).

    The hot-path twin of :func:`symloss.dynamics.null_epoch` for GP searches.
    """
    coefficient = _fast_gamma(tuple(to_prefix(tree)))
    if coefficient is None:
        return float("nan"), float("nan")
    point = se.Rational(1, classes)
    labels = (1 - smoothing + smoothing / classes, smoothing / classes)
    values = []
    for label in labels:
        try:
            value = complex(coefficient.subs({_SE_Y: label, _SE_H: point}).n())
        except (RuntimeError, ZeroDivisionError, TypeError, ValueError):
            value = complex(float("nan"))
        ok = value.imag == 0 and math.isfinite(value.real)
        values.append(value.real if ok else float("nan"))
    return values[0], values[1]


def null_epoch_delta(tree: gp.PrimitiveTree, classes: int, smoothing: float = 0.0) -> float:
    """``γ_T(1/n) − γ_N(1/n)``: the tree is trainable at the null epoch iff it is ``> 0``.

    The same quantity as :func:`symloss.trainability.trainability_condition`.

    >>> null_epoch_delta(from_prefix(["sub", "log", "h", "div", "y", "h"]), 10)   # Baikal
    100.0
    """
    target, nontarget = null_epoch_gammas(tree, classes, smoothing)
    return target - nontarget


_SE_EPSILON = se.Symbol("epsilon")


def tree_stability(tree: gp.PrimitiveTree, classes: int, smoothing: float = 0.0) -> Stability:
    """Equilibria and the null epoch's basin of the tree's loss, in symengine and numpy.

    The hot-path twin of :func:`symloss.stability.stability`'s numeric method
    (sign changes of Δ(ε) on a grid, bisected), for GP searches: Δ is built from
    the symengine γ and evaluated in float64; ε below
    :data:`symloss.stability.SCAN_MIN` is not examined.

    >>> found = tree_stability(from_prefix(["sub", "log", "h", "div", "y", "h"]), 10)   # Baikal
    >>> found.null_epoch_basin.kind, round(found.null_epoch_basin.target_probability, 4)
    ('equilibrium', 0.3162)
    """
    coefficient = _fast_gamma(tuple(to_prefix(tree)))
    top = (classes - 1) / classes
    try:
        target = coefficient.subs({_SE_Y: 1 - smoothing + smoothing / classes,
                                   _SE_H: 1 - _SE_EPSILON})
        nontarget = coefficient.subs({_SE_Y: smoothing / classes,
                                      _SE_H: _SE_EPSILON / (classes - 1)})
        compiled = se.Lambdify([_SE_EPSILON], target - nontarget, backend="lambda")
    except (AttributeError, RuntimeError, ValueError, ZeroDivisionError, TypeError):
        reason = "Δ(ε) is undefined or has a complex constant"
        return Stability(classes, smoothing, (), Basin("undecided", reason=reason), "undecided",
                         reason)

    def function(eps: np.ndarray) -> np.ndarray:
        eps = np.asarray(eps, dtype=float)
        if eps.size == 0:
            return np.empty(eps.shape)
        with np.errstate(all="ignore"):
            return np.asarray(compiled(eps), dtype=float).reshape(eps.shape)

    found = scan(function, top)
    null_delta = null_epoch_delta(tree, classes, smoothing)
    trainable = None if not math.isfinite(null_delta) else bool(null_delta > 0)
    equilibria = tuple(numeric_equilibrium(zero, classes, function) for zero in found.zeros)
    result = basin(trainable, equilibria, top, found.poles + found.undefined)
    return Stability(classes, smoothing, equilibria, result, "numeric")


def depth(tree: gp.PrimitiveTree) -> int:
    return tree.height


# Variation operators: GLO §III-A, each drawing from an injected Generator.


def _choose(names: Sequence[str], rng: np.random.Generator) -> str:
    weights = np.array([NODE_WEIGHTS[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _grow(max_depth: int, rng: np.random.Generator) -> list[str]:
    names = list(NODE_WEIGHTS) if max_depth > 0 else list(LEAVES)
    name = _choose(names, rng)
    if name in OPERATORS:
        result = [name]
        for _ in range(OPERATORS[name][0]):
            result += _grow(max_depth - 1, rng)
        return result
    return [name]


def random_tree(rng: np.random.Generator, max_depth: int = MAX_INITIAL_DEPTH) -> gp.PrimitiveTree:
    """A random tree of depth ≤ ``max_depth``, nodes weighted as in GLO's initial generation.

    A draw with a complex constant (``log(-1)``) is drawn again.
    """
    while True:
        prefix = _grow(max_depth, rng)
        try:
            return from_prefix(prefix)
        except ValueError:
            continue


def crossover(
    first: gp.PrimitiveTree, second: gp.PrimitiveTree, rng: np.random.Generator,
) -> tuple[gp.PrimitiveTree, gp.PrimitiveTree]:
    """Subtree swap: a random subtree of each parent trades places (new trees returned)."""
    a, b = gp.PrimitiveTree(first), gp.PrimitiveTree(second)
    slice_a = a.searchSubtree(int(rng.integers(len(a))))
    slice_b = b.searchSubtree(int(rng.integers(len(b))))
    a[slice_a], b[slice_b] = second[slice_b], first[slice_a]
    return (a if a.height <= MAX_DEPTH and is_real(a) else gp.PrimitiveTree(first),
            b if b.height <= MAX_DEPTH and is_real(b) else gp.PrimitiveTree(second))


#: GLO's mutation rates, applied bottom-up to every node.
MUTATION_RATES = {"integer": 0.05, "same_arity": 0.05, "to_leaf": 0.025, "to_subtree": 0.025}


def mutate(tree: gp.PrimitiveTree, rng: np.random.Generator,
           rates: dict[str, float] | None = None) -> gp.PrimitiveTree:
    """GLO's four bottom-up mutations; returns a new tree.

    Visiting nodes from the last in prefix order to the first reaches every
    node after all of its descendants, and a change at position ``i`` leaves
    the positions before ``i`` where they were.
    """
    rates = MUTATION_RATES if rates is None else rates
    prefix = to_prefix(tree)
    for index in range(len(prefix) - 1, -1, -1):
        name = prefix[index]
        end = _subtree_end(prefix, index)
        if name not in OPERATORS and name not in ("y", "h") and rng.random() < rates["integer"]:
            prefix[index] = str(int(name) + (1 if rng.random() < 0.5 else -1))
            name = prefix[index]
        if rng.random() < rates["same_arity"]:
            arity = OPERATORS[name][0] if name in OPERATORS else 0
            pool = ([n for n in OPERATORS if OPERATORS[n][0] == arity] if arity
                    else list(LEAVES))
            prefix[index] = pool[int(rng.integers(len(pool)))]
        if name in OPERATORS and rng.random() < rates["to_leaf"]:
            prefix[index:end] = [_choose(list(LEAVES), rng)]
        elif name not in OPERATORS and rng.random() < rates["to_subtree"]:
            prefix[index:end] = _grow(MAX_INITIAL_DEPTH, rng)
    try:
        result = from_prefix(prefix)
    except ValueError:  # a complex constant: the mutation is not kept
        return gp.PrimitiveTree(tree)
    return result if result.height <= MAX_DEPTH else gp.PrimitiveTree(tree)


def _subtree_end(prefix: list[str], start: int) -> int:
    needed, index = 1, start
    while needed:
        name = prefix[index]
        needed += (OPERATORS[name][0] if name in OPERATORS else 0) - 1
        index += 1
    return index


def roulette(fitnesses: Sequence[float], count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn with probability proportional to fitness (uniform if all are 0)."""
    weights = np.clip(np.nan_to_num(np.asarray(fitnesses, dtype=float)), 0, None)
    total = weights.sum()
    probabilities = weights / total if total > 0 else None
    return rng.choice(len(weights), size=count, p=probabilities)


def parameterize(tree: gp.PrimitiveTree) -> tuple[Loss, tuple[float, ...]]:
    """The tree's integer leaves as coefficients ``c0, c1, …``: a family and its start point.

    >>> family, start = parameterize(from_prefix(["mul", -1, "log", "h"]))
    >>> family.expr, start
    (-c0*log(h), (-1.0,))
    """
    prefix = to_prefix(tree)
    symbols, values, named = [], [], []
    for name in prefix:
        if name in OPERATORS or name in ("y", "h"):
            named.append(name)
        else:
            symbol = sp.Symbol(f"c{len(symbols)}", real=True)
            symbols.append(symbol)
            values.append(float(name))
            named.append(symbol.name)
    by_name = {s.name: s for s in symbols}
    expression = _walk(named, _SYMPY_BUILDERS, lambda name: {"y": y, "h": h}.get(name)
                       or by_name[name])
    return Loss("glo_family", -expression, tuple(symbols)), tuple(values)


def prune_coefficients(
    family: Loss, start: Sequence[float], *, rng: np.random.Generator, points: int = 24,
    tolerance: float = 1e-8,
) -> tuple[Loss, tuple[float, ...]]:
    """Drop coefficients that the others absorb (GLO §III-B), keeping their start values.

    The coefficients that matter are those that change γ. Columns of the
    Jacobian ``∂γ/∂c`` at random ``(y, h)`` points and the start values that are
    linear combinations of earlier columns are absorbed; their coefficients are
    fixed, and the rest stay free.
    """
    if not family.parameters:
        return family, ()
    from symloss.dynamics import gamma

    coefficient = gamma(family)
    jacobian = [sp.lambdify((y, h, *family.parameters), sp.diff(coefficient, c), "numpy")
                for c in family.parameters]
    ys = rng.uniform(0.0, 1.0, points)
    hs = rng.uniform(0.05, 0.95, points)
    with np.errstate(all="ignore"):
        columns = np.stack([np.broadcast_to(np.asarray(j(ys, hs, *start), dtype=float), (points,))
                            for j in jacobian], axis=1)
    kept: list[int] = []
    for index in range(columns.shape[1]):
        column = columns[:, index]
        if not np.all(np.isfinite(column)) or np.linalg.norm(column) < tolerance:
            continue
        trial = columns[:, [*kept, index]]
        if np.linalg.matrix_rank(trial, tol=tolerance * max(1.0, np.abs(trial).max())) > len(kept):
            kept.append(index)
    fixed = {p: sp.Float(v) if not math.isclose(v, round(v)) else sp.Integer(round(v))
             for i, (p, v) in enumerate(zip(family.parameters, start, strict=True))
             if i not in kept}
    parameters = tuple(family.parameters[i] for i in kept)
    pruned = Loss(family.name, family.expr.xreplace(fixed), parameters)
    return pruned, tuple(float(start[i]) for i in kept)
