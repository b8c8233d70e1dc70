"""``symloss show RUN_ID``: one run from the store (``--report``: its report rebuilt)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from symloss.harness.search.commands.common import (
    accuracy,
    add_store_option,
    default_store,
    printable,
    rounded,
    run_status,
    stored_config,
)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    show = commands.add_parser("show", help="show one run")
    show.add_argument("run_id", help="the run to show (see `symloss runs`)")
    add_store_option(show)
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--report", action="store_true", help="rebuild the run's report from "
                      "the store (no training)")
    show.add_argument("--out", help="folder for --report (default runs/RUN_ID next to the "
                      "store)")
    show.set_defaults(handler=run)
    return show


def run(args: argparse.Namespace) -> int:
    """Print the run (or its JSON), or rebuild its report from the store alone."""
    from symloss.harness.search.final import best_entry
    from symloss.harness.search.pipeline import report_folder, write_report_safely
    from symloss.harness.search.runner import best_candidates
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.out is not None and not args.report:
        raise ValueError("--out applies to --report only (show --report --out DIR)")
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        run = store.run(args.run_id)
        stored_config(store, run.run_id)
        if args.report:
            out = report_folder(args.out, store.path, run.run_id)
            report = write_report_safely(store, run.run_id, out, store.final(run.run_id),
                                         update_store=False)
            print(f"report {printable(report)}")
            return 0
        payload = {"run_id": run.run_id, "algorithm": run.algorithm,
                   "status": run_status(run, store.path),
                   "config": run.config, "evaluations": run.evaluations,
                   "best_fitness": run.best_fitness, "counts": store.counts(run.run_id),
                   "generations": store.generation_summary(run.run_id),
                   "best": [best_entry(r) for r in best_candidates(store, run.run_id, 5)],
                   "final": store.final(run.run_id), "report_dir": run.report_dir,
                   "report": (str(Path(run.report_dir) / "report.md") if run.report_dir
                              else None)}
    if args.json:
        print(strict_json(payload, indent=2))
    else:
        _print(payload)
    return 0


def _print(payload: dict[str, Any]) -> None:
    """``show``'s text: the run, its generations, its best losses, its final evaluation
    (every stored string through :func:`printable`)."""
    print(f"run {printable(payload['run_id'])} ({printable(payload['algorithm'])}, "
          f"{printable(payload['status'])}): {payload['evaluations']} trainings, counts "
          f"{printable(payload['counts'])}")
    for row in payload["generations"]:
        best, median = (("-" if v is None else f"{v:.4f}")
                        for v in (row["best_fitness"], row["median_fitness"]))
        print(f"  gen {row['generation']:>3}: best {best} median {median}")
    for row in payload["best"]:
        print(f"  {row['fitness']:.4f}  ℓ = {printable(row['loss'])}")
    if payload["final"]:
        final = payload["final"]
        print(f"  final test accuracy {accuracy(final['test_accuracy'])} vs cross-entropy "
              f"{accuracy(final['baseline_test_accuracy'])} (p = "
              f"{rounded(final['p_value'])})")
    if payload["report_dir"]:
        print(f"report {printable(payload['report'])}")
