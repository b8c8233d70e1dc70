"""Loss-function searches: TaylorGLO and GLO, their run store, executors and reports.

The Python API (:mod:`harness.search.api`) is exported here, lazily (PEP 562), so
that ``symloss``'s command line, which imports :mod:`harness.search.cli`, loads
neither the search runtime nor torch until a search runs.

>>> import harness.search
>>> harness.search.search_losses.__module__
'harness.search.api'
"""

from __future__ import annotations

from harness import lazy_exports

_EXPORTS = {
    "search_losses": "harness.search.api",
    "resume_search": "harness.search.api",
    "make_config": "harness.search.api",
    "SearchResult": "harness.search.api",
    "FoundLoss": "harness.search.api",
    "UserFitness": "harness.search.api",
    "SearchConfig": "harness.search.runner",
    "ConfigMismatch": "harness.search.runner",
    "search": "harness.search.runner",
    "Budget": "harness.search.evaluate",
    "RunStore": "harness.search.store",
    "GPOperators": "harness.search.strategies",
    "check_cma_options": "harness.search.strategies",
    "write_report": "harness.search.final",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
