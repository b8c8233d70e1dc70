"""benchmarks/bench_filters.py's own logic: equal budgets, and the answer it writes."""

from __future__ import annotations

import pytest

from symloss.harness.search.store import CandidateRecord, RunStore
from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_filters.py")


def test_best_within_looks_only_at_the_first_paid_trainings(bench, tmp_path):
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run("taylorglo", {"seed": 0})
        rows = [(0, 0, "ok", 0.5, None), (0, 1, "filtered", 0.99, None),
                (0, 2, "ok", 0.6, "cache"),  # a copy of a trained twin: not paid again
                (1, 0, "ok", 0.55, None), (1, 1, "diverged", 0.0, None),
                (1, 2, "ok", 0.9, None)]  # the fourth paid training: past a budget of 3
        for generation, idx, status, fitness, worker in rows:
            store.add_candidate(run_id, CandidateRecord(generation, idx, status, fitness,
                                                        worker=worker))
        best = bench.best_within(store, run_id, 3)
        assert (best.generation, best.idx, best.fitness) == (1, 0, 0.55)
        assert bench.best_within(store, run_id, 4).fitness == 0.9


def test_the_answer_names_a_filter_only_when_it_wins(bench):
    def row(beats, searches=5, mw=0.5):
        return {"searches": searches, "beats_cross_entropy": beats, "beats_best_baseline": beats,
                "mann_whitney_p_vs_none": mw}

    summary = {"best_baseline": "poly1", "filters": {"none": row(0), "exact": row(5, mw=0.004),
                                                     "paper": row(1, mw=0.6)}}
    text = "\n".join(bench._answer(summary))
    assert "At p < 0.05, exact made searches find lasting losses" in text
    assert "paper made" not in text
    summary["filters"]["exact"] = row(1, mw=0.6)
    assert "no filter made searches" in "\n".join(bench._answer(summary))
