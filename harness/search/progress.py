"""What a running search says on stderr: a progress bar per generation, a line after each.

:class:`Reporter` is the runner's ``on_result``/``on_generation`` pair, used by
:func:`symloss.harness.search.pipeline.run_search` for the command line and the Python
API alike. The line after a generation::

    gen   2: best 0.8125 median 0.7500 | trained 20 filtered 3 diverged 1 failed 0 | 1.25 eval/s
"""

from __future__ import annotations

from typing import TextIO

__all__ = ["Reporter", "generation_line"]


def generation_line(summary) -> str:
    """The one line after a generation (``summary``: a
    :class:`~symloss.harness.search.runner.GenerationSummary`).

    >>> from types import SimpleNamespace
    >>> generation_line(SimpleNamespace(generation=2, best=0.8125, median=0.75, evaluations=20,
    ...                                 seconds=16.0, counts={"filtered": 3, "diverged": 1}))
    'gen   2: best 0.8125 median 0.7500 | trained 20 filtered 3 diverged 1 failed 0 | 1.25 eval/s'
    """
    rate = summary.evaluations / summary.seconds if summary.seconds else 0.0
    counts = summary.counts
    return (f"gen {summary.generation:>3}: best {summary.best:.4f} median {summary.median:.4f} "
            f"| trained {summary.evaluations} filtered {counts.get('filtered', 0)} diverged "
            f"{counts.get('diverged', 0)} failed {counts.get('failed', 0)} | "
            f"{rate:.2f} eval/s")


class Reporter:
    """A progress bar per generation (none when ``quiet``) and a one-line summary after each."""

    def __init__(self, config, *, quiet: bool, stream: TextIO):
        self.config, self.quiet, self.stream = config, quiet, stream
        self.bar = None
        self.total_evaluations, self.total_seconds = 0, 0.0

    def result(self, record) -> None:
        """One candidate's result arrived: the generation's bar moves on."""
        if self.quiet:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=f"generation {record.generation}", unit="cand", leave=False,
                            file=self.stream, mininterval=0.5)
        self.bar.update(1)

    def generation(self, summary) -> None:
        """A generation ended: its bar closes and its line is printed."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.total_evaluations += summary.evaluations
        self.total_seconds += summary.seconds
        print(generation_line(summary), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
