"""``symloss show RUN``: one run (by id or name) from the store — its generations, best
losses, final evaluation and how it was made (``provenance``) — or ``--report``: its report
rebuilt."""

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
    show.add_argument("run_id", metavar="RUN", help="the run to show, by id or name (see "
                      "`symloss runs`)")
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
    from symloss.harness.search.sessions import run_provenance
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.out is not None and not args.report:
        raise ValueError("--out applies to --report only (show --report --out DIR)")
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        run = store.run(store.resolve(args.run_id))
        stored_config(store, run.run_id)
        if args.report:
            out = report_folder(args.out, store.path, run.run_id)
            report = write_report_safely(store, run.run_id, out, store.final(run.run_id),
                                         update_store=False)
            print(f"report {printable(report)}")
            return 0
        payload = {"run_id": run.run_id, "name": run.name, "algorithm": run.algorithm,
                   "status": run_status(run, store.path),
                   "config": run.config, "evaluations": run.evaluations,
                   "best_fitness": run.best_fitness, "counts": store.counts(run.run_id),
                   "generations": store.generation_summary(run.run_id),
                   "best": [best_entry(r) for r in best_candidates(store, run.run_id, 5)],
                   "final": store.final(run.run_id), "report_dir": run.report_dir,
                   "report": (str(Path(run.report_dir) / "report.md") if run.report_dir
                              else None),
                   "provenance": run_provenance(store, run.run_id)}
        payload["outlook"] = _outlook(store, run.run_id)
    if args.json:
        print(strict_json(payload, indent=2))
    else:
        _print(payload)
    return 0


def _outlook(store, run_id: str) -> dict[str, Any] | None:
    """Whether the run's best loss will last (:func:`symloss.outlook.outlook`; ``None``
    without a best loss, or for one whose derivation fails: the run still shows)."""
    from symloss.harness.search.final import rebuild_loss
    from symloss.harness.search.runner import SearchConfig, best_candidates
    from symloss.outlook import outlook

    best = best_candidates(store, run_id, 1)
    if not best:
        return None
    config = SearchConfig.from_dict(store.run(run_id).config)
    try:
        return outlook(rebuild_loss(best[0], config), config.classes, config.smoothing)
    except Exception:  # a loss the core cannot rebuild or derive: shown without it
        return None


def _print(payload: dict[str, Any]) -> None:
    """``show``'s text: the run, its generations, its best losses, its final evaluation
    (every stored string through :func:`printable`)."""
    named = f" {printable(payload['name'])}" if payload["name"] else ""
    print(f"run {printable(payload['run_id'])}{named} ({printable(payload['algorithm'])}, "
          f"{printable(payload['status'])}): {payload['evaluations']} trainings, counts "
          f"{printable(payload['counts'])}")
    for row in payload["generations"]:
        best, median = (("-" if v is None else f"{v:.4f}")
                        for v in (row["best_fitness"], row["median_fitness"]))
        print(f"  gen {row['generation']:>3}: best {best} median {median}")
    for row in payload["best"]:
        print(f"  {row['fitness']:.4f}  ℓ = {printable(row['loss'])}")
    if payload["outlook"]:
        print(f"  will it last? {printable(payload['outlook']['text'])}")
    if payload["final"]:
        final = payload["final"]
        print(f"  final test accuracy {accuracy(final['test_accuracy'])} vs cross-entropy "
              f"{accuracy(final['baseline_test_accuracy'])} (p = "
              f"{rounded(final['p_value'])})")
    for line in made_with(payload["provenance"]):
        print(f"  {printable(line)}")
    if payload["report_dir"]:
        print(f"report {printable(payload['report'])}")


def made_with(provenance: dict[str, Any]) -> list[str]:
    """``show``'s "made with" lines: each session's versions, machine, device, threads and
    executor, when it ran and how it ended (a run stored before sessions has none).

    >>> made_with({"sessions": [{"session": 1, "kind": "created", "started": "t0",
    ...     "ended": "t1", "status": "finished", "environment": {"versions": {
    ...     "symloss": "0.9", "torch": "2.5", "python": "3.12"}, "machine": {"cpu": "X",
    ...     "cores": 2}, "device": "cpu", "threads": 1}, "executor": {"kind": "in-process",
    ...     "workers": None, "chunk": None, "batched": True}}]})[1]
    '  symloss 0.9, torch 2.5, python 3.12; X, 2 cores; device cpu, threads 1; in-process, \
chunk auto, batched'

    """
    lines = []
    for session in provenance.get("sessions", []):
        facts = session.get("environment", {})
        versions = ", ".join(f"{name} {version}" for name, version in
                             facts.get("versions", {}).items() if version)
        machine = facts.get("machine", {})
        executor = session.get("executor", {})
        where = executor.get("kind", "?")
        if executor.get("workers"):
            where += f" ({executor['workers']} workers)"
        chunk = executor.get("chunk") or "auto"
        lines += [f"made with: session {session['session']} ({session['kind']}) "
                  f"{session['started']} -> {session['ended'] or '(no end recorded)'}, "
                  f"{session['status'] or 'running or killed'}",
                  f"  {versions}; {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
                  f"device {facts.get('device')}, threads {facts.get('threads')}; {where}, "
                  f"chunk {chunk}, {'batched' if executor.get('batched') else 'one by one'}"]
    return lines
