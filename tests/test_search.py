"""The searches: filtering, caching, resume, the store, config errors (issue 4).

Trainings here are real but tiny (digits, a few steps), so the whole file runs
in well under a minute.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from symloss.catalog import taylorglo
from symloss.gp import from_prefix
from symloss.harness.search import runner as runner_module
from symloss.harness.search.evaluate import Budget, Outcome, parse_objective
from symloss.harness.search.runner import ConfigMismatch, SearchConfig, best_candidates, search
from symloss.harness.search.store import SCHEMA_VERSION, CandidateRecord, RunStore, StoreError
from symloss.harness.search.strategies import (
    Candidate,
    GLOSettings,
    GLOStrategy,
    TaylorGLOSettings,
    TaylorGLOStrategy,
    read_snapshot,
)
from symloss.trainability import candidate_filter

TINY = Budget(dataset="digits", steps=4, batch_size=64)


@pytest.fixture
def store(tmp_path):
    with RunStore.open(tmp_path / "runs.sqlite") as opened:
        yield opened


@pytest.fixture
def spy(monkeypatch):
    """Record every loss handed to training, and still train it for real."""
    trained = []
    original = runner_module._evaluate

    def recording(loss, budget):
        trained.append(loss)
        return original(loss, budget)

    monkeypatch.setattr(runner_module, "_evaluate", recording)
    return trained


# TaylorGLO ---------------------------------------------------------------------------------


def test_taylorglo_filtered_candidates_are_never_trained(store, spy):
    config = SearchConfig("taylorglo", generations=2, population=10, filter="exact",
                          budget=TINY)
    run_id = search(config, store=store)
    records = store.candidates(run_id)
    filtered = [r for r in records if r.status == "filtered"]
    assert filtered, "with σ0 = 1.2 around 0, about half the candidates fail the filter"
    assert all(r.fitness == 0.0 for r in filtered)
    trained_params = [list(map(float, loss.values)) for loss in spy]
    assert all(r.params not in trained_params for r in filtered)
    assert len(spy) == len(records) - len(filtered)
    keep = candidate_filter(taylorglo(3), 10)
    assert not keep.mask(np.array([r.params for r in filtered])).any()


def test_taylorglo_filter_none_trains_everything(store, spy):
    config = SearchConfig("taylorglo", generations=1, population=6, filter="none", budget=TINY)
    run_id = search(config, store=store)
    assert store.counts(run_id).get("filtered", 0) == 0
    assert len(spy) == 6


def test_population_defaults_follow_the_paper():
    with_filter = SearchConfig("taylorglo").strategy()
    without = SearchConfig("taylorglo", filter="none").strategy()
    assert with_filter.settings.population == 40  # ICLR §5: doubled with the invariant
    assert without.settings.population == 20
    assert SearchConfig("glo").strategy().settings.population == 80  # GLO §III


def test_a_replayed_strategy_asks_the_same_generation():
    strategy = TaylorGLOStrategy.create(TaylorGLOSettings(population=8), seed=3)
    candidates = strategy.ask()
    fitnesses = list(np.linspace(0, 1, 8))
    strategy.tell(candidates, fitnesses)
    replayed = TaylorGLOStrategy.create(TaylorGLOSettings(population=8), seed=3)
    replayed.replay([CandidateRecord(0, c.idx, "ok", f, c.params, c.expression)
                     for c, f in zip(candidates, fitnesses, strict=True)])
    assert replayed.snapshot() == strategy.snapshot()
    assert [c.params for c in strategy.ask()] == [c.params for c in replayed.ask()]


def test_different_seeds_ask_different_candidates():
    first = TaylorGLOStrategy.create(TaylorGLOSettings(population=4), seed=0).ask()
    second = TaylorGLOStrategy.create(TaylorGLOSettings(population=4), seed=1).ask()
    assert [c.params for c in first] != [c.params for c in second]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    config = SearchConfig("taylorglo", generations=3, population=6, budget=TINY, seed=5)
    with RunStore.open(tmp_path / "whole.sqlite") as whole:
        uninterrupted = search(config, store=whole)
        expected = [(r.generation, r.idx, r.status, r.params, r.fitness)
                    for r in whole.candidates(uninterrupted)]
        expected_state = whole.last_generation(uninterrupted)
    with RunStore.open(tmp_path / "parts.sqlite") as parts:
        run_id = search(config, store=parts, stop_after=1)
        assert parts.run(run_id).status == "interrupted"
        search(config, store=parts, run_id=run_id, resume=True, stop_after=1)
        search(config, store=parts, run_id=run_id, resume=True)
        got = [(r.generation, r.idx, r.status, r.params, r.fitness)
               for r in parts.candidates(run_id)]
        state = parts.last_generation(run_id)
    assert got == expected
    assert state[0] == expected_state[0]
    assert read_snapshot(state[1])["es"]["mean"] == read_snapshot(expected_state[1])["es"]["mean"]
    assert state[1] == expected_state[1]


def test_resume_mid_generation_reuses_paid_evaluations(tmp_path, spy):
    config = SearchConfig("taylorglo", generations=1, population=6, filter="none", budget=TINY)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run("taylorglo", config.to_dict())
        strategy = config.strategy()
        candidates = strategy.ask()
        # Two evaluations were paid for before a crash.
        for candidate in candidates[:2]:
            store.add_candidate(run_id, CandidateRecord(
                0, candidate.idx, "ok", 0.5, candidate.params, candidate.expression))
        search(config, store=store, run_id=run_id, resume=True)
        records = store.candidates(run_id)
    assert len(spy) == 4, "only the four unpaid candidates are trained"
    assert [r.idx for r in records] == list(range(6)), "each candidate stored exactly once"
    assert records[0].fitness == 0.5 and records[1].fitness == 0.5


def test_resume_refuses_a_changed_config(store):
    config = SearchConfig("taylorglo", generations=1, population=4, budget=TINY)
    run_id = search(config, store=store, stop_after=0)
    changed = SearchConfig("taylorglo", generations=1, population=4,
                           budget=Budget(dataset="digits", steps=9, batch_size=64))
    with pytest.raises(ConfigMismatch, match=r"budget\.steps 9 \(stored 4\)"):
        search(changed, store=store, run_id=run_id, resume=True)


def test_a_stored_slot_is_written_exactly_once(store):
    run_id = store.create_run("taylorglo", {"x": 1})
    record = CandidateRecord(0, 0, "ok", 0.5, [0.0], "h")
    store.add_candidate(run_id, record)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_candidate(run_id, record)
    assert len(store.candidates(run_id)) == 1


# GLO ---------------------------------------------------------------------------------------


def _glo_with(population: list[list[str]], **settings) -> GLOStrategy:
    strategy = GLOStrategy.create(GLOSettings(population=len(population) + 1, elites=1,
                                              **settings), seed=0)
    strategy._next_trees = lambda: [from_prefix(p) for p in population]  # a chosen generation
    return strategy


def test_glo_equivalent_trees_train_once(store, spy):
    trees = [["add", "log", "h", "mul", "y", "h"],   # log h + y·h
             ["add", "mul", "h", "y", "log", "h"],   # the same, commuted
             ["sub", "add", "log", "h", "mul", "y", "h", "h"]]  # minus h: γ − 1, same updates
    strategy = _glo_with(trees, filter="exact")  # the cache, not the (default) filter, is tested
    candidates = strategy.ask()
    assert len({c.key for c in candidates}) == 1
    run_id = store.create_run("glo", {"test": "cache"})
    records = runner_module.run_generation(candidates, 0, store=store, run_id=run_id,
                                           budget=TINY, executor=_inline())
    assert len(spy) == 1
    assert [r.worker for r in records].count("cache") == 2
    assert len({r.fitness for r in records}) == 1


def test_glo_cache_spans_generations(store, spy):
    strategy = _glo_with([["add", "log", "h", "mul", "y", "h"]], filter="exact")
    run_id = store.create_run("glo", {"test": "cache"})
    for generation in range(2):
        candidates = strategy.ask()
        runner_module.run_generation(candidates, generation, store=store,
                                     run_id=run_id, budget=TINY, executor=_inline())
    assert len(spy) == 1


def test_glo_trees_lacking_inputs_or_untrainable_are_filtered(store, spy):
    strategy = _glo_with([["log", "h"],                            # lacks y: GLO fitness 0
                          ["add", "mul", "y", "log", "h", "h"],   # CE + h: trainable
                          ["sub", "h", "mul", "y", "log", "h"]])  # −CE + h: untrainable
    candidates = strategy.ask()
    assert candidates[0].skip and "lacks" in candidates[0].skip
    assert candidates[1].skip is None
    assert candidates[2].skip and "untrainable" in candidates[2].skip
    run_id = store.create_run("glo", {"test": "filter"})
    records = runner_module.run_generation(candidates, 0, store=store, run_id=run_id,
                                           budget=TINY, executor=_inline())
    assert [r.status for r in records][::2] == ["filtered", "filtered"]
    assert len(spy) == 1


def test_glo_search_runs_both_phases(tmp_path):
    config = SearchConfig("glo", generations=2, population=12, cma_generations=1, budget=TINY,
                          seed=1)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(config, store=store)
        generations = {r.generation for r in store.candidates(run_id)}
        best = best_candidates(store, run_id, 1)
    assert {0, 1} <= generations
    assert best and best[0].fitness > 0.1


def _inline():
    from symloss.harness.search.executors import InlineExecutor

    return InlineExecutor()


# evaluation and store errors -----------------------------------------------------------------


def test_nan_losses_come_back_diverged():
    from symloss.catalog import loss
    from symloss.harness.search.evaluate import evaluate_candidate

    outcome = evaluate_candidate(loss("y*log(h - 2)"), TINY)  # log of a negative: NaN
    assert (outcome.status, outcome.fitness) == ("diverged", 0.0)


@pytest.mark.parametrize("fault", [MemoryError(), RuntimeError("CUDA out of memory"),
                                   ZeroDivisionError("boom")])
def test_exceptions_in_training_come_back_failed(monkeypatch, fault):
    import symloss.harness.train
    from symloss.catalog import loss
    from symloss.harness.search.evaluate import evaluate_candidate

    def broken(*args, **kwargs):
        raise fault

    monkeypatch.setattr(symloss.harness.train, "train", broken)
    outcome = evaluate_candidate(loss("cross_entropy"), TINY)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.fitness) == ("failed", 0.0)
    assert outcome.metrics["error"]


def test_objective_parsing():
    assert parse_objective("fgsm:0.1") == 0.1
    with pytest.raises(ValueError, match="objective must be"):
        parse_objective("accuracy")


def test_store_from_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        RunStore.open(path)


def test_corrupt_store_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be used"):
        RunStore.open(path)


def test_unknown_run_names_the_known_ones(store):
    run_id = store.create_run("taylorglo", {"a": 1})
    with pytest.raises(StoreError, match=run_id):
        store.run("nope")


def test_readers_see_a_writer_through_wal(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as writer, RunStore.open(path, create=False) as reader:
        run_id = writer.create_run("taylorglo", SearchConfig().to_dict())
        writer.add_candidate(run_id, CandidateRecord(0, 0, "ok", 0.7, [1.0], "h"))
        assert reader.run(run_id).best_fitness == 0.7
        assert json.loads(json.dumps(reader.counts(run_id))) == {"ok": 1}
    assert writer.connection is not None


def test_candidate_record_marks_skips():
    candidate = Candidate(0, taylorglo(3).bind([0] * 8), params=[0.0] * 8, skip="why")
    assert candidate.skip == "why"


def test_a_replayed_glo_strategy_continues_exactly_through_both_phases():
    """GP generations, the switch to CMA-ES (coefficients pruned with the strategy's RNG)
    and CMA-ES generations, replayed from the seed and the stored fitnesses alone."""
    config = SearchConfig("glo", generations=2, cma_generations=3, population=12, seed=6)
    original, history = config.strategy(), []
    for generation in range(4):
        candidates = original.ask()
        # a stand-in for training: trees with more integer leaves (coefficients) score higher
        fitnesses = [0.0 if c.skip else min(0.9, 0.1 + 0.1 * len(re.findall(r"\d+",
                                                                            c.expression)))
                     for c in candidates]
        history.append([CandidateRecord(generation, c.idx, "ok", f, c.params, c.expression)
                        for c, f in zip(candidates, fitnesses, strict=True)])
        original.tell(candidates, fitnesses)
    assert "mean" in read_snapshot(original.snapshot())["es"], "reached a real CMA-ES phase"
    replayed = config.strategy()
    for records in history:
        replayed.replay(records)
    assert replayed.snapshot() == original.snapshot()
    assert [c.params for c in replayed.ask()] == [c.params for c in original.ask()]


def test_a_replay_refuses_a_generation_its_seed_did_not_propose():
    from symloss.harness.search.strategies import ReplayMismatch

    strategy = TaylorGLOStrategy.create(TaylorGLOSettings(population=4), seed=0)
    candidates = strategy.ask()
    records = [CandidateRecord(0, c.idx, "ok", 0.5, c.params, c.expression) for c in candidates]
    for broken, match in ((records[:3], "holds 3 candidates"),
                          ([*records[:3], CandidateRecord(0, 3, "ok", 0.5, [0.0] * 8)],
                           "not the one its seed proposes"),
                          ([*records[:3], CandidateRecord(0, 3, "ok", float("nan"),
                                                          records[3].params)], "fitness nan")):
        fresh = TaylorGLOStrategy.create(TaylorGLOSettings(population=4), seed=0)
        with pytest.raises(ReplayMismatch, match=match):
            fresh.replay(broken)


# The stable filter (symloss.stability) ------------------------------------------------------


def test_taylorglo_stable_filter_records_the_basin_and_never_trains_it(store, spy):
    config = SearchConfig("taylorglo", generations=1, population=12, filter="stable",
                          min_target_probability=0.9, budget=TINY)
    run_id = search(config, store=store)
    records = store.candidates(run_id)
    filtered = [r for r in records if r.status == "filtered"]
    assert filtered and len(spy) == len(records) - len(filtered)
    from symloss.stability_batch import family_stability

    passes = family_stability(taylorglo(3), 10).mask(np.array([r.params for r in records]), 0.9)
    assert [r.status != "filtered" for r in records] == passes.tolist()
    assert SearchConfig.from_dict(store.run(run_id).config).min_target_probability == 0.9


def test_glo_stable_filter_keeps_baikal_above_its_bound_only():
    baikal = [["sub", "log", "h", "div", "y", "h"]]  # rests at target probability 1/√10
    kept = _glo_with(baikal, filter="stable", min_target_probability=0.3).ask()[0]
    dropped = _glo_with(baikal, filter="stable", min_target_probability=0.5).ask()[0]
    assert kept.skip is None
    assert "equilibrium at target probability 0.3162 < 0.5 (stable rule)" in dropped.skip


# Stored runs of earlier versions ------------------------------------------------------------

def test_the_committed_benchmark_runs_replay_to_their_saved_state():
    """benchmarks/filters/runs.sqlite (TaylorGLO, every filter) replays from its seeds and
    stored fitnesses to the very snapshot bytes it saved: its runs resume."""
    from symloss.harness.search.runner import replayed

    path = Path(__file__).parent.parent / "benchmarks" / "filters" / "runs.sqlite"
    with RunStore.open(path, readonly=True) as store:
        ids = sorted({r.run_id for r in store.runs()})
        filters = set()
        for run_id in ids:
            config = SearchConfig.from_dict(store.run(run_id).config)
            saved = store.last_generation(run_id)
            strategy = replayed(config, store, run_id, saved)  # refuses any other bytes
            assert strategy.generation == saved[0] + 1
            filters.add(config.filter)
        assert filters == {"exact", "paper", "stable", "none"}
        assert len(strategy.ask()) == config.strategy().settings.population


def test_a_config_names_a_registered_filter():
    from symloss.harness.search.config import validate_config

    validate_config({"filter": "stable"})
    with pytest.raises(ValueError, match=r"unknown filter 'stabel' \(did you mean 'stable'\?\)"):
        validate_config({"filter": "stabel"})
