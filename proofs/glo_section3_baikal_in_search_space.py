"""GLO §III (search space) and eq. 1–2: Baikal is a GP tree, BaikalCMA its coefficient vector.

**Claim.** GLO's trees use the unary operators ``log``, ``square``, ``sqrt``, the binary
operators ``+ − × ÷`` and the leaves ``x`` (label), ``y`` (prediction), ``1``, ``−1``;
the loss is ``−(1/n) Σ tree``. Baikal (eq. 1) was found in this space, and BaikalCMA
(eq. 2) is Baikal's tree with one CMA-ES coefficient per node, c0…c5.

**Proof.** In this project's names (GLO's x → y, y → h; ``ℓ = −tree``) build the tree
``÷``-under-``−``: ``tree = log(h) − y ÷ h`` as nested sympy operations taken *only*
from the table of GLO primitives, and show ``−tree`` equals the catalog's Baikal ℓ;
check the tree has depth 2 (so it is even a possible member of the initial
population, whose trees have depth ≤ 2) and contains both leaves ``y`` and ``h``
(else its fitness is 0). Then attach one coefficient to each of its 6 nodes —
``c0·(c1·log(c2·h) − c3·(c4·y) ÷ (c5·h))`` — and show this is eq. 2; its γ depends on
the coefficients only through ``c0c1`` and ``c0c3c4/c5`` (c2 only adds a constant to
ℓ), which is the "pruning of coefficients that others absorb" of §III-B.

**Verdict.** CONFIRMED.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

import symloss
from symloss.proofs._framework import Proof, Verdict
from symloss.symbols import h, y

CLAIM = "Baikal is a depth-2 GLO tree; BaikalCMA is that tree with one coefficient per node"
PLACE = "GLO §III-A/B, eq. 1–2"
EXPECTED = "CONFIRMED"

#: GLO §III-A's primitives, and nothing else.
UNARY: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "log": sp.log, "square": lambda a: a**2, "sqrt": sp.sqrt,
}
BINARY: dict[str, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b,
    "*": lambda a, b: a * b, "/": lambda a, b: a / b,
}
LEAVES: dict[str, sp.Expr] = {"y": y, "h": h, "1": sp.Integer(1), "-1": sp.Integer(-1)}

Tree = str | tuple


def build(tree: Tree, coefficients: dict[tuple[int, ...], sp.Expr] | None = None,
          path: tuple[int, ...] = ()) -> sp.Expr:
    """Evaluate a nested ``(operator, child, …)`` tree with GLO's primitives only.

    ``coefficients`` (by node path) multiplies a node's value, as GLO's CMA-ES stage does.
    """
    scale = (coefficients or {}).get(path, sp.Integer(1))
    if isinstance(tree, str):
        return scale * LEAVES[tree]
    operator, *children = tree
    values = [build(child, coefficients, (*path, i)) for i, child in enumerate(children)]
    table = UNARY if len(values) == 1 else BINARY
    return scale * table[operator](*values)


def nodes(tree: Tree, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    if isinstance(tree, str):
        return [path]
    return [path] + [p for i, child in enumerate(tree[1:]) for p in nodes(child, (*path, i))]


def leaves(tree: Tree) -> list[str]:
    return [tree] if isinstance(tree, str) else [leaf for child in tree[1:]
                                                 for leaf in leaves(child)]


def depth(tree: Tree) -> int:
    return 0 if isinstance(tree, str) else 1 + max(depth(child) for child in tree[1:])


#: Baikal: tree = log(h) − (y ÷ h), so ℓ = −tree = −log h + y/h.
BAIKAL_TREE: Tree = ("-", ("log", "h"), ("/", "y", "h"))


def prove() -> Verdict:
    proof = Proof()
    tree_value = build(BAIKAL_TREE)
    proof.identity("ℓ = −tree equals Baikal's ℓ (catalog, GLO eq. 1)", -tree_value,
                   symloss.loss("baikal").expression)
    proof.identity("… and GLO eq. 1's summand −(log h − y/h)", -tree_value,
                   -(sp.log(h) - y / h))
    proof.step("the tree has depth 2 (initial population: depth ≤ 2)", depth(BAIKAL_TREE) == 2)
    proof.step("it contains both y and h (otherwise fitness 0)",
               {"y", "h"} <= set(leaves(BAIKAL_TREE)))

    paths = nodes(BAIKAL_TREE)
    proof.step("the tree has 6 nodes, one per coefficient c0…c5", len(paths) == 6)
    coefficient_symbols = sp.symbols("c0:6", nonzero=True, real=True)
    # Path order (pre-order): root '−', 'log', its 'h', '÷', its 'y', its 'h'.
    scaled = build(BAIKAL_TREE, dict(zip(paths, coefficient_symbols, strict=True)))
    c0, c1, c2, c3, c4, c5 = coefficient_symbols
    eq2 = c0 * (c1 * sp.log(c2 * h) - c3 * (c4 * y) / (c5 * h))
    proof.identity("one coefficient per node (pre-order) gives GLO eq. 2's summand", scaled, eq2)
    gamma = sp.expand(sp.diff(eq2, h))  # γ = −∂ℓ/∂h = ∂tree/∂h
    proof.identity("γ depends on c only via c0c1 and c0c3c4/c5 (c2 is absorbed)", gamma,
                   (c0 * c1) / h + (c0 * c3 * c4 / c5) * y / h**2)
    proof.mismatch("GLO eq. 1–2: range of the class sum (typographical)", "Σ_{i=0}^{n}",
                   "Σ_{i=0}^{n−1}: n classes, as in the paper's own cross-entropy (§IV-A)")
    return proof.verdict("CONFIRMED", "−(log(h) − y÷h), built from GLO's primitives only, is "
                         "Baikal; its 6 nodes carry eq. 2's c0…c5 (2 effective)")
