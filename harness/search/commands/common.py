"""What the search commands share: the ``--store`` option, a run's stored config read
back, a run's status, and numbers as the commands print them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from symloss.harness.search.pipeline import DEFAULT_STORE, default_store
from symloss.harness.search.store import printable

__all__ = ["accuracy", "add_store_option", "default_store", "printable", "rounded",
           "run_status", "stored_config"]


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store``: the SQLite run store (default ``$SYMLOSS_STORE`` or
    :data:`~symloss.harness.search.pipeline.DEFAULT_STORE`)."""
    parser.add_argument("--store", default=None, help=f"SQLite run store (default "
                        f"$SYMLOSS_STORE or ./{DEFAULT_STORE})")


def search_config(record: dict[str, Any]):
    """A config record as a checked :class:`~symloss.harness.search.runner.SearchConfig`."""
    from symloss.harness.search.runner import SearchConfig

    return SearchConfig.from_dict(record)


def stored_config(store, run_id: str) -> dict[str, Any]:
    """The run's stored config, checked (a damaged run is one line naming what is damaged);
    ``run_id``: the run's id or name."""
    record = store.run(store.resolve(run_id))
    try:
        search_config(record.config)
    except ValueError as error:
        raise ValueError(f"run {printable(run_id)} in {store.path} is damaged: "
                         f"{printable(error)}") from None
    return record.config


def run_status(run, store_file: Path) -> str:
    """The stored status, except that a ``running`` run no live process holds is ``stopped``
    (killed by SIGKILL or a lost machine: ``--resume`` continues it)."""
    from symloss.harness.search.lock import holder_alive

    if run.status == "running" and holder_alive(store_file, run.run_id) is False:
        return "stopped"
    return run.status


def accuracy(summary: dict[str, Any]) -> str:
    """``mean ± std`` of a stored accuracy summary (``-`` where there is none).

    >>> accuracy({"mean": 0.91234, "std": 0.01}), accuracy({"mean": None, "std": None})
    ('0.9123 ± 0.0100', '- ± -')
    """
    mean, std = (("-" if v is None else f"{v:.4f}") for v in (summary["mean"], summary["std"]))
    return f"{mean} ± {std}"


def rounded(p_value: float | None) -> str:
    """A p-value as printed (two significant digits; ``n/a`` where there is none).

    >>> rounded(0.012345), rounded(None)
    ('0.012', 'n/a')
    """
    return "n/a" if p_value is None else f"{p_value:.2g}"
