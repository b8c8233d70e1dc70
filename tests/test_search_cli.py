"""``symloss search``, ``runs`` and ``show`` through the CLI: outputs and one-line errors."""

from __future__ import annotations

import json

import pytest

from symloss.cli import EXIT_USAGE, main

TINY = ["--dataset", "digits", "--generations", "2", "--population", "6", "--steps", "4",
        "--batch-size", "64", "--no-progress"]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "runs.sqlite")


def test_search_json_runs_and_show(store, tmp_path, capsys):
    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                           "--out", str(tmp_path / "report")], capsys)
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload) >= {"run_id", "best", "counts", "evaluations"}
    assert set(payload["best"]) == {"loss", "fitness", "params", "generation", "idx"}
    assert len(payload["best"]["params"]) == 8  # TaylorGLO order 3's λ
    assert sum(payload["counts"].values()) == 12  # 2 generations × 6 candidates
    assert payload["evaluations"] == 12 - payload["counts"].get("filtered", 0)
    assert (tmp_path / "report" / "report.md").exists()
    assert "gen   1" in err  # the per-generation summary line

    code, out, _ = _run(["runs", "--store", store, "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and rows[0]["run_id"] == payload["run_id"]
    assert set(rows[0]) >= {"run_id", "algorithm", "status", "evaluations", "best_fitness"}
    assert rows[0]["status"] == "finished"

    code, out, _ = _run(["show", payload["run_id"], "--store", store, "--json"], capsys)
    shown = json.loads(out)
    assert code == 0 and len(shown["generations"]) == 2
    assert shown["best"][0] == payload["best"]  # one shape for a run's best everywhere
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    derived = ("analysis", "outlook")  # the report adds the best loss's analysis and outlook
    assert {k: v for k, v in summary["best"].items() if k not in derived} == payload["best"]
    assert summary["best"]["outlook"]["text"].startswith(summary["best"]["outlook"]["label"])
    assert summary["best"]["analysis"]["trainable"] in (True, False, None)
    assert shown["report_dir"] == payload["report_dir"] == str(tmp_path / "report")
    assert shown["report"] == payload["report"]
    assert shown["counts"] == payload["counts"]


def test_final_evaluation_reports_p_value(store, tmp_path, capsys):
    code, out, err = _run(["search", "taylorglo", *TINY, "--generations", "1",
                           "--final-seeds", "2", "--final-steps", "8", "--store", store,
                           "--json", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    final = json.loads(out)["final"]
    assert len(final["test_accuracy"]["per_seed"]) == 2
    assert len(final["baseline_test_accuracy"]["per_seed"]) == 2
    assert final["p_value"] is None or 0.0 <= final["p_value"] <= 1.0


def test_resume_continues_and_refuses_changes(store, tmp_path, capsys):
    from symloss.harness.search.runner import SearchConfig, search
    from symloss.harness.search.store import RunStore

    code, out, _ = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                         "--out", str(tmp_path / "a")], capsys)
    run_id = json.loads(out)["run_id"]
    with RunStore.open(store) as opened:
        config = SearchConfig.from_dict(opened.run(run_id).config)
        partial = search(config, store=opened, stop_after=1)
    code, out, err = _run(["search", "taylorglo", "--resume", partial, "--store", store,
                           "--json", "--no-progress", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert sum(json.loads(out)["counts"].values()) == 12

    code, _, err = _run(["search", "taylorglo", "--resume", partial, "--steps", "9",
                         "--store", store], capsys)
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and "steps 9 (stored 4)" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--objective", "accuracy"], "objective must be"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "exclusive"),
    (["--resume", "nope"], "no run 'nope'"),
    (["--smoothing", "1.5"], "--smoothing must be in [0, 1)"),
])
def test_bad_configs_are_one_line_errors(store, capsys, extra, message):
    code, _, err = _run(["search", "taylorglo", "--store", store, *extra], capsys)
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and err.startswith("symloss: error:") and message in err
    assert "Traceback" not in err


def test_runs_on_a_missing_store_is_a_clear_error(tmp_path, capsys):
    code, _, err = _run(["runs", "--store", str(tmp_path / "missing.sqlite")], capsys)
    assert code == EXIT_USAGE and "no run store" in err
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_config_the_strategy_refuses_leaves_no_run(store, capsys):
    """GLO with 6 elites and a population of 6: one line, and no run stuck in the store."""
    code, out, err = _run(["search", "glo", *TINY, "--store", store], capsys)
    assert code == EXIT_USAGE and out == ""
    assert err.strip() == "symloss: error: elites (6) must be fewer than the population (6)"
    code, out, _ = _run(["runs", "--store", store, "--json"], capsys)
    assert code == 0 and json.loads(out) == []


def test_runs_show_dates_and_delete_removes_a_run(store, capsys, tmp_path):
    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                           "--out", str(tmp_path / "report")], capsys)
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    code, out, _ = _run(["runs", "--store", store, "--json"], capsys)
    row = json.loads(out)[0]
    assert row["created"] <= row["updated"] and len(row["created"]) == len("2026-01-01 00:00")
    code, out, _ = _run(["runs", "--store", store], capsys)
    assert f"created {row['created']}" in out
    code, out, err = _run(["runs", "--store", store, "--delete", run_id], capsys)
    assert code == 0 and out.strip() == f"deleted run {run_id} (12 candidates)", err
    code, out, _ = _run(["runs", "--store", store, "--json"], capsys)
    assert json.loads(out) == []
    code, out, err = _run(["runs", "--store", store, "--delete", run_id], capsys)
    assert code == EXIT_USAGE and err.startswith(f"symloss: error: no run '{run_id}'")


def test_a_running_run_is_not_deleted(store, capsys, tmp_path):
    from pathlib import Path

    from symloss.harness.search.lock import run_lock

    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                           "--out", str(tmp_path / "report")], capsys)
    run_id = json.loads(out)["run_id"]
    with run_lock(Path(store), run_id):
        code, out, err = _run(["runs", "--store", store, "--delete", run_id], capsys)
    assert code == EXIT_USAGE and "is running in another process" in err
    code, out, _ = _run(["runs", "--store", store, "--json"], capsys)
    assert [r["run_id"] for r in json.loads(out)] == [run_id]


def test_resume_needs_only_the_run_id_and_writes_where_the_user_says(store, capsys, tmp_path):
    """Issue 20: the stored report folder is shown, never trusted — a resume without --out
    writes beside the store; with --out naming the earlier folder, there again."""
    out_dir = tmp_path / "my-report"
    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                           "--out", str(out_dir)], capsys)
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    (out_dir / "report.md").unlink()
    code, out, err = _run(["search", "--resume", run_id, "--store", store, "--json"], capsys)
    assert code == 0, err
    default = tmp_path / "runs" / run_id
    assert json.loads(out)["report"] == str(default / "report.md")
    assert (default / "report.md").exists() and not (out_dir / "report.md").exists()
    assert f"the run's earlier folder {str(out_dir)!r}" in err
    code, out, err = _run(["search", "--resume", run_id, "--store", store, "--json", "--out",
                           str(out_dir)], capsys)
    assert code == 0, err
    assert json.loads(out)["report"] == str(out_dir / "report.md")
    assert (out_dir / "report.md").exists()


def test_search_without_an_algorithm_or_a_resume_is_one_line(store, capsys):
    code, out, err = _run(["search", *TINY, "--store", store], capsys)
    assert code == EXIT_USAGE and out == "" and err.strip() == (
        "symloss: error: search needs the algorithm: taylorglo or glo (or --resume RUN_ID)")


def test_final_evaluation_against_each_baseline(store, capsys, tmp_path):
    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--json",
                           "--final-seeds", "2", "--baselines", "cross_entropy,poly1,ls_ce",
                           "--out", str(tmp_path / "report")], capsys)
    assert code == 0, err
    final = json.loads(out)["final"]
    assert list(final["baselines"]) == ["cross_entropy", "poly1",
                                        "label_smoothed_cross_entropy"]
    for row in final["baselines"].values():
        assert len(row["test_accuracy"]["per_seed"]) == 2
        assert row["p_value"] is None or 0.0 <= row["p_value"] <= 1.0
    assert final["baseline_test_accuracy"] == final["baselines"]["cross_entropy"]["test_accuracy"]
    assert final["best_baseline"] in final["baselines"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| poly1 |" in report and "one-sided Welch" in report


def test_an_unknown_baseline_is_one_line(store, capsys):
    code, out, err = _run(["search", "taylorglo", *TINY, "--store", store, "--baselines",
                           "cross_entropy,hinge"], capsys)
    assert code == EXIT_USAGE and out == "" and err.strip().startswith(
        "symloss: error: unknown baseline 'hinge'; choose from mse, cross_entropy")
