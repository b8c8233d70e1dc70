"""The catalog of losses, in the convention of docs/conventions.md §1 (``ℓ = −f``; GLO's x→y, y→h).

Each entry is the paper's formula, written once; everything about it (γ, the
null epoch, the zero-error limit, ...) is derived by :mod:`symloss.dynamics`.

>>> loss("mse").expression
(h - y)**2
>>> loss("cross_entropy").expression
-y*log(h)
>>> loss("-log(h) + y/h") == loss("baikal").unbind().__class__("formula", loss("baikal").expr)
True
>>> taylorglo(order=2).expr
-lambda_2*(h - lambda_1) - lambda_3*(h - lambda_1)**2 - lambda_4*(h - lambda_1)*(-lambda_0 + y)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import sympy as sp

from symloss.formula import ALLOWED_FUNCTIONS, FormulaError, parse_formula
from symloss.loss import Loss
from symloss.symbols import h, y

#: BaikalCMA's coefficients c0…c5 (GLO eq. 2).
BAIKAL_CMA_COEFFICIENTS = ("2.7279", "0.9863", "1.5352", "-1.1135", "1.3716", "-0.8411")

#: Focal loss focusing parameter (Lin et al. 2017's default).
FOCAL_GAMMA = 2
#: Poly-1's ε (Leng et al., PolyLoss, ICLR 2022: CE + ε(1 − p_t)).
POLY1_EPSILON = 1
#: The label smoothing of the catalog's smoothed cross-entropy, and the n it is built for.
LABEL_SMOOTHING, LABEL_SMOOTHING_CLASSES = 0.1, 10

#: The highest TaylorGLO order: 80 parameters at order 12; beyond it the family's
#: algebra (and a search over it) grows without use (ICLR uses order 3).
MAX_ORDER = 12


def _mse() -> Loss:
    return Loss("mse", (h - y) ** 2)


def _cross_entropy() -> Loss:
    return Loss("cross_entropy", -y * sp.log(h))


def _baikal() -> Loss:
    # GLO eq. 1: f(x, y) = log(y) − x/y, with x the label and y the prediction.
    return Loss("baikal", -sp.log(h) + y / h)


def _baikal_cma() -> Loss:
    # GLO eq. 2: f = c0·(c1·log(c2·y) − c3·c4·x/(c5·y)), ℓ = −f.
    c0, c1, c2, c3, c4, c5 = (sp.Float(c) for c in BAIKAL_CMA_COEFFICIENTS)
    return Loss("baikal_cma", -c0 * (c1 * sp.log(c2 * h) - c3 * c4 * y / (c5 * h)))


def _focal() -> Loss:
    return Loss("focal", -y * (1 - h) ** FOCAL_GAMMA * sp.log(h))


def _poly1() -> Loss:
    # Per class: −y·log h + ε·y·(1 − h); summed over classes, CE + ε(1 − p_t).
    return Loss("poly1", -y * sp.log(h) + POLY1_EPSILON * y * (1 - h),
                meta=(("epsilon", POLY1_EPSILON),))


def smoothed(base: Loss, alpha: float, classes: int, name: str | None = None) -> Loss:
    """``base`` with label smoothing built into its formula: ``ℓ(y(1−α) + α/n, h)``.

    Trained on one-hot labels it is ``base`` trained on smoothed labels (ICLR App. D.2),
    so it needs ``n``; ``meta`` records both.

    >>> smoothed(loss("cross_entropy"), 0.1, 10).expression
    -(9*y/10 + 1/100)*log(h)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    exact = sp.Rational(str(alpha))  # the decimal the user wrote, exactly
    label = y * (1 - exact) + exact / classes
    return Loss(name or f"{base.name}_smoothed", base.expr.xreplace({y: label}),
                base.parameters, base.values,
                (*base.meta, ("label_smoothing", alpha), ("classes", classes)))


def _label_smoothed_cross_entropy() -> Loss:
    return smoothed(_cross_entropy(), LABEL_SMOOTHING, LABEL_SMOOTHING_CLASSES,
                    "label_smoothed_cross_entropy")


def taylorglo_terms(order: int) -> list[tuple[int, int]]:
    """The exponents ``(a, b)`` of TaylorGLO's terms ``(y−λ0)^a (h−λ1)^b``, in λ order.

    Terms with ``b = 0`` are left out: they do not change gradients (docs/conventions.md §1).
    For order 3 this is ICLR eq. 10's order, λ2…λ7.

    >>> taylorglo_terms(3)
    [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1)]
    """
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"TaylorGLO order must be an integer from 1 to {MAX_ORDER}, "
                         f"got {order!r}")
    return [(a, b) for a in range(order) for b in range(1, order - a + 1)]


def taylorglo(order: int = 3, values: Sequence[float] | None = None) -> Loss:
    """The TaylorGLO family of the given order (ICLR eq. 10; docs/conventions.md §1).

    ``ℓ = −Σ λ_i (y−λ0)^a (h−λ1)^b`` over :func:`taylorglo_terms`, with
    parameters ``λ0 … λ_{m+1}``. Pass ``values`` to bind a member.

    >>> taylorglo(3).parameters
    (lambda_0, lambda_1, lambda_2, lambda_3, lambda_4, lambda_5, lambda_6, lambda_7)
    >>> taylorglo(5).name, len(taylorglo(5).parameters)
    ('taylorglo5', 17)
    """
    terms = taylorglo_terms(order)
    symbols = sp.symbols(f"lambda_0:{len(terms) + 2}", real=True)
    center_y, center_h = symbols[0], symbols[1]
    expr = -sp.Add(*(
        coefficient * (y - center_y) ** a * (h - center_h) ** b
        for coefficient, (a, b) in zip(symbols[2:], terms, strict=True)
    ))
    family = Loss(f"taylorglo{order}", expr, tuple(symbols), None, (("order", order),))
    return family if values is None else family.bind(values)


CATALOG: dict[str, Callable[[], Loss]] = {
    "mse": _mse,
    "cross_entropy": _cross_entropy,
    "baikal": _baikal,
    "baikal_cma": _baikal_cma,
    "focal": _focal,
    "poly1": _poly1,
    "label_smoothed_cross_entropy": _label_smoothed_cross_entropy,
    "taylorglo": taylorglo,
}

ALIASES = {"ce": "cross_entropy", "crossentropy": "cross_entropy", "xent": "cross_entropy",
           "baikalcma": "baikal_cma", "l2": "mse", "poly-1": "poly1", "ls_ce": \
               "label_smoothed_cross_entropy", "smoothed_cross_entropy": \
               "label_smoothed_cross_entropy"}


def loss(spec: str | Loss, *, order: int = 3, params: Sequence[float] | None = None) -> Loss:
    """A loss from a catalog name or a formula in ``y`` and ``h``.

    ``taylorglo`` takes ``order``; ``params`` binds a family's parameters.
    A name that is not in the catalog is parsed as a formula (never ``eval``-ed).

    >>> loss("baikal").expression
    -log(h) + y/h
    >>> loss("taylorglo", params=[0, 0, 0, -1, 0, 2, 0, 0]).expression
    h**2 - 2*h*y
    >>> loss("hinge")
    Traceback (most recent call last):
    ...
    symloss.formula.FormulaError: unknown name 'hinge'; allowed names: h, y (catalog losses: ...)
    >>> loss("cross-entropy").name, loss("Baikal-CMA").name
    ('cross_entropy', 'baikal_cma')
    >>> loss("baikl")
    Traceback (most recent call last):
    ...
    symloss.formula.FormulaError: unknown name 'baikl'; ... (did you mean 'baikal'? catalog ...)
    """
    if isinstance(spec, Loss):
        result = spec
    else:
        key = spec.strip().lower()
        if key.replace("-", "_") in CATALOG or key.replace("-", "_") in ALIASES:
            key = key.replace("-", "_")  # cross-entropy is cross_entropy, not cross − entropy
        key = ALIASES.get(key, key)
        if key == "taylorglo":
            result = taylorglo(order)
        elif key in CATALOG:
            result = CATALOG[key]()
        else:
            try:
                result = Loss("formula", parse_formula(spec))
            except FormulaError as error:
                if spec.strip().replace("-", "_").isidentifier():
                    names = ", ".join(CATALOG)
                    close = difflib.get_close_matches(key.replace("-", "_"),
                                                      [*CATALOG, *ALIASES], n=1, cutoff=0.6)
                    hint = f"did you mean {ALIASES.get(close[0], close[0])!r}? " if close else ""
                    raise FormulaError(f"{error} ({hint}catalog losses: {names})") from None
                raise
            if not result.expr.has(h):
                raise FormulaError(
                    f"formula {spec[:60]!r} does not depend on h, so it has no gradient"
                )
    if params is not None:
        if not result.parameters:
            raise ValueError(f"loss {result.name!r} has no parameters, got {len(params)} values")
        result = result.bind(params)
    return result


def family(formula: str, parameters: Sequence[str], *, name: str = "family") -> Loss:
    """A user-defined family: a formula in ``y``, ``h`` and the named parameters.

    >>> family("a*log(h) + b*y/h", ["a", "b"]).parameters
    (a, b)
    >>> family("a*log(h)", ["y"])
    Traceback (most recent call last):
    ...
    ValueError: parameter names must be identifiers other than y, h and function names, got 'y'
    """
    symbols: dict[str, sp.Symbol] = {}
    for parameter in parameters:
        if (not isinstance(parameter, str) or not parameter.isidentifier()
                or parameter in ("y", "h") or parameter in ALLOWED_FUNCTIONS):
            raise ValueError("parameter names must be identifiers other than y, h and "
                             f"function names, got {parameter!r}")
        symbols[parameter] = sp.Symbol(parameter, real=True)
    expression = parse_formula(formula, symbols)
    return Loss(name, expression, tuple(symbols.values()))
