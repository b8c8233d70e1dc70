"""``symloss runs``: list the runs in a store (or delete one, under its lock)."""

from __future__ import annotations

import argparse

from symloss.harness.search.commands.common import (
    add_store_option,
    default_store,
    printable,
    run_status,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    runs = commands.add_parser("runs", help="list the runs in a store (or delete one)")
    add_store_option(runs)
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.add_argument("--delete", metavar="RUN_ID", help="remove this run and all it stored "
                      "(refused while it runs)")
    runs.set_defaults(handler=run)
    return runs


def run(args: argparse.Namespace) -> int:
    """List the store's runs, newest first (a damaged run says what is damaged)."""
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.delete is not None:
        return _delete(args.store or default_store(), args.delete)
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        runs = store.runs()
        path = store.path
    rows = [{"run_id": r.run_id, "algorithm": r.algorithm, "status": run_status(r, path),
             "evaluations": r.evaluations, "best_fitness": r.best_fitness,
             "dataset": r.config.get("budget", {}).get("dataset"), "damage": r.damage,
             "created": _when(r.created), "updated": _when(r.updated)}
            for r in runs]
    if args.json:
        print(strict_json(rows, indent=2))
        return 0
    if not rows:
        print("no runs")
    for row in rows:
        text = {key: printable(value) for key, value in row.items()}
        if row["damage"]:
            print(f"{text['run_id']}  damaged: {text['damage']}")
            continue
        best = "-" if row["best_fitness"] is None else f"{row['best_fitness']:.4f}"
        print(f"{text['run_id']}  {text['algorithm']:<9} {printable(row['dataset'] or ''):<8} "
              f"{text['status']:<11} evaluations {text['evaluations']:>4}  best {best}  "
              f"created {text['created']}  updated {text['updated']}")
    return 0


def _when(stamp: float | None) -> str | None:
    """A stored time as local ``YYYY-MM-DD HH:MM``."""
    import datetime

    if stamp is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):  # a stored time no calendar holds
        return repr(stamp)


def _delete(store_file: str, run_id: str) -> int:
    """``runs --delete RUN_ID``: under the run's lock, so a running run is never deleted."""
    from symloss.harness.search.lock import run_lock
    from symloss.harness.search.store import RunStore

    with RunStore.open(store_file) as store, run_lock(store.path, run_id):
        removed = store.delete_run(run_id)
    print(f"deleted run {printable(run_id)} ({removed} candidates)")
    return 0
