"""Horizon-aware selection (issue 23): successive halving over training lengths.

The evaluator here is a pure function of (loss, steps), so what is asserted is the
schedule's behaviour — who is promoted, what the optimizer is told, what is stored
and reused — never the numbers a real training gives.
"""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from symloss.harness.search import runner as runner_module
from symloss.harness.search.evaluate import Budget, Outcome
from symloss.harness.search.fidelity import (
    check_fidelity,
    model_steps,
    promoted,
    rung_steps,
)
from symloss.harness.search.rungstore import rung_trainings
from symloss.harness.search.runner import SearchConfig, best_candidates, search
from symloss.harness.search.store import RunStore

TINY = Budget(dataset="digits", steps=10, batch_size=64)


def fake_fitness(loss, steps: int) -> float:
    """A made-up accuracy: each loss has its own level, and every fifth one collapses
    beyond 30 steps (as the short-horizon winners of RESULTS-filters.md did)."""
    level = (zlib.crc32(str(loss.expression).encode()) % 1000) / 1000
    if level > 0.8 and steps > 30:
        return 0.01
    return level * (1 - 1 / (1 + steps / 10))


@pytest.fixture
def trained(monkeypatch):
    """Every (expression, steps) handed to training, scored by :func:`fake_fitness`."""
    calls = []

    def evaluate(loss, budget):
        calls.append((str(loss.expression), budget.steps))
        scored[str(loss.expression), budget.steps] = fake_fitness(loss, budget.steps)
        return Outcome("ok", scored[str(loss.expression), budget.steps], {}, 0.0, "test")

    scored: dict[tuple[str, int], float] = {}
    monkeypatch.setattr(runner_module, "_evaluate", evaluate)
    monkeypatch.setattr(runner_module, "_scored", scored, raising=False)
    return calls


def halving(**settings) -> SearchConfig:
    values = {"generations": 2, "population": 12, "filter": "none", "budget": TINY,
              "horizon": 90, "reduction_factor": 3, **settings}
    return SearchConfig("taylorglo", **values)


def test_the_schedule_and_its_checks():
    assert rung_steps(300, 1500, 3) == (300, 900, 1500)
    assert rung_steps(10, 90, 3) == (10, 30, 90)
    assert [promoted(n, 3) for n in (1, 3, 4, 12)] == [1, 1, 2, 4]
    for bad, message in (((300, 100, None), "at least the screening steps"),
                         ((300, 300, 3), "needs a horizon longer"),
                         ((300, 1500, 1), "at least 2"),
                         ((1, 10**9, 2), "more than 12 rungs"),
                         ((300, 1500, 3, 100), "at least one screening training")):
        with pytest.raises(ValueError, match=message):
            check_fidelity(*bad)


def test_the_best_third_climbs_each_rung_and_is_told_its_longest_fitness(tmp_path, trained):
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(halving(generations=1), store=store)
        screened = {c.expression: c.fitness for c in store.candidates(run_id)}
        rungs = rung_trainings(store, run_id)
        at = {steps: [e for e, s in trained if s == steps] for steps in (10, 30, 90)}
        assert len(at[10]) == 12 and len(at[30]) == 4 and len(at[90]) == 2
        # promoted: the best of the rung below, by the fitness there
        assert set(at[30]) == set(sorted(screened, key=screened.get)[-4:])
        scored = runner_module._scored
        thirty = {e: scored[e, 30] for e in at[30]}
        assert set(at[90]) == set(sorted(thirty, key=thirty.get)[-2:])
        assert [(t.rung, t.steps) for t in rungs].count((2, 90)) == 2
        # the generation's best, as saved, is the best fitness at the longest rung reached
        told = {e: scored[e, 90] if e in at[90] else thirty.get(e, screened[e])
                for e in screened}
        assert store.generation_summary(run_id)[0]["best_fitness"] == pytest.approx(
            max(told.values()))
        # compute in model-steps: 12 x 10 + 4 x 30 + 2 x 90
        assert model_steps(store, run_id, 10) == 12 * 10 + 4 * 30 + 2 * 90
        # the final evaluation's pick: the best as told (at the longest rung reached)
        best = best_candidates(store, run_id, 1)[0]
        assert best.expression == max(told, key=told.get)
        assert best.metrics.get("rung_steps", 10) == {**dict.fromkeys(at[30], 30),
                                                      **dict.fromkeys(at[90], 90)}.get(
            best.expression, 10)


def test_a_collapse_at_the_horizon_is_told_and_never_picked(tmp_path, monkeypatch):
    """A loss that wins the screening and collapses at the horizon ranks below the others."""
    def evaluate(loss, budget):
        level = (zlib.crc32(str(loss.expression).encode()) % 1000) / 1000
        return Outcome("ok", 0.0 if budget.steps == 90 and level == top[0] else level, {},
                       0.0, "test")

    top = [None]
    original = runner_module.run_generation

    def screened(candidates, *args, **kwargs):
        records = original(candidates, *args, **kwargs)
        top[0] = max(r.fitness for r in records)
        return records

    monkeypatch.setattr(runner_module, "_evaluate", evaluate)
    monkeypatch.setattr(runner_module, "run_generation", screened)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(halving(generations=1), store=store)
        best = best_candidates(store, run_id, 3)
        assert all(r.fitness != 0.0 for r in best)
        assert store.generation_summary(run_id)[0]["best_fitness"] < top[0]


def test_resume_between_rungs_pays_nothing_twice_and_equals_the_whole_run(tmp_path, trained,
                                                                         monkeypatch):
    whole = tmp_path / "whole.sqlite"
    with RunStore.open(whole) as store:
        search(halving(), store=store, run_id="r")
    paid = list(trained)
    trained.clear()
    # interrupt the second generation after its first rung training at 30 steps
    original = runner_module._evaluate

    def interrupting(loss, budget):
        if budget.steps == 90 and len([s for _, s in trained if s == 90]) >= 3:
            raise KeyboardInterrupt
        return original(loss, budget)

    monkeypatch.setattr(runner_module, "_evaluate", interrupting)
    parts = tmp_path / "parts.sqlite"
    with RunStore.open(parts) as store, pytest.raises(KeyboardInterrupt):
        search(halving(), store=store, run_id="r")
    monkeypatch.setattr(runner_module, "_evaluate", original)
    with RunStore.open(parts) as store:
        assert store.run("r").status == "interrupted"
        search(halving(), store=store, run_id="r", resume=True)
    assert sorted(trained) == sorted(paid), "every training paid once, none twice"

    def contents(path):
        with RunStore.open(path) as store:
            return ([(c.generation, c.idx, c.fitness) for c in store.candidates("r")],
                    [(t.generation, t.idx, t.rung, t.fitness) for t in
                     rung_trainings(store, "r")],
                    store.generation_summary("r"), store.last_generation("r")[1])

    assert contents(parts) == contents(whole)


def test_a_model_step_budget_ends_the_search(tmp_path, trained):
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(halving(generations=50, model_steps=500), store=store)
        spent = model_steps(store, run_id, 10)
        per_generation = 12 * 10 + 4 * 30 + 2 * 90
        assert 500 <= spent < 500 + per_generation
        assert len(store.generation_summary(run_id)) == -(-500 // per_generation)


def test_an_older_store_gains_the_table_and_newer_symloss_is_refused(tmp_path, trained):
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        search(halving(generations=1), store=store, run_id="r")
    connection = sqlite3.connect(path)
    version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert version.fetchone()[0] == "3"
    connection.close()
    with RunStore.open(path) as store:
        assert store.delete_run("r") == 12
        assert rung_trainings(store, "r") == []


@pytest.mark.parametrize("flags, message", [
    (["--horizon", "5"], "--horizon must be at least the screening --steps (10), got 5"),
    (["--reduction-factor", "0"], "--reduction-factor must be >= 2, got 0"),
    (["--horizon", "10", "--reduction-factor", "3"], "needs a --horizon longer"),
    (["--model-steps", "3"], "--model-steps must pay for at least one screening training"),
])
def test_bad_schedules_are_one_line_and_store_nothing(tmp_path, capsys, flags, message):
    from symloss.cli import main

    store = tmp_path / "runs.sqlite"
    assert main(["search", "taylorglo", "--dataset", "digits", "--steps", "10",
                 "--store", str(store), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not store.exists()


def test_the_report_states_the_compute_and_the_rung_of_each_best(tmp_path, trained):
    from symloss.harness.search.report import write_report

    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(halving(generations=1), store=store)
        report = write_report(store, run_id, tmp_path / "out").read_text()
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "- compute: 420 model-steps (rungs of 10 → 30 → 90 steps; 6 longer trainings)" \
        in report
    assert summary["compute"] == {"model_steps": 420, "rungs": [10, 30, 90], "horizon": 90,
                                  "rung_trainings": 6}
    assert "| 90 |" in report.split("## Best losses")[1].splitlines()[4]


def test_glo_climbs_the_same_rungs_through_the_shared_runner(tmp_path, trained):
    config = SearchConfig("glo", generations=1, cma_generations=1, population=10,
                          budget=TINY, horizon=90, reduction_factor=3)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(config, store=store)
        rungs = rung_trainings(store, run_id)
        assert {t.steps for t in rungs} == {30, 90}
        for generation in (0, 1):  # the GP phase and the CMA-ES phase
            ok = {c.canonical_key or c.expression for c in store.candidates(run_id, generation)
                  if c.status == "ok"}
            climbed = [t for t in rungs if t.generation == generation and t.rung == 1]
            assert len({t.identity for t in climbed}) == promoted(len(ok), 3)
        resumed = search(config, store=store, run_id=run_id, resume=True)
        assert resumed == run_id and len(rung_trainings(store, run_id)) == len(rungs)


def test_new_runs_halve_by_default_and_one_asks_for_one_fidelity():
    from symloss.harness.search.api import make_config

    assert make_config(steps=10).reduction_factor == 3 and make_config(steps=10).filter == \
        "lasting"
    assert make_config(steps=10, reduction_factor=1).reduction_factor is None
    assert make_config(steps=10, horizon=10).reduction_factor is None  # nothing to climb
