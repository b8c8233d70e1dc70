"""``symloss search``, ``symloss runs`` and ``symloss show``.

Importing this module imports neither torch nor the search runtime; the
handlers do, when they run.

Nothing paid is lost, nothing is paid twice: every flag is checked (finite,
in range) and the report folder validated (:mod:`symloss.paths`) before a run is
created; a run trains under its lock (:mod:`symloss.harness.search.lock`, held on
the store file whatever path names it), so a second ``--resume`` of a running run,
or ``runs --delete`` of it, is refused in one line; SIGTERM stops a search as
Ctrl-C does (the run is marked ``interrupted``, resumable); each training of the
final evaluation is stored as it returns and the result before the report is
written, both reused on resume, and ``symloss show RUN_ID --report [--out DIR]``
rebuilds a report from the store alone. ``runs`` and ``show`` only read the store
(``readonly=True``).

Reports go only where the user says: ``--out``, else ``runs/RUN_ID`` beside the
store — never to a folder read from the store (``runs.report_dir`` is shown, not
trusted: a changed store must not choose where symloss writes). A damaged stored
value is one line naming its table and column; JSON output is strict (no bare
``Infinity``/``NaN``: :func:`symloss.report.strict_json`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symloss.harness.search.config import validate_config
from symloss.rules import rule_names

DEFAULT_STORE = "symloss-runs.sqlite"
FILTERS = rule_names()  # symloss.rules: the one list of filters


def default_store() -> str:
    return os.environ.get("SYMLOSS_STORE", DEFAULT_STORE)


def register(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser(
        "search", help="TaylorGLO or GLO loss-function search with derived invariants")
    search.add_argument("algorithm", nargs="?", choices=("taylorglo", "glo"),
                        help="taylorglo or glo (with --resume: the run's)")
    search.add_argument("--dataset", help="mnist1d (default), digits, mnist, fashion_mnist, "
                        "cifar10")
    search.add_argument("--model", help="model name (default: the dataset's)")
    search.add_argument("--generations", type=int, help="generations (default 5; GLO: GP "
                        "generations before its CMA-ES phase)")
    search.add_argument("--cma-generations", type=int, help="GLO's CMA-ES generations "
                        "(default 3)")
    search.add_argument("--population", type=int, help="population (default: TaylorGLO 20, "
                        "40 with a filter; GLO 80)")
    search.add_argument("--steps", type=int, help="training steps per candidate (default 300)")
    search.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    search.add_argument("--batch-size", type=int,
                        help="minibatch size of each training (default: the model's)")
    search.add_argument("--filter", choices=FILTERS, help="candidate filter: exact "
                        "(first principles, default), paper (ICLR Theorem 3), stable (exact, "
                        "and the null epoch's basin is zero error or an equilibrium with "
                        "target probability >= --min-target-probability), none")
    search.add_argument("--min-target-probability", type=float, help="the stable filter's "
                        "bound on the null epoch's equilibrium (default 0.25: "
                        "symloss.stability_batch.DEFAULT_MIN_TARGET_PROBABILITY)")
    search.add_argument("--objective", help="val (default) or fgsm:EPS")
    search.add_argument("--order", type=int, help="TaylorGLO order (default 3)")
    search.add_argument("--sigma0", type=float, help="CMA-ES initial step (default: TaylorGLO "
                        "1.2, GLO 1.5)")
    search.add_argument("--label-smoothing", "--smoothing", dest="smoothing", type=float,
                        metavar="ALPHA", help="label smoothing for the analysis and filters")
    search.add_argument("--final-seeds", type=int, help="retrain the best loss and "
                        "cross-entropy on this many seeds (default 0: skip)")
    search.add_argument("--baselines", metavar="A,B,...",
                        help="catalog losses the found one is compared with in the final "
                             "evaluation (default: cross_entropy, label_smoothed_cross_entropy, "
                             "poly1, focal)")
    search.add_argument("--final-steps", type=int, help="steps of the final trainings "
                        "(default: --steps, the length the search selected for)")
    search.add_argument("--seed", type=int, help="search seed (default 0)")
    search.add_argument("--data-dir", help="folder with MNIST/Fashion-MNIST/CIFAR-10 files")
    search.add_argument("--store", default=None, help=f"SQLite run store (default "
                        f"$SYMLOSS_STORE or ./{DEFAULT_STORE})")
    search.add_argument("--out", help="report folder (default runs/RUN_ID next to the store, "
                        "also for --resume: pass the run's earlier --out to write there again)")
    search.add_argument("--workers", type=int, help="local worker processes")
    search.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT")
    search.add_argument("--gpus-per-task", type=float, default=None,
                        help="Dask resource GPU per evaluation (workers declare GPU=N)")
    search.add_argument("--chunk", type=int, metavar="K", help="candidates trained together "
                        "per task (default: with --workers/--scheduler, a generation spread "
                        "evenly over the workers' threads (GPUs with --gpus-per-task), at "
                        "most what a worker's memory fits and, on a CPU, 32; in-process, the "
                        "whole generation)")
    search.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when present)")
    search.add_argument("--threads", type=int, help="CPU threads per training (default: 1 for "
                        "a candidate alone, every core for a batched population)")
    search.add_argument("--batched", action=argparse.BooleanOptionalAction, default=True,
                        help="train each generation's candidates together, stacked weights "
                        "in one pass (default: on where the model supports it; "
                        "--no-batched trains them one by one)")
    search.add_argument("--resume", metavar="RUN_ID", help="continue a stored run")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--no-progress", action="store_true", help="no progress bars")
    search.set_defaults(handler=_search)

    runs = commands.add_parser("runs", help="list the runs in a store (or delete one)")
    runs.add_argument("--store", default=None, help=f"SQLite run store (default "
                      f"$SYMLOSS_STORE or ./{DEFAULT_STORE})")
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.add_argument("--delete", metavar="RUN_ID", help="remove this run and all it stored "
                      "(refused while it runs)")
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", help="show one run")
    show.add_argument("run_id", help="the run to show (see `symloss runs`)")
    show.add_argument("--store", default=None, help="SQLite run store (default $SYMLOSS_STORE "
                      f"or ./{DEFAULT_STORE})")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--report", action="store_true", help="rebuild the run's report from "
                      "the store (no training)")
    show.add_argument("--out", help="folder for --report (default runs/RUN_ID next to the "
                      "store)")
    show.set_defaults(handler=_show)

    export = commands.add_parser("export", help="write a found loss as a standalone PyTorch "
                                 "module (imports only torch)")
    export.add_argument("run_id", help="the run whose candidate to export")
    export.add_argument("--rank", type=int, default=1, help="1: the best (default), 2: the "
                        "second best distinct loss, ...")
    export.add_argument("--store", default=None, help=f"SQLite run store (default "
                        f"$SYMLOSS_STORE or ./{DEFAULT_STORE})")
    export.add_argument("--out", required=True, help="the .py file to write (a new file; "
                        "never through a symbolic link)")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.add_argument("--class-name", default="FoundLoss", help="the module's class name "
                        "(default FoundLoss)")
    export.add_argument("--classes", type=int, default=10, help="n for the analysis in its "
                        "docstring (default 10)")
    export.set_defaults(handler=_export)


def _config_from(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config: ``base`` (a stored run's) overlaid with every flag given."""
    from symloss.harness.search.evaluate import Budget, parse_objective

    config: dict[str, Any] = dict(base) if base else {
        "algorithm": args.algorithm, "generations": 5, "population": None, "filter": "exact",
        "order": 3, "sigma0": None, "cma_generations": 3, "classes": 10, "smoothing": 0.0,
        "seed": 0, "final_seeds": 0, "final_steps": None, "budget": Budget().to_dict()}
    config["budget"] = dict(config["budget"])
    top = {"algorithm": args.algorithm, "generations": args.generations,
           "population": args.population, "filter": args.filter, "order": args.order,
           "sigma0": args.sigma0, "cma_generations": args.cma_generations,
           "smoothing": args.smoothing, "seed": args.seed, "final_seeds": args.final_seeds,
           "final_steps": args.final_steps,
           "min_target_probability": getattr(args, "min_target_probability", None),
           "baselines": _baselines(getattr(args, "baselines", None))}
    budget = {"dataset": args.dataset, "model": args.model, "steps": args.steps, "lr": args.lr,
              "batch_size": args.batch_size, "objective": args.objective,
              "data_dir": args.data_dir, "seed": args.seed, "device": args.device,
              "threads": getattr(args, "threads", None)}
    config.update({k: v for k, v in top.items() if v is not None})
    config["budget"].update({k: v for k, v in budget.items() if v is not None})
    validate_config(config)
    parse_objective(config["budget"]["objective"])
    return config


def _search(args: argparse.Namespace) -> int:
    from symloss.harness.search.executors import SchedulerLost, make_executor
    from symloss.harness.search.final import best_entry, stored_final
    from symloss.harness.search.lock import run_lock
    from symloss.harness.search.runner import best_candidates, search
    from symloss.harness.search.store import RunStore, store_path
    from symloss.paths import check_output_folder
    from symloss.report import strict_json

    store_file = store_path(args.store or default_store())
    if args.resume is not None and not re.fullmatch(r"\S{1,200}", args.resume):
        raise ValueError(f"--resume needs the id of a stored run, got {args.resume!r}")
    for flag, value in (("--workers", args.workers), ("--gpus-per-task", args.gpus_per_task),
                        ("--chunk", args.chunk)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be finite and > 0, got {value!r}")
    _check_executor_flags(args)
    if args.out is not None:
        check_output_folder("--out", args.out)
    if not args.resume and args.algorithm is None:
        raise ValueError("search needs the algorithm: taylorglo or glo (or --resume RUN_ID)")
    if not args.resume:  # a bad config or dataset leaves no store and no run behind
        _check_dataset(_search_config(_config_from(args)))
    with RunStore.open(store_file) as store:
        base = _stored_config(store, args.resume) if args.resume else None
        if args.resume and args.algorithm not in (None, base["algorithm"]):
            raise ValueError(f"--resume {args.resume}: run is {base['algorithm']}, "
                             f"not {args.algorithm}")
        config = _search_config(_config_from(args, base))
        if args.resume:
            _check_dataset(config)
        run_id = args.resume or uuid.uuid4().hex[:12]
        out = report_folder(args.out, store_file, run_id)
        resume_command = _resume_command(run_id, store_file, args.out)
        resources = {"GPU": args.gpus_per_task} if args.gpus_per_task else None
        with run_lock(store.path, run_id), _terminate_as_interrupt():
            try:
                executor = make_executor(args.workers, args.scheduler, resources,
                                         chunk=args.chunk, budget=config.budget)
            except SchedulerLost as error:
                raise ValueError(str(error)) from None
            reporter = _Reporter(config, quiet=args.no_progress, stream=sys.stderr)
            try:
                search(config, store=store, executor=executor, run_id=run_id,
                       resume=bool(args.resume), on_result=reporter.result,
                       on_generation=reporter.generation, batched=args.batched,
                       report_dir=str(out))
            except SchedulerLost as error:
                raise ValueError(f"{error}; resume with: {resume_command}") from None
            except KeyboardInterrupt:
                reporter.close()
                print(f"resume with: {resume_command}", file=sys.stderr)
                raise
            finally:
                reporter.close()
                executor.close()
            best = best_candidates(store, run_id, 1)
            try:  # paid once: each training is stored as it returns, a resume reuses them
                final = stored_final(store, run_id, config,
                                     announce=lambda line: print(line, file=sys.stderr))
            except KeyboardInterrupt:
                print(f"resume with: {resume_command}", file=sys.stderr)
                raise
            store.set_status(run_id, "finished")
            _say_where_the_report_goes(store.run(run_id).report_dir, out)
            report = _report(store, run_id, out, final)
        record = store.run(run_id)
        payload = {"run_id": run_id, "best": best_entry(best[0]) if best else None,
                   "counts": store.counts(run_id), "evaluations": record.evaluations,
                   "report": str(report), "report_dir": str(Path(report).parent),
                   "store": str(store_file)}
        if final is not None:
            payload["final"] = {key: final[key] for key in
                                ("test_accuracy", "baseline_test_accuracy", "p_value",
                                 "baselines", "best_baseline") if key in final}
    if args.json:
        print(strict_json(payload, indent=2))
    else:
        best_text = (f"{payload['best']['fitness']:.4f}  ℓ = {payload['best']['loss']}"
                     if payload["best"] else "none")
        print(f"run {run_id}: {payload['evaluations']} trainings, counts {payload['counts']}")
        print(f"best {best_text}")
        if final is not None:
            f = payload["final"]
            rows = f.get("baselines") or {"cross_entropy": {
                "test_accuracy": f["baseline_test_accuracy"], "p_value": f["p_value"]}}
            print(f"final test accuracy {_accuracy(f['test_accuracy'])}; against (one-sided "
                  "Welch p, H1: it beats the baseline):")
            for name, row in rows.items():
                print(f"  {name:<30} {_accuracy(row['test_accuracy'])}  "
                      f"p = {_rounded(row['p_value'])}")
        print(f"report {report}")
    return 0


def report_folder(out: str | os.PathLike | None, store_file: Path, run_id: str,
                  flag: str = "--out") -> Path:
    """Where a run's report goes: ``out`` (the user's ``--out``, checked), else
    ``runs/RUN_ID`` beside the store — never a folder read from the store."""
    from symloss.paths import check_output_folder

    if out is not None:
        return check_output_folder(flag, out)
    return check_output_folder("the report folder", default_report_folder(store_file, run_id))


def _say_where_the_report_goes(stored: str | None, out: Path) -> None:
    """A run reported elsewhere before (a resume without ``--out``) is told where its report
    goes now (the stored folder, quoted, is not written without the user's ``--out``)."""
    if stored is not None and Path(stored) != out:
        print(f"report: {out} (the run's earlier folder {stored!r} is written again only "
              "with --out naming it)", file=sys.stderr)


def _accuracy(summary: dict[str, Any]) -> str:
    """``mean ± std`` of a stored accuracy summary (``-`` where there is none)."""
    mean, std = (("-" if v is None else f"{v:.4f}") for v in (summary["mean"], summary["std"]))
    return f"{mean} ± {std}"


def _export(args: argparse.Namespace) -> int:
    from symloss.harness.search.export import (
        check_class_name,
        check_destination,
        export_source,
        run_loss,
        write_module,
    )

    check_destination(args.out, force=args.force)
    check_class_name(args.class_name)
    store_file = args.store or default_store()
    loss = run_loss(f"run:{args.run_id}:{args.rank}", store_file)
    origin = {"run": args.run_id, "rank": args.rank, "fitness": dict(loss.meta)["fitness"],
              "store": str(store_file)}
    text = export_source(loss, class_name=args.class_name, classes=args.classes, origin=origin)
    out = write_module(text, args.out, force=args.force)
    print(f"wrote {out}: {args.class_name}, ℓ(y, h) = {loss.expression}")
    return 0


def resolve_loss(spec: str, store: str | None = None):
    """The ``symloss.loss_resolvers`` entry point: ``run:ID[:rank]`` from ``store``."""
    from symloss.harness.search.export import run_loss

    return run_loss(spec, store or default_store())


def _baselines(text: str | None) -> list[str] | None:
    from symloss.harness.search.final import check_baselines

    if text is None:
        return None
    return list(check_baselines([name for name in text.split(",") if name.strip()]))


def _resume_command(run_id: str, store_file: Path, out: str | None = None) -> str:
    """The exact command that continues ``run_id`` (its config comes from the store; the
    report folder from this command's ``--out``, given again)."""
    import shlex

    command = (f"symloss search --resume {shlex.quote(run_id)} "
               f"--store {shlex.quote(str(store_file))}")
    return command + (f" --out {shlex.quote(out)}" if out is not None else "")


def _rounded(p_value: float | None) -> str:
    return "n/a" if p_value is None else f"{p_value:.2g}"


def _search_config(record: dict[str, Any]):
    from symloss.harness.search.runner import SearchConfig

    return SearchConfig.from_dict(record)


def _stored_config(store, run_id: str) -> dict[str, Any]:
    """The run's stored config, checked (a damaged run is one line naming what is damaged)."""
    record = store.run(run_id)
    try:
        _search_config(record.config)
    except ValueError as error:
        raise ValueError(f"run {run_id} in {store.path} is damaged: {error}") from None
    return record.config


def _report(store, run_id: str, out: Path, final: dict[str, Any] | None,
            update_store: bool = True) -> Path:
    """Write the report; a failure is one line that says the results are safe in the store."""
    from symloss.harness.search.final import write_report

    try:
        return write_report(store, run_id, out, final, update_store=update_store)
    except OSError as error:
        raise ValueError(f"the report could not be written to {out}: {error}; every result is "
                         f"stored: rebuild it with symloss show {run_id} --report "
                         f"--store {store.path} --out DIR") from None


def default_report_folder(store_file: Path, run_id: str) -> Path:
    """``runs/RUN_ID`` beside the store (a run id that is not a plain name is not a path)."""
    name = run_id if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id) else "run"
    return store_file.parent / "runs" / name


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a search as Ctrl-C does: the run is marked interrupted, resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_dataset(config) -> None:
    """Load the dataset once here and try the model on it: a missing or broken file, or data
    the model cannot take, is one line before any training."""
    from symloss.harness.search.evaluate import check_budget

    check_budget(config.budget)


def _check_executor_flags(args: argparse.Namespace) -> None:
    """Workers, chunk and scheduler refused before the dataset loads or a store is made."""
    from symloss.harness.search.executors import (
        SchedulerLost,
        check_chunk,
        check_scheduler,
        check_workers,
    )

    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers and --scheduler are exclusive: choose one")
    if args.workers is not None:
        check_workers(args.workers)
    check_chunk(args.chunk)
    if args.scheduler is not None:
        try:
            check_scheduler(args.scheduler)
        except SchedulerLost as error:
            raise ValueError(str(error)) from None


class _Reporter:
    """A progress bar per generation and a one-line summary after each."""

    def __init__(self, config, *, quiet: bool, stream):
        self.config, self.quiet, self.stream = config, quiet, stream
        self.bar = None
        self.total_evaluations, self.total_seconds = 0, 0.0

    def result(self, record) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=f"generation {record.generation}", unit="cand", leave=False,
                            file=self.stream, mininterval=0.5)
        self.bar.update(1)

    def generation(self, summary) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.total_evaluations += summary.evaluations
        self.total_seconds += summary.seconds
        rate = summary.evaluations / summary.seconds if summary.seconds else 0.0
        counts = summary.counts
        print(f"gen {summary.generation:>3}: best {summary.best:.4f} median {summary.median:.4f} "
              f"| trained {summary.evaluations} filtered {counts.get('filtered', 0)} diverged "
              f"{counts.get('diverged', 0)} failed {counts.get('failed', 0)} | "
              f"{rate:.2f} eval/s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _runs(args: argparse.Namespace) -> int:
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    if args.delete is not None:
        return _delete(args.store or default_store(), args.delete)
    with RunStore.open(args.store or default_store(), readonly=True) as store:
        runs = store.runs()
        path = store.path
    rows = [{"run_id": r.run_id, "algorithm": r.algorithm, "status": _status(r, path),
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
        if row["damage"]:
            print(f"{row['run_id']}  damaged: {row['damage']}")
            continue
        best = "-" if row["best_fitness"] is None else f"{row['best_fitness']:.4f}"
        print(f"{row['run_id']}  {row['algorithm']:<9} {row['dataset'] or ''!s:<8} "
              f"{row['status']:<11} evaluations {row['evaluations']:>4}  best {best}  "
              f"created {row['created']}  updated {row['updated']}")
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
    print(f"deleted run {run_id} ({removed} candidates)")
    return 0


def _status(run, store_file: Path) -> str:
    """The stored status, except that a ``running`` run no live process holds is ``stopped``
    (killed by SIGKILL or a lost machine: ``--resume`` continues it)."""
    from symloss.harness.search.lock import holder_alive

    if run.status == "running" and holder_alive(store_file, run.run_id) is False:
        return "stopped"
    return run.status


def _show(args: argparse.Namespace) -> int:
    from symloss.harness.search.final import best_entry
    from symloss.harness.search.runner import best_candidates
    from symloss.harness.search.store import RunStore
    from symloss.report import strict_json

    store_file = args.store or default_store()
    if args.out is not None and not args.report:
        raise ValueError("--out applies to --report only (show --report --out DIR)")
    with RunStore.open(store_file, readonly=True) as store:
        run = store.run(args.run_id)
        _stored_config(store, run.run_id)
        if args.report:
            out = report_folder(args.out, store.path, run.run_id)
            report = _report(store, run.run_id, out, store.final(run.run_id),
                             update_store=False)
            print(f"report {report}")
            return 0
        payload = {"run_id": run.run_id, "algorithm": run.algorithm,
                   "status": _status(run, store.path),
                   "config": run.config, "evaluations": run.evaluations,
                   "best_fitness": run.best_fitness, "counts": store.counts(run.run_id),
                   "generations": store.generation_summary(run.run_id),
                   "best": [best_entry(r) for r in best_candidates(store, run.run_id, 5)],
                   "final": store.final(run.run_id), "report_dir": run.report_dir,
                   "report": (str(Path(run.report_dir) / "report.md") if run.report_dir
                              else None)}
    if args.json:
        print(strict_json(payload, indent=2))
        return 0
    print(f"run {run.run_id} ({run.algorithm}, {payload['status']}): {run.evaluations} "
          f"trainings, "
          f"counts {payload['counts']}")
    for row in payload["generations"]:
        best, median = (("-" if v is None else f"{v:.4f}")
                        for v in (row["best_fitness"], row["median_fitness"]))
        print(f"  gen {row['generation']:>3}: best {best} median {median}")
    for row in payload["best"]:
        print(f"  {row['fitness']:.4f}  ℓ = {row['loss']}")
    if payload["final"]:
        final = payload["final"]
        print(f"  final test accuracy {_accuracy(final['test_accuracy'])} vs cross-entropy "
              f"{_accuracy(final['baseline_test_accuracy'])} (p = "
              f"{_rounded(final['p_value'])})")
    if run.report_dir:
        print(f"report {Path(run.report_dir) / 'report.md'}")
    return 0
