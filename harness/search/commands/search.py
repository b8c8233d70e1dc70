"""``symloss search``: a TaylorGLO or GLO loss-function search from the command line.

The command parses and prints; the search is :func:`symloss.harness.search.pipeline.run_search`,
the one pipeline the Python API runs too. Nothing paid is lost, nothing is paid twice:
every flag is checked (finite, in range), the report folder validated
(:mod:`symloss.paths`) and, for a new run, the dataset tried on the model before a run
is created; a run trains under its lock (a second ``--resume`` of a running run, or
``runs --delete`` of it, is refused in one line); SIGTERM stops a search as Ctrl-C does
(the run is marked ``interrupted``, resumable, and the exact ``--resume`` command is
printed); the final evaluation's trainings are stored as they return and the result
before the report is written, both reused on resume.

Reports go only where the user says: ``--out``, else ``runs/RUN_ID`` beside the store —
never to a folder read from the store. The run's config is
:class:`~symloss.harness.search.runner.SearchConfig`'s defaults (a new run) or the
stored run's (``--resume``), overlaid with every flag given.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from symloss.harness.search.commands.common import (
    accuracy,
    add_store_option,
    rounded,
    search_config,
    stored_config,
)
from symloss.harness.search.strategies import algorithm_names
from symloss.rules import rule_names

FILTERS = rule_names()  # symloss.rules: the one list of filters
ALGORITHMS = algorithm_names()  # the strategies' registry (reading it imports no pycma)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    search = commands.add_parser(
        "search", help="TaylorGLO or GLO loss-function search with derived invariants")
    for add in (_add_search_options, _add_candidate_options, _add_final_options,
                _add_place_options, _add_execution_options, _add_run_options):
        add(search)
    search.set_defaults(handler=run)
    return search


def _add_search_options(search: argparse.ArgumentParser) -> None:
    """What is searched, and how long each candidate trains."""
    search.add_argument("algorithm", nargs="?", choices=ALGORITHMS,
                        help=f"{' or '.join(ALGORITHMS)} (with --resume: the run's)")
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
    search.add_argument("--horizon", type=int, metavar="STEPS",
                        help="the training length you care about: the final evaluation trains "
                             "at it, successive halving's last rung (default 5 x --steps)")
    search.add_argument("--reduction-factor", type=int, metavar="ETA",
                        help="successive halving: the best 1/ETA of a generation train again "
                             "at steps x ETA, ... up to --horizon; each candidate is told its "
                             "fitness at the longest length it reached (default 3; 1: one "
                             "fidelity, every candidate at --steps only)")
    search.add_argument("--model-steps", type=int, metavar="N",
                        help="compute budget in model-steps (a training of S steps costs S): "
                             "the search ends after the generation that reaches it")


def _add_candidate_options(search: argparse.ArgumentParser) -> None:
    """Which candidates are trained, and how one is scored and parameterized."""
    search.add_argument("--filter", choices=FILTERS, help="candidate filter (symloss.rules): "
                        "lasting (default: stable, and zero error pulling no harder than "
                        "lim Δ = 3), exact (first principles), paper (ICLR Theorem 3), stable "
                        "(exact, and the null epoch's basin is zero error or an equilibrium "
                        "with target probability >= --min-target-probability), equilibrium "
                        "(an equilibrium basin only), none")
    search.add_argument("--min-target-probability", type=float, help="the stable filter's "
                        "bound on the null epoch's equilibrium (default 0.25: "
                        "symloss.stability_batch.DEFAULT_MIN_TARGET_PROBABILITY)")
    search.add_argument("--objective", help="val (default) or fgsm:EPS")
    search.add_argument("--order", type=int, help="TaylorGLO order (default 3)")
    search.add_argument("--sigma0", type=float, help="CMA-ES initial step (default: TaylorGLO "
                        "1.2, GLO 1.5)")
    search.add_argument("--label-smoothing", "--smoothing", dest="smoothing", type=float,
                        metavar="ALPHA", help="label smoothing for the analysis and filters")


def _add_final_options(search: argparse.ArgumentParser) -> None:
    """The final evaluation: the best loss retrained against the baselines."""
    search.add_argument("--final-seeds", type=int, help="retrain the best loss and "
                        "cross-entropy on this many seeds (default 0: skip)")
    search.add_argument("--baselines", metavar="A,B,...",
                        help="catalog losses the found one is compared with in the final "
                             "evaluation (default: cross_entropy, label_smoothed_cross_entropy, "
                             "poly1, focal)")
    search.add_argument("--final-steps", type=int, help="steps of the final trainings "
                        "(default: --horizon)")


def _add_place_options(search: argparse.ArgumentParser) -> None:
    """The seed, and where the data, the store and the report are."""
    search.add_argument("--seed", type=int, help="search seed (default 0)")
    search.add_argument("--data-dir", help="folder with MNIST/Fashion-MNIST/CIFAR-10 files")
    add_store_option(search)
    search.add_argument("--out", help="report folder (default runs/RUN_ID next to the store, "
                        "also for --resume: pass the run's earlier --out to write there again)")


def _add_execution_options(search: argparse.ArgumentParser) -> None:
    """Where and how the candidates train: processes, a Dask cluster, device, threads."""
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
    search.add_argument("--threads", type=int, help="CPU threads per training (default 1; "
                        "recorded: more threads change the numbers, as a faster run's price)")
    search.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                        help="train each generation's candidates together, stacked weights "
                        "in one pass (default: on where the model supports it; "
                        "--no-batched trains them one by one; recorded with the run)")


def _add_run_options(search: argparse.ArgumentParser) -> None:
    """Which run, and what is printed."""
    search.add_argument("--resume", metavar="RUN", help="continue a stored run (its id or name)")
    search.add_argument("--name", help="name the run, unique in its store (then show NAME, "
                        "run:NAME, --resume NAME)")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Check every flag, run the pipeline, print the result (text or ``--json``)."""
    from symloss.harness.search.executors import SchedulerLost
    from symloss.harness.search.pipeline import run_search, store_file
    from symloss.harness.search.store import RunStore

    path = store_file(args.store)
    _check_flags(args)
    if not args.resume:  # a bad config, device or dataset leaves no store and no run behind
        config = search_config(_config_from(args))
    else:
        with RunStore.open(path) as store:
            base = stored_config(store, args.resume)
        if args.algorithm not in (None, base["algorithm"]):
            raise ValueError(f"--resume {args.resume}: run is {base['algorithm']}, "
                             f"not {args.algorithm}")
        config = search_config(_config_from(args, base))
    _check_device(config, args.scheduler)
    _check_dataset(config)
    try:
        outcome = run_search(
            config, store=path, run_id=args.resume, resume=bool(args.resume),
            report_dir=args.out, report_flag="--out", workers=args.workers, name=args.name,
            scheduler=args.scheduler, chunk=args.chunk,
            resources={"GPU": args.gpus_per_task} if args.gpus_per_task else None,
            batched=config.batched is not False, progress=not args.no_progress,
            announce=lambda line: print(line, file=sys.stderr), stop_on_sigterm=True,
            resume_hint=lambda run_id, store: "resume with: "
            + resume_command(run_id, store, args.out))
    except SchedulerLost as error:
        raise ValueError(str(error)) from None
    _print(_payload(outcome), as_json=args.json)
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    """The flags no config holds, checked before the dataset loads or a store is made."""
    from symloss.paths import check_output_folder

    if args.resume is not None and not re.fullmatch(r"\S{1,200}", args.resume):
        raise ValueError(f"--resume needs the id of a stored run, got {args.resume!r}")
    for flag, value in (("--workers", args.workers), ("--gpus-per-task", args.gpus_per_task),
                        ("--chunk", args.chunk)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be finite and > 0, got {value!r}")
    if args.gpus_per_task is not None and args.scheduler is None:
        raise ValueError("--gpus-per-task applies to --scheduler only (a Dask resource): "
                         "search ... --scheduler tcp://HOST:PORT --gpus-per-task N")
    _check_executor_flags(args)
    if args.out is not None:
        check_output_folder("--out", args.out)
    if not args.resume and args.algorithm is None:
        raise ValueError(f"search needs the algorithm: {' or '.join(ALGORITHMS)} (or --resume "
                         "RUN_ID)")


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


def _config_from(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config: ``base`` (a stored run's; default :class:`SearchConfig`'s defaults)
    overlaid with every flag given, checked."""
    from symloss.harness.search.config import validate_config, with_defaults
    from symloss.harness.search.evaluate import parse_objective
    from symloss.harness.search.runner import SearchConfig

    config = dict(base) if base else SearchConfig(algorithm=args.algorithm).to_dict()
    config["budget"] = dict(config["budget"])
    top = {"algorithm": args.algorithm, "generations": args.generations,
           "population": args.population, "filter": args.filter, "order": args.order,
           "sigma0": args.sigma0, "cma_generations": args.cma_generations,
           "smoothing": args.smoothing, "seed": args.seed, "final_seeds": args.final_seeds,
           "final_steps": args.final_steps,
           "min_target_probability": args.min_target_probability,
           "baselines": _baselines(args.baselines), "horizon": args.horizon,
           "reduction_factor": args.reduction_factor, "model_steps": args.model_steps,
           "batched": args.batched}
    budget = {"dataset": args.dataset, "model": args.model, "steps": args.steps, "lr": args.lr,
              "batch_size": args.batch_size, "objective": args.objective,
              "data_dir": args.data_dir, "seed": args.seed, "device": args.device,
              "threads": args.threads}
    config.update({k: v for k, v in top.items() if v is not None})
    config["budget"].update({k: v for k, v in budget.items() if v is not None})
    if not base:
        config = with_defaults(config)
    validate_config(config)
    parse_objective(config["budget"]["objective"])
    return config


def _baselines(text: str | None) -> list[str] | None:
    from symloss.harness.search.final import check_baselines

    if text is None:
        return None
    return list(check_baselines([name for name in text.split(",") if name.strip()]))


def _check_device(config, scheduler: str | None) -> None:
    """The device refused here as ``train`` refuses it (a missing CUDA device would fail
    every candidate); with ``--scheduler`` the workers' devices count, not this machine's."""
    from symloss.harness.device import resolve_device

    if scheduler is None:
        resolve_device(config.budget.device)


def _check_dataset(config) -> None:
    """Load the dataset once here and try the model on it: a missing or broken file, or data
    the model cannot take, is one line before any training."""
    from symloss.harness.search.evaluate import check_budget

    check_budget(config.budget)


def resume_command(run_id: str, store_file: Path, out: str | None = None) -> str:
    """The exact command that continues ``run_id`` (its config comes from the store; the
    report folder from this command's ``--out``, given again).

    >>> resume_command("3f2a", Path("my runs.sqlite"), "out")
    "symloss search --resume 3f2a --store 'my runs.sqlite' --out out"
    """
    command = (f"symloss search --resume {shlex.quote(run_id)} "
               f"--store {shlex.quote(str(store_file))}")
    return command + (f" --out {shlex.quote(out)}" if out is not None else "")


def _payload(outcome) -> dict[str, Any]:
    """``search --json``'s object: the run, its best, counts, report and final evaluation."""
    from symloss.harness.search.final import best_entry

    payload = {"run_id": outcome.run_id,
               "best": best_entry(outcome.top[0]) if outcome.top else None,
               "counts": outcome.counts, "evaluations": outcome.evaluations,
               "report": str(outcome.report), "report_dir": str(Path(outcome.report).parent),
               "store": str(outcome.store)}
    if outcome.compute is not None:
        payload["compute"] = outcome.compute
    if outcome.final is not None:
        payload["final"] = {key: outcome.final[key] for key in
                            ("test_accuracy", "baseline_test_accuracy", "p_value",
                             "baselines", "best_baseline") if key in outcome.final}
    return payload


def _print(payload: dict[str, Any], *, as_json: bool) -> None:
    """The result: one JSON object, or the best loss, its final evaluation and the report."""
    from symloss.report import strict_json

    if as_json:
        print(strict_json(payload, indent=2))
        return
    best_text = (f"{payload['best']['fitness']:.4f}  ℓ = {payload['best']['loss']}"
                 if payload["best"] else "none")
    compute = payload.get("compute") or {}
    longer = f" + {compute['rung_trainings']} longer" if compute.get("rung_trainings") else ""
    paid = f" ({compute['model_steps']:,} model-steps)" if compute else ""
    print(f"run {payload['run_id']}: {payload['evaluations']} trainings{longer}{paid}, counts "
          f"{payload['counts']}")
    print(f"best {best_text}")
    if "final" in payload:
        final = payload["final"]
        rows = final.get("baselines") or {"cross_entropy": {
            "test_accuracy": final["baseline_test_accuracy"], "p_value": final["p_value"]}}
        print(f"final test accuracy {accuracy(final['test_accuracy'])}; against (one-sided "
              "Welch p, H1: it beats the baseline):")
        for name, row in rows.items():
            print(f"  {name:<30} {accuracy(row['test_accuracy'])}  "
                  f"p = {rounded(row['p_value'])}")
    print(f"report {payload['report']}")
