"""``symloss runs``: list the runs in a store, compare some side by side, or delete one
(under its lock). A run is named by its id or its name wherever one is asked for."""

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
    runs.add_argument("--delete", metavar="RUN", help="remove this run (id or name) and all "
                      "it stored (refused while it runs)")
    runs.add_argument("--compare", nargs="+", metavar="RUN", help="these runs (ids or names) "
                      "side by side: the settings that differ, best fitness, evaluations, "
                      "model-steps, finals against the baselines")
    runs.add_argument("--plot", metavar="FILE", help="with --compare: draw their best fitness "
                      "per generation to FILE (.png, .pdf or .svg)")
    runs.set_defaults(handler=run)
    return runs


def run(args: argparse.Namespace) -> int:
    """List the store's runs, newest first (a damaged run says what is damaged)."""
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.plot is not None and args.compare is None:
        raise ValueError("--plot applies to --compare only (runs --compare A B --plot FILE)")
    if args.delete is not None:
        return _delete(args.store or default_store(), args.delete)
    if args.compare is not None:
        return _compare(args)
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        runs = store.runs()
        path = store.path
    rows = [{"run_id": r.run_id, "name": r.name, "algorithm": r.algorithm,
             "status": run_status(r, path),
             "evaluations": r.evaluations, "best_fitness": r.best_fitness,
             "dataset": r.config.get("budget", {}).get("dataset"), "damage": r.damage,
             "created": _when(r.created), "updated": _when(r.updated)}
            for r in runs]
    if args.json:
        print(strict_json(rows, indent=2))
        return 0
    if not rows:
        print("no runs")
    width = max((len(printable(row["name"])) for row in rows if row["name"]), default=0)
    for row in rows:
        text = {key: printable(value) for key, value in row.items()}
        if row["damage"]:
            print(f"{text['run_id']}  damaged: {text['damage']}")
            continue
        best = "-" if row["best_fitness"] is None else f"{row['best_fitness']:.4f}"
        named = f"  {text['name'] if row['name'] else '':<{width}}" if width else ""
        print(f"{text['run_id']}{named}  {text['algorithm']:<9} "
              f"{printable(row['dataset'] or ''):<8} "
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


def _delete(store_file: str, run: str) -> int:
    """``runs --delete RUN``: under the run's lock, so a running run is never deleted."""
    from symloss.harness.search.lock import run_lock
    from symloss.harness.search.store import RunStore

    with RunStore.open(store_file) as store:
        run_id = store.resolve(run)
        with run_lock(store.path, run_id):
            removed = store.delete_run(run_id)
    print(f"deleted run {printable(run_id)} ({removed} candidates)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    """``runs --compare A B …``: the runs side by side (text or ``--json``), ``--plot``."""
    from symloss.harness.search.compare import compare_runs, plot_comparison
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.plot is not None:
        from symloss.figures import figure_format
        from symloss.paths import check_output_file

        figure_format(args.plot)
        check_output_file("--plot", args.plot, overwrite=True)
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        table = compare_runs(store, args.compare)
        ids = [row["run_id"] for row in table["runs"]]
        if args.plot is not None:
            labels = [row["name"] or row["run_id"] for row in table["runs"]]
            table["plot"] = str(plot_comparison(store, ids, args.plot, labels))
    if args.json:
        print(strict_json(table, indent=2))
        return 0
    _print_comparison(table)
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return printable(value)


def _print_comparison(table: dict) -> None:
    """One column per run: who it is, what it found and paid, then the settings that differ."""
    runs = table["runs"]
    rows = [("run", [r["run_id"] for r in runs]), ("name", [r["name"] for r in runs]),
            ("algorithm", [r["algorithm"] for r in runs]),
            ("dataset", [r["dataset"] for r in runs]), ("status", [r["status"] for r in runs]),
            ("generations", [r["generations"] for r in runs]),
            ("best fitness", [r["best_fitness"] for r in runs]),
            ("evaluations", [r["evaluations"] for r in runs]),
            ("model-steps", [r["model_steps"] for r in runs]),
            ("final (found)", [(r["final"] or {}).get("found") for r in runs])]
    baselines = sorted({name for r in runs for name in ((r["final"] or {}).get("baselines")
                                                        or {})})
    rows += [(f"final {name}", [((r["final"] or {}).get("baselines") or {}).get(name, {})
                                .get("mean") for r in runs]) for name in baselines]
    if table["differences"]:
        rows += [("differences:", [""] * len(runs))]
        rows += [(f"  {key}", values) for key, values in table["differences"].items()]
    else:
        rows += [("differences:", ["none"] + [""] * (len(runs) - 1))]
    cells = [(printable(label), [_cell(v) for v in values]) for label, values in rows]
    left = max(len(label) for label, _ in cells)
    widths = [max(len(values[k]) for _, values in cells) for k in range(len(runs))]
    for label, values in cells:
        print(f"{label:<{left}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(values, widths,
                                                                             strict=True))
              .rstrip())
    if table.get("plot"):
        print(f"plot {printable(table['plot'])}")
