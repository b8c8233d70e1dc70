"""A search's final evaluation (its report: :mod:`symloss.harness.search.report`).

The best loss is trained (for ``--final-steps``, by default the run's horizon:
``--horizon``, 5× the screening steps unless told) on ``seeds`` seeds beside each
baseline on the same seeds (``--baselines``, default :data:`BASELINES`: cross-entropy,
label-smoothed cross-entropy, Poly-1, focal); test accuracies, a one-sided Welch
t-test against each (H1: the found loss beats it; ICLR Table 1's test), the loss's
formula and its symbolic analysis, the attraction curve and the fitness per
generation go into ``report.md``.

:func:`best_entry`, :func:`write_report` and the progress figure are
:mod:`~symloss.harness.search.report`'s, importable from here as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symloss.catalog import loss as catalog_loss
from symloss.errors import SettingError
from symloss.harness.search.report import (  # noqa: F401 (their old home)
    OUTCOME_COLOURS,
    best_entry,
    generation_counts,
    plot_progress,
    progress_figure,
    write_report,
)
from symloss.harness.search.runner import SearchConfig, best_candidates
from symloss.harness.search.store import FinalTraining, RunStore, StoreError
from symloss.harness.search.strategies import rebuild_loss  # a stored record → its loss
from symloss.harness.stats import welch_p_value
from symloss.loss import Loss

#: The baselines a found loss is compared with (catalog names; ``label_smoothed_cross_entropy``
#: is built for the dataset's number of classes): the ones a user would reach for.
BASELINES = ("cross_entropy", "label_smoothed_cross_entropy", "poly1", "focal")


def baseline_loss(name: str, classes: int) -> Loss:
    """A baseline by catalog name; label smoothing (α = 0.1) built for ``classes``.

    >>> baseline_loss("label_smoothed_cross_entropy", 3).expression
    -(9*y/10 + 1/30)*log(h)
    """
    from symloss.catalog import LABEL_SMOOTHING, smoothed

    if name == "label_smoothed_cross_entropy":
        return smoothed(catalog_loss("cross_entropy"), LABEL_SMOOTHING, classes, name)
    return catalog_loss(name)


def check_baselines(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The baselines as catalog names, or a ``ValueError`` naming the unknown one."""
    from symloss.catalog import ALIASES, CATALOG

    known = [name for name in CATALOG if name != "taylorglo"]
    chosen = []
    for name in names:
        key = ALIASES.get(name.strip().lower().replace("-", "_"),
                          name.strip().lower().replace("-", "_"))
        if key not in known:
            raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(known)}")
        chosen.append(key)
    if not chosen:
        raise SettingError(lambda n: f"{n('baselines')} needs at least one catalog loss")
    return tuple(dict.fromkeys(chosen))


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _summary(values: list[float | None]) -> dict[str, Any]:
    """Mean and std of the trainings that gave a number; ``per_seed`` keeps every one."""
    numbers = _finite(values)
    return {"mean": float(np.mean(numbers)) if numbers else None,
            "std": float(np.std(numbers, ddof=1)) if len(numbers) > 1 else 0.0,
            "per_seed": values}


@dataclass(frozen=True)
class FinalResult:
    """The found loss and each baseline on the same seeds; p: one-sided Welch, H1: the
    found loss beats that baseline. ``baseline_test_accuracy``/``p_value``: the first
    baseline's (cross-entropy by default), as earlier reports had them. An accuracy is
    ``None`` where a training gave no number (a user's score that was NaN)."""

    loss: str
    test_accuracy: list[float | None]
    baseline_test_accuracy: list[float | None]
    p_value: float | None
    statuses: list[str]
    baselines: dict[str, list[float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record = {"loss": self.loss, "test_accuracy": _summary(self.test_accuracy),
                  "baseline_test_accuracy": _summary(self.baseline_test_accuracy),
                  "p_value": self.p_value, "statuses": self.statuses}
        if self.baselines:
            record["baselines"] = {
                name: {"test_accuracy": _summary(values),
                       "p_value": welch_p_value(self.test_accuracy, values)}
                for name, values in self.baselines.items()}
            record["best_baseline"] = max(
                self.baselines, key=lambda n: np.mean(_finite(self.baselines[n]) or [0.0]))
        return record


class Ledger:
    """The trainings of one final evaluation: those already done (a resumed one's, from
    the store) and where each new one goes the moment it returns (``record``).

    >>> ledger = Ledger()
    >>> ledger.add(FinalTraining("found", "h", 0, "ok", 0.5))
    >>> ledger.missing("found", "h", 2)
    [1]
    """

    def __init__(self, done: list[FinalTraining] = (),
                 record: Callable[[FinalTraining], None] | None = None):
        self.done = {(t.loss, t.seed): t for t in done}
        self.record = record

    @classmethod
    def of(cls, store: RunStore, run_id: str) -> Ledger:
        """The run's stored trainings; each new one is stored at once."""
        return cls(store.final_trainings(run_id),
                   lambda training: store.add_final_training(run_id, training))

    def missing(self, name: str, expression: str, seeds: int) -> list[int]:
        """The seeds of ``name`` still to train (a stored one of another loss is refused)."""
        for seed in range(seeds):
            done = self.done.get((name, seed))
            if done is not None and done.expression != expression:
                raise StoreError(f"final_trainings.expression of {name} seed {seed} is "
                                 f"{done.expression[:60]!r}, not the loss evaluated now "
                                 f"({expression[:60]!r}): the store was changed")
        return [seed for seed in range(seeds) if (name, seed) not in self.done]

    def add(self, training: FinalTraining) -> None:
        if self.record is not None:
            self.record(training)
        self.done[(training.loss, training.seed)] = training

    def results(self, name: str, seeds: int) -> tuple[list[float | None], list[str]]:
        rows = [self.done[(name, seed)] for seed in range(seeds)]
        return [r.test_accuracy for r in rows], [r.status for r in rows]


#: A trainer of the final evaluation: (loss, seeds) → (seed, test accuracy, status) for
#: each seed, yielded as each training returns.
Trainer = Callable[[Loss, list[int]], Iterator[tuple[int, float | None, str]]]


def final_evaluation(loss: Loss, config: SearchConfig, seeds: int,
                     score: Callable[[Loss, int], float] | None = None,
                     ledger: Ledger | None = None) -> FinalResult:
    """Train ``loss`` and each baseline (``config.baselines``, default :data:`BASELINES`)
    on seeds ``0 … seeds−1`` for ``final_steps`` steps — a loss's seeds stacked where
    that pays (:func:`symloss.harness.batched.batching_pays`). ``score(loss, seed)``
    replaces the built-in training (a user's own test score, :mod:`~.api`); a score that
    is not finite is a ``diverged`` training without a number.

    ``ledger``: the trainings already done (they are not trained again) and where each
    new one is recorded as it returns (:meth:`Ledger.of`: the run store).

    The default length is the run's horizon (:attr:`SearchConfig.final_horizon`): a loss
    that collapses beyond the length it was screened at shows it here.
    """
    ledger = ledger or Ledger()
    if score is not None:
        classes, train = config.classes, _scored(score)
    else:
        classes, train = _built_in_trainer(config)

    def accuracies(name: str, item: Loss) -> tuple[list[float | None], list[str]]:
        expression = str(item.expression)
        for seed, accuracy, status in train(item, ledger.missing(name, expression, seeds)):
            ledger.add(FinalTraining(name, expression, seed, status, accuracy))
        return ledger.results(name, seeds)

    ours, statuses = accuracies(FOUND, loss)
    baselines = {name: accuracies(name, baseline_loss(name, classes))[0]
                 for name in config.baselines or BASELINES}
    first = next(iter(baselines.values()))
    return FinalResult(str(loss.expression), ours, first, welch_p_value(ours, first), statuses,
                       baselines)


#: The found loss's name in the final evaluation's trainings (the baselines go by theirs).
FOUND = "found"


def _scored(score: Callable[[Loss, int], float]) -> Trainer:
    """A user's ``score(loss, seed)`` as a trainer."""
    def train(item: Loss, seeds: list[int]) -> Iterator[tuple[int, float | None, str]]:
        for seed in seeds:
            value = float(score(item, seed))
            yield (seed, value, "ok") if math.isfinite(value) else (seed, None, "diverged")

    return train


def _built_in_trainer(config: SearchConfig) -> tuple[int, Trainer]:
    """The dataset's classes, and the built-in trainer over seeds."""
    from symloss.harness.batched import batching_pays, train_population
    from symloss.harness.data import load_dataset
    from symloss.harness.models import DEFAULT_MODELS
    from symloss.harness.train import TrainConfig, train

    budget = config.budget
    steps = config.final_horizon  # --final-steps, else the horizon the user cares about
    train_config = TrainConfig(model=budget.model, steps=steps, lr=budget.lr,
                               batch_size=budget.batch_size, threads=budget.threads,
                               device=budget.device, evaluations=1)
    data = load_dataset(budget.dataset, data_dir=budget.data_dir)
    model = budget.model or DEFAULT_MODELS.get(data.name, "mlp")
    stacked = batching_pays(model, device=budget.device)

    def trainer(item: Loss, seeds: list[int]) -> Iterator[tuple[int, float | None, str]]:
        if stacked and len(seeds) > 1:  # one population: its trainings return together
            results = train_population([item] * len(seeds), data, train_config, seed=seeds)
        else:
            results = (train(item, data, train_config, seed=seed) for seed in seeds)
        for seed, result in zip(seeds, results, strict=True):
            yield seed, float(result.metrics.get("test_accuracy") or 0.0), result.status

    return data.classes, trainer


def stored_final(store: RunStore, run_id: str, config: SearchConfig,
                 score: Callable[[Loss, int], float] | None = None,
                 announce: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The run's final evaluation: the stored one, or — with ``final_seeds`` and a best
    loss — a new one, each training stored as it returns (a killed evaluation resumes
    with the missing ones) and the result stored at once, before any report is written."""
    best = best_candidates(store, run_id, 1)
    stored = store.final(run_id)
    if stored is not None or not config.final_seeds or not best:
        return stored
    ledger = Ledger.of(store, run_id)
    if announce:
        done = f" ({len(ledger.done)} trainings stored)" if ledger.done else ""
        announce(f"final evaluation: {config.final_seeds} seeds of {config.final_horizon} "
                 f"steps, best loss vs the baselines{done}")
    record = final_evaluation(rebuild_loss(best[0], config), config, config.final_seeds,
                              score, ledger).to_dict()
    store.save_final(run_id, record)
    return record


