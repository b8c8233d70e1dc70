"""Issue 24: runs say how they were made (sessions), have names, compare side by side,
and show progress with a total and an ETA.

The searches here score candidates with a cheap closed form (no training), except the
``train --json`` check, which trains digits for a few steps.
"""

from __future__ import annotations

import io
import json
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from symloss.cli import EXIT_USAGE, main
from symloss.harness.search import RunStore, resume_search, search_losses
from symloss.harness.search.progress import Reporter, generation_line
from symloss.harness.search.sessions import run_provenance, sessions
from symloss.harness.search.store import StoreError
from symloss.loss import Loss
from symloss.resolve import resolve_loss

VERSIONS = {"symloss", "torch", "sympy", "symengine", "numpy", "cma", "deap", "python"}


def closeness(loss: Loss) -> float:
    target = np.array([0, 0, 0, -1, 0, 2, 0, 0], dtype=float)
    return float(1 / (1 + np.sum((np.asarray(loss.values, dtype=float) - target) ** 2)))


def _search(tmp_path, run_id=None, run_name=None, **settings):
    options = {"generations": 2, "population": 6, "filter": "none", **settings}
    return search_losses(closeness, store=tmp_path / "runs.sqlite", run_id=run_id,
                         run_name=run_name, progress=False,
                         report_dir=tmp_path / "reports" / (run_name or run_id or "x"),
                         **options)


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# provenance --------------------------------------------------------------------------------


def test_a_run_records_its_sessions_and_a_resume_adds_one(tmp_path, capsys):
    first = _search(tmp_path, run_id="r1", generations=1)
    path = str(tmp_path / "runs.sqlite")
    with pytest.raises(ValueError, match="config differs"):  # refused: it leaves no session
        _search(tmp_path, run_id="r1", generations=1, population=8)
    again = resume_search("r1", closeness, store=path, progress=False,
                          report_dir=tmp_path / "reports" / "again")
    assert again.run_id == first.run_id == "r1"
    with RunStore.open(path, readonly=True) as store:
        found = sessions(store, "r1")
        provenance = run_provenance(store, "r1")
    assert [(s["session"], s["kind"], s["status"]) for s in found] == [
        (1, "created", "finished"), (2, "resumed", "finished")]
    for session in found:
        assert set(session["environment"]["versions"]) == VERSIONS
        assert session["environment"]["machine"]["cores"] >= 1
        assert session["executor"] == {"kind": "in-process", "workers": None,
                                       "scheduler": None, "chunk": None, "batched": True,
                                       "evaluate": "python function"}
        assert session["started"] <= session["ended"]
    assert provenance["config"]["population"] == 6 and provenance["config"]["sigma0"] == 1.2
    assert provenance["sessions"] == found

    code, out, err = _run(["show", "r1", "--store", path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["provenance"]["sessions"][1]["kind"] == "resumed"
    code, out, err = _run(["show", "r1", "--store", path], capsys)
    assert "made with: session 1 (created)" in out and "made with: session 2 (resumed)" in out
    assert "in-process, chunk auto, batched" in out


def test_a_store_without_sessions_or_names_reads_and_is_not_changed(tmp_path, capsys):
    _search(tmp_path, run_id="old", run_name="older")
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as connection:  # as a store from before issue 24
        connection.execute("DROP TABLE run_sessions")
        connection.execute("DROP TABLE run_names")
    connection.close()
    before = path.read_bytes()
    code, out, err = _run(["show", "old", "--store", str(path), "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["name"] is None and shown["provenance"]["sessions"] == []
    assert shown["provenance"]["config"]["population"] == 6
    code, out, _ = _run(["runs", "--store", str(path), "--json"], capsys)
    assert code == 0 and json.loads(out)[0]["name"] is None
    assert path.read_bytes() == before
    with RunStore.open(path) as store:  # an older store resumes: it gains the tables then
        store.set_name("old", "named-later")
        assert store.resolve("named-later") == "old"


def test_train_json_carries_its_provenance(capsys):
    code, out, err = _run(["train", "--loss", "baikal", "--dataset", "digits", "--steps", "3",
                           "--batch-size", "64", "--json", "--no-progress"], capsys)
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert set(provenance["versions"]) == VERSIONS
    assert provenance["device"] == "cpu" and provenance["threads"] == 1
    assert provenance["batched"] is False and provenance["machine"]["cpu"]


# names -------------------------------------------------------------------------------------


def test_names_are_unique_and_address_a_run_everywhere(tmp_path, capsys):
    first = _search(tmp_path, run_name="baseline")
    second = _search(tmp_path, run_name="other", seed=1)
    path = str(tmp_path / "runs.sqlite")
    with RunStore.open(path) as store:
        assert store.resolve("baseline") == first.run_id
        assert store.resolve(first.run_id) == first.run_id
        with pytest.raises(StoreError, match=f"the name 'baseline' is taken by run "
                                             f"{first.run_id} in "):
            store.set_name(second.run_id, "baseline")
        with pytest.raises(StoreError, match="is the id of another run"):
            store.set_name(second.run_id, first.run_id)
        with pytest.raises(ValueError, match="a run name is a letter or digit"):
            store.set_name(second.run_id, "a:b")
        store.set_name(second.run_id, "renamed")
        assert store.resolve("renamed") == second.run_id and "other" not in store.names()
    with pytest.raises(StoreError, match="the name 'baseline' is taken"):  # before any work
        _search(tmp_path, run_name="baseline", seed=2)

    code, out, err = _run(["show", "baseline", "--store", path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["run_id"] == first.run_id and json.loads(out)["name"] == "baseline"
    code, out, _ = _run(["runs", "--store", path], capsys)
    assert f"{first.run_id}  baseline" in out
    loss = resolve_loss("run:baseline:2", store=path)
    assert dict(loss.meta)["run"] == first.run_id and dict(loss.meta)["rank"] == 2
    assert resolve_loss("run:baseline", store=path).expression == first.best.loss.expression
    # the API continues a run by its name (the same call resumes it)
    again = search_losses(closeness, store=path, run_id="baseline", progress=False,
                          generations=2, population=6, filter="none",
                          report_dir=tmp_path / "reports" / "again")
    assert again.run_id == first.run_id
    code, out, err = _run(["runs", "--delete", "baseline", "--store", path], capsys)
    assert code == 0 and out.startswith(f"deleted run {first.run_id}"), err
    code, _, err = _run(["show", "baseline", "--store", path], capsys)
    assert code == EXIT_USAGE and err.startswith("symloss: error: no run 'baseline'")


# compare -----------------------------------------------------------------------------------


def test_runs_compare_side_by_side_with_a_plot(tmp_path, capsys):
    first = _search(tmp_path, run_name="a")
    second = _search(tmp_path, run_name="b", seed=3, population=8)
    path = str(tmp_path / "runs.sqlite")
    plot = tmp_path / "compare.png"
    code, out, err = _run(["runs", "--compare", "a", second.run_id, "--store", path, "--json",
                           "--plot", str(plot)], capsys)
    assert code == 0, err
    table = json.loads(out)
    assert [r["run_id"] for r in table["runs"]] == [first.run_id, second.run_id]
    assert table["differences"] == {"budget.seed": [0, 3], "population": [6, 8], "seed": [0, 3]}
    assert table["runs"][0]["best_fitness"] == pytest.approx(first.best.fitness)
    assert table["runs"][1]["evaluations"] == second.evaluations
    assert plot.read_bytes().startswith(b"\x89PNG")
    code, out, err = _run(["runs", "--compare", "a", "b", "--store", path], capsys)
    assert code == 0, err
    assert "best fitness" in out and "  population" in out and "differences:" in out
    code, out, err = _run(["runs", "--compare", "a", "nope", "--store", path], capsys)
    assert code == EXIT_USAGE and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("symloss: error: no run 'nope'")
    code, _, err = _run(["runs", "--plot", str(plot), "--store", path], capsys)
    assert code == EXIT_USAGE and "--plot applies to --compare only" in err


# progress ----------------------------------------------------------------------------------


def _summary(generation, counts, evaluations):
    return SimpleNamespace(generation=generation, best=0.5, median=0.25, counts=counts,
                           evaluations=evaluations, seconds=2.0)


def test_the_progress_bar_has_a_total_and_the_line_an_eta():
    stream = io.StringIO()
    reporter = Reporter(SimpleNamespace(total_generations=3), quiet=False, stream=stream)
    reporter.expect(4)
    for idx in range(4):
        reporter(SimpleNamespace(generation=0, idx=idx))
    assert reporter.bar.total == 4 and reporter.bar.n == 4
    reporter.generation(_summary(0, {"ok": 3, "filtered": 1}, 2))
    assert reporter.expected == 4  # the next generation's bar starts with this one's count
    text = stream.getvalue()
    assert "trained 2 cached 1 filtered 1" in text
    assert "| 1/3 generations, ETA " in text
    line = generation_line(_summary(2, {"ok": 3}, 3), 3, 5.0)
    assert line.endswith("| 3/3 generations")  # the last one: no time left to estimate
