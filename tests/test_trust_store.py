"""The run store under attack, second round (issue 20, items 2, 3, 4 and 6).

One lock per real run, whatever path names the store (symbolic link, hard link,
relative, ``..``); reports written only where the user says, never where a changed
store says; every final-evaluation training stored as it returns, so a kill loses
none; damaged stored values one line naming the table and column, strict JSON, and
reports that a stored string cannot inject Markdown or HTML into.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.harness.search.lock import holder_alive, run_lock
from symloss.harness.search.store import CandidateRecord, RunStore
from tests.test_trust_runs import SEARCH, _one_line_exit_2, _symloss

FINAL = ["--generations", "1", "--final-seeds", "2", "--final-steps", "4"]


def _strict(text: str):
    """JSON as a strict parser reads it: ``Infinity``/``NaN`` are refused."""
    def refuse(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _execute(path: Path, *statements: str, args: tuple = ()) -> None:
    """The attacker's own writes (check constraints and foreign keys off, as sqlite3 has)."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA ignore_check_constraints = ON")
        for statement in statements:
            connection.execute(statement, args if "?" in statement else ())
    connection.close()


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> tuple[Path, str]:
    """A finished run with a final evaluation, made once (tests copy it)."""
    folder = tmp_path_factory.mktemp("finished")
    path = folder / "runs.sqlite"
    assert main([*SEARCH, *FINAL, "--store", str(path), "--out", str(folder / "r")]) == 0
    with RunStore.open(path, readonly=True) as store:
        (run,) = store.runs()
    return path, run.run_id


@pytest.fixture
def finished(finished_store, tmp_path, capsys) -> tuple[Path, str]:
    capsys.readouterr()
    source, run_id = finished_store
    path = tmp_path / "store" / "runs.sqlite"
    path.parent.mkdir()
    shutil.copy(source, path)
    return path, run_id


def _other_path(path: Path, kind: str, tmp_path: Path, monkeypatch) -> Path:
    """Another name for the same store file."""
    if kind == "symlink":
        other = tmp_path / "link.sqlite"
        other.symlink_to(path)
    elif kind == "hardlink":
        (tmp_path / "elsewhere").mkdir()
        other = tmp_path / "elsewhere" / "hard.sqlite"
        os.link(path, other)
    elif kind == "relative":
        monkeypatch.chdir(path.parent.parent)
        other = Path(path.parent.name) / path.name
    else:
        (path.parent / "sub").mkdir()
        other = path.parent / "sub" / ".." / path.name
    return other


# --- 2. one lock per real run ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "relative", "dotdot"])
def test_a_running_run_is_locked_by_any_path_to_its_store(finished, tmp_path, monkeypatch,
                                                          capsys, kind):
    path, run_id = finished
    other = _other_path(path, kind, tmp_path, monkeypatch)
    _execute(path, "UPDATE runs SET status = 'running'")
    with run_lock(path, run_id):  # the live run, holding the store by its own path
        line = _one_line_exit_2(["runs", "--store", str(other), "--delete", run_id], capsys)
        assert f"run {run_id} is running in another process" in line
        line = _one_line_exit_2([*SEARCH, *FINAL, "--resume", run_id, "--store", str(other)],
                                capsys)
        assert f"run {run_id} is running in another process" in line
        assert holder_alive(other, run_id) is True
        assert main(["runs", "--store", str(other), "--json"]) == 0
        assert _strict(capsys.readouterr().out)[0]["status"] == "running"  # not "stopped"
    with RunStore.open(path, readonly=True) as store:
        assert store.run(run_id).status == "running"  # untouched by the refused ones
        assert store.counts(run_id) and store.final(run_id) is not None
    assert holder_alive(other, run_id) is False
    assert main(["runs", "--store", str(other), "--delete", run_id]) == 0


def test_closing_a_store_descriptor_keeps_sqlites_locks(finished):
    """SQLite holds POSIX locks on a store while a connection is open; the kernel drops
    them all when the process closes *any* descriptor of the file. The run lock and the
    header check open the store themselves: their close must wait, or another process
    would think itself the last, checkpoint and delete the WAL under a live connection."""
    path, run_id = finished
    wal = path.with_name(path.name + "-wal")
    with RunStore.open(path) as store:
        store.add_candidate(run_id, CandidateRecord(9, 0, "ok", 0.25, [0.0] * 8, "h"))
        with run_lock(path, run_id):
            pass
        RunStore.open(path, readonly=True).close()
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect("
                        "sys.argv[1]); c.execute('SELECT COUNT(*) FROM runs').fetchone(); "
                        "c.close()", str(path)], check=True)
        assert wal.exists(), "another process found the store unused and removed its WAL"
        store.add_candidate(run_id, CandidateRecord(9, 1, "ok", 0.5, [0.0] * 8, "h"))
    with RunStore.open(path, readonly=True) as store:
        assert [c.idx for c in store.candidates(run_id, 9)] == [0, 1]


@pytest.mark.slow
def test_a_live_search_survives_delete_and_resume_through_a_symlink(tmp_path, capsys):
    """Issue 20's attack as it happened: a run training, then `runs --delete` and a second
    `--resume` through a symbolic link to its store. Both refused in one line; the live
    run finishes with every candidate stored once."""
    path = tmp_path / "runs.sqlite"
    assert main([*SEARCH, "--generations", "3", "--store", str(path), "--out",
                 str(tmp_path / "a")]) == 0
    capsys.readouterr()
    with RunStore.open(path, readonly=True) as store:
        (run,) = store.runs()
    _execute(path, "DELETE FROM candidates WHERE generation > 0",
             "DELETE FROM generations WHERE generation > 0",
             "UPDATE runs SET status = 'interrupted'")
    link = tmp_path / "link.sqlite"
    link.symlink_to(path)
    live = subprocess.Popen([*_symloss(), *SEARCH, "--generations", "3", "--resume",
                             run.run_id, "--store", str(path), "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SYMLOSS_TEST_SLOW_WRITE": "0.5"})
    try:
        deadline = time.monotonic() + 120
        while not holder_alive(path, run.run_id):
            assert live.poll() is None and time.monotonic() < deadline, live.communicate()
            time.sleep(0.05)
        for argv in (["runs", "--store", str(link), "--delete", run.run_id],
                     [*SEARCH, "--generations", "3", "--resume", run.run_id, "--store",
                      str(link)]):
            assert "is running in another process" in _one_line_exit_2(argv, capsys)
        _out, err = live.communicate(timeout=300)
    finally:
        if live.poll() is None:
            live.kill()
    assert live.returncode == 0, err
    with RunStore.open(path, readonly=True) as store:
        rows = [(c.generation, c.idx) for c in store.candidates(run.run_id)]
        assert store.run(run.run_id).status == "finished"
    assert len(rows) == len(set(rows)) == 3 * 4


# --- 3. writes only where the user chose -------------------------------------------------------


def test_a_report_folder_named_by_the_store_is_never_written(finished, tmp_path, capsys):
    path, run_id = finished
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "report.md").write_text("my own notes")
    _execute(path, "UPDATE runs SET report_dir = ?", args=(str(victim),))
    assert main([*SEARCH, *FINAL, "--resume", run_id, "--store", str(path)]) == 0, \
        capsys.readouterr()
    assert main(["show", run_id, "--store", str(path), "--report"]) == 0
    captured = capsys.readouterr()
    assert [p.name for p in victim.iterdir()] == ["report.md"]
    assert (victim / "report.md").read_text() == "my own notes"
    default = path.parent / "runs" / run_id
    assert (default / "report.md").exists() and (default / "summary.json").exists()
    assert captured.out.strip().endswith(f"report {default / 'report.md'}")


def _bad_path(tmp_path: Path, kind: str, name: str) -> Path:
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / name if kind == "below-a-file" else tmp_path / ("n" * 300)


@pytest.mark.parametrize("kind", ["below-a-file", "name-too-long"])
@pytest.mark.parametrize("command", ["search --store", "search --out", "runs --store",
                                     "show --store", "show --report --out"])
def test_unusable_store_and_report_paths_are_one_line(finished, tmp_path, capsys, kind,
                                                      command):
    path, run_id = finished
    bad = str(_bad_path(tmp_path, kind, "x.sqlite" if "store" in command else "report"))
    argv = {"search --store": [*SEARCH, "--store", bad],
            "search --out": [*SEARCH, "--store", str(tmp_path / "new.sqlite"), "--out", bad],
            "runs --store": ["runs", "--store", bad],
            "show --store": ["show", run_id, "--store", bad],
            "show --report --out": ["show", run_id, "--store", str(path), "--report", "--out",
                                    bad]}[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    line = _one_line_exit_2(argv, capsys)
    assert ("a-file is a file" in line or "no run store" in line) if kind == "below-a-file" \
        else ("300 bytes" in line or "no run store" in line)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- 4. nothing paid lost: the final evaluation ------------------------------------------------


def _fitness(loss) -> float:
    """A deterministic stand-in for a training: a number from the formula."""
    return (sum(map(ord, str(loss.expression))) % 97) / 100


def test_a_killed_final_evaluation_resumes_with_the_missing_trainings(tmp_path):
    from symloss.harness.search import search_losses

    paid: list[tuple[str, int]] = []
    attempts = {"n": 0}

    def score(loss, seed: int) -> float:
        paid.append((str(loss.expression), seed))
        if attempts["n"] == 0 and len(paid) == 7:
            raise KeyboardInterrupt  # the kill lands during the 7th training
        return 0.5 + seed / 100 + _fitness(loss) / 10

    options = {"generations": 1, "population": 4, "final_seeds": 3, "final_score": score,
               "store": tmp_path / "runs.sqlite", "run_id": "r", "progress": False,
               "report_dir": tmp_path / "report"}
    with pytest.raises(KeyboardInterrupt):
        search_losses(_fitness, **options)
    with RunStore.open(tmp_path / "runs.sqlite", readonly=True) as store:
        assert len(store.final_trainings("r")) == 6  # each stored as it returned
    attempts["n"] = 1
    result = search_losses(_fitness, **options)
    assert len(paid) == 5 * 3 + 1, "only the interrupted training is paid twice"
    assert len(set(paid)) == 5 * 3
    assert paid.count(paid[6]) == 2
    uninterrupted = search_losses(_fitness, **{**options, "run_id": "u",
                                               "final_score": lambda loss, seed: 0.5 + seed
                                               / 100 + _fitness(loss) / 10})
    assert result.final["test_accuracy"] == uninterrupted.final["test_accuracy"]
    assert result.final["baselines"] == uninterrupted.final["baselines"]


@pytest.mark.slow
def test_a_sigkill_in_the_final_evaluation_loses_no_stored_training(tmp_path):
    import signal

    path = tmp_path / "runs.sqlite"
    argv = [*_symloss(), *SEARCH, "--generations", "1", "--final-seeds", "2",
            "--final-steps", "300", "--store", str(path), "--out", str(tmp_path / "r")]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stored() -> list[tuple]:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                return db.execute("SELECT loss, seed, test_accuracy, created FROM "
                                  "final_trainings ORDER BY loss, seed").fetchall()
        except sqlite3.OperationalError:
            return []

    try:
        deadline = time.monotonic() + 240
        while not stored() and process.poll() is None:
            assert time.monotonic() < deadline, "no final training was stored"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    before = stored()
    with RunStore.open(path, readonly=True) as store:
        (run,) = store.runs()
    assert main(["search", "--resume", run.run_id, "--store", str(path), "--no-progress",
                 "--out", str(tmp_path / "r")]) == 0
    after = stored()
    assert set(before) <= set(after), "a stored training was trained again"
    assert len(after) == 5 * 2
    with RunStore.open(path, readonly=True) as store:
        final = store.final(run.run_id)
    ours = [row[2] for row in after if row[0] == "found"]
    assert final["test_accuracy"]["per_seed"] == ours


def test_a_store_of_schema_version_1_opens_resumes_and_migrates(tmp_path, capsys):
    from symloss.harness.search import search_losses

    def stopped(loss, seed):
        raise KeyboardInterrupt  # searched, the final evaluation not started

    path = tmp_path / "runs.sqlite"
    options = {"generations": 1, "population": 4, "final_seeds": 2, "store": path,
               "run_id": "old", "progress": False, "report_dir": tmp_path / "r"}
    with pytest.raises(KeyboardInterrupt):
        search_losses(_fitness, final_score=stopped, **options)
    _execute(path, "DROP TABLE final_trainings",
             "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    assert main(["runs", "--store", str(path), "--json"]) == 0
    assert _strict(capsys.readouterr().out)[0]["run_id"] == "old"
    result = search_losses(_fitness, final_score=lambda loss, seed: 0.5, **options)
    assert result.final["test_accuracy"]["per_seed"] == [0.5, 0.5]
    with RunStore.open(path, readonly=True) as store:
        assert len(store.final_trainings("old")) == 5 * 2
        # migrated: final_trainings came back, and the resume's session row (schema 3)
        assert store.connection.execute("SELECT value FROM meta").fetchone() == ("3",)


def test_the_committed_stores_still_open(tmp_path, capsys):
    source = Path(__file__).resolve().parents[1] / "benchmarks" / "filters" / "runs.sqlite"
    path = tmp_path / "runs.sqlite"
    shutil.copy(source, path)
    assert main(["runs", "--store", str(path), "--json"]) == 0
    rows = _strict(capsys.readouterr().out)
    assert rows and not any(row["damage"] for row in rows)
    assert main(["show", rows[0]["run_id"], "--store", str(path), "--json"]) == 0
    assert _strict(capsys.readouterr().out)["best"]


# --- 6. damaged stored values: one line naming the table and column ----------------------------


TAMPERED = {
    "fitness-text": ("UPDATE candidates SET fitness = 'high' WHERE idx = 0",
                     "candidates.fitness"),
    "fitness-blob": ("UPDATE candidates SET fitness = X'00FF' WHERE idx = 0",
                     "candidates.fitness"),
    "fitness-inf": ("UPDATE candidates SET fitness = 9e999 WHERE idx = 0", "candidates.fitness"),
    "fitness-minus-inf": ("UPDATE candidates SET fitness = -9e999 WHERE idx = 0",
                          "candidates.fitness"),
    "status": ("UPDATE candidates SET status = 'great' WHERE idx = 0", "candidates.status"),
    "created-text": ("UPDATE runs SET created = 'yesterday'", "runs.created"),
    "params": ("UPDATE candidates SET params = '[1, \"x\"]' WHERE status != 'filtered'",
               "candidates.params"),
    "params-nan": ("UPDATE candidates SET params = '[NaN]' WHERE status != 'filtered'",
                   "candidates.params"),
    "metrics": ("UPDATE candidates SET metrics = 'not json' WHERE idx = 0",
                "candidates.metrics"),
    "config-type": ("UPDATE runs SET config = json_set(config, '$.budget.dataset', 5)",
                    "runs.config"),
    "config-key": ("UPDATE runs SET config = json_set(config, '$.generation', 2)",
                   "runs.config"),
    "config-json": ("UPDATE runs SET config = '{not json'", "runs.config"),
}
#: Damage the store reports per run in ``runs`` (the rest is found when the rows are read).
LISTED = {"fitness-text", "fitness-blob", "fitness-inf", "fitness-minus-inf", "status",
          "created-text", "config-json"}


@pytest.mark.parametrize("damage", list(TAMPERED))
def test_a_damaged_stored_value_is_one_line_naming_table_and_column(finished, tmp_path,
                                                                    capsys, damage):
    path, run_id = finished
    statement, column = TAMPERED[damage]
    _execute(path, statement)
    store = ["--store", str(path)]
    for argv in (["show", run_id, *store], ["show", run_id, *store, "--json"],
                 ["show", run_id, *store, "--report", "--out", str(tmp_path / "r")],
                 ["export", run_id, *store, "--out", str(tmp_path / "x.py")],
                 ["analyze", f"run:{run_id}", *store],
                 [*SEARCH, *FINAL, "--resume", run_id, *store]):
        line = _one_line_exit_2(argv, capsys)
        table = column.split(".")[0]  # SQLite's quick_check names a broken CHECK's table
        assert column in line or f"CHECK constraint failed in {table}" in line, (argv, line)
        assert "{self.path}" not in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.py").exists()
    assert main(["runs", *store, "--json"]) == 0
    (row,) = _strict(capsys.readouterr().out)
    assert (column in (row["damage"] or "")) == (damage in LISTED), row
    assert main(["runs", *store]) == 0
    assert ("damaged" in capsys.readouterr().out) == (damage in LISTED)


@pytest.mark.parametrize(("result", "problem"), [
    ('{"test_accuracy": 1}', "per_seed"),
    ("not json", "not JSON"),
    ('{"test_accuracy": {"mean": Infinity, "std": 0, "per_seed": [1]}}', "not JSON"),
    ('{"test_accuracy": {"mean": 1, "std": 0, "per_seed": ["a"]}, '
     '"baseline_test_accuracy": {"mean": 1, "std": 0, "per_seed": [1]}}', "not a number"),
    ('{"test_accuracy": {"mean": 1, "std": 0, "per_seed": [1]}, '
     '"baseline_test_accuracy": {"mean": 1, "std": 0, "per_seed": [1]}, "p_value": 7}',
     "p-value"),
])
def test_a_malformed_final_evaluation_is_one_line(finished, capsys, tmp_path, result, problem):
    path, run_id = finished
    _execute(path, "UPDATE finals SET result = ?", args=(result,))
    for argv in (["show", run_id, "--store", str(path)],
                 ["show", run_id, "--store", str(path), "--json"],
                 ["show", run_id, "--store", str(path), "--report", "--out", str(tmp_path)],
                 [*SEARCH, *FINAL, "--resume", run_id, "--store", str(path)]):
        line = _one_line_exit_2(argv, capsys)
        assert "finals.result" in line and problem in line, line


def test_damage_in_the_generations_is_one_line(finished, capsys):
    path, run_id = finished
    _execute(path, "UPDATE generations SET best_fitness = 9e999")
    line = _one_line_exit_2(["show", run_id, "--store", str(path), "--json"], capsys)
    assert "generations.best_fitness" in line and "inf" in line
    _execute(path, "UPDATE generations SET best_fitness = 0.5, state = 'text'")
    line = _one_line_exit_2([*SEARCH, *FINAL, "--resume", run_id, "--store", str(path)], capsys)
    assert "generations.state" in line and "not a blob" in line


def test_a_damaged_run_can_still_be_deleted(finished, capsys):
    path, run_id = finished
    _execute(path, TAMPERED["fitness-text"][0])
    assert main(["runs", "--store", str(path), "--delete", run_id]) == 0
    assert main(["runs", "--store", str(path), "--json"]) == 0
    assert "deleted run" in capsys.readouterr().out


# --- reports: a stored string cannot inject Markdown or HTML -----------------------------------


def _outside_code_spans(line: str) -> str:
    """``line`` without its code spans (CommonMark: a run of n backticks opens a span that
    the next run of exactly n closes)."""
    out, index = [], 0
    while index < len(line):
        if line[index] != "`":
            out.append(line[index])
            index += 1
            continue
        run = len(line[index:]) - len(line[index:].lstrip("`"))
        fence, close = "`" * run, index + run
        while True:
            close = line.find(fence, close)
            if close < 0 or not line[close + run:].startswith("`"):
                break
            close += len(line[close:]) - len(line[close:].lstrip("`"))
        if close < 0:
            out.append(fence)
            index += run
        else:
            index = close + run
    return "".join(out)


def test_stored_strings_cannot_inject_markdown_or_html_into_a_report(finished, capsys,
                                                                     tmp_path):
    path, _run_id = finished
    evil = "x</code><script>alert(1)</script>`| ## Owned [link](http://e.vil) ![i](x.png)\n# H"
    _execute(path, "UPDATE candidates SET expression = ? WHERE status = 'ok'",
             "UPDATE runs SET status = ?", args=(evil,))
    _execute(path, "UPDATE runs SET config = json_set(config, '$.budget.dataset', ?)",
             args=(evil,))
    _execute(path, "UPDATE finals SET result = json_set(result, '$.baselines.\"<b>evil\"', "
             "json_extract(result, '$.baselines.cross_entropy'))")
    with sqlite3.connect(path) as connection:  # a run id chosen by the attacker
        connection.execute("PRAGMA foreign_keys = OFF")
        for table in ("candidates", "generations", "finals", "final_trainings", "runs"):
            connection.execute(f"UPDATE {table} SET run_id = ?", ("<img src=x>#[a](b)",))
    connection.close()
    out = tmp_path / "report"
    code = main(["show", "<img src=x>#[a](b)", "--store", str(path), "--report", "--out",
                 str(out)])
    assert code == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert len(headings) == len(set(headings)) and all(
        h.startswith(("# Search ", "## ")) for h in headings), headings
    columns = None
    for line in report.splitlines():
        text = _outside_code_spans(line)
        own = line in ("![search progress](progress.png)", "![attraction](attraction.png)")
        assert "<" not in text and ("](" not in text or own), line
        if not line.startswith("|"):
            columns = None
            continue
        cells = len(line.replace("\\|", "").split("|"))
        columns = columns or cells  # a table's header row sets its cells
        assert cells == columns, f"a stored string added table cells: {line}"
    assert _strict((out / "summary.json").read_text())["run_id"] == "<img src=x>#[a](b)"
