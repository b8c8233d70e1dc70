"""``run:ID[:rank]`` / ``run:NAME[:rank]``: a stored search candidate wherever a loss is accepted.

The harness's ``run`` entry in the ``symloss.loss_resolvers`` group, through which
:func:`symloss.resolve.resolve_loss` — and so every command and the Python API —
reads a found loss: ``run:ID`` is run ``ID``'s best distinct evaluated candidate,
``run:ID:K`` its K-th best (from 1); a run's name serves as its id (an id wins:
:meth:`RunStore.resolve <symloss.harness.search.store.RunStore.resolve>`), read from the
run store (default
``$SYMLOSS_STORE`` or ``./symloss-runs.sqlite``) by :meth:`RunStore.loss
<symloss.harness.search.store.RunStore.loss>`.

>>> parse_run_spec("run:3f2a"), parse_run_spec(" run:3f2a:2 ")
(('3f2a', 1), ('3f2a', 2))
>>> parse_run_spec("run:3f2a:best")
Traceback (most recent call last):
...
ValueError: a stored loss is run:ID or run:ID:RANK, got 'run:3f2a:best'
"""

from __future__ import annotations

import re
from pathlib import Path

from symloss.loss import Loss

#: ``run:ID`` or ``run:ID:RANK``.
RUN_SPEC = re.compile(r"run:(?P<run_id>[^:\s]{1,200})(?::(?P<rank>\d+))?")


def parse_run_spec(spec: str) -> tuple[str, int]:
    """``(run, rank)`` of a ``run:ID[:rank]`` spec (``run``: an id or a name; rank 1 when
    absent, checked >= 1)."""
    match = RUN_SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"a stored loss is run:ID or run:ID:RANK, got {spec!r}")
    rank = int(match["rank"] or 1)
    if rank < 1:
        raise ValueError(f"ranks start at 1, got {rank}")
    return match["run_id"], rank


def stored_loss(spec: str, store: str | Path | None = None) -> Loss:
    """The ``symloss.loss_resolvers`` entry point: the loss ``run:ID[:rank]`` names in
    ``store`` (``None``: :func:`symloss.harness.search.pipeline.default_store`)."""
    from symloss.harness.search.pipeline import default_store
    from symloss.harness.search.store import RunStore

    run_id, rank = parse_run_spec(spec)
    with RunStore.open(store or default_store(), readonly=True) as opened:
        return opened.loss(run_id, rank)
