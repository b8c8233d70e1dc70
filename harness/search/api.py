"""Search losses from Python: your model, data and objective — or the built-in ones.

Bring a function that scores a loss (a :class:`symloss.loss.Loss`; turn it into a
torch loss with :func:`symloss.harness.losses.torch_loss`, train *your* model with it and
return, say, validation accuracy), and :func:`search_losses` runs a TaylorGLO or
GLO search over it the way ``symloss search`` runs one over the built-in trainer:
the same strategies and derived filters (a filtered candidate costs nothing: your
function never sees it), the same SQLite run store (every score is written the
moment it returns; the config is recorded), the same resume (call again with the
same ``run_id``: nothing already paid is scored again), executors, progress lines
and report::

    from symloss.harness import torch_loss
    from symloss.harness.search import search_losses

    def fitness(loss):                        # higher is better
        criterion = torch_loss(loss)          # nn.CrossEntropyLoss's API
        ...                                   # train your model with it
        return validation_accuracy

    result = search_losses(fitness, "taylorglo", generations=4, population=16,
                           store="runs.sqlite", run_id="my-model")
    result.best.fitness, result.best.loss.expression, result.report

Without a function it trains the built-in models (``dataset``, ``model``,
``steps``, ... as ``symloss search``'s flags): ``search_losses(dataset="digits",
steps=200)``. Settings are :class:`~symloss.harness.search.runner.SearchConfig`'s and
:class:`~symloss.harness.search.evaluate.Budget`'s fields by name, with
``cma_options`` (any pycma option, :func:`~symloss.harness.search.strategies.check_cma_options`)
and ``gp_operators`` (GLO's DEAP operators,
:class:`~symloss.harness.search.strategies.GPOperators`).

What your function returns is the fitness: a finite number, stored as ``ok``; NaN
or infinity is stored as ``diverged`` with fitness 0. An exception stops the search
(the run is marked interrupted; calling again resumes it) unless its type is in
``catch`` (Optuna's convention): then the candidate is stored ``failed``, fitness 0.
"""

from __future__ import annotations

import math
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from symloss.harness.search.evaluate import Budget, Outcome, _worker_name
from symloss.harness.search.pipeline import run_search, store_file
from symloss.harness.search.runner import SearchConfig
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.search.strategies import GPOperators, check_cma_options, unknown_name
from symloss.loss import Loss

Fitness = Callable[[Loss], float]
#: ``final_score(loss, seed) -> score``: your held-out (test) score of a loss trained on ``seed``.
FinalScore = Callable[[Loss, int], float]

_CONFIG_FIELDS = tuple(f.name for f in fields(SearchConfig) if f.name not in ("budget",
                                                                              "fitness"))
_BUDGET_FIELDS = tuple(f.name for f in fields(Budget))


class UserFitness:
    """Your ``fitness(loss)`` as the search's evaluator: ``(loss, budget) -> Outcome``.

    Picklable whenever ``fitness`` is (a module-level function), so it can run in
    worker processes or on a Dask cluster.
    """

    def __init__(self, fitness: Fitness, catch: tuple[type[BaseException], ...] = ()):
        self.fitness = fitness
        self.catch = tuple(catch)

    def __call__(self, loss: Loss, budget: Budget) -> Outcome:
        started = time.perf_counter()
        try:
            value = self.fitness(loss)
        except self.catch as error:
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            return Outcome("failed", 0.0, {"error": detail}, time.perf_counter() - started,
                           _worker_name())
        seconds = time.perf_counter() - started
        try:
            value = float(value)  # a Python, numpy or one-element torch number
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"the fitness function {fitness_name(self.fitness)} returned "
                            f"{value!r}; it must return a number (higher is better)") from None
        if not math.isfinite(value):
            return Outcome("diverged", 0.0, {"fitness": repr(value)}, seconds, _worker_name())
        return Outcome("ok", value, {}, seconds, _worker_name())


def fitness_name(fitness: Callable) -> str:
    """``module:qualname`` of a function (recorded in the run's config).

    >>> fitness_name(fitness_name)
    'symloss.harness.search.api:fitness_name'
    """
    target = getattr(fitness, "func", fitness)  # a functools.partial names its function
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{getattr(target, '__module__', '?')}:{target.__qualname__}"


@dataclass(frozen=True)
class FoundLoss:
    """One of a run's best distinct losses: the loss (parameters bound) and its stored row."""

    loss: Loss
    record: CandidateRecord

    @property
    def fitness(self) -> float:
        return self.record.fitness

    @property
    def params(self) -> list[float] | None:
        return self.record.params

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape of a run's best (:func:`symloss.harness.search.final.best_entry`)."""
        from symloss.harness.search.final import best_entry

        return best_entry(self.record)


@dataclass(frozen=True)
class SearchResult:
    """What a search left in its store: ``top`` (best first), counts, report, final test."""

    run_id: str
    store: Path
    top: list[FoundLoss]
    counts: dict[str, int]
    evaluations: int
    report: Path | None
    final: dict[str, Any] | None = None

    @property
    def best(self) -> FoundLoss | None:
        return self.top[0] if self.top else None

    def _repr_markdown_(self) -> str:
        """The run as Jupyter shows it: its best losses and the final evaluation as tables."""
        from symloss.report import markdown_code, markdown_text

        lines = [f"**run {markdown_text(self.run_id)}**: {self.evaluations} trainings, counts "
                 f"{markdown_code(str(self.counts))}", "", "| fitness | ℓ(y, h) |",
                 "| ---: | --- |"]
        lines += [f"| {found.fitness:.4f} | "
                  f"{markdown_code(str(found.loss.expression), in_table=True)} |"
                  for found in self.top]
        if self.final:
            rows = {"found": self.final["test_accuracy"],
                    **{name: row["test_accuracy"] for name, row in
                       (self.final.get("baselines") or {}).items()}}
            lines += ["", "| final (test accuracy) | mean | std |", "| --- | ---: | ---: |"]
            lines += [f"| {markdown_text(name)} | {_number(row.get('mean'))} | "
                      f"{_number(row.get('std'))} |" for name, row in rows.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """``symloss search --json``'s shape (``best``: formula, parameters, fitness, ...)."""
        report = None if self.report is None else str(self.report)
        return {"run_id": self.run_id, "best": self.best.to_dict() if self.best else None,
                "counts": self.counts, "evaluations": self.evaluations, "report": report,
                "report_dir": None if report is None else str(Path(report).parent),
                "store": str(self.store), "final": self.final}


def _number(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def make_config(algorithm: str = "taylorglo", fitness: Fitness | None = None, *,
                name: str | None = None, **settings: Any) -> SearchConfig:
    """A checked :class:`SearchConfig` from settings named as its and :class:`Budget`'s fields.

    With a ``fitness`` function the budget's training settings do not apply (your
    function trains); ``dataset`` is then only a label for the run (default ``"custom"``)
    and ``name`` the function's recorded name (default :func:`fitness_name`).

    >>> make_config("glo", generations=2, gp_operators={"select": "tournament"}).gp_operators
    {'select': 'tournament'}
    >>> make_config(generation=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown search setting 'generation' (did you mean 'generations'?); choose from ...
    """
    from symloss.harness.search.config import validate_config, with_defaults
    from symloss.harness.search.evaluate import parse_objective
    from symloss.harness.search.final import check_baselines

    top: dict[str, Any] = {"algorithm": algorithm}
    budget: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _CONFIG_FIELDS:
            top[key] = value
        elif key in _BUDGET_FIELDS:
            budget[key] = value
        else:
            raise unknown_name("search setting", key, [*_CONFIG_FIELDS, *_BUDGET_FIELDS])
    if fitness is not None:
        trained = sorted(set(budget) - {"dataset"})
        if trained:
            raise ValueError(f"{', '.join(trained)} set the built-in training; your fitness "
                             "function trains (pass dataset= only, as the run's label)")
        budget.setdefault("dataset", "custom")
        top["fitness"] = name or fitness_name(fitness)
    budget.setdefault("seed", top.get("seed", 0))
    if top.get("cma_options") is not None:
        top["cma_options"] = check_cma_options(top["cma_options"])
    if top.get("gp_operators") is not None:
        GPOperators.create(top["gp_operators"])
        top["gp_operators"] = dict(top["gp_operators"])
    if top.get("baselines") is not None:
        top["baselines"] = check_baselines(list(top["baselines"]))
    if fitness is None:  # the built-in trainer: its horizon, threads recorded (a user's: none)
        top = with_defaults({**top, "budget": budget})
        budget = top.pop("budget")
    config = SearchConfig(**top, budget=Budget(**budget))
    validate_config(config.to_dict())
    parse_objective(config.budget.objective)
    return config


def search_losses(fitness: Fitness | None = None, algorithm: str = "taylorglo", *,
                  store: str | Path | None = None, run_id: str | None = None,
                  config: SearchConfig | None = None, name: str | None = None,
                  final_score: FinalScore | None = None,
                  catch: tuple[type[BaseException], ...] = (), workers: int | None = None,
                  scheduler: str | None = None, executor=None, progress: bool = True,
                  report_dir: str | Path | None = None, batched: bool = True,
                  run_name: str | None = None, **settings: Any) -> SearchResult:
    """Run a loss search (or resume it), write its report, and return what it found.

    ``fitness(loss) -> float`` scores a candidate (higher is better); without it the
    built-in trainer does (``dataset``, ``model``, ``steps``, ... in ``settings``).
    ``settings``: :func:`make_config`'s (``generations``, ``population``, ``filter``,
    ``seed``, ``cma_options``, ``gp_operators``, ...), or a whole ``config``.

    ``store``: the run store (default ``$SYMLOSS_STORE`` or ``./symloss-runs.sqlite``).
    ``run_id`` is the run's id (or a stored run's name); if the store holds it, the search
    resumes it (its config must be the same): candidates already scored are taken from
    the store, never scored again. ``run_name`` names the run in its store (unique there;
    ``symloss show NAME``, ``run:NAME``); not ``name``, which is your fitness function's
    recorded name. ``workers`` (local processes) or ``scheduler`` (a Dask
    address) spread candidates out; your function must then be picklable (defined at
    a module's top level). ``final_seeds`` (a setting) with ``final_score(loss, seed)
    -> score`` (your test score; the built-in trainer has its own) retrains the best
    loss and the baselines (``baselines``, default
    :data:`symloss.harness.search.final.BASELINES`) on those seeds for the report, once per run.
    The report goes to ``report_dir`` (default ``runs/RUN_ID`` beside the store; a resumed
    run's too: a folder read from the store is never written without being named here).
    """
    if config is None:
        if fitness is None:  # the built-in trainer records how its candidates train
            settings.setdefault("batched", batched)
        config = make_config(algorithm, fitness, name=name, **settings)
    elif settings:
        raise ValueError(f"pass either config or settings, not both (got {sorted(settings)})")
    elif fitness is not None and config.fitness is None:
        config = replace(config, fitness=name or fitness_name(fitness))
    return _run(config, fitness, store=store, run_id=run_id, resume=None,
                final_score=final_score, catch=catch, workers=workers, scheduler=scheduler,
                executor=executor, progress=progress, report_dir=report_dir, batched=batched,
                run_name=run_name)


def resume_search(run_id: str, fitness: Fitness | None = None, *,
                  store: str | Path | None = None, **options: Any) -> SearchResult:
    """Continue a stored run (``run_id``: its id or name) with its stored config
    (``symloss search --resume``'s twin).

    A run searched with a fitness function needs that function again; ``options``
    are :func:`search_losses`'s that are not settings (``final_score``, ``workers``, ...).
    """
    with RunStore.open(store_file(store), create=False) as opened:
        run_id = opened.resolve(run_id)
        config = SearchConfig.from_dict(opened.run(run_id).config)  # damage: one line
    return _run(config, fitness, store=store, run_id=run_id, resume=True, **options)


def _run(config: SearchConfig, fitness: Fitness | None, *, store: str | Path | None,
         run_id: str | None, resume: bool | None, final_score: FinalScore | None = None,
         catch: tuple[type[BaseException], ...] = (), workers: int | None = None,
         scheduler: str | None = None, executor=None, progress: bool = True,
         report_dir: str | Path | None = None, batched: bool = True,
         run_name: str | None = None) -> SearchResult:
    """Your fitness checked, then the one pipeline (:func:`~symloss.harness.search.pipeline.
    run_search`, as ``symloss search``): search, final evaluation and report under the run's
    lock."""
    from symloss.harness.search.final import rebuild_loss

    evaluate = None if fitness is None else UserFitness(fitness, catch)
    if config.final_seeds and fitness is not None and final_score is None:
        raise ValueError("final_seeds with a fitness function needs final_score(loss, seed) "
                         "-> your test score")
    if evaluate is not None and ((workers or 0) > 1 or scheduler):
        _check_picklable(evaluate, scheduler)
    outcome = run_search(config, store=store, run_id=run_id, resume=resume,
                         report_dir=report_dir, report_flag="report_dir", executor=executor,
                         workers=workers, scheduler=scheduler, evaluate=evaluate,
                         final_score=final_score, batched=batched, progress=progress,
                         name=run_name)
    top = [FoundLoss(rebuild_loss(record, config), record) for record in outcome.top]
    return SearchResult(outcome.run_id, outcome.store, top, outcome.counts,
                        outcome.evaluations, outcome.report, outcome.final)


def _check_picklable(evaluate: UserFitness, scheduler: str | None) -> None:
    """Workers and a scheduler get the fitness function by pickling (Dask: cloudpickle,
    which ships ``__main__``'s functions by value): refused here in one line if it cannot."""
    if scheduler:
        import cloudpickle as pickler
    else:
        pickler = pickle
    try:
        pickler.dumps(evaluate)
    except Exception as error:
        raise ValueError(f"workers and scheduler send the fitness function to other "
                         f"processes, so it must be picklable (a module-level function): "
                         f"{type(error).__name__}: {error}") from None
