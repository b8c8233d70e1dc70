"""``symloss export RUN_ID``: a found loss as a standalone PyTorch module (imports only torch).

The module's text is :func:`symloss.harness.search.export.export_source`'s; the loss is
the run's ``--rank``-th best, read by :meth:`RunStore.loss
<symloss.harness.search.store.RunStore.loss>`. ``--out`` and ``--class-name`` are
checked before anything is read or computed.
"""

from __future__ import annotations

import argparse

from symloss.harness.search.commands.common import add_store_option, default_store


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    export = commands.add_parser("export", help="write a found loss as a standalone PyTorch "
                                 "module (imports only torch)")
    export.add_argument("run_id", help="the run whose candidate to export")
    export.add_argument("--rank", type=int, default=1, help="1: the best (default), 2: the "
                        "second best distinct loss, ...")
    add_store_option(export)
    export.add_argument("--out", required=True, help="the .py file to write (a new file; "
                        "never through a symbolic link)")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.add_argument("--class-name", default="FoundLoss", help="the module's class name "
                        "(default FoundLoss)")
    export.add_argument("--classes", type=int, default=10, help="n for the analysis in its "
                        "docstring (default 10)")
    export.set_defaults(handler=run)
    return export


def run(args: argparse.Namespace) -> int:
    """Write the module; print where and the loss it computes."""
    from symloss.harness.search.export import (
        check_class_name,
        check_destination,
        export_source,
        write_module,
    )
    from symloss.harness.search.store import RunStore

    check_destination(args.out, force=args.force)
    check_class_name(args.class_name)
    if args.rank < 1:
        raise ValueError(f"--rank must be a whole number >= 1 (1: the best), got {args.rank}")
    store_file = args.store or default_store()
    with RunStore.open(store_file, readonly=True) as store:
        loss = store.loss(args.run_id, args.rank)
    origin = {"run": args.run_id, "rank": args.rank, "fitness": dict(loss.meta)["fitness"],
              "store": str(store_file)}
    text = export_source(loss, class_name=args.class_name, classes=args.classes, origin=origin)
    out = write_module(text, args.out, force=args.force)
    print(f"wrote {out}: {args.class_name}, ℓ(y, h) = {loss.expression}")
    return 0
