"""``symloss search --batched``: the same candidates and fitnesses as one by one (issue 6)."""

from __future__ import annotations

import pytest

from symloss.catalog import loss
from symloss.harness.search import runner as runner_module
from symloss.harness.search.evaluate import Budget, batching_supported, evaluate_population
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import RunStore

SMALL = Budget(dataset="digits", model="mlp", steps=40, batch_size=64)

#: One validation sample of digits: a difference of training noise, not of method.
NOISE = 1 / 180


def records_of(path, config: SearchConfig, *, batched: bool):
    with RunStore.open(path) as store:
        run_id = search(config, store=store, batched=batched)
        return {(r.generation, r.idx): r for r in store.candidates(run_id)}


@pytest.mark.parametrize("algorithm", ["taylorglo", "glo"])
def test_batched_search_matches_unbatched(tmp_path, algorithm):
    options = ({"population": 8, "filter": "none"} if algorithm == "taylorglo"
               else {"population": 10, "cma_generations": 1})
    config = SearchConfig(algorithm, generations=2, budget=SMALL, **options)
    one_by_one = records_of(tmp_path / "a.sqlite", config, batched=False)
    together = records_of(tmp_path / "b.sqlite", config, batched=True)
    assert one_by_one.keys() == together.keys()
    trained = 0
    for slot, record in one_by_one.items():
        other = together[slot]
        assert (other.params, other.expression, other.status) == (
            record.params, record.expression, record.status)
        assert abs(other.fitness - record.fitness) <= NOISE
        trained += record.worker not in ("", "cache")
    assert trained >= 5


def test_batched_generation_keeps_the_store_semantics(tmp_path, monkeypatch):
    """Filtered candidates are never trained, each slot is written once, resume reuses rows."""
    chunks = []
    original = runner_module._evaluate_chunk

    def recording(chunk, losses, budget, threads=None):
        chunks.append(list(losses))
        return original(chunk, losses, budget, threads)

    monkeypatch.setattr(runner_module, "_evaluate_chunk", recording)
    config = SearchConfig("taylorglo", generations=2, population=10, budget=SMALL)
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(config, store=store, batched=True, stop_after=1)
        search(config, store=store, run_id=run_id, resume=True, batched=True)
        records = store.candidates(run_id)
    trained = [item for chunk in chunks for item in chunk]
    filtered = [r for r in records if r.status == "filtered"]
    assert len(records) == 20 == len({(r.generation, r.idx) for r in records})
    assert len(trained) == 20 - len(filtered)
    assert all(r.worker == "" for r in filtered)


def test_evaluate_population_outcomes_match_evaluate_candidate():
    from symloss.harness.search.evaluate import evaluate_candidate

    losses = [loss("cross_entropy"), loss("y*log(h - 2)")]
    together = evaluate_population(losses, SMALL)
    alone = [evaluate_candidate(item, SMALL) for item in losses]
    assert [o.status for o in together] == [o.status for o in alone] == ["ok", "diverged"]
    assert abs(together[0].fitness - alone[0].fitness) <= NOISE
    assert together[1].fitness == 0.0 and "non-finite" in together[1].metrics["error"]


def test_a_failing_population_falls_back_to_one_by_one(monkeypatch):
    import symloss.harness.batched

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(symloss.harness.batched, "train_population", broken)
    outcomes = evaluate_population([loss("cross_entropy")], SMALL)
    assert [o.status for o in outcomes] == ["ok"]


def test_models_with_batchnorm_are_searched_one_by_one():
    assert batching_supported(SMALL)
    assert batching_supported(Budget(dataset="mnist1d"))  # cnn1d
    assert not batching_supported(Budget(dataset="cifar10", model="preresnet20"))
    assert not batching_supported(Budget(dataset="digits", model="no_such_model"))
