"""The search loop: ask, filter, evaluate through an executor, store, tell — resumable.

Every candidate's row is written the moment its result arrives; the strategy's
state after each generation is saved. With ``batched=True`` a generation's
candidates to train go out in chunks, each trained as one population
(:func:`symloss.harness.search.evaluate.evaluate_population`), as many per chunk as the
executor says (:meth:`~symloss.harness.search.executors.InlineExecutor.chunk_size`: all of
them in this process, spread over the workers elsewhere); rows are written as each
chunk returns, and a chunk whose worker died is run again by the executor (Dask's
retries) or, if it takes every worker down, split into single candidates. On resume
the next generation is asked again from the saved state — the same candidates —
and each one already in the store is taken from there (only the others go out,
in new chunks): no paid evaluation is lost or run twice.

One module just over the ~400-line aim: the loop, a generation's records, the resume
replay and successive halving's hook share the store's records and the strategy's state;
the schedule itself lives in :mod:`~symloss.harness.search.fidelity`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from symloss.harness.search.config import SearchConfig
from symloss.harness.search.evaluate import (
    Budget,
    Outcome,
    batching_supported,
    evaluate_candidate,
    evaluate_chunk,
)
from symloss.harness.search.executors import Executor, InlineExecutor
from symloss.harness.search.fidelity import climb, model_steps, selection_records, told_fitnesses
from symloss.harness.search.fidelity import identity as _identity
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.search.strategies import (
    Candidate,
    ReplayMismatch,
    Strategy,
    algorithm_names,
    read_snapshot,
)

__all__ = ["ALGORITHMS", "ConfigMismatch", "GenerationSummary", "ResumeRefused",
           "SearchConfig", "best_candidates", "describe_mismatch", "replayed",
           "run_generation", "search"]

#: The strategies' names (:data:`symloss.harness.search.strategies.STRATEGIES`).
ALGORITHMS = algorithm_names()


class ConfigMismatch(ValueError):
    """``--resume`` with a config that differs from the stored run's."""


class ResumeRefused(ValueError):
    """A stored run that cannot be continued as it is (a changed store)."""


@dataclass(frozen=True)
class GenerationSummary:
    generation: int
    best: float
    median: float
    counts: dict[str, int]
    evaluations: int
    seconds: float


# The tasks' functions, named here so that tests can replace them. They live in
# symloss.harness.search.evaluate, which imports no torch at module level: a Dask scheduler
# unpickles every task, so it imports the module of the task's function (this module's
# imports held a scheduler 2.3 s on its first task).
_evaluate = evaluate_candidate
_evaluate_chunk = evaluate_chunk


def _record(candidate: Candidate, generation: int, outcome: Outcome,
            worker: str | None = None) -> CandidateRecord:
    metrics = {**outcome.metrics, **({"tree": candidate.tree} if candidate.tree else {})}
    return CandidateRecord(generation, candidate.idx, outcome.status, outcome.fitness,
                           candidate.params, candidate.expression, candidate.key,
                           metrics, outcome.seconds, worker or outcome.worker)


def run_generation(candidates: list[Candidate], generation: int, *, store: RunStore,
                   run_id: str, budget: Budget, executor: Executor,
                   on_result: Callable[[CandidateRecord], None] | None = None,
                   batched: bool = False,
                   evaluate: Callable[[Any, Budget], Outcome] | None = None
                   ) -> list[CandidateRecord]:
    """Evaluate one generation (reusing stored results) and return its records in order.

    Each candidate is, in this order: taken from the store (a resumed generation's),
    filtered (its ``skip``: fitness 0 untrained), taken from the run's cache (its
    ``key`` scored before), a twin of one trained now (same ``key``: copied when that
    returns), or trained. ``batched``: train the candidates together
    (:mod:`symloss.harness.batched`) where the budget's model supports it, else one by
    one. ``evaluate(loss, budget)``: scores one candidate instead of the built-in
    training (:mod:`symloss.harness.search.api`; one by one).
    """
    generation_records = _Generation(store, run_id, generation, on_result)
    generation_records.reuse(candidates)
    to_train = generation_records.settle(candidates)
    if batched and to_train and batching_supported(budget):
        _train_chunks(to_train, budget, executor, generation_records.finish)
    else:
        _train_each(to_train, budget, executor, evaluate or _evaluate, generation_records.finish)
    return [generation_records.records[c.idx] for c in candidates]


class _Generation:
    """One generation's records as they arrive: each stored and announced at once."""

    def __init__(self, store: RunStore, run_id: str, generation: int,
                 on_result: Callable[[CandidateRecord], None] | None):
        self.store, self.run_id, self.generation = store, run_id, generation
        self.on_result = on_result
        self.records: dict[int, CandidateRecord] = {}
        self.waiting: dict[str, list[Candidate]] = {}  # a key being trained → its twins

    def reuse(self, candidates: list[Candidate]) -> None:
        """The candidates already in the store (a resumed generation) are taken from it."""
        stored = {r.idx: r for r in self.store.candidates(self.run_id, self.generation)}
        for candidate in candidates:
            if candidate.idx in stored:
                previous = stored[candidate.idx]
                if (previous.params != candidate.params
                        or previous.expression != candidate.expression):
                    raise RuntimeError(
                        f"run {self.run_id} generation {self.generation} candidate "
                        f"{candidate.idx} in the store differs from the one asked again; the "
                        "store was written by another config")
                self.records[candidate.idx] = previous

    def settle(self, candidates: list[Candidate]) -> list[Candidate]:
        """Record the filtered and cached candidates; return those to train (one per key)."""
        to_train: list[Candidate] = []
        for candidate in candidates:
            if candidate.idx in self.records:
                continue
            if candidate.skip is not None:
                self.add(_record(candidate, self.generation, Outcome(
                    "filtered", 0.0, {"reason": candidate.skip}, 0.0, ""), ""))
            elif candidate.key is not None and (
                    hit := self.store.cached(self.run_id, candidate.key)):
                self.add(_copy(candidate, self.generation, hit, [hit.generation, hit.idx]))
            elif candidate.key is not None and candidate.key in self.waiting:
                self.waiting[candidate.key].append(candidate)
            else:
                if candidate.key is not None:
                    self.waiting[candidate.key] = []
                to_train.append(candidate)
        return to_train

    def add(self, record: CandidateRecord) -> None:
        self.store.add_candidate(self.run_id, record)
        self.records[record.idx] = record
        if self.on_result:
            self.on_result(record)

    def finish(self, candidate: Candidate, outcome: Outcome) -> None:
        """A trained candidate's result, and its twins' copies."""
        record = _record(candidate, self.generation, outcome)
        self.add(record)
        for twin in self.waiting.get(candidate.key, []) if candidate.key else []:
            self.add(_copy(twin, self.generation, record, [self.generation, candidate.idx]))


def _copy(candidate: Candidate, generation: int, source: CandidateRecord,
          origin: list[int]) -> CandidateRecord:
    """``candidate``'s record with ``source``'s result, which came from ``origin``."""
    return CandidateRecord(generation, candidate.idx, source.status, source.fitness,
                           candidate.params, candidate.expression, candidate.key,
                           {**source.metrics, "cached_from": origin}, 0.0, "cache")


def _train_chunks(to_train: list[Candidate], budget: Budget, executor: Executor,
                  finish: Callable[[Candidate, Outcome], None]) -> None:
    """Train in chunks, each one population; a chunk that took its worker down every time
    it ran is split into single candidates, so only the one at fault is failed."""
    inline = isinstance(executor, InlineExecutor)
    # --chunk, or spread over the workers (an executor without chunk_size: one chunk)
    chunk_size = getattr(executor, "chunk_size", None)
    size = chunk_size(len(to_train), budget) if chunk_size else len(to_train)
    chunks = [to_train[start:start + size] for start in range(0, len(to_train), size)]
    # the budget's threads, never the cores free right now: the thread count changes a
    # training's numbers (MKL splits long sums across threads), so a run's numbers would
    # follow the machine's load. None: one thread here and in a local worker, a Dask
    # task its declared share of its worker (evaluate.task_threads)
    threads = budget.threads if budget.threads is not None or not inline else 1
    numbers = range(len(chunks))
    while numbers:
        jobs = [(number, tuple(c.loss for c in chunks[number]), budget, threads)
                for number in numbers]
        numbers = []
        for job, result in executor.map_unordered(_evaluate_chunk, jobs):
            chunk = chunks[job[0]]
            if isinstance(result, Outcome) and len(chunk) > 1:
                numbers += range(len(chunks), len(chunks) + len(chunk))
                chunks += [[candidate] for candidate in chunk]
                continue
            outcomes = [result] if isinstance(result, Outcome) else result[1]
            for candidate, outcome in zip(chunk, outcomes, strict=True):
                finish(candidate, outcome)


def _train_each(to_train: list[Candidate], budget: Budget, executor: Executor,
                evaluate: Callable[[Any, Budget], Outcome],
                finish: Callable[[Candidate, Outcome], None]) -> None:
    """Train (or score) the candidates one by one, as the executor returns them."""
    jobs = [(c.loss, budget) for c in to_train]
    by_loss = {id(job[0]): c for job, c in zip(jobs, to_train, strict=True)}
    for (loss, _), outcome in executor.map_unordered(evaluate, jobs):
        finish(by_loss[id(loss)] if id(loss) in by_loss else _match(to_train, loss), outcome)


def _match(candidates: list[Candidate], loss) -> Candidate:
    # Results from other processes come back as copies: match by value.
    for candidate in candidates:
        if candidate.loss == loss:
            return candidate
    raise RuntimeError("an evaluation returned for a loss that was not submitted")


def search(config: SearchConfig, *, store: RunStore, executor: Executor | None = None,
           run_id: str | None = None, resume: bool = False,
           on_result: Callable[[CandidateRecord], None] | None = None,
           on_generation: Callable[[GenerationSummary], None] | None = None,
           stop_after: int | None = None, batched: bool = False,
           report_dir: str | None = None,
           evaluate: Callable[[Any, Budget], Outcome] | None = None) -> str:
    """Run (or resume) a search; returns its run id. ``stop_after`` ends after that many
    generations of this call (for tests that interrupt a run). ``batched`` trains each
    generation's candidates as populations (:func:`run_generation`) where the config does
    not record it (``config.batched``, which wins). ``report_dir``: where its report goes, stored
    with the run from the start (a resume writes it there again). ``evaluate``: see
    :func:`run_generation`; a run whose config names a user ``fitness`` needs it."""
    if config.fitness is not None and evaluate is None:
        raise ValueError(f"this run scores candidates with the Python function {config.fitness}"
                         "; continue it from Python (symloss.harness.search.api) with that "
                         "function")
    executor = executor or InlineExecutor()
    batched = config.batched if config.batched is not None else batched
    strategy, run_id = _start(config, store, run_id, resume, report_dir)
    done = 0
    try:
        while not strategy.stop() and not _spent(config, store, run_id):
            if stop_after is not None and done >= stop_after:
                store.set_status(run_id, "interrupted")
                return run_id
            began, generation = time.perf_counter(), strategy.generation
            candidates = strategy.ask()
            if hasattr(on_result, "expect"):  # a progress bar learns the generation's size
                on_result.expect(len(candidates))
            records = run_generation(candidates, generation, store=store, run_id=run_id,
                                     budget=config.budget, executor=executor,
                                     on_result=on_result, batched=batched and evaluate is None,
                                     evaluate=evaluate)
            told = [r.fitness for r in records]
            if len(config.rungs) > 1:
                told = _climb(config, candidates, records, generation, store, run_id, executor,
                              batched and evaluate is None, evaluate)
            strategy.tell(candidates, told)
            summary = _summary(generation, records, time.perf_counter() - began, told)
            store.save_generation(run_id, generation, strategy.snapshot(), summary.best,
                                  summary.median)
            done += 1
            if on_generation:
                on_generation(summary)
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    store.set_status(run_id, "searched")
    return run_id


def _climb(config: SearchConfig, candidates: list[Candidate], records: list[CandidateRecord],
           generation: int, store: RunStore, run_id: str, executor: Executor, batched: bool,
           evaluate) -> list[float]:
    """Successive halving over the generation (:func:`symloss.harness.search.fidelity.climb`):
    the rungs train on the same executor, batched as the screening was."""
    def train(to_train: list[Candidate], steps: int, finish) -> None:
        budget = replace(config.budget, steps=steps)
        if batched and batching_supported(budget):
            _train_chunks(to_train, budget, executor, finish)
        else:
            _train_each(to_train, budget, executor, evaluate or _evaluate, finish)

    return climb(records, candidates, generation=generation, schedule=config.rungs,
                 reduction_factor=config.reduction_factor, store=store, run_id=run_id,
                 train=train)


def _spent(config: SearchConfig, store: RunStore, run_id: str) -> bool:
    """Whether the run has paid its ``model_steps`` budget (read from the store: a resumed
    run stops where the uninterrupted one did)."""
    return config.model_steps is not None and \
        model_steps(store, run_id, config.budget.steps) >= config.model_steps


def _start(config: SearchConfig, store: RunStore, run_id: str | None, resume: bool,
           report_dir: str | None) -> tuple[Strategy, str]:
    """The strategy and the run: a stored one replayed (``resume``), or a new one."""
    if resume:
        record = store.run(run_id)
        grown = record.config != config.to_dict()
        if grown and not _grown(record.config, config):
            raise ConfigMismatch(describe_mismatch(record.config, config.to_dict(), run_id))
        strategy = replayed(config, store, run_id, store.last_generation(run_id))
        if grown:  # replayed first: a store the longer run refuses is left as it was
            store.extend_run(run_id, config.to_dict())
        store.set_status(run_id, "running")
        return strategy, run_id
    strategy = config.strategy()  # first: a config it refuses leaves nothing in the store
    run_id = store.create_run(config.algorithm, config.to_dict(), run_id)
    if report_dir is not None:
        store.set_status(run_id, "running", report_dir)
    return strategy, run_id


def _grown(stored: dict[str, Any], config: SearchConfig) -> bool:
    """Whether ``config`` is the stored one with only its extendable settings raised (more
    generations, a larger model-step budget): the run continues as if started with them."""
    from symloss.harness.search.strategies import strategy_class

    given = config.to_dict()
    extendable = (*strategy_class(config.algorithm).extendable, "model_steps")
    changed = {key for key in set(stored) | set(given) if stored.get(key) != given.get(key)}
    return bool(changed) and changed <= set(extendable) and all(
        isinstance(stored.get(key), int) and isinstance(given.get(key), int)
        and given[key] > stored[key] for key in changed)


def _summary(generation: int, records: list[CandidateRecord], seconds: float,
             told: list[float] | None = None) -> GenerationSummary:
    """The generation's best and median fitness (of those trained; with rungs, as told: at
    the longest rung each reached) and its counts."""
    fitnesses = [r.fitness for r in records] if told is None else list(told)
    trained = [f for r, f in zip(records, fitnesses, strict=True) if r.status != "filtered"]
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    paid = sum(r.status != "filtered" and r.worker != "cache" for r in records)
    return GenerationSummary(generation, max(fitnesses) if fitnesses else math.nan,
                             float(np.median(trained)) if trained else math.nan, counts, paid,
                             seconds)


def replayed(config: SearchConfig, store: RunStore, run_id: str,
             saved: tuple[int, bytes] | None):
    """The strategy as it was after the saved generation: rebuilt from the seed and replayed.

    Nothing is loaded from the stored state (no code from data); each completed
    generation is proposed again, checked against its stored candidates and told their
    fitnesses. The replayed state's JSON snapshot must equal the saved one (a legacy
    pickled state is never read, so not compared).
    """
    strategy = config.strategy()
    if saved is None:
        return strategy
    last, blob = saved
    if not 0 <= last < config.total_generations:
        raise ResumeRefused(f"--resume {run_id}: the store says generation {last} was saved, "
                            f"but the run has {config.total_generations}")
    try:
        for generation in range(last + 1):
            records = store.candidates(run_id, generation)
            if len(config.rungs) > 1:
                records = told_fitnesses(store, run_id, generation, records)
            strategy.replay(records)
        expected = read_snapshot(blob)
    except (ReplayMismatch, ValueError) as error:
        raise ResumeRefused(f"--resume {run_id}: {error}; the store was changed or written "
                            "by another config") from None
    if expected is not None and strategy.snapshot() != bytes(blob):
        raise ResumeRefused(f"--resume {run_id}: the optimizer state replayed from the seed and "
                            f"the stored results differs from the one saved after generation "
                            f"{last}; the store was changed or written by another symloss, "
                            "pycma or numpy version")
    return strategy


def describe_mismatch(stored: dict[str, Any], given: dict[str, Any], run_id: str) -> str:
    """One line naming the settings that differ from the stored run's."""
    differences = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += [f"{key}.{k} {b.get(k)!r} (stored {a.get(k)!r})"
                            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            differences.append(f"{key} {b!r} (stored {a!r})")
    return (f"--resume {run_id}: the config differs from the stored run's: "
            + "; ".join(differences) + ". Resume with the same settings, or start a new run")


def best_candidates(store: RunStore, run_id: str, count: int = 5) -> list[CandidateRecord]:
    """The run's best distinct evaluated candidates, by fitness — with successive halving,
    the fitness the optimizer was told: at the longest rung each reached
    (:func:`symloss.harness.search.fidelity.selection_records`; a tie goes to the longer)."""
    seen, best = set(), []
    records = selection_records(store, run_id)
    for record in sorted(records, key=lambda r: (-r.fitness, -r.metrics.get("rung_steps", 0),
                                                 r.generation, r.idx)):
        identity = _identity(record)
        if record.status != "ok" or identity in seen:
            continue
        seen.add(identity)
        best.append(record)
        if len(best) == count:
            break
    return best
