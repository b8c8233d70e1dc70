"""What a running search says on stderr: a progress bar per generation, a line after each.

:class:`Reporter` is the runner's ``on_result``/``on_generation`` pair, used by
:func:`symloss.harness.search.pipeline.run_search` for the command line and the Python
API alike. A generation's bar counts its candidates against their number (the runner
announces it through :meth:`Reporter.expect`; until it does, the previous generation's
count). The line after a generation says what became of each candidate — ``trained``
(paid now or in an earlier session of the run), ``cached`` (an equivalent loss's result
copied), ``filtered`` (never trained): the three add up to the generation's candidates,
and ``diverged``/``failed`` are among the first two — then the rate, the generations done
of the run's total and an estimate of the time left::

    gen   2: best 0.8125 median 0.7500 | trained 20 cached 0 filtered 3 diverged 1 failed 0 \
| 1.25 eval/s | 3/5 generations, ETA 32s
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Reporter", "duration", "generation_line"]


def duration(seconds: float) -> str:
    """A time left as people read it.

    >>> duration(32.4), duration(185), duration(7500)
    ('32s', '3m05s', '2h05m')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def generation_line(summary, total: int | None = None, eta: float | None = None) -> str:
    """The one line after a generation (``summary``: a
    :class:`~symloss.harness.search.runner.GenerationSummary`; ``total``: the run's
    generations; ``eta``: the seconds its remaining ones should take).

    >>> from types import SimpleNamespace
    >>> generation_line(SimpleNamespace(generation=2, best=0.8125, median=0.75, evaluations=20,
    ...                                 seconds=16.0, counts={"ok": 19, "filtered": 3,
    ...                                                       "diverged": 1}), 5, 32.0)
    'gen   2: best 0.8125 median 0.7500 | trained 20 cached 0 filtered 3 diverged 1 failed 0 \
| 1.25 eval/s | 3/5 generations, ETA 32s'
    """
    rate = summary.evaluations / summary.seconds if summary.seconds else 0.0
    counts = summary.counts
    filtered = counts.get("filtered", 0)
    cached = sum(counts.values()) - filtered - summary.evaluations
    line = (f"gen {summary.generation:>3}: best {summary.best:.4f} median {summary.median:.4f} "
            f"| trained {summary.evaluations} cached {cached} filtered {filtered} diverged "
            f"{counts.get('diverged', 0)} failed {counts.get('failed', 0)} | "
            f"{rate:.2f} eval/s")
    if total:
        line += f" | {summary.generation + 1}/{total} generations"
        if eta is not None and summary.generation + 1 < total:
            line += f", ETA {duration(eta)}"
    return line


class Reporter:
    """A progress bar per generation (none when ``quiet``) and a one-line summary after each.

    Called with a candidate's record (the runner's ``on_result``) its bar moves on;
    :meth:`generation` is the runner's ``on_generation``.
    """

    def __init__(self, config, *, quiet: bool, stream: TextIO):
        self.config, self.quiet, self.stream = config, quiet, stream
        self.bar = None
        self.total_evaluations, self.total_seconds = 0, 0.0
        self.expected: int | None = None  # this generation's candidates, once known
        self.generations = 0  # ended in this session
        self.started = time.monotonic()
        try:
            self.total = config.total_generations
        except (AttributeError, ValueError, KeyError):  # a config that does not say
            self.total = None

    def expect(self, count: int) -> None:
        """The generation about to run has ``count`` candidates (its bar's total)."""
        self.expected = count
        if self.bar is not None:
            self.bar.total = count
            self.bar.refresh()

    def __call__(self, record) -> None:
        self.result(record)

    def result(self, record) -> None:
        """One candidate's result arrived: the generation's bar moves on."""
        if self.quiet:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=f"generation {record.generation}", unit="cand", leave=False,
                            total=self.expected, file=self.stream, mininterval=0.5)
        self.bar.update(1)

    def generation(self, summary) -> None:
        """A generation ended: its bar closes and its line is printed (with the generations
        done of the run's total and, from this session's pace, the time left)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.expected = sum(summary.counts.values()) or None  # the next one's, until told
        self.total_evaluations += summary.evaluations
        self.total_seconds += summary.seconds
        self.generations += 1
        eta = None
        if self.total:
            pace = (time.monotonic() - self.started) / self.generations
            eta = pace * max(0, self.total - summary.generation - 1)
        print(generation_line(summary, self.total, eta), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
