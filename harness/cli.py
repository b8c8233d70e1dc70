"""``symloss train``: train any symloss loss on a real model, over seeds, optionally compared.

This module imports no torch at import time (``symloss analyze`` stays fast);
the handler imports the harness when it runs. :func:`register` adds the
subcommand to the ``symloss`` parser's subparsers.

    symloss train --loss baikal --compare cross_entropy --dataset mnist1d --seeds 3 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from symloss.figures import display_name

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The most seeds one ``train`` runs. Each seed is a whole training (seconds to hours), its
#: result kept and printed: 10,000 of the fastest (13 trainings/s batched,
#: benchmarks/RESULTS.md) take 13 minutes, and a Welch test's p-value has long settled.
MAX_SEEDS = 10_000

#: Training samples ``--attraction-log`` follows unless ``--attraction-samples`` says.
ATTRACTION_SAMPLES = 500


def register(subparsers) -> None:
    """Add the harness's commands (train, search, runs, show, export) to the ``symloss`` CLI."""
    from symloss.harness.search.commands import register as register_search

    register_train(subparsers)
    register_search(subparsers)


def register_train(subparsers) -> argparse.ArgumentParser:
    """Add ``train`` to an ``argparse`` subparsers object; its handler is ``args.handler``."""
    parser = subparsers.add_parser(
        "train", help="train a model with a loss (torch harness)",
        description="Train a model with any symloss loss over seeds; report test accuracy "
                    "(mean ± std), optionally against a second loss with a Welch t-test.")
    parser.add_argument("--loss", required=True,
                        help="catalog name (baikal, cross_entropy, taylorglo, ...), a formula "
                             "in y and h, or run:ID[:rank] (a stored search's candidate)")
    parser.add_argument("--params", nargs="+", metavar="X",
                        help="a family's parameter values (space- or comma-separated)")
    parser.add_argument("--order", type=int, default=3, help="TaylorGLO order (default 3)")
    parser.add_argument("--store", help="run store for --loss run:ID[:rank] (default "
                        "$SYMLOSS_STORE or ./symloss-runs.sqlite)")
    parser.add_argument("--dataset", default="mnist1d",
                        help="mnist1d (default), digits, mnist, fashion_mnist, cifar10")
    parser.add_argument("--model", help="model name (default: the dataset's paper model)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="training steps")
    length.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--seeds", type=int, default=1, metavar="K", help="seeds 0..K-1")
    parser.add_argument("--compare", metavar="LOSS2", help="also train LOSS2 on the same seeds")
    parser.add_argument("--fgsm", metavar="E1,E2,...",
                        help="test accuracy under FGSM at these strengths (raw input units)")
    parser.add_argument("--attraction-log", action="store_true",
                        help="log per-sample attraction each epoch (ICLR Fig. 1); with --out, "
                             "save CSV and scatter plot")
    parser.add_argument("--attraction-samples", type=int, default=None, metavar="N",
                        help="training samples followed by --attraction-log (default "
                             f"{ATTRACTION_SAMPLES})")
    parser.add_argument("--label-smoothing", "--smoothing", dest="label_smoothing", type=float,
                        default=0.0, metavar="ALPHA",
                        help="label smoothing α: y → y(1−α) + α/n (default 0)")
    parser.add_argument("--loss-scale", choices=("sum", "paper"), default="sum",
                        help="sum: Σ_k ℓ per sample, nn.CrossEntropyLoss for cross-entropy "
                             "(default, what the papers' experiments trained); paper: the "
                             "papers' equations' (1/n) Σ_k ℓ")
    parser.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                        help="train the seeds together, stacked (default: where it measured "
                             "faster: the small models, and any batchable model on a GPU)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    parser.add_argument("--batch-size", type=int,
                        help="minibatch size (default: the model's, e.g. 100 for GLO's CNN)")
    parser.add_argument("--threads", type=int, help="CPU threads (default 1)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument("--data-dir", help="folder with MNIST/Fashion-MNIST IDX files or "
                                           "CIFAR-10 python batches")
    parser.add_argument("--out", help="folder for result.json (and attraction logs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_train)
    return parser


class UsageError(ValueError):
    """A user error: reported as one line, exit code 2."""


def _floats(values: Sequence[str] | str | None, what: str) -> list[float] | None:
    if values is None:
        return None
    parts = [values] if isinstance(values, str) else list(values)
    tokens = [token for part in parts for token in part.replace(",", " ").split()]
    try:
        return [float(token) for token in tokens]
    except ValueError:
        raise UsageError(f"{what} must be numbers, got {' '.join(parts)!r}") from None


def _build_loss(spec: str, order: int, params: list[float] | None, store: str | None = None):
    """The loss ``--loss``/``--compare`` names (:func:`symloss.resolve.resolve_loss`), bound."""
    from symloss.resolve import resolve_loss

    try:
        built = resolve_loss(spec, order=order, params=params, store=store)
    except ValueError as error:  # FormulaError is a ValueError
        raise UsageError(str(error)) from None
    if built.is_family:
        raise UsageError(f"loss {built.name!r} is a family with {len(built.parameters)} "
                         "parameters; give their values with --params")
    return built


def _summary(values: list[float | None]) -> dict[str, object]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else None
    std = None
    if len(finite) > 1:
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
    elif finite:
        std = 0.0
    return {"mean": mean, "std": std, "per_seed": values}


def _worst(statuses: list[str]) -> str:
    for status in ("failed", "diverged"):
        if status in statuses:
            return status
    return "ok"


def _batched(config, seeds: int, args) -> bool:
    """Whether the seeds train together, stacked (``--batched``, else where it pays)."""
    from symloss.harness.batched import batching_pays

    batched = args.batched if args.batched is not None else batching_pays(
        config.model, config.model_options, config.device)
    return bool(batched and seeds > 1 and not config.attraction_samples)


def _train_seeds(loss, data, config, seeds: int, args, out: Path | None) -> dict[str, object]:
    from symloss.harness.batched import train_population
    from symloss.harness.train import train

    if _batched(config, seeds, args):
        results = train_population([loss] * seeds, data, config, seed=list(range(seeds)))
    else:
        results = [train(loss, data, config, seed=seed) for seed in range(seeds)]
    record: dict[str, object] = {
        "loss": loss.name, "formula": str(loss.expression),
        "status": _worst([r.status for r in results]),
        "test_accuracy": _summary([r.metrics["test_accuracy"] for r in results]),
        "val_accuracy": _summary([r.metrics["val_accuracy"] for r in results]),
        "seconds": sum(r.seconds for r in results),
    }
    if config.fgsm:
        record["fgsm_accuracy"] = {
            key: _summary([(r.metrics.get("fgsm_accuracy") or {}).get(key) for r in results])
            for key in (str(float(e)) for e in config.fgsm)}
    errors = [r.error for r in results if r.error]
    if errors:
        record["errors"] = errors
    if out is not None:
        stem = loss.name.replace("/", "_")
        for result in results:
            if result.attraction is not None:
                result.attraction.save(out / f"attraction-{stem}-seed{result.seed}.csv")
                result.attraction.plot(out / f"attraction-{stem}-seed{result.seed}.png",
                                       title=f"{display_name(loss.name)} on {data.name}, "
                                             f"seed {result.seed}")
        record["runs"] = [r.to_dict() for r in results]
    return record


def run_train(args: argparse.Namespace) -> int:
    """The ``train`` handler: returns the exit code; user errors print one line, code 2."""
    try:
        return _run(args)
    except UsageError as error:
        print(f"symloss: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _check_flags(args: argparse.Namespace) -> Path | None:
    """Every number a flag scales checked, and ``--out`` checked, before anything is built:
    the ``--out`` folder, or ``None``."""
    from symloss.harness.device import check_learning_rate, check_threads
    from symloss.paths import check_output_folder

    if not 1 <= args.seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds must be a whole number from 1 to {MAX_SEEDS}, "
                         f"got {args.seeds}")
    if args.attraction_samples is not None and not args.attraction_log:
        raise UsageError("--attraction-samples applies to --attraction-log only (train ... "
                         "--attraction-log --attraction-samples N)")
    if args.attraction_samples is not None and args.attraction_samples < 1:
        raise UsageError(f"--attraction-samples must be a whole number >= 1, got "
                         f"{args.attraction_samples}")
    try:
        if args.threads is not None:
            check_threads(args.threads, "--threads")
        if args.lr is not None:
            check_learning_rate(args.lr, "--lr")
        return None if args.out is None else check_output_folder("--out", args.out)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    out = _check_flags(args)
    loss = _build_loss(args.loss, args.order, _floats(args.params, "--params"), args.store)
    other = _build_loss(args.compare, args.order, None, args.store) if args.compare else None
    fgsm = _floats(args.fgsm, "--fgsm") or []
    if any(not math.isfinite(e) or e < 0 for e in fgsm):
        raise UsageError(f"--fgsm strengths must be finite and >= 0, got {args.fgsm!r}")

    from symloss.harness.data import DataError, load_dataset
    from symloss.harness.models import check_model_input
    from symloss.harness.train import TrainConfig

    try:
        data = load_dataset(args.dataset, data_dir=args.data_dir)
        config = TrainConfig(
            model=args.model, steps=args.steps, epochs=args.epochs, lr=args.lr,
            batch_size=args.batch_size, label_smoothing=args.label_smoothing,
            loss_scale=args.loss_scale,
            attraction_samples=(args.attraction_samples or ATTRACTION_SAMPLES)
            if args.attraction_log else 0,
            fgsm=tuple(fgsm), threads=args.threads, device=args.device,
            progress=not args.no_progress and not args.json and sys.stderr.isatty(),
        ).resolved(data.name)
        check_model_input(config.model, data.input_shape, data.classes,
                          source=data.source or data.name, **config.model_options)
    except (DataError, ValueError) as error:
        raise UsageError(str(error)) from None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"dataset": data.name, "model": config.model,
                                 "seeds": list(range(args.seeds)),
                                 **_train_seeds(loss, data, config, args.seeds, args, out)}
    if other is not None:
        compared = _train_seeds(other, data, config, args.seeds, args, out)
        from symloss.harness.stats import welch_p_value

        # one-sided Welch, H1: --loss beats --compare (the test of every report here)
        compared["p_value"] = welch_p_value(report["test_accuracy"]["per_seed"],
                                            compared["test_accuracy"]["per_seed"])
        report["compare"] = compared
    from symloss.harness.device import DEFAULT_CPU_THREADS, resolve_device
    from symloss.harness.provenance import environment

    # how it was made: versions, machine, the device, threads and batching it trained with
    report["provenance"] = {**environment(device=str(resolve_device(config.device)),
                                          threads=config.threads or DEFAULT_CPU_THREADS),
                            "batched": _batched(config, args.seeds, args)}
    if out is not None:
        (out / "result.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        report = _without_runs(report)
    if args.json:
        print(json.dumps(report, default=str))
    else:
        _print_report(report, args.seeds)
    statuses = [report["status"], *([report["compare"]["status"]] if other is not None else [])]
    return EXIT_FAILED if "failed" in statuses else EXIT_OK


def _without_runs(report: dict[str, object]) -> dict[str, object]:
    slim = {key: value for key, value in report.items() if key != "runs"}
    if "compare" in slim:
        slim["compare"] = {k: v for k, v in slim["compare"].items() if k != "runs"}
    return slim


def _format(summary: dict[str, object]) -> str:
    if summary["mean"] is None:
        return "n/a"
    return f"{summary['mean']:.4f} ± {summary['std']:.4f}"


def _print_report(report: dict[str, object], seeds: int) -> None:
    print(f"{report['dataset']} / {report['model']}, {seeds} seed(s)")
    rows = [report, *([report["compare"]] if "compare" in report else [])]
    for row in rows:
        line = (f"  {row['loss']:<16} test accuracy {_format(row['test_accuracy'])}  "
                f"[{row['status']}, {row['seconds']:.1f}s]")
        for key, summary in (row.get("fgsm_accuracy") or {}).items():
            line += f"  fgsm {key}: {_format(summary)}"
        print(line)
    if "compare" in report:
        p_value = report["compare"]["p_value"]
        print(f"  one-sided Welch p = {p_value:.2g} (H1: {report['loss']} beats "
              f"{report['compare']['loss']})" if p_value is not None
              else "  one-sided Welch test: needs >= 2 seeds per loss")
