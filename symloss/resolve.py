"""One loss resolver: a spec — catalog name, formula or ``PREFIX:…`` — becomes a :class:`Loss`.

Every command and the Python API read a user's loss through :func:`resolve_loss`:

* a catalog name (``baikal``, ``cross-entropy``, ``taylorglo`` with ``order``) or a
  formula in ``y`` and ``h`` (parsed, never ``eval``-ed): :func:`symloss.catalog.loss`;
* ``PREFIX:REST`` where a package registers ``PREFIX`` in the entry-point group
  ``symloss.loss_resolvers`` (a callable ``(spec, store) -> Loss``): that package reads
  it. The harness registers ``run`` — ``run:ID`` is run ``ID``'s best candidate,
  ``run:ID:K`` its K-th best, read from the run store ``store``.

The core imports nothing from the harness (the arrow points one way): a stored loss
comes through the hook, and without the extra that provides it the answer is one line
naming that extra.

>>> resolve_loss("baikal").expression
-log(h) + y/h
>>> resolve_loss("taylorglo", order=3, params=[0, 0, 0, -1, 0, 2, 0, 0]).expression
h**2 - 2*h*y
>>> resolve_loss("-y*log(h)").expression
-y*log(h)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from symloss.loss import Loss

__all__ = ["RESOLVER_GROUP", "resolve_loss", "resolver_prefix"]

#: The entry-point group of loss resolvers: name ``PREFIX`` → ``(spec, store) -> Loss``.
RESOLVER_GROUP = "symloss.loss_resolvers"

#: Prefixes the core knows belong to an extra, and the extra (for the one-line error).
_EXTRAS = {"run": "harness"}


def resolver_prefix(spec: str) -> str | None:
    """The ``PREFIX`` of a ``PREFIX:REST`` spec (a plug-in's), or ``None`` for a name or formula.

    A formula holds no ``:``, so any spec with one is a plug-in's.

    >>> resolver_prefix("run:3f2a:2"), resolver_prefix(" run:x"), resolver_prefix("-log(h)")
    ('run', 'run', None)
    """
    head, colon, _ = spec.strip().partition(":")
    return head if colon and re.fullmatch(r"[A-Za-z_][\w.-]*", head) else None


def resolve_loss(spec: str | Loss, *, order: int = 3, params: Sequence[float] | None = None,
                 store: str | Path | None = None) -> Loss:
    """The loss ``spec`` names (see the module docstring).

    ``order``: TaylorGLO's; ``params``: a family's parameter values; ``store``: the run
    store a ``run:`` spec is read from (``None``: the resolver's default, the harness's
    ``$SYMLOSS_STORE`` or ``./symloss-runs.sqlite``). A ``ValueError`` (one line) for
    anything it cannot read: a ``PREFIX:`` no package registers is read as a formula,
    whose parser names what is wrong.
    """
    prefix = resolver_prefix(spec) if isinstance(spec, str) else None
    if prefix is not None:
        from importlib.metadata import entry_points

        for point in entry_points(group=RESOLVER_GROUP):
            if point.name == prefix:
                return point.load()(spec, None if store is None else str(store))
        if prefix in _EXTRAS:
            raise ValueError(f"{spec!r} names a stored search candidate; reading run stores "
                             f"needs the '{_EXTRAS[prefix]}' extra: pip install "
                             f"'symloss[{_EXTRAS[prefix]}]'")
    from symloss.catalog import loss

    return loss(spec, order=order, params=params)  # a prefix no one registers: a formula's error
