"""Will it last? (issue 23): the derived basin of the loss at hand beside the rates a
committed benchmark measured — read from the rates file, never typed in."""

from __future__ import annotations

import json

from symloss.analysis import analyze
from symloss.catalog import loss
from symloss.cli import main
from symloss.loss import Loss
from symloss.outlook import RATES, analysis_outlook, describe_basin, outlook, rates, write_rates


def test_labels_follow_the_derivation_by_hand():
    # Baikal rests at an equilibrium at 1/√10 (ICLR App. C); cross-entropy's pull toward
    # zero error is lim Δ = 1, MSE's 0 (docs/conventions.md §2.5); 4·CE has 4× CE's step
    assert describe_basin(loss("baikal"), 10)["label"] == "equilibrium, p ≥ 0.25"
    assert describe_basin(loss("cross_entropy"), 10) == {
        "kind": "zero_error", "target_probability": None, "pull": 1.0,
        "label": "zero error, lim Δ ≤ 3"}
    assert describe_basin(Loss("four", 4 * loss("cross_entropy").expr), 10)["pull"] == 4.0
    assert describe_basin(loss("mse"), 10)["pull"] == 0.0


def test_the_rates_come_from_the_file_a_benchmark_writes(tmp_path):
    summary = {"date": "2026-12-07", "tasks": {"t": {"searches": [
        {"basin": {"label": "zero error, lim Δ > 3"}, "final_test_accuracy": [0.1] * 8,
         "collapsed_trainings": 6},
        {"basin": {"label": "zero error, lim Δ > 3"}, "final_test_accuracy": [0.9] * 8,
         "collapsed_trainings": 1}]}}}
    path = tmp_path / "rates.json"
    write_rates(summary, path)
    assert rates(path)["labels"]["zero error, lim Δ > 3"] == {"trainings": 16, "collapsed": 7,
                                                            "losses": 2}
    four = Loss("four", 4 * loss("cross_entropy").expr)
    found = outlook(four, 10, path=path)
    assert found["text"] == ("zero error, lim Δ > 3 (lim Δ = 4): 7 of 16 such trainings "
                             "collapsed at 5× the search length (benchmarks/RESULTS-lasting.md, "
                             "2026-12-07)")
    assert outlook(loss("baikal"), 10, path=path)["text"].endswith(
        "no benchmark has trained losses of this kind long")


def test_the_shipped_rates_match_their_benchmark():
    committed = rates(RATES)
    assert committed is not None and committed["horizon_factor"] == 5
    assert all(cell["collapsed"] <= cell["trainings"] for cell in committed["labels"].values())


def test_analyze_shows_it_in_text_json_and_notebooks(capsys):
    assert main(["analyze", "baikal"]) == 0
    assert "Will it last? equilibrium, p ≥ 0.25: " in capsys.readouterr().out
    assert main(["analyze", "cross_entropy", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["outlook"]["label"] == "zero error, lim Δ ≤ 3"
    result = analyze(loss("cross_entropy"))
    assert result.outlook() == analysis_outlook(result) == payload["outlook"]
    assert "**Will it last?** zero error" in result._repr_markdown_()


def test_show_says_whether_the_runs_best_loss_will_last(tmp_path, capsys, monkeypatch):
    from symloss.harness.search import runner
    from symloss.harness.search.evaluate import Budget
    from symloss.harness.search.final import rebuild_loss
    from symloss.harness.search.runner import SearchConfig, best_candidates, search
    from symloss.harness.search.store import RunStore

    monkeypatch.setattr(runner, "_evaluate", lambda loss, budget: runner.Outcome(
        "ok", 0.5, {}, 0.0, "test"))
    config = SearchConfig("taylorglo", generations=1, population=6,
                          budget=Budget(dataset="digits", steps=5))
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = search(config, store=store)
        best = rebuild_loss(best_candidates(store, run_id, 1)[0], config)
    assert main(["show", run_id, "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outlook"] == json.loads(json.dumps(
        outlook(best, 10)))
    assert main(["show", run_id, "--store", str(path)]) == 0
    assert f"  will it last? {outlook(best, 10)['text']}" in capsys.readouterr().out
