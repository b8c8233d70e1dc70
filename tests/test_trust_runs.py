"""Hostile stores and careless invocations of ``search``/``runs``/``show``/``curve`` (issue 14).

Items 1, 2 and 6: a stored state never runs code (resume replays the run from
its seed and reads the saved state as JSON only), ``runs``/``show`` never write
to the file they read, and nothing paid is lost or paid twice (``curve`` writes all its
outputs or none). Every user error is one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.harness.search import final as final_module
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.lock import run_lock
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import RunStore

TINY = Budget(dataset="digits", steps=4, batch_size=64)
SEARCH = ["search", "taylorglo", "--dataset", "digits", "--generations", "2", "--population",
          "4", "--steps", "4", "--batch-size", "64", "--no-progress", "--json"]


def _one_line_exit_2(argv: list[str], capsys, *, after_progress: bool = False) -> str:
    """The one error line (``after_progress``: progress lines may come before it)."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("symloss: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], captured.err
    assert after_progress or len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[-1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _candidates(store: RunStore, run_id: str) -> list[tuple]:
    return [(r.generation, r.idx, r.status, r.params, r.fitness)
            for r in store.candidates(run_id)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[tuple]:
    folder = tmp_path_factory.mktemp("whole")
    with RunStore.open(folder / "runs.sqlite") as store:
        run_id = search(SearchConfig("taylorglo", generations=2, population=4, budget=TINY),
                        store=store)
        return _candidates(store, run_id)


@pytest.fixture
def interrupted(tmp_path) -> tuple[Path, str]:
    """A store whose run stopped after generation 0 (state saved), as Ctrl-C leaves it."""
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = search(SearchConfig("taylorglo", generations=2, population=4, budget=TINY),
                        store=store, stop_after=1)
    return path, run_id


def _set_state(path: Path, run_id: str, blob: bytes) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE generations SET state = ? WHERE run_id = ?", (blob, run_id))


class _Gadget:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# --- 1. no code from data ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_pickled_state_gadget_never_runs_on_resume(interrupted, uninterrupted, capsys,
                                                    protocol):
    path, run_id = interrupted
    marker = path.parent / "pwned"
    _set_state(path, run_id, pickle.dumps(_Gadget(f"touch {marker}"), protocol=protocol))
    code = main([*SEARCH, "--resume", run_id, "--store", str(path),
                 "--out", str(path.parent / "report")])
    assert code == 0, capsys.readouterr().err
    assert not marker.exists(), "the stored pickle ran"
    with RunStore.open(path) as store:
        assert _candidates(store, run_id) == uninterrupted  # resumed exactly, by replay


@pytest.mark.parametrize("blob", [b'{"format": "symloss-state/1", "es": {"mean": [9.0]}}',
                                  b'{"a":' * 100_000, b"{not json", b'{"format": "other"}'],
                         ids=["tampered", "deep", "garbage", "foreign"])
def test_a_tampered_json_state_is_refused_in_one_line(interrupted, capsys, blob):
    path, run_id = interrupted
    _set_state(path, run_id, blob)
    line = _one_line_exit_2([*SEARCH, "--resume", run_id, "--store", str(path)], capsys)
    assert f"--resume {run_id}" in line


def test_a_tampered_generation_number_is_refused_in_one_line(interrupted, capsys):
    path, run_id = interrupted
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE generations SET generation = 10000000000 WHERE run_id = ?",
                           (run_id,))
    connection.close()
    line = _one_line_exit_2([*SEARCH, "--resume", run_id, "--store", str(path)], capsys)
    assert "generation 10000000000 was saved" in line


def test_a_tampered_candidate_is_refused_in_one_line(interrupted, capsys):
    path, run_id = interrupted
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE candidates SET params = '[1, 2, 3, 4, 5, 6, 7, 8]' "
                           "WHERE run_id = ? AND idx = 0", (run_id,))
    line = _one_line_exit_2([*SEARCH, "--resume", run_id, "--store", str(path)], capsys)
    assert "is not the one its seed proposes" in line


# --- 2. read-only is read-only -----------------------------------------------------------------


def _foreign(path: Path, journal: str = "DELETE") -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA journal_mode={journal}")
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
        connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    connection.close()


@pytest.mark.parametrize("command", [["runs"], ["show", "abc"], SEARCH])
def test_another_applications_database_is_refused_untouched(tmp_path, capsys, command):
    path = tmp_path / "app.db"
    _foreign(path)
    before = _files(tmp_path)
    line = _one_line_exit_2([*command, "--store", str(path)], capsys)
    assert "not a symloss run store" in line and "invoices" in line
    assert _files(tmp_path) == before


def test_runs_and_show_leave_a_store_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = store.create_run("taylorglo", SearchConfig("taylorglo", budget=TINY).to_dict())
    with sqlite3.connect(path) as connection:  # a store someone converted to DELETE mode
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    for journal in ("DELETE", "WAL"):
        with sqlite3.connect(path) as connection:
            connection.execute(f"PRAGMA journal_mode={journal}")
        connection.close()
        before = _files(tmp_path)
        assert main(["runs", "--store", str(path)]) == 0
        assert main(["show", run_id, "--store", str(path), "--json"]) == 0
        capsys.readouterr()
        assert _files(tmp_path) == before, f"{journal}: files written or created"


@pytest.mark.parametrize("store", [":memory:", "", "file:runs?mode=memory"])
@pytest.mark.parametrize("command", [["runs"], ["show", "abc"], SEARCH])
def test_non_file_stores_are_one_line(tmp_path, capsys, monkeypatch, store, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMLOSS_STORE", store)
    line = _one_line_exit_2(command, capsys)
    assert "run store must be a file path" in line
    assert list(tmp_path.iterdir()) == []


def test_damaged_config_rows_are_reported_per_row(tmp_path, capsys):
    path = tmp_path / "runs.sqlite"
    config = SearchConfig("taylorglo", budget=TINY).to_dict()
    with RunStore.open(path) as store:
        ids = [store.create_run("taylorglo", config) for _ in range(4)]
    with sqlite3.connect(path) as connection:
        for run_id, text in zip(ids[1:], ["[1,2]", "null", "{}"], strict=True):
            connection.execute("UPDATE runs SET config = ? WHERE run_id = ?", (text, run_id))
    connection.close()
    assert main(["runs", "--store", str(path), "--json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(ids)
    assert rows[ids[0]]["damage"] is None
    assert all(rows[i]["damage"] for i in ids[1:])
    assert main(["runs", "--store", str(path)]) == 0
    assert capsys.readouterr().out.count("damaged") == 3
    for run_id in ids[1:]:
        assert "is damaged" in _one_line_exit_2(["show", run_id, "--store", str(path)], capsys)
        assert "is damaged" in _one_line_exit_2([*SEARCH, "--resume", run_id, "--store",
                                                 str(path)], capsys)


# --- 6. nothing paid is lost, nothing is paid twice --------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    (["--sigma0", "nan"], "--sigma0 must be finite and > 0"),
    (["--sigma0", "0"], "--sigma0 must be finite and > 0"),
    (["--lr", "nan"], "--lr must be finite and > 0"),
    (["--lr", "-1"], "--lr must be finite and > 0"),
    (["--lr", "inf"], "--lr must be finite and > 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--steps", "-5"], "--steps must be >= 1"),
    (["--final-steps", "0"], "--final-steps must be >= 1"),
    (["--objective", "fgsm:nan"], "objective must be"),
    (["--objective", "fgsm:inf"], "objective must be"),
    (["--smoothing", "nan"], "--smoothing must be"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--workers", "0"], "--workers must be finite and > 0"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--gpus-per-task", "nan"], "--gpus-per-task must be finite and > 0"),
    (["--resume", ""], "--resume needs the id of a stored run"),
    (["--resume", " "], "--resume needs the id of a stored run"),
])
def test_every_flag_is_checked_before_anything_is_paid(tmp_path, capsys, extra, message):
    line = _one_line_exit_2([*SEARCH, "--store", str(tmp_path / "runs.sqlite"), *extra], capsys)
    assert message in line
    assert list(tmp_path.iterdir()) == [], "no store, no run, no report"


def test_out_onto_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "report.md").write_text("keep me")
    line = _one_line_exit_2([*SEARCH, "--store", str(tmp_path / "runs.sqlite"), "--out",
                             str(tmp_path / "report.md")], capsys)
    assert "is a file" in line
    line = _one_line_exit_2([*SEARCH, "--store", str(tmp_path / "runs.sqlite"), "--out",
                             str(tmp_path / "report.md" / "sub")], capsys)
    assert "cannot be made" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_failing_report_loses_no_final_and_can_be_rebuilt(tmp_path, capsys, monkeypatch):
    store = tmp_path / "runs.sqlite"
    paid = []
    real_final = final_module.final_evaluation
    monkeypatch.setattr(final_module, "final_evaluation",
                        lambda *a: paid.append(1) or real_final(*a))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(final_module, "write_report", broken)
    argv = [*SEARCH, "--generations", "1", "--final-seeds", "2", "--final-steps", "4",
            "--store", str(store), "--out", str(tmp_path / "a")]
    line = _one_line_exit_2(argv, capsys, after_progress=True)
    assert "No space left" in line and "--report" in line and len(paid) == 1
    with RunStore.open(store) as opened:
        (run,) = opened.runs()
        final = opened.final(run.run_id)
    assert len(final["test_accuracy"]["per_seed"]) == 2
    monkeypatch.undo()
    monkeypatch.setattr(final_module, "final_evaluation",
                        lambda *a: paid.append(1) or real_final(*a))
    assert main(["show", run.run_id, "--store", str(store), "--report", "--out",
                 str(tmp_path / "rebuilt")]) == 0
    assert capsys.readouterr().out.startswith("report ")
    report = (tmp_path / "rebuilt" / "report.md").read_text()
    seeds = ", ".join(f"{v:.3f}" for v in final["test_accuracy"]["per_seed"])
    assert "Final evaluation" in report and "| found | " in report and seeds in report
    code = main(["search", "taylorglo", "--resume", run.run_id, "--store", str(store),
                 "--json", "--no-progress", "--out", str(tmp_path / "b")])
    assert code == 0 and len(paid) == 1, "the finals were paid again"
    assert json.loads(capsys.readouterr().out)["final"]["test_accuracy"] == final["test_accuracy"]


def test_a_failing_analysis_still_writes_the_report(tmp_path, capsys, monkeypatch):
    import symloss.analysis

    def fails(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(symloss.analysis, "analyze", fails)
    code = main([*SEARCH, "--generations", "1", "--store", str(tmp_path / "runs.sqlite"),
                 "--out", str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    assert "the analysis failed (IndexError" in (tmp_path / "r" / "report.md").read_text()


def test_a_second_resume_of_a_running_run_is_refused(interrupted, capsys):
    path, run_id = interrupted
    with run_lock(path, run_id):  # the first process, still training
        line = _one_line_exit_2([*SEARCH, "--resume", run_id, "--store", str(path)], capsys)
    assert f"run {run_id} is running in another process" in line
    with RunStore.open(path) as store:
        assert store.run(run_id).status == "interrupted"  # not marked by the refused one
    assert main([*SEARCH, "--resume", run_id, "--store", str(path), "--out",
                 str(path.parent / "r")]) == 0
    assert not list(path.parent.glob("*.lock")), "the lock file is removed on release"


@pytest.mark.parametrize(("out", "csv", "message"), [
    ("folder", None, "--out {folder} is a folder"),
    ("/dev/full", None, "cannot write --out /dev/full: No space left on device"),
    ("c.png", "folder", "--csv {folder} is a folder"),
    ("c.png", "/dev/full", "cannot write --csv /dev/full: No space left on device"),
    ("c.png", "c.png", "are the same file"),
    ("report.md/c.png", None, "report.md is a file"),
], ids=["out-folder", "out-full-device", "csv-folder", "csv-full-device", "same-file",
        "under-a-file"])
def test_curve_writes_all_its_outputs_or_none(tmp_path, capsys, out, csv, message):
    if "/dev/full" in (out, csv) and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "report.md").write_text("keep me")

    def where(name: str) -> str:
        return name if name.startswith("/") else str(tmp_path / name)

    argv = ["curve", "baikal", "--out", where(out), *(["--csv", where(csv)] if csv else [])]
    line = _one_line_exit_2(argv, capsys)
    assert message.format(folder=folder) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "report.md"], \
        "a PNG (or a temporary file) was left behind"
    assert list(folder.iterdir()) == []


def test_curve_writes_exactly_the_path_it_names(tmp_path, capsys):
    # matplotlib alone would write "plot.png" for "plot" and the CLI say it wrote "plot"
    assert main(["curve", "baikal", "--out", str(tmp_path / "plot")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'plot'}"
    assert (tmp_path / "plot").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot"]


# --- signals: SIGTERM is Ctrl-C, and Ctrl-C is quiet with worker processes --------------------


def _symloss() -> list[str]:
    executable = Path(sys.executable).with_name("symloss")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "symloss.cli"]


def _stored_candidates(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as connection:
            count = connection.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
        connection.close()
        return count
    except sqlite3.OperationalError:  # not created yet
        return 0


def _interrupt_once_training(argv: list[str], store: Path, signal_number: int, *,
                             group: bool = False, stored: int = 1,
                             slow_write: float = 0.0) -> tuple[int, str]:
    process = subprocess.Popen([*_symloss(), *argv, "--store", str(store)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=group,
                               env={**os.environ, "SYMLOSS_TEST_SLOW_WRITE": str(slow_write)})
    try:
        deadline = time.monotonic() + 180
        while _stored_candidates(store) < stored and process.poll() is None:
            assert time.monotonic() < deadline, "the search never stored a candidate"
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        if group:  # a terminal's Ctrl-C reaches the whole foreground process group
            os.killpg(process.pid, signal_number)
        else:
            process.send_signal(signal_number)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err


def _run_id(store: Path) -> str:
    with RunStore.open(store, readonly=True) as opened:
        (run,) = opened.runs()
        return run.run_id


def _status(store: Path) -> str:
    with RunStore.open(store, readonly=True) as opened:
        (run,) = opened.runs()
        return run.status


@pytest.mark.slow
def test_sigterm_ends_a_search_as_ctrl_c_does(tmp_path):
    store = tmp_path / "runs.sqlite"
    code, err = _interrupt_once_training([*SEARCH, "--generations", "40", "--steps", "60"],
                                         store, signal.SIGTERM)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == "symloss: interrupted" and "Traceback" not in err
    assert lines[-2] == f"resume with: symloss search --resume {_run_id(store)} --store {store}"
    assert _status(store) == "interrupted"  # not "running" forever: resumable


@pytest.mark.slow
def test_ctrl_c_with_worker_processes_is_quiet(tmp_path):
    store = tmp_path / "runs.sqlite"
    # Ctrl-C lands while the worker waits for the next generation's job, where it used
    # to print a traceback (racing the search's own shutdown of it)
    code, err = _interrupt_once_training([*SEARCH, "--generations", "40", "--steps", "100",
                                          "--workers", "2"], store, signal.SIGINT, group=True,
                                         stored=16)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert lines[-1] == "symloss: interrupted" and "Traceback" not in err, err
    assert lines[-2].startswith("resume with: symloss search --resume "), err
    assert all(line.startswith("gen ") for line in lines[:-2]), err
    assert _status(store) == "interrupted"


def test_a_running_run_whose_process_is_gone_is_listed_stopped(interrupted, capsys):
    path, run_id = interrupted
    with sqlite3.connect(path) as connection:  # as a SIGKILL leaves it
        connection.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (run_id,))
    connection.close()
    assert main(["runs", "--store", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "stopped"
    with run_lock(path, run_id):  # a live holder: really running
        assert main(["runs", "--store", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["status"] == "running"
        assert main(["show", run_id, "--store", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "running"


def test_local_workers_leave_ctrl_c_to_the_search():
    import torch

    from symloss.harness.search.executors import _one_thread

    previous, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    try:
        _one_thread()  # a worker process's initializer
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
        torch.set_num_threads(threads)
