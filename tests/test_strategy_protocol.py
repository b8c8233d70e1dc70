"""The strategy protocol and registry (symloss.harness.search.strategies).

A strategy is ask/tell (pycma's OOOptimizer): tell takes the very candidates it was
asked about (no state kept between the calls), stop() ends its generations, result
is the best it was told, from_config holds its defaults (ICLR §5: TaylorGLO 20, or 40
with the invariant, σ0 1.2; GLO §III: 80, σ0 1.5), rebuild_loss turns a stored record
back into a loss. A new strategy is one class plus its registration; the runner's
loop drives it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from symloss.catalog import loss, taylorglo
from symloss.harness.search import strategies as registry
from symloss.harness.search.config import SearchConfig
from symloss.harness.search.evaluate import Budget, Outcome
from symloss.harness.search.final import rebuild_loss
from symloss.harness.search.runner import search
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.search.strategies import (
    STRATEGIES,
    Candidate,
    GLOStrategy,
    Strategy,
    TaylorGLOStrategy,
    algorithm_names,
    strategy_class,
)
from symloss.loss import Loss


def test_the_registry_names_each_strategy_once():
    assert algorithm_names() == ("taylorglo", "glo")
    assert STRATEGIES["glo"] is GLOStrategy and strategy_class("taylorglo") is TaylorGLOStrategy
    with pytest.raises(ValueError, match="algorithm must be one of taylorglo, glo, got 'pso'"):
        strategy_class("pso")


def test_defaults_live_with_each_strategy():
    tglo = SearchConfig("taylorglo").strategy()
    assert (tglo.settings.population, tglo.settings.sigma0) == (40, 1.2)
    assert SearchConfig("taylorglo", filter="none").strategy().settings.population == 20
    glo = SearchConfig("glo").strategy()
    assert (glo.settings.population, glo.settings.sigma0) == (80, 1.5)
    assert SearchConfig("glo", generations=4, cma_generations=2).total_generations == 6


def test_tell_takes_the_asked_candidates_and_stop_ends_the_run():
    strategy = SearchConfig("taylorglo", generations=2, population=6, filter="none").strategy()
    assert strategy.result is None and not strategy.stop()
    first = strategy.ask()
    with pytest.raises(ValueError, match="one fitness per candidate: 5 for 6"):
        strategy.tell(first, [0.1] * 5)
    strategy.tell(first, [0.1, 0.7, 0.2, 0.3, 0.4, 0.5])
    assert strategy.result.fitness == 0.7 and strategy.result.proposal == first[1].params
    second = strategy.ask()
    strategy.tell(second, [0.0] * 6)
    assert strategy.stop() and strategy.generation == 2
    assert strategy.result.generation == 0, "the best stays the best told"


def test_asking_twice_proposes_without_a_pending_state():
    # pycma draws anew on each ask; tell uses the candidates it is given, not the last asked
    strategy = SearchConfig("taylorglo", population=4, filter="none").strategy()
    first, second = strategy.ask(), strategy.ask()
    assert [c.params for c in first] != [c.params for c in second]
    strategy.tell(second, [0.5] * 4)
    assert strategy.generation == 1


def test_a_stored_record_becomes_its_strategys_loss():
    config = SearchConfig("taylorglo")
    mse_lambda = [0, 0, 0, -1, 0, 2, 0, 0]
    member = rebuild_loss(CandidateRecord(0, 0, "ok", 0.9, mse_lambda, "ignored"), config)
    assert member == taylorglo(3).bind(mse_lambda)
    tree = rebuild_loss(CandidateRecord(0, 0, "ok", 0.9, None, "-y*log(h)"), SearchConfig("glo"))
    assert tree.name == "glo-best" and tree.expr == loss("cross_entropy").expr


@dataclass
class _State:
    rng: np.random.Generator
    generation: int = 0
    mean: float = 0.0


class RandomSearch(Strategy):
    """A new strategy in a few lines: cross-entropy scaled by a random factor around a mean."""

    algorithm = "random"

    def __init__(self, settings: Any, state: _State):
        self.settings, self.state = settings, state

    @classmethod
    def from_config(cls, config) -> RandomSearch:
        return cls(config, _State(np.random.default_rng(config.seed)))

    def ask(self) -> list[Candidate]:
        scales = self.state.mean + self.state.rng.normal(size=self.settings.population or 3)
        members = [Loss("random", float(s) * loss("cross_entropy").expr) for s in scales]
        return [Candidate(i, member, params=[float(s)], expression=str(member.expr))
                for i, (member, s) in enumerate(zip(members, scales, strict=True))]

    def replay(self, records) -> None:
        proposals = [c.params for c in self.ask()]
        self._tell(proposals, [r.fitness for r in records])

    def _proposal(self, candidate: Candidate) -> Any:
        return candidate.params

    def _update(self, proposals: list, fitnesses: list[float]) -> None:
        self.state.mean = proposals[int(np.argmax(fitnesses))][0]

    def _summary(self) -> dict[str, Any]:
        return {"generation": self.state.generation, "mean": self.state.mean}


def test_a_new_strategy_is_one_class_and_its_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "STRATEGIES", {**STRATEGIES, "random": RandomSearch})
    config = SearchConfig("random", generations=3, population=4, budget=Budget(steps=1))
    scores = []

    def score(item, budget):
        scores.append(item)
        return Outcome("ok", 0.5, {}, 0.0, "test")

    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = search(config, store=store, evaluate=score)
        assert store.run(run_id).status == "searched"
        assert len(store.candidates(run_id)) == 12 and len(scores) == 12
        assert SearchConfig.from_dict(store.run(run_id).config) == config


def test_the_search_commands_choices_are_the_registered_strategies():
    """The CLI lists the algorithms literally (importing the registry costs pycma's ~1 s on every
    ``symloss`` start): the two lists must stay one."""
    import argparse

    from symloss.harness.search.commands import register
    from symloss.harness.search.strategies import algorithm_names

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    search = parser._subparsers._group_actions[0].choices["search"]
    algorithm = next(action for action in search._actions if action.dest == "algorithm")
    assert tuple(algorithm.choices) == tuple(algorithm_names())


def test_final_seeds_are_bounded_before_anything_is_paid():
    """A final evaluation of 10^9 seeds was started after the search was paid (red team 73)."""
    from symloss.harness.search.config import MAX_SEEDS, validate_config

    validate_config({"final_seeds": MAX_SEEDS})
    with pytest.raises(ValueError, match=r"^final_seeds must be at most 10,000, got 10+0") as \
            error:
        validate_config({"final_seeds": 10**9})
    # the library names the setting; the command line shows its flag (symloss.errors)
    assert error.value.for_flags().startswith("--final-seeds must be at most 10,000")
