"""The Python search API (issue 13): your fitness function, pycma options, DEAP operators.

The fitness functions here are cheap closed forms of a candidate's parameters or
formula (no training), except the example's and the built-in path's, which train
for a few steps on digits.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from symloss.catalog import loss, taylorglo
from symloss.gp import crossover, mutate, random_tree, roulette
from symloss.harness.search import (
    ConfigMismatch,
    GPOperators,
    RunStore,
    SearchConfig,
    make_config,
    resume_search,
    search,
    search_losses,
)
from symloss.harness.search.store import CandidateRecord
from symloss.loss import Loss
from symloss.trainability import candidate_filter
from tests.scripts import load_script

QUIET = {"progress": False}


def closeness(loss: Loss) -> float:
    """A fitness in (0, 1] that depends on the candidate: λ near (0, …, 0, −1, 0, 2, 0, 0)."""
    target = np.array([0, 0, 0, -1, 0, 2, 0, 0], dtype=float)
    return float(1 / (1 + np.sum((np.asarray(loss.values, dtype=float) - target) ** 2)))


def formula_length(loss: Loss) -> float:
    """A GLO fitness: shorter formulas score higher."""
    return 1 / len(str(loss.expression))


class Recorder:
    """A fitness that records every loss it is given."""

    def __init__(self, function=closeness, stop_after: int | None = None):
        self.function, self.stop_after, self.seen = function, stop_after, []

    def __call__(self, loss: Loss) -> float:
        if self.stop_after is not None and len(self.seen) == self.stop_after:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a generation
        self.seen.append(loss)
        return self.function(loss)


def stored(path: Path, run_id: str):
    with RunStore.open(path) as store:
        return store.run(run_id), store.candidates(run_id)


def test_fitness_sees_losses_and_its_values_are_stored(tmp_path):
    fitness = Recorder()
    result = search_losses(fitness, generations=2, population=10, store=tmp_path / "r.sqlite",
                           run_id="mine", **QUIET)
    run, records = stored(tmp_path / "r.sqlite", "mine")
    assert all(isinstance(loss, Loss) and not loss.is_family for loss in fitness.seen)
    scored = [r for r in records if r.status != "filtered"]
    assert len(fitness.seen) == len(scored) == result.evaluations
    by_params = {tuple(map(float, loss.values)): closeness(loss) for loss in fitness.seen}
    for record in scored:
        assert record.status == "ok"
        assert record.fitness == by_params[tuple(record.params)]
    assert result.best.fitness == max(r.fitness for r in records)
    assert result.best.loss.expression == taylorglo(3).bind(result.best.params).expression
    assert run.config["fitness"].endswith(":Recorder")
    assert result.report.is_file() and "Best losses" in result.report.read_text()
    report = result.report.read_text()
    assert ":Recorder` (your function" in report and '"steps"' not in report  # no trainer
    summary = json.loads((result.report.parent / "summary.json").read_text())["best"]
    summary.pop("analysis", None)
    summary.pop("outlook", None)  # the report adds the best loss's analysis and outlook
    assert result.to_dict()["best"] == summary  # one JSON shape for a run's best


def test_filtered_candidates_never_reach_the_fitness(tmp_path):
    fitness = Recorder()
    search_losses(fitness, generations=2, population=12, store=tmp_path / "r.sqlite",
                  run_id="f", **QUIET)
    _, records = stored(tmp_path / "r.sqlite", "f")
    filtered = [r.params for r in records if r.status == "filtered"]
    assert filtered, "about half of a population around λ = 0 fails the exact filter"
    seen = [list(map(float, loss.values)) for loss in fitness.seen]
    assert not any(params in seen for params in filtered)
    keep = candidate_filter(taylorglo(3), 10)
    assert keep.mask(np.array(seen)).all()


def test_resume_scores_nothing_already_paid(tmp_path):
    whole = Recorder()
    search_losses(whole, generations=3, population=10, store=tmp_path / "whole.sqlite",
                  run_id="w", **QUIET)
    first = Recorder(stop_after=len(whole.seen) // 2)
    with pytest.raises(KeyboardInterrupt):
        search_losses(first, generations=3, population=10, store=tmp_path / "parts.sqlite",
                      run_id="p", **QUIET)
    assert stored(tmp_path / "parts.sqlite", "p")[0].status == "interrupted"
    second = Recorder()
    result = search_losses(second, generations=3, population=10,
                           store=tmp_path / "parts.sqlite", run_id="p", **QUIET)
    paid_before = {tuple(loss.values) for loss in first.seen}
    assert not paid_before & {tuple(loss.values) for loss in second.seen}
    assert len(first.seen) + len(second.seen) == len(whole.seen)
    parts = [(r.params, r.fitness) for r in stored(tmp_path / "parts.sqlite", "p")[1]]
    assert parts == [(r.params, r.fitness) for r in stored(tmp_path / "whole.sqlite", "w")[1]]
    assert result.evaluations == len(whole.seen)
    again = Recorder()  # a finished run: resuming it scores nothing
    assert resume_search("p", again, store=tmp_path / "parts.sqlite", **QUIET).best == \
        result.best
    assert again.seen == []


def test_resume_refuses_other_options_and_a_missing_fitness(tmp_path):
    path = tmp_path / "r.sqlite"
    search_losses(closeness, generations=1, population=6, store=path, run_id="o",
                  cma_options={"popsize": 6, "CMA_active": False}, **QUIET)
    with pytest.raises(ConfigMismatch, match=r"cma_options"):
        search_losses(closeness, generations=1, population=6, store=path, run_id="o",
                      cma_options={"popsize": 6}, **QUIET)
    config = SearchConfig.from_dict(stored(path, "o")[0].config)
    with RunStore.open(path) as store, pytest.raises(ValueError, match=r"Python function .*"
                                                                        r"closeness"):
        search(config, store=store, run_id="o", resume=True)  # what symloss search --resume does


def test_options_are_recorded_only_when_set():
    """Runs stored before these options existed have none of their keys: they still resume."""
    plain = SearchConfig().to_dict()
    assert not {"cma_options", "gp_operators", "fitness"} & set(plain)
    assert SearchConfig.from_dict(plain) == SearchConfig()
    chosen = make_config("glo", cma_options={"bounds": (-5, 5)},
                         gp_operators={"mutate": "shrink"}).to_dict()
    assert chosen["cma_options"] == {"bounds": [-5, 5]}
    assert chosen["gp_operators"] == {"mutate": "shrink"}
    assert json.loads(json.dumps(chosen)) == chosen


def test_cma_options_reach_pycma(tmp_path):
    fitness = Recorder(closeness)
    search_losses(fitness, generations=1, population=20, filter="none",
                  cma_options={"popsize": 7, "bounds": [-0.5, 0.5]}, store=tmp_path / "r.sqlite",
                  run_id="c", **QUIET)
    assert len(fitness.seen) == 7
    assert all(abs(v) <= 0.5 for loss in fitness.seen for v in loss.values)


@pytest.mark.parametrize("options, message", [
    ({"pop_size": 8}, r"^unknown pycma option 'pop_size' \(did you mean 'popsize'\?\)"),
    ({"seed": 3}, r"^pycma option 'seed' is the search's own"),
    ({"sigma0": 2.0}, r"^sigma0 is not a pycma option .* pass sigma0="),
    ({"popsize": "4 + 3 * N"}, r"^pycma option 'popsize' must be a number"),
    ({"popsize": -3}, r"^pycma refused the options"),
])
def test_bad_pycma_options_are_one_line_errors_and_store_nothing(tmp_path, options, message):
    fitness = Recorder()
    for algorithm in ("taylorglo", "glo"):
        with pytest.raises(ValueError, match=message) as error:
            search_losses(fitness, algorithm, generations=1, population=8, cma_options=options,
                          store=tmp_path / "r.sqlite", **QUIET)
        assert "\n" not in str(error.value)
    assert fitness.seen == []
    if (tmp_path / "r.sqlite").exists():
        with RunStore.open(tmp_path / "r.sqlite") as store:
            assert store.runs() == []


@pytest.mark.parametrize("operators, message", [
    ({"selection": "tournament"}, r"unknown GP operator setting 'selection' \(did you mean "
                                  r"'select'\?\)"),
    ({"mutate": "flip"}, r"unknown mutate operator 'flip'"),
    ({"max_depth": 1}, r"max_depth \(1\) must be at least initial_depth \(2\)"),
    ({"mutate": "uniform", "mutation_rates": {"integer": 0.1}}, r"mutate='glo' only"),
])
def test_bad_gp_operators_are_refused(operators, message):
    with pytest.raises(ValueError, match=message):
        make_config("glo", gp_operators=operators)


def test_gp_operators_apply_to_glo_only(tmp_path):
    with pytest.raises(ValueError, match="GLO only"):
        search_losses(closeness, "taylorglo", gp_operators={"mutate": "shrink"},
                      store=tmp_path / "r.sqlite", **QUIET)


def test_glo_default_toolbox_is_glos_own_operators():
    """The toolbox's defaults draw exactly what symloss.gp's operators draw (old runs replay)."""
    box = GPOperators().toolbox(np.random.default_rng(4))
    rng = np.random.default_rng(4)
    trees = [random_tree(np.random.default_rng(seed)) for seed in range(12)]
    fitnesses = [0.1 * i for i in range(12)]
    for first, second in itertools.pairwise(trees):
        assert list(box.select(fitnesses, 2)) == list(roulette(fitnesses, 2, rng))
        assert [str(t) for t in box.mate(first, second)] == \
            [str(t) for t in crossover(first, second, rng)]
        assert [str(t) for t in box.mutate(first)] == [str(mutate(first, rng))]


@pytest.mark.parametrize("mate, mutate_name", [("one_point", "uniform"),
                                               ("one_point_leaf_biased", "insert"),
                                               ("glo", "node_replacement"), ("glo", "shrink")])
def test_deap_operators_keep_the_depth_limit_and_parents(mate, mutate_name):
    operators = GPOperators.create({"mate": mate, "mutate": mutate_name, "max_depth": 3,
                                    "select": "tournament", "tournament_size": 2})
    box = operators.toolbox(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    changed = 0
    for _ in range(40):
        a, b = random_tree(rng, 3), random_tree(rng, 3)
        before = (str(a), str(b))
        children = [*box.mate(a, b), *box.mutate(a)]
        assert (str(a), str(b)) == before, "parents are never changed in place"
        assert all(child.height <= 3 for child in children)
        changed += sum(str(child) not in before for child in children)
    assert changed > 10
    chosen = box.select([0.0, 0.0, 1.0, 0.0], 200)
    assert np.bincount(chosen, minlength=4)[2] > 50  # tournaments favour the fittest


def test_glo_with_deap_operators_resumes_exactly(tmp_path):
    settings = {"generations": 3, "cma_generations": 1, "population": 10,
                "gp_operators": {"mutate": "uniform", "select": "tournament", "max_depth": 5},
                "cma_options": {"popsize": 4}}
    whole = Recorder(formula_length)
    search_losses(whole, "glo", store=tmp_path / "whole.sqlite", run_id="w", **settings,
                  **QUIET)
    first = Recorder(formula_length, stop_after=len(whole.seen) // 2)
    with pytest.raises(KeyboardInterrupt):
        search_losses(first, "glo", store=tmp_path / "parts.sqlite", run_id="p", **settings,
                      **QUIET)
    second = Recorder(formula_length)
    search_losses(second, "glo", store=tmp_path / "parts.sqlite", run_id="p", **settings,
                  **QUIET)
    parts = [(r.expression, r.fitness) for r in stored(tmp_path / "parts.sqlite", "p")[1]]
    assert parts == [(r.expression, r.fitness)
                     for r in stored(tmp_path / "whole.sqlite", "w")[1]]
    assert len(first.seen) + len(second.seen) == len(whole.seen)


def test_nan_is_diverged_and_caught_errors_are_failed(tmp_path):
    def moody(loss: Loss) -> float:
        first = float(loss.values[0])
        if first > 0.5:
            raise ArithmeticError("my training broke")
        return math.nan if first < -0.5 else 0.5

    search_losses(moody, generations=1, population=30, filter="none", catch=(ArithmeticError,),
                  store=tmp_path / "r.sqlite", run_id="m", **QUIET)
    records = stored(tmp_path / "r.sqlite", "m")[1]
    by_status = {r.status for r in records}
    assert by_status == {"ok", "diverged", "failed"}
    failed = [r for r in records if r.status == "failed"]
    assert all(r.fitness == 0 and "my training broke" in r.metrics["error"] for r in failed)
    assert all(r.fitness == 0 for r in records if r.status == "diverged")


def test_an_uncaught_error_stops_the_search_resumably(tmp_path):
    def broken(loss: Loss) -> float:
        raise RuntimeError("bug in my code")

    with pytest.raises(RuntimeError, match="bug in my code"):
        search_losses(broken, generations=1, population=6, filter="none",
                      store=tmp_path / "r.sqlite", run_id="b", **QUIET)
    assert stored(tmp_path / "r.sqlite", "b")[0].status == "interrupted"
    with pytest.raises(TypeError, match="must return a number"):
        search_losses(lambda loss: "high", generations=1, population=6, filter="none",
                      store=tmp_path / "r2.sqlite", **QUIET)


def test_settings_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"did you mean 'generations'"):
        search_losses(closeness, generation=2, store=tmp_path / "r.sqlite", **QUIET)
    with pytest.raises(ValueError, match=r"steps set the built-in training"):
        search_losses(closeness, steps=10, store=tmp_path / "r.sqlite", **QUIET)
    with pytest.raises(ValueError, match=r"final_score"):
        search_losses(closeness, final_seeds=2, store=tmp_path / "r.sqlite", **QUIET)
    with pytest.raises(ValueError, match=r"picklable"):
        search_losses(lambda loss: 1.0, workers=2, store=tmp_path / "r.sqlite", **QUIET)
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.slow  # two spawned processes import torch
def test_workers_run_a_picklable_fitness(tmp_path):
    result = search_losses(closeness, generations=1, population=6, filter="none", workers=2,
                           store=tmp_path / "r.sqlite", run_id="w", **QUIET)
    records = stored(tmp_path / "r.sqlite", "w")[1]
    assert len(records) == result.evaluations == 6
    assert not any(r.worker.endswith(f":{os.getpid()}") for r in records)  # scored elsewhere
    assert [r.fitness for r in records] == [closeness(taylorglo(3).bind(r.params))
                                            for r in records]


def test_a_whole_config_and_a_recorded_name(tmp_path):
    config = SearchConfig("taylorglo", generations=1, population=4, filter="none")
    result = search_losses(closeness, config=config, name="closeness-v1",
                           store=tmp_path / "r.sqlite", run_id="c", **QUIET)
    run, records = stored(tmp_path / "r.sqlite", "c")
    assert run.config == {**config.to_dict(), "fitness": "closeness-v1"}
    assert result.evaluations == len(records) == 4
    with pytest.raises(ValueError, match="either config or settings"):
        search_losses(closeness, config=config, generations=2, store=tmp_path / "r.sqlite")


def test_builtin_training_from_python(tmp_path):
    result = search_losses(dataset="digits", steps=4, batch_size=64, generations=1,
                           population=4, filter="none", store=tmp_path / "r.sqlite", **QUIET)
    run, records = stored(tmp_path / "r.sqlite", result.run_id)
    assert run.config["budget"]["steps"] == 4 and "fitness" not in run.config
    assert all(r.status in ("ok", "diverged") for r in records)
    assert all("val_accuracy" in r.metrics for r in records if r.status == "ok")


def test_example_runs_at_a_tiny_size(tmp_path, capsys):
    example = load_script("examples/search_own_model.py")
    result = example.main(["--generations", "1", "--population", "6", "--steps", "5",
                           "--final-seeds", "2", "--store", str(tmp_path / "ex.sqlite")])
    out = capsys.readouterr().out
    assert f"best fitness {result.best.fitness:.4f}" in out
    assert set(result.final["baselines"]) == {"cross_entropy", "label_smoothed_cross_entropy",
                                              "poly1", "focal"}
    assert len(result.final["test_accuracy"]["per_seed"]) == 2
    assert "Final evaluation" in result.report.read_text()


def test_a_search_result_shows_as_tables_in_a_notebook(tmp_path):
    from symloss.harness.search.api import FoundLoss, SearchResult

    record = CandidateRecord(0, 0, "ok", 0.75, None, "-y*log(h)")
    final = {"test_accuracy": {"mean": 0.9, "std": 0.01},
             "baselines": {"poly1": {"test_accuracy": {"mean": 0.88, "std": None}}}}
    result = SearchResult("r|1", tmp_path, [FoundLoss(loss("cross_entropy"), record)],
                          {"ok": 1}, 1, None, final)
    shown = result._repr_markdown_().splitlines()
    assert shown[0].startswith("**run r\\|1**: 1 trainings")  # a stored id cannot add cells
    assert "| 0.7500 | `-y*log(h)` |" in shown
    assert shown[-2:] == ["| found | 0.9000 | 0.0100 |", "| poly1 | 0.8800 | — |"]
