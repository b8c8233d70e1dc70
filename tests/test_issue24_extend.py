"""A finished study grows (issue 24): more generations continue a run exactly as a run
started with them goes; anything else that differs is still refused in one line."""

from __future__ import annotations

import pytest

from symloss.cli import main
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.runner import ConfigMismatch, SearchConfig, search
from symloss.harness.search.store import RunStore

FLAGS = ["--dataset", "digits", "--steps", "5", "--population", "6", "--final-seeds", "2",
         "--no-progress", "--json"]


def _stored(store, run_id: str) -> tuple:
    return ([(c.generation, c.idx, c.status, c.fitness, c.params) for c in
             store.candidates(run_id)], store.generation_summary(run_id),
            store.last_generation(run_id)[1], store.final(run_id))


def test_a_finished_run_extended_equals_a_run_started_longer(tmp_path, capsys):
    store = str(tmp_path / "runs.sqlite")
    assert main(["search", "taylorglo", "--generations", "1", "--name", "short", "--store",
                 store, "--out", str(tmp_path / "a"), *FLAGS]) == 0
    capsys.readouterr()
    assert main(["search", "--resume", "short", "--generations", "3", "--store", store,
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["search", "taylorglo", "--generations", "3", "--name", "long", "--store",
                 store, "--out", str(tmp_path / "b"), *FLAGS]) == 0
    with RunStore.open(store) as opened:
        short, long = opened.resolve("short"), opened.resolve("long")
        assert opened.run(short).config == opened.run(long).config
        assert _stored(opened, short) == _stored(opened, long)
        assert len(opened.generation_summary(short)) == 3


def test_only_growth_of_what_a_strategy_can_grow_is_accepted(tmp_path, monkeypatch):
    from symloss.harness.search import runner

    monkeypatch.setattr(runner, "_evaluate", lambda loss, budget: runner.Outcome(
        "ok", 0.5, {}, 0.0, "test"))
    config = SearchConfig("taylorglo", generations=2, population=6,
                          budget=Budget(dataset="digits", steps=5))
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        search(config, store=store, run_id="r")
        for changed in ({"generations": 1}, {"generations": 3, "seed": 1},
                        {"order": 4}):
            other = SearchConfig(**{**config.__dict__, **changed})
            with pytest.raises(ConfigMismatch, match="the config differs"):
                search(other, store=store, run_id="r", resume=True)
            assert store.run("r").config == config.to_dict()  # left as it was
        search(SearchConfig(**{**config.__dict__, "generations": 3}), store=store,
               run_id="r", resume=True)
        assert len(store.generation_summary("r")) == 3
