"""Horizon-aware selection: successive halving over training lengths (multi-fidelity).

A search screens every candidate at its ``steps`` (rung 0). With
``reduction_factor`` η set, the best ``⌈m/η⌉`` of a generation's ``m`` distinct
trained candidates are trained again, from scratch, at ``steps·η`` (rung 1), the
best ``⌈·/η⌉`` of those at ``steps·η²``, …, and the last rung is the ``horizon``
— the length the user cares about (:func:`rung_steps`). Each rung's training is
stored the moment it returns (:func:`~symloss.harness.search.rungstore.add_rung_training`);
a resumed generation takes every stored one and trains only the rest.

**What the optimizer is told.** A candidate's fitness is its result at the longest
rung it reached (:func:`selection_fitness`), in the units of the objective
(validation accuracy). CMA-ES ranks, and GLO's tournaments compare, these values
as they are: a promoted loss that keeps learning scores higher at the longer rung
than any unpromoted one did at the shorter — so the halving order is kept — and
one that collapses at a longer rung falls below them, which is the information
the longer rungs are paid for. A replayed generation is told the same values
from the store (:func:`told_fitnesses`), so ``--resume`` stays exact.

**Compute** is counted in model-steps: one training of ``s`` steps is ``s``
(:func:`model_steps`); a run's ``model_steps`` budget ends the search after the
generation that reaches it, so arms of a benchmark can be given equal compute.

Hand-written rather than Optuna's ``SuccessiveHalvingPruner``: Optuna prunes one
trial as its intermediate values arrive, inside its own storage; here a rung is a
population of fresh trainings trained together (:mod:`symloss.harness.batched`),
stored in the run store and told to a generation-synchronous optimizer, and the
schedule itself is the two lines of :func:`rung_steps` and :func:`promoted`.

>>> rung_steps(300, 1500, 3)
(300, 900, 1500)
>>> rung_steps(300, 300, 3), rung_steps(100, 2000, 2)
((300,), (100, 200, 400, 800, 1600, 2000))
>>> promoted(7, 3)
3
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from symloss.errors import SettingError
from symloss.harness.search.rungstore import RungTraining, add_rung_training, rung_trainings

__all__ = ["MAX_RUNGS", "RungTraining", "check_fidelity", "climb", "compute_paid", "identity",
           "model_steps",
           "promoted", "rung_steps", "selection_fitness", "selection_records", "told_fitnesses"]

#: The most rungs a schedule may have (each is a training of every promoted candidate).
MAX_RUNGS = 12


def rung_steps(steps: int, horizon: int, reduction_factor: int) -> tuple[int, ...]:
    """The rungs' training lengths: ``steps·η^k`` below ``horizon``, then ``horizon``."""
    lengths = [steps]
    while lengths[-1] * reduction_factor < horizon:
        lengths.append(lengths[-1] * reduction_factor)
    if horizon > lengths[-1]:
        lengths.append(horizon)
    return tuple(lengths)


def promoted(count: int, reduction_factor: int) -> int:
    """How many of ``count`` go on to the next rung: ``⌈count/η⌉``."""
    return math.ceil(count / reduction_factor)


def check_fidelity(steps: int, horizon: int | None, reduction_factor: int | None,
                   budget: int | None = None) -> None:
    """A schedule that can run: a horizon at least the screening length, a reduction factor
    of at least 2 that gives at most :data:`MAX_RUNGS` rungs, a compute budget that pays for
    at least one screening training; each a one-line ``ValueError``.

    >>> check_fidelity(300, 100, None)
    Traceback (most recent call last):
    ...
    symloss.errors.SettingError: horizon must be at least the screening steps (300), got 100
    """
    if horizon is not None and horizon < steps:
        raise SettingError(lambda n: f"{n('horizon')} must be at least the screening "
                           f"{n('steps')} ({steps}), got {horizon!r}")
    if reduction_factor is not None:
        if horizon is None or horizon == steps:
            raise SettingError(lambda n: f"{n('reduction_factor')} needs a {n('horizon')} "
                               f"longer than the screening {n('steps')} ({steps}): successive "
                               "halving trains the best again up to it")
        if reduction_factor < 2:
            raise SettingError(lambda n: f"{n('reduction_factor')} must be at least 2, got "
                               f"{reduction_factor!r}")
        if len(rung_steps(steps, horizon, reduction_factor)) > MAX_RUNGS:
            raise SettingError(lambda n: f"{n('horizon')} {horizon} with "
                               f"{n('reduction_factor')} {reduction_factor} from {steps} steps "
                               f"gives more than {MAX_RUNGS} rungs; raise the reduction factor "
                               "or the screening steps")
    if budget is not None and budget < steps:
        raise SettingError(lambda n: f"{n('model_steps')} must pay for at least one screening "
                           f"training ({steps} steps), got {budget!r}")


def identity(record) -> str:
    """What makes two candidates the same loss (its canonical key, formula or parameters)."""
    return record.canonical_key or record.expression or str(record.params)


def _longest(trainings: Sequence[RungTraining]) -> dict[str, RungTraining]:
    """Each loss's (identity's) training at the longest rung it reached."""
    longest: dict[str, RungTraining] = {}
    for training in trainings:
        if training.identity not in longest or training.rung > longest[training.identity].rung:
            longest[training.identity] = training
    return longest


def selection_fitness(records, trainings: Sequence[RungTraining]) -> list[float]:
    """Each record's fitness at the longest rung it (or its twin) reached, in order."""
    longest = _longest(trainings)
    return [longest[identity(r)].fitness if r.status == "ok" and identity(r) in longest
            else r.fitness for r in records]


def told_fitnesses(store, run_id: str, generation: int, records) -> list:
    """``records`` of a stored generation with the fitness the optimizer was told."""
    told = selection_fitness(records, rung_trainings(store, run_id, generation))
    return [replace(r, fitness=f) for r, f in zip(records, told, strict=True)]


def selection_records(store, run_id: str) -> list:
    """Every stored candidate with its fitness at the longest rung it reached, and the
    rung's length and its screening fitness in its metrics (``rung_steps``,
    ``screening_fitness``): how the final evaluation picks the best at the horizon."""
    longest = _longest(rung_trainings(store, run_id))
    records = []
    for record in store.candidates(run_id):
        reached = longest.get(identity(record)) if record.status == "ok" else None
        if reached is None:
            records.append(record)
            continue
        metrics = {**record.metrics, "rung_steps": reached.steps,
                   "screening_fitness": record.fitness}
        status = reached.status if reached.status != "ok" else record.status
        records.append(replace(record, fitness=reached.fitness, metrics=metrics, status=status))
    return records


def model_steps(store, run_id: str, steps: int) -> int:
    """The model-steps a run has paid: every training it ran (screening at ``steps``, each
    rung at its own length), not counting filtered candidates or cached copies."""
    paid = sum(steps for r in store.candidates(run_id)
               if r.status != "filtered" and r.worker != "cache")
    return paid + sum(t.steps for t in rung_trainings(store, run_id) if t.worker != "cache")


def compute_paid(store, run_id: str, config) -> dict[str, Any]:
    """What a run paid, in model-steps (:func:`model_steps`), with its rungs' lengths, its
    longer trainings and the length its final evaluation trains at."""
    return {"model_steps": model_steps(store, run_id, config.budget.steps),
            "rungs": list(config.rungs), "horizon": config.final_horizon,
            "rung_trainings": sum(t.worker != "cache" for t in rung_trainings(store, run_id))}


def climb(records, candidates, *, generation: int, schedule: tuple[int, ...],
          reduction_factor: int, store, run_id: str,
          train: Callable[[list, int, Callable], None]) -> list[float]:
    """Promote a generation's best up the rungs of ``schedule`` and return the fitness each
    candidate is told (:func:`selection_fitness`).

    ``train(candidates, steps, finish)`` trains ``candidates`` at ``steps`` and calls
    ``finish(candidate, outcome)`` as each returns. A rung training already stored (a resumed
    generation), or an identical loss trained at that length earlier in the run, is reused.
    """
    by_idx = {c.idx: c for c in candidates}
    stored = {(t.idx, t.rung): t for t in rung_trainings(store, run_id, generation)}
    earlier = {(t.identity, t.steps): t for t in rung_trainings(store, run_id)
               if t.generation < generation and t.worker != "cache"}
    alive: dict[str, Any] = {}  # identity → its first record, among those trained ok
    for record in records:
        if record.status == "ok":
            alive.setdefault(identity(record), record)
    fitness = {key: record.fitness for key, record in alive.items()}
    for rung, steps in enumerate(schedule[1:], start=1):
        ranked = sorted(alive, key=lambda key: (-fitness[key], alive[key].idx))
        alive = {key: alive[key] for key in ranked[:promoted(len(ranked), reduction_factor)]}
        done: dict[str, RungTraining] = {}
        for key, record in alive.items():
            if (record.idx, rung) in stored:
                done[key] = stored[record.idx, rung]
            elif (key, steps) in earlier:
                done[key] = replace(earlier[key, steps], generation=generation,
                                    idx=record.idx, rung=rung, seconds=0.0, worker="cache")
                add_rung_training(store, run_id, done[key])
        keys = {record.idx: key for key, record in alive.items()}

        def finish(candidate, outcome, rung=rung, steps=steps, keys=keys, done=done):
            key = keys[candidate.idx]
            done[key] = RungTraining(generation, candidate.idx, rung, steps, key,
                                     outcome.status, float(outcome.fitness),
                                     dict(outcome.metrics), float(outcome.seconds),
                                     outcome.worker)
            add_rung_training(store, run_id, done[key])

        waiting = [by_idx[record.idx] for key, record in alive.items() if key not in done]
        if waiting:
            train(waiting, steps, finish)
        fitness.update({key: training.fitness for key, training in done.items()})
        alive = {key: record for key, record in alive.items() if done[key].status == "ok"}
    return selection_fitness(records, rung_trainings(store, run_id, generation))
