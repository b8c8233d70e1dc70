"""``symloss search``, ``runs``, ``show`` and ``export``: one module per subcommand.

Each module has ``add_parser(commands)`` (its options; its handler is ``args.handler``)
and the handler; :mod:`.common` holds what they share (the ``--store`` option, a run's
stored config read back, its status and numbers as printed). The commands parse and
print; the work is the library's: :func:`symloss.harness.search.pipeline.run_search`,
:class:`symloss.harness.search.store.RunStore`, :mod:`symloss.harness.search.export`.

Importing these modules imports neither torch nor the search runtime; a handler does,
when it runs. ``runs`` and ``show`` only read the store (``readonly=True``); JSON output
is strict (no bare ``Infinity``/``NaN``: :func:`symloss.report.strict_json`); a damaged
stored value is one line naming its table and column.
"""

from __future__ import annotations

import argparse

from symloss.harness.search.commands import export, runs, search, show

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``search``, ``runs``, ``show`` and ``export`` to the ``symloss`` subparsers."""
    for command in (search, runs, show, export):
        command.add_parser(commands)
