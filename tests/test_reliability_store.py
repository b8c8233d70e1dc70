"""Bad files, bad configs and concurrent use (issue 7).

Each bad input gives one line on stderr and exit code 2, and leaves every
file as it was (bytes compared before and after). ``symloss runs``/``show``
poll a store while a search writes it (WAL), and two searches share one
store file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import SCHEMA_VERSION, CandidateRecord, RunStore, StoreError

TINY = Budget(dataset="digits", steps=4, batch_size=64)
SEARCH = ["search", "taylorglo", "--dataset", "digits", "--generations", "1", "--population",
          "4", "--steps", "4", "--no-progress", "--json"]


def _symloss() -> list[str]:
    executable = Path(sys.executable).with_name("symloss")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "symloss.cli"]


def _one_line_exit_2(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symloss: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def stored(tmp_path) -> tuple[Path, str]:
    """A closed store (WAL checkpointed into the main file) with one run and a candidate."""
    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = store.create_run("taylorglo", SearchConfig("taylorglo", budget=TINY).to_dict())
        store.add_candidate(run_id, CandidateRecord(0, 0, "ok", 0.5, [0.0] * 8, "h"))
    return path, run_id


# --- corrupt, truncated, newer, locked stores -------------------------------------------------


@pytest.mark.parametrize("command", ["runs", "show", "search"])
def test_a_file_that_is_not_sqlite(tmp_path, capsys, command):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"PK\x03\x04 not a database " * 200)
    before = _snapshot(tmp_path)
    argv = {"runs": ["runs"], "show": ["show", "abc"], "search": SEARCH}[command]
    line = _one_line_exit_2([*argv, "--store", str(path)], capsys)
    assert "not a SQLite database" in line
    assert _snapshot(tmp_path) == before, "nothing written, nothing created"


@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_a_truncated_store(stored, capsys, keep):
    path, run_id = stored
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    before = path.read_bytes()
    for argv in (["runs"], ["show", run_id], [*SEARCH, "--resume", run_id]):
        line = _one_line_exit_2([*argv, "--store", str(path)], capsys)
        assert "damaged" in line or "cannot be used" in line
    assert path.read_bytes() == before


def test_a_store_from_a_newer_schema_is_not_touched(stored, capsys):
    path, run_id = stored
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                   (str(SCHEMA_VERSION + 1),))
        db.execute("DROP TABLE generations")  # a newer schema may have renamed it
    db.close()
    before = path.read_bytes()
    for argv in (["runs"], ["show", run_id], SEARCH):
        assert "newer than this symloss" in _one_line_exit_2([*argv, "--store", str(path)],
                                                              capsys)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "generations" not in tables, "the old schema was not written into a newer store"


def test_a_locked_store_is_a_clear_error_and_readers_still_read(stored, capsys, monkeypatch):
    path, run_id = stored
    monkeypatch.setenv("SYMLOSS_STORE_BUSY_TIMEOUT", "0.3")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        before = path.read_bytes()
        started = time.perf_counter()
        line = _one_line_exit_2([*SEARCH, "--store", str(path)], capsys)
        assert "locked by another process (waited 0.3 s)" in line
        assert time.perf_counter() - started < 10
        assert main(["runs", "--store", str(path), "--json"]) == 0  # WAL: readers go on
        assert json.loads(capsys.readouterr().out)[0]["run_id"] == run_id
        assert path.read_bytes() == before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with RunStore.open(path, busy_timeout=0.3) as store:
        assert store.integrity_check() == "ok" and len(store.runs()) == 1


def test_a_lock_taken_mid_search_stops_it_with_a_store_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    config = SearchConfig("taylorglo", generations=2, population=4, budget=TINY)
    with RunStore.open(path, busy_timeout=0.2) as store:
        holder = sqlite3.connect(path, isolation_level=None)

        def lock_after_first(record):
            if not holder.in_transaction:
                holder.execute("BEGIN IMMEDIATE")

        try:
            with pytest.raises(StoreError, match="locked"):
                search(config, store=store, on_result=lock_after_first)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.integrity_check() == "ok"
        run_id = store.runs()[0].run_id
        assert len(store.candidates(run_id)) == 1, "the first candidate is kept"
        search(config, store=store, run_id=run_id, resume=True)
        assert [(r.generation, r.idx) for r in store.candidates(run_id)] == [
            (g, i) for g in range(2) for i in range(4)]


def test_busy_timeout_setting_is_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMLOSS_STORE_BUSY_TIMEOUT", "soon")
    with pytest.raises(StoreError, match="SYMLOSS_STORE_BUSY_TIMEOUT"):
        RunStore.open(tmp_path / "runs.sqlite")


def test_a_folder_as_the_store(tmp_path, capsys):
    assert "is a folder" in _one_line_exit_2(["runs", "--store", str(tmp_path)], capsys)


# --- conflicting flags and bad resumes --------------------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "exclusive"),
    (["--resume", "nope"], "no run 'nope'"),
    (["--population", "0"], "--population must be >= 2"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--objective", "accuracy"], "objective must be"),
    (["--smoothing", "1.5"], "--smoothing must be in"),
])
def test_conflicting_or_bad_flags(stored, capsys, extra, message):
    path, _ = stored
    before = path.read_bytes()
    assert message in _one_line_exit_2([*SEARCH, "--store", str(path), *extra], capsys)
    assert path.read_bytes() == before


def test_resume_with_a_changed_config(stored, capsys):
    path, run_id = stored
    line = _one_line_exit_2([*SEARCH, "--store", str(path), "--resume", run_id, "--steps", "9"],
                            capsys)
    assert "config differs" in line and "budget.steps 9" in line


# --- bad dataset files -------------------------------------------------------------------------


def _truncated_mnist(folder: Path) -> Path:
    (folder / "mnist").mkdir(parents=True)
    for name, magic, shape in [("train-images-idx3-ubyte", 0x803, (10, 28, 28)),
                               ("t10k-images-idx3-ubyte", 0x803, (10, 28, 28)),
                               ("train-labels-idx1-ubyte", 0x801, (10,)),
                               ("t10k-labels-idx1-ubyte", 0x801, (10,))]:
        header = struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape)
        (folder / "mnist" / name).write_bytes(header + b"\0" * 7)  # truncated payload
    return folder


def test_a_truncated_dataset_file_in_train(tmp_path, capsys):
    data = _truncated_mnist(tmp_path / "data")
    line = _one_line_exit_2(["train", "--loss", "cross_entropy", "--dataset", "mnist", "--data-dir",
                             str(data), "--steps", "2"], capsys)
    assert "truncated" in line or "malformed" in line


def test_a_truncated_dataset_file_in_search(tmp_path, capsys):
    data = _truncated_mnist(tmp_path / "data")
    store = tmp_path / "runs.sqlite"
    argv = [*SEARCH, "--dataset", "mnist", "--data-dir", str(data), "--store", str(store)]
    assert "truncated" in _one_line_exit_2(argv, capsys) or "malformed" in capsys.readouterr()


# --- concurrent use ----------------------------------------------------------------------------


@pytest.mark.slow
def test_runs_and_show_while_a_search_writes(tmp_path, capsys):
    """``symloss runs``/``show`` (the commands' code, in this process) poll a live search."""
    store = tmp_path / "runs.sqlite"
    writer = subprocess.Popen([*_symloss(), *SEARCH[:4], "--generations", "4", "--population",
                               "6", "--steps", "20", "--no-progress", "--json", "--store",
                               str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "SYMLOSS_TEST_SLOW_WRITE": "0.05"})
    polls, seen = 0, set()
    try:
        while writer.poll() is None:
            time.sleep(0.05)
            if not store.exists():
                continue
            try:
                listed = main(["runs", "--store", str(store), "--json"])
            finally:
                captured = capsys.readouterr()
            assert listed == 0, captured.err
            rows = json.loads(captured.out)
            polls += 1
            for row in rows:
                assert main(["show", row["run_id"], "--store", str(store), "--json"]) == 0
                seen.add(json.loads(capsys.readouterr().out)["evaluations"])
    finally:
        _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert polls >= 10 and len(seen) >= 3, f"the polls saw the search progress: {seen}"
    with RunStore.open(store) as opened:
        assert opened.integrity_check() == "ok"


@pytest.mark.slow
def test_two_searches_on_one_store_file(tmp_path):
    store = tmp_path / "runs.sqlite"
    processes = [subprocess.Popen([*_symloss(), *SEARCH[:4], "--generations", "3",
                                   "--population", "5", "--steps", "5", "--filter", "none",
                                   "--seed", str(seed), "--no-progress", "--json", "--store",
                                   str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for seed in (1, 2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    run_ids = {json.loads(out)["run_id"] for out, _ in outputs}
    with RunStore.open(store) as opened:
        assert opened.integrity_check() == "ok"
        assert {r.run_id for r in opened.runs()} == run_ids
        for run_id in run_ids:
            slots = [(r.generation, r.idx) for r in opened.candidates(run_id)]
            assert slots == [(g, i) for g in range(3) for i in range(5)]
            assert opened.run(run_id).status == "finished"
            assert len(opened.generation_summary(run_id)) == 3


def test_connections_creating_one_new_store_at_once_all_open_it(tmp_path):
    """SQLite refuses ``journal_mode=WAL`` at once, busy handler or not, while another
    connection creates the same file (before the retry: 7 of 200 threaded openings and
    42 of 200 across processes failed, and CI's two concurrent searches once); every
    opening must wait and succeed."""
    failures = []

    def opener(path: Path, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            RunStore.open(path, busy_timeout=10).close()
        except StoreError as error:
            failures.append(str(error))

    for attempt in range(200):
        path, barrier = tmp_path / f"new-{attempt}.sqlite", threading.Barrier(2)
        threads = [threading.Thread(target=opener, args=(path, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
