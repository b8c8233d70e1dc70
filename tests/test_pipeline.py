"""One search pipeline (issue 22, item 3): :func:`run_search` is what ``symloss search`` and
:func:`search_losses` both run — store, lock, executor, search, final evaluation, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symloss.harness.search.api import UserFitness
from symloss.harness.search.config import HORIZON_MULTIPLE, REDUCTION_FACTOR
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.pipeline import (
    DEFAULT_STORE,
    SearchOutcome,
    default_report_folder,
    default_store,
    report_folder,
    run_search,
    write_report_safely,
)
from symloss.harness.search.runner import SearchConfig
from symloss.harness.search.store import RunStore
from symloss.loss import Loss

#: λ of h² - 2hy (symloss.catalog.loss's doctest): the closer a candidate, the fitter.
TARGET = np.array([0, 0, 0, -1, 0, 2, 0, 0], dtype=float)


class Closeness:
    """A fitness in (0, 1] that counts its calls and can be told to stop (Ctrl-C)."""

    def __init__(self, stop_after: int | None = None):
        self.calls, self.stop_after = 0, stop_after

    def __call__(self, loss: Loss) -> float:
        if self.calls == self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return float(1 / (1 + np.sum((np.asarray(loss.values, dtype=float) - TARGET) ** 2)))


CONFIG = SearchConfig(generations=2, population=8, filter="none", budget=Budget(dataset="custom"))


def _search(tmp_path: Path, fitness: Closeness, **options) -> SearchOutcome:
    return run_search(CONFIG, store=tmp_path / "runs.sqlite", run_id="p1",
                      evaluate=UserFitness(fitness), progress=False, **options)


def test_a_search_leaves_its_run_report_and_best_in_the_store(tmp_path):
    fitness = Closeness()
    outcome = _search(tmp_path, fitness)
    assert outcome.run_id == "p1" and outcome.store == tmp_path / "runs.sqlite"
    assert outcome.report == tmp_path / "runs" / "p1" / "report.md"  # beside the store
    assert outcome.evaluations == fitness.calls == 16
    assert outcome.final is None and outcome.counts == {"ok": 16}
    fitnesses = [record.fitness for record in outcome.top]
    assert fitnesses == sorted(fitnesses, reverse=True) and len(fitnesses) == 5
    with RunStore.open(outcome.store, readonly=True) as store:
        run = store.run("p1")
        assert run.status == "finished" and run.best_fitness == fitnesses[0]
    summary = json.loads((outcome.report.parent / "summary.json").read_text())
    assert summary["best"]["fitness"] == fitnesses[0]


def test_calling_again_resumes_and_pays_nothing_twice(tmp_path):
    first = _search(tmp_path, Closeness())
    again = Closeness()
    second = _search(tmp_path, again)  # resume=None: decided under the run's lock
    assert again.calls == 0
    assert second.top == first.top and second.evaluations == first.evaluations


def test_an_interrupt_prints_the_callers_hint_once(tmp_path, capsys):
    seen = []

    def hint(run_id: str, store: Path) -> str:
        seen.append((run_id, store))
        return f"continue {run_id} in {store.name}"

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, Closeness(stop_after=3), resume_hint=hint)
    assert seen == [("p1", tmp_path / "runs.sqlite")]
    assert capsys.readouterr().err.splitlines()[-1] == "continue p1 in runs.sqlite"
    with RunStore.open(tmp_path / "runs.sqlite", readonly=True) as store:
        assert store.run("p1").status == "interrupted"


def test_the_api_and_the_command_line_run_the_one_pipeline(tmp_path, monkeypatch, capsys):
    """Both callers hand the pipeline their config and print or return what it left."""
    import symloss.harness.search.api as api
    import symloss.harness.search.pipeline as pipeline
    from symloss.cli import main

    calls = []

    def fake(config, **options):
        calls.append((config, options))
        return SearchOutcome(options.get("run_id") or "new", Path("s.sqlite"), (), {}, 0,
                             Path("out/report.md"), None)

    monkeypatch.setattr(api, "run_search", fake)
    monkeypatch.setattr(pipeline, "run_search", fake)
    result = api.search_losses(Closeness(), generations=1, run_id="api", progress=False)
    assert result.run_id == "api" and result.report == Path("out/report.md")
    assert main(["search", "taylorglo", "--dataset", "digits", "--steps", "1", "--json",
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"run_id": "new", "best": None, "counts": {}, "evaluations": 0,
                       "report": str(Path("out/report.md")), "report_dir": "out",
                       "store": "s.sqlite"}
    (api_config, api_options), (cli_config, cli_options) = calls
    assert api_config.generations == 1 and api_options["report_flag"] == "report_dir"
    assert cli_options["report_flag"] == "--out" and cli_options["stop_on_sigterm"]
    # defaults live in one place: the command line's config is SearchConfig's but the flags,
    # and the recorded defaults config.with_defaults fills in (the horizon, 5 x steps;
    # successive halving; one thread; batched populations)
    assert cli_config == SearchConfig(budget=cli_config.budget, horizon=HORIZON_MULTIPLE * 1,
                                      reduction_factor=REDUCTION_FACTOR, batched=True)
    assert cli_config.budget.threads == 1
    assert api.make_config(steps=7).horizon == HORIZON_MULTIPLE * 7
    assert cli_config.budget.dataset == "digits" and cli_config.budget.steps == 1


def test_where_the_store_and_the_report_go(tmp_path, monkeypatch):
    monkeypatch.delenv("SYMLOSS_STORE", raising=False)
    assert default_store() == DEFAULT_STORE == "symloss-runs.sqlite"
    monkeypatch.setenv("SYMLOSS_STORE", str(tmp_path / "mine.sqlite"))
    assert default_store() == str(tmp_path / "mine.sqlite")
    store = tmp_path / "runs.sqlite"
    assert default_report_folder(store, "a_b-1") == tmp_path / "runs" / "a_b-1"
    for hostile in ("../x", "a/b", "x" * 65, ""):  # never a path read from a run id
        assert default_report_folder(store, hostile) == tmp_path / "runs" / "run"
    assert report_folder(tmp_path / "elsewhere", store, "r") == tmp_path / "elsewhere"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"^report_dir "):
        report_folder(tmp_path / "file", store, "r", "report_dir")


def test_a_report_that_cannot_be_written_says_the_results_are_stored(tmp_path, monkeypatch):
    import symloss.harness.search.final as final

    outcome = _search(tmp_path, Closeness())

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(final, "write_report", refuse)
    with RunStore.open(outcome.store) as store, pytest.raises(ValueError) as raised:
        write_report_safely(store, "p1", tmp_path / "out", None)
    message = str(raised.value)
    assert message.startswith(f"the report could not be written to {tmp_path / 'out'}: ")
    assert message.endswith(f"every result is stored: rebuild it with symloss show p1 "
                            f"--report --store {outcome.store} --out DIR")
