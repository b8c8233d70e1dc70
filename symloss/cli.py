"""The ``symloss`` command line.

``analyze`` and ``curve`` live here and never import torch. Other commands
(``train``, ``search``, ...) come from packages that register an entry point in
the ``symloss.commands`` group: a callable ``register(subparsers)``. That keeps
the arrow one way: ``harness`` plugs into ``symloss``, ``symloss`` never imports
``harness``.

User errors print one line on stderr and exit with code 2; no traceback
(set ``SYMLOSS_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from symloss.errors import SettingError
from symloss.formula import FormulaError
from symloss.guard import CALL_SECONDS, MAX_SECONDS, bounded, check_seconds
from symloss.paths import check_output_file

EXIT_USAGE = 2
COMMAND_GROUP = "symloss.commands"


class UsageError(ValueError):
    """A user error reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_floats(text: str) -> list[float]:
    """``"0,-1,2.5"`` (or ``["0", "-1", "2.5"]``) → ``[0.0, -1.0, 2.5]``; a clear error
    for anything else.

    >>> parse_floats("0, -1,2.5"), parse_floats(["0", "-1,2.5"])
    ([0.0, -1.0, 2.5], [0.0, -1.0, 2.5])
    >>> parse_floats("nan,1")
    Traceback (most recent call last):
    ...
    symloss.cli.UsageError: --params must be finite numbers, got 'nan'
    """
    if not isinstance(text, str):  # several arguments: "1 2,3" as one list
        text = ",".join(text)
    try:
        values = [float(part) for part in text.replace(" ", ",").split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--params must be comma-separated numbers, got {text!r}") from None
    for part, value in zip((p for p in text.split(",") if p.strip()), values, strict=True):
        if not math.isfinite(value):
            raise UsageError(f"--params must be finite numbers, got {part.strip()!r}")
    return values


#: Characters that make a leading-minus argument a formula, not an option.
_FORMULA_CHARACTERS = set("()*/+^ .,")


def formula_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` with formulas that start with ``-`` kept from looking like options.

    ``symloss analyze "-y*log(h+0.01)"`` would otherwise fail as an unknown
    option; a leading space makes argparse take it as a value (formulas and
    ``--params`` lists are stripped before use). Nothing after ``--`` changes.

    >>> formula_arguments(["analyze", "-y*log(h)", "--params", "-1,2", "--classes", "-3"])
    ['analyze', ' -y*log(h)', '--params', ' -1,2', '--classes', '-3']
    """
    result = list(argv)
    for index, argument in enumerate(result):
        if argument == "--":
            break
        if (len(argument) > 1 and argument[0] == "-" and argument[1] != "-"
                and _FORMULA_CHARACTERS & set(argument[1:])):
            result[index] = " " + argument
    return result


def _load_loss(spec: str, order: int, params: str | None, store: str | None = None):
    """The loss a command's argument names (:func:`symloss.resolve.resolve_loss`)."""
    from symloss.resolve import resolve_loss

    values = parse_floats(params) if params is not None else None
    return resolve_loss(spec, order=order, params=values, store=store)


def _add_loss_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", type=int, default=10, help="number of classes n (default 10)")
    parser.add_argument("--label-smoothing", "--smoothing", dest="smoothing", type=float,
                        default=0.0, metavar="ALPHA", help="label smoothing α in [0, 1)")
    parser.add_argument("--params", nargs="+", metavar="X",
                        help="a family's parameter values (space- or comma-separated)")
    parser.add_argument("--order", type=int, default=3, help="TaylorGLO order (default 3)")
    parser.add_argument("--store", help="run store for run:ID[:rank] losses (default "
                        "$SYMLOSS_STORE or ./symloss-runs.sqlite)")
    parser.add_argument("--seconds", type=float, default=CALL_SECONDS, metavar="S",
                        help=f"the symbolic work's budget: past it a step is undecided "
                             f"(default {CALL_SECONDS:g}; at most {MAX_SECONDS:g})")


def _command_analyze(args: argparse.Namespace) -> int:
    from symloss.analysis import STEP_SECONDS, analyze
    from symloss.outlook import analysis_outlook
    from symloss.report import finite as strict
    from symloss.report import format_report

    check_seconds("--seconds", args.seconds)
    started = time.monotonic()
    loss = _load_loss(args.loss, args.order, args.params, args.store)
    result = analyze(loss, classes=args.classes, smoothing=args.smoothing,
                     seconds=min(STEP_SECONDS, args.seconds), total_seconds=args.seconds)
    # LaTeX gets what the budget has left, and a second at least (a spent budget)
    latex = result.latex(max(args.seconds - (time.monotonic() - started), 1.0)) \
        if args.latex else {}
    lasting = analysis_outlook(result)
    if args.json:
        payload = result.to_dict()
        payload["outlook"] = strict(lasting)
        if args.latex:
            payload["latex"] = latex
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(format_report(result))
        print(f"\nWill it last? {lasting['text']}")
        if args.latex:
            print("\nLaTeX")
            for name, text in latex.items():
                print(f"  {name}: {text or 'undecided (not printed within --seconds)'}")
    return 0


def _command_curve(args: argparse.Namespace) -> int:
    from symloss.curves import attraction_table, plot_attraction, write_csv
    from symloss.figures import figure_format

    losses = [_load_loss(spec, args.order, args.params, args.store) for spec in args.losses]
    for item in losses:
        if item.is_family:
            raise UsageError(f"{item.name} is a family: give --params to draw one member's curve")
    names = [item.name for item in losses]
    if len(set(names)) != len(names):  # two formulas: name them by their text
        losses = [item.__class__(spec.strip(), item.expr, item.parameters, item.values, item.meta)
                  for spec, item in zip(args.losses, losses, strict=True)]
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr!r}")
    check_seconds("--seconds", args.seconds)
    targets = [("--out", Path(args.out))] + ([("--csv", Path(args.csv))] if args.csv else [])
    try:
        kind = figure_format(args.out)
    except ValueError as error:
        raise UsageError(f"--out: {error}") from None
    _check_outputs(targets, overwrite=args.force)
    with tempfile.TemporaryDirectory(prefix="symloss-curve-") as scratch:
        made = [Path(scratch) / f"curve.{kind}"] + ([Path(scratch) / "curve.csv"] if args.csv
                                                   else [])

        def draw() -> None:
            plot_attraction(losses, args.classes, made[0], lr=args.lr,
                            smoothing=args.smoothing, scale=args.loss_scale)
            if args.csv:
                write_csv(attraction_table(losses, args.classes, args.lr, args.smoothing,
                                           scale=args.loss_scale), made[1])

        outcome = bounded(draw, seconds=args.seconds, undecided_on=())
        if outcome.reason is not None:  # the equilibria of Δ are the symbolic part
            names = ", ".join(repr(spec.strip()[:60]) for spec in args.losses)
            raise UsageError(f"the curve of {names} is undecided within --seconds "
                             f"{args.seconds:g}: drawing it (Δ and its equilibria) "
                             f"{outcome.reason}; nothing written")
        _publish(list(zip(made, targets, strict=True)))
    for _, target in targets:
        print(f"wrote {target}")
    return 0


def _check_outputs(targets: list[tuple[str, Path]], *, overwrite: bool) -> None:
    """Refuse output paths that cannot (or must not) be written, before anything is computed
    (:func:`symloss.paths.check_output_file`)."""
    if len(targets) == 2 and targets[0][1].resolve() == targets[1][1].resolve():
        raise UsageError(f"--out and --csv are the same file {targets[0][1]}")
    for flag, target in targets:
        check_output_file(flag, target, overwrite=overwrite)


def _publish(outputs: list[tuple[Path, tuple[str, Path]]]) -> None:
    """Copy finished files onto their targets, all or none (one line if a write fails).

    A regular target is written to a temporary file beside it, and every one is
    renamed into place only once all are written: a failing ``--csv`` leaves no
    PNG, a full device no half-written file. A target that exists and is not a
    regular file (``/dev/null``, a pipe) is written in place.
    """
    staged: list[tuple[Path, str, Path]] = []
    try:
        for made, (flag, target) in outputs:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() and not target.is_file():
                    target.write_bytes(made.read_bytes())
                    continue
                staged.append((target.with_name(f".{target.name}.{os.getpid()}.tmp"), flag,
                               target))
                staged[-1][0].write_bytes(made.read_bytes())
            except OSError as error:
                raise _cannot_write(flag, target, error) from None
        for temporary, flag, target in staged:
            try:
                os.replace(temporary, target)
            except OSError as error:
                raise _cannot_write(flag, target, error) from None
    finally:
        for temporary, _, _ in staged:
            temporary.unlink(missing_ok=True)


def _cannot_write(flag: str, target: Path, error: OSError) -> UsageError:
    return UsageError(f"cannot write {flag} {target}: {error.strerror or error}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symloss", description=(
        "Symbolic analysis of classification losses, and loss-function metalearning."))
    from symloss import __version__

    parser.add_argument("--version", action="version", version=f"symloss {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    analyze = commands.add_parser("analyze", help="derive γ, null epoch, zero-error regime, "
                                  "trainability, binary view of a loss")
    analyze.add_argument("loss", help="catalog name (mse, cross_entropy, baikal, baikal_cma, "
                         "focal, taylorglo) or a formula in y and h, e.g. '-log(h) + y/h'")
    _add_loss_options(analyze)
    analyze.add_argument("--json", action="store_true", help="print one JSON object")
    analyze.add_argument("--latex", action="store_true", help="LaTeX of every derived expression")
    analyze.set_defaults(handler=_command_analyze)

    curve = commands.add_parser("curve", help="attraction curves A(ε) and Δ(ε) (ICLR Fig. 3)")
    curve.add_argument("losses", nargs="+", metavar="LOSS",
                       help="one or more catalog names or formulas in y and h (as analyze)")
    _add_loss_options(curve)
    curve.add_argument("--lr", type=float, default=0.01,
                       help="learning rate of the one step (default 0.01, on --loss-scale)")
    curve.add_argument("--loss-scale", choices=("sum", "paper"), default="sum",
                       help="the loss --lr trains: sum (Σ_k ℓ, the trainer's default) or paper "
                            "(the papers' (1/n) Σ_k ℓ); sum at η is the papers' n·η")
    curve.add_argument("--out", required=True,
                       help="figure file to write: .png, .pdf or .svg (the format follows it)")
    curve.add_argument("--csv", help="also write loss,epsilon,delta,attraction rows here")
    curve.add_argument("--force", action="store_true",
                       help="replace --out and --csv when they exist")
    curve.set_defaults(handler=_command_curve)

    for entry in entry_points(group=COMMAND_GROUP):
        try:
            register = entry.load()
        except (ImportError, AttributeError):
            if os.environ.get("SYMLOSS_DEBUG"):
                raise
            continue  # an optional plugin that is not installed: its commands are absent
        register(commands)
    return parser


#: Modules of the optional extras, and the extra that installs each.
EXTRAS = {name: "harness" for name in ("torch", "mnist1d", "sklearn", "tqdm", "cma", "dask",
                                       "distributed")}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(formula_arguments(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args) or 0)
    except (FormulaError, UsageError, ValueError, FileNotFoundError) as error:
        if os.environ.get("SYMLOSS_DEBUG"):
            raise
        text = error.for_flags() if isinstance(error, SettingError) else str(error)
        message = text.splitlines()[0] if text else type(error).__name__
        print(f"symloss: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as error:
        if os.environ.get("SYMLOSS_DEBUG") or (error.name or "").split(".")[0] not in EXTRAS:
            raise
        print(f"symloss: error: {args.command} needs the '{EXTRAS[error.name.split('.')[0]]}' "
              f"extra (module {error.name!r} is not installed): pip install "
              f"'symloss[{EXTRAS[error.name.split('.')[0]]}]'", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("symloss: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `symloss ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
