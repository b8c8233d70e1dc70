"""Loss-function searches: TaylorGLO and GLO, their run store, executors and reports.

The Python API (:mod:`symloss.harness.search.api`) is exported here, lazily (PEP 562), so
that ``symloss``'s command line, which imports :mod:`symloss.harness.search.commands`, loads
neither the search runtime nor torch until a search runs.

>>> import symloss.harness.search
>>> symloss.harness.search.search_losses.__module__
'symloss.harness.search.api'
"""

from __future__ import annotations

from symloss.harness import lazy_exports

_EXPORTS = {
    "search_losses": "symloss.harness.search.api",
    "resume_search": "symloss.harness.search.api",
    "make_config": "symloss.harness.search.api",
    "SearchResult": "symloss.harness.search.api",
    "FoundLoss": "symloss.harness.search.api",
    "UserFitness": "symloss.harness.search.api",
    "SearchConfig": "symloss.harness.search.runner",
    "ConfigMismatch": "symloss.harness.search.runner",
    "search": "symloss.harness.search.runner",
    "Budget": "symloss.harness.search.evaluate",
    "RunStore": "symloss.harness.search.store",
    "GPOperators": "symloss.harness.search.strategies",
    "check_cma_options": "symloss.harness.search.strategies",
    "write_report": "symloss.harness.search.final",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
