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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from symloss.harness.device import free_cores
from symloss.harness.search.evaluate import (
    Budget,
    Outcome,
    batching_supported,
    evaluate_candidate,
    evaluate_chunk,
)
from symloss.harness.search.executors import Executor, InlineExecutor
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.search.strategies import (
    Candidate,
    GLOSettings,
    GLOStrategy,
    GPOperators,
    ReplayMismatch,
    TaylorGLOSettings,
    TaylorGLOStrategy,
    read_snapshot,
)

ALGORITHMS = ("taylorglo", "glo")


class ConfigMismatch(ValueError):
    """``--resume`` with a config that differs from the stored run's."""


class ResumeRefused(ValueError):
    """A stored run that cannot be continued as it is (a changed store)."""


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search's result (recorded in the store, hashed)."""

    algorithm: str = "taylorglo"
    generations: int = 5
    population: int | None = None  # None: the paper's (TaylorGLO 20, or 40 with a filter; GLO 80)
    filter: str = "exact"
    order: int = 3
    sigma0: float | None = None  # None: TaylorGLO 1.2, GLO's CMA-ES 1.5
    cma_generations: int = 3  # GLO's coefficient phase
    classes: int = 10
    smoothing: float = 0.0
    seed: int = 0
    final_seeds: int = 0
    final_steps: int | None = None
    budget: Budget = field(default_factory=Budget)
    #: The ``stable`` filter's bound (None: its default); recorded only when set.
    min_target_probability: float | None = None
    #: The final evaluation's baselines (None: :data:`symloss.harness.search.final.BASELINES`);
    #: recorded only when set.
    baselines: tuple[str, ...] | None = None
    #: pycma options over the strategy's own
    #: (:func:`symloss.harness.search.strategies.check_cma_options`),
    #: GLO's GP operators (:class:`symloss.harness.search.strategies.GPOperators`'s fields) and the
    #: name of the user's fitness function (:mod:`symloss.harness.search.api`); each recorded
    #: only when set.
    cma_options: dict[str, Any] | None = None
    gp_operators: dict[str, Any] | None = None
    fitness: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "budget"}
        for optional in ("min_target_probability", "baselines", "cma_options", "gp_operators",
                         "fitness"):
            if record[optional] is None:
                del record[optional]  # runs stored before the option existed
            elif optional in ("baselines", "cma_options", "gp_operators"):
                record[optional] = json.loads(json.dumps(record[optional]))  # as stored
        record["budget"] = self.budget.to_dict()
        return record

    @property
    def _bound(self) -> dict[str, float]:
        value = self.min_target_probability
        return {} if value is None else {"min_target_probability": value}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SearchConfig:
        """A stored config (``runs.config``) as a checked :class:`SearchConfig`: a key this
        symloss does not know, a value of the wrong type or out of range is a ``ValueError``
        naming it (a changed store is one line, never a traceback later)."""
        from symloss.harness.search.config import validate_config

        try:
            values = dict(record)
            budget = dict(values["budget"])
            problem = _mistyped(Budget, budget, "budget.") or _mistyped(cls, values)
            if problem is None and values.get("algorithm") not in ALGORITHMS:
                problem = f"algorithm is {values.get('algorithm')!r}, not one of " + \
                    ", ".join(ALGORITHMS)
            if problem is None:
                values["budget"] = Budget(**budget)
                if values.get("baselines") is not None:
                    values["baselines"] = tuple(values["baselines"])
                config = cls(**values)
                validate_config(config.to_dict())
                return config
        except (TypeError, ValueError, KeyError) as error:
            problem = str(error)[:160]
        raise ValueError(f"the stored config (runs.config) does not fit this symloss: "
                         f"{problem}")

    def strategy(self):
        """A fresh strategy for this config (deterministic in ``seed``)."""
        if self.algorithm == "taylorglo":
            population = self.population or (20 if self.filter == "none" else 40)
            if self.gp_operators:
                raise ValueError("gp_operators apply to GLO only, not TaylorGLO")
            settings = TaylorGLOSettings(self.order, population, self.sigma0 or 1.2,
                                         self.filter, self.classes, self.smoothing,
                                         **self._bound, cma_options=self.cma_options or {})
            return TaylorGLOStrategy.create(settings, self.seed)
        if self.algorithm == "glo":
            settings = GLOSettings(population=self.population or 80,
                                   generations=self.generations,
                                   cma_generations=self.cma_generations,
                                   sigma0=self.sigma0 or 1.5, filter=self.filter,
                                   classes=self.classes, smoothing=self.smoothing,
                                   **self._bound, cma_options=self.cma_options or {},
                                   operators=GPOperators.create(self.gp_operators or {}))
            return GLOStrategy.create(settings, self.seed)
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got "
                         f"{self.algorithm!r}")

    @property
    def total_generations(self) -> int:
        return self.generations + (self.cma_generations if self.algorithm == "glo" else 0)


#: The Python types a field annotated with these names may hold (:func:`_mistyped`).
_SIMPLE_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                 "None": (type(None),)}


def _mistyped(kind: type, values: dict[str, Any], prefix: str = "") -> str | None:
    """The first of ``values`` whose type its dataclass field's simple annotation
    (``str``, ``int | None``, ``float``, ...) does not allow, as ``"name is value, not
    type"``; fields with other annotations are left to their own checks.

    >>> _mistyped(Budget, {"dataset": 5, "steps": 10})
    'dataset is 5, not str'
    """
    for item in fields(kind):
        if item.name not in values:
            continue
        names = [name.strip() for name in str(item.type).split("|")]
        if not all(name in _SIMPLE_TYPES for name in names):
            continue
        allowed = tuple(t for name in names for t in _SIMPLE_TYPES[name])
        value = values[item.name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f"{prefix}{item.name} is {value!r:.40}, not {item.type}"
    return None


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


def run_generation(strategy, candidates: list[Candidate], generation: int, *, store: RunStore,
                   run_id: str, budget: Budget, executor: Executor,
                   on_result: Callable[[CandidateRecord], None] | None = None,
                   batched: bool = False,
                   evaluate: Callable[[Any, Budget], Outcome] | None = None
                   ) -> list[CandidateRecord]:
    """Evaluate one generation (reusing stored results) and return its records in order.

    ``batched``: train the candidates together (:mod:`symloss.harness.batched`) where the
    budget's model supports it, else one by one. ``evaluate(loss, budget)``: scores one
    candidate instead of the built-in training (:mod:`symloss.harness.search.api`; one by one).
    """
    stored = {r.idx: r for r in store.candidates(run_id, generation)}
    records: dict[int, CandidateRecord] = {}
    for candidate in candidates:
        if candidate.idx in stored:
            previous = stored[candidate.idx]
            if (previous.params != candidate.params
                    or previous.expression != candidate.expression):
                raise RuntimeError(
                    f"run {run_id} generation {generation} candidate {candidate.idx} in the store "
                    "differs from the one asked again; the store was written by another config")
            records[candidate.idx] = previous
    to_train: list[Candidate] = []
    waiting: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.idx in records:
            continue
        if candidate.skip is not None:
            record = _record(candidate, generation,
                             Outcome("filtered", 0.0, {"reason": candidate.skip}, 0.0, ""), "")
        elif candidate.key is not None and (hit := store.cached(run_id, candidate.key)):
            record = CandidateRecord(generation, candidate.idx, hit.status, hit.fitness,
                                     candidate.params, candidate.expression, candidate.key,
                                     {**hit.metrics, "cached_from": [hit.generation, hit.idx]},
                                     0.0, "cache")
        elif candidate.key is not None and candidate.key in waiting:
            waiting[candidate.key].append(candidate)
            continue
        else:
            if candidate.key is not None:
                waiting[candidate.key] = []
            to_train.append(candidate)
            continue
        store.add_candidate(run_id, record)
        records[candidate.idx] = record
        if on_result:
            on_result(record)
    def finish(candidate: Candidate, outcome: Outcome) -> None:
        record = _record(candidate, generation, outcome)
        store.add_candidate(run_id, record)
        records[candidate.idx] = record
        if on_result:
            on_result(record)
        for twin in waiting.get(candidate.key, []) if candidate.key else []:
            copy = CandidateRecord(generation, twin.idx, record.status, record.fitness,
                                   twin.params, twin.expression, twin.key,
                                   {**record.metrics, "cached_from": [generation, candidate.idx]},
                                   0.0, "cache")
            store.add_candidate(run_id, copy)
            records[twin.idx] = copy
            if on_result:
                on_result(copy)

    if batched and to_train and batching_supported(budget):
        inline = isinstance(executor, InlineExecutor)
        # --chunk, or spread over the workers (an executor without chunk_size: one chunk)
        chunk_size = getattr(executor, "chunk_size", None)
        size = chunk_size(len(to_train), budget) if chunk_size else len(to_train)
        chunks = [to_train[start:start + size] for start in range(0, len(to_train), size)]
        # in this process the batched matmuls use the cores well (2 threads measured
        # 1.4-2x over 1 on 2 cores) — the cores free right now: threads that wait for a
        # core another process holds make each step several times slower
        # (benchmarks/bench_contention.py); a worker takes its share of its own cores
        threads = (free_cores() if budget.threads is None and inline
                   else budget.threads)
        numbers = range(len(chunks))
        while numbers:
            jobs = [(number, tuple(c.loss for c in chunks[number]), budget, threads)
                    for number in numbers]
            numbers = []
            for job, result in executor.map_unordered(_evaluate_chunk, jobs):
                chunk = chunks[job[0]]
                if isinstance(result, Outcome) and len(chunk) > 1:
                    # the chunk took its worker down every time it ran: its candidates
                    # run alone, so only the one at fault is failed
                    numbers += range(len(chunks), len(chunks) + len(chunk))
                    chunks += [[candidate] for candidate in chunk]
                    continue
                outcomes = [result] if isinstance(result, Outcome) else result[1]
                for candidate, outcome in zip(chunk, outcomes, strict=True):
                    finish(candidate, outcome)
        return [records[c.idx] for c in candidates]
    jobs = [(c.loss, budget) for c in to_train]
    by_loss = {id(job[0]): c for job, c in zip(jobs, to_train, strict=True)}
    for (loss, _), outcome in executor.map_unordered(evaluate or _evaluate, jobs):
        candidate = by_loss[id(loss)] if id(loss) in by_loss else _match(to_train, loss)
        finish(candidate, outcome)
    return [records[c.idx] for c in candidates]


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
    generation's candidates as populations (:func:`run_generation`); it is not part of the
    config: a run may be resumed either way. ``report_dir``: where its report goes, stored
    with the run from the start (a resume writes it there again). ``evaluate``: see
    :func:`run_generation`; a run whose config names a user ``fitness`` needs it."""
    if config.fitness is not None and evaluate is None:
        raise ValueError(f"this run scores candidates with the Python function {config.fitness}"
                         "; continue it from Python (symloss.harness.search.api) with that "
                         "function")
    executor = executor or InlineExecutor()
    if resume:
        record = store.run(run_id)
        if record.config != config.to_dict():
            raise ConfigMismatch(describe_mismatch(record.config, config.to_dict(), run_id))
        saved = store.last_generation(run_id)
        strategy = replayed(config, store, run_id, saved)
        start = 0 if saved is None else saved[0] + 1
        store.set_status(run_id, "running")
    else:  # the strategy first: a config it refuses leaves nothing in the store
        strategy, start = config.strategy(), 0
        run_id = store.create_run(config.algorithm, config.to_dict(), run_id)
        if report_dir is not None:
            store.set_status(run_id, "running", report_dir)
    done = 0
    try:
        for generation in range(start, config.total_generations):
            if stop_after is not None and done >= stop_after:
                store.set_status(run_id, "interrupted")
                return run_id
            began = time.perf_counter()
            candidates = strategy.ask()
            records = run_generation(strategy, candidates, generation, store=store,
                                     run_id=run_id, budget=config.budget, executor=executor,
                                     on_result=on_result, batched=batched and evaluate is None,
                                     evaluate=evaluate)
            fitnesses = [r.fitness for r in records]
            strategy.tell(fitnesses)
            trained = [r.fitness for r in records if r.status != "filtered"]
            best = max(fitnesses) if fitnesses else math.nan
            median = float(np.median(trained)) if trained else math.nan
            store.save_generation(run_id, generation, strategy.snapshot(), best, median)
            done += 1
            if on_generation:
                counts: dict[str, int] = {}
                for r in records:
                    counts[r.status] = counts.get(r.status, 0) + 1
                paid = sum(r.status != "filtered" and r.worker != "cache" for r in records)
                on_generation(GenerationSummary(generation, best, median, counts, paid,
                                                time.perf_counter() - began))
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    store.set_status(run_id, "searched")
    return run_id


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
            strategy.replay(store.candidates(run_id, generation))
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
    """The run's best distinct evaluated candidates, by fitness."""
    seen, best = set(), []
    for record in sorted(store.candidates(run_id), key=lambda r: (-r.fitness, r.generation,
                                                                  r.idx)):
        identity = record.canonical_key or record.expression or str(record.params)
        if record.status != "ok" or identity in seen:
            continue
        seen.add(identity)
        best.append(record)
        if len(best) == count:
            break
    return best
