"""Issue 20, attacked again (red-team rows 71–77): stored strings never reach the terminal
raw, a store or data file that is not a regular file is refused before it is opened, the
search checks its device as ``train`` does, a tampered stored candidate is blamed on the
store, a damaged resume is one line, and a flag without effect is refused.

Every user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.harness.datafiles import DataError, read_cifar_batch, read_idx
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import RunStore, printable

TINY = Budget(dataset="digits", steps=4, batch_size=64)
#: A run id (set through the API in a shared store) that would print as a second, fake run.
FAKE_LINE = "ok\n0000fake0000  taylorglo digits   finished    evaluations  999  best 0.9999"
#: Clears the screen, sets the terminal's title, returns to the line's start.
ESCAPES = "digits\x1b[2J\x1b]0;pwned\x07\rfake"


def _one_line_exit_2(argv: list[str], capsys) -> str:
    """The one error line of ``argv``: exit 2, nothing else on stderr, no traceback."""
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("symloss: error: "), captured.err
    return lines[0]


def _execute(path: Path, statement: str, args: tuple = ()) -> None:
    """The attacker's own write."""
    with sqlite3.connect(path) as connection:
        connection.execute(statement, args)
    connection.close()


def _control_characters(text: str) -> set[str]:
    return {c for c in text if (ord(c) < 32 and c != "\n") or c == "\x7f"}


def _made(folder: Path, run_id: str | None = None) -> tuple[Path, str]:
    """A store holding one small finished run (of id ``run_id``, default a fresh one)."""
    path = folder / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = search(SearchConfig("taylorglo", generations=1, population=4, budget=TINY),
                        store=store, run_id=run_id)
    return path, run_id


def _copy(made: tuple[Path, str], folder: Path) -> tuple[Path, str]:
    """A copy of a made store that the test may damage."""
    source, run_id = made
    path = folder / "runs.sqlite"
    shutil.copy(source, path)
    return path, run_id


@pytest.fixture(scope="module")
def made_store(tmp_path_factory) -> tuple[Path, str]:
    return _made(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def made_fake_line(tmp_path_factory) -> tuple[Path, str]:
    """The run's id holds a newline and a fake listing line (set through the API)."""
    return _made(tmp_path_factory.mktemp("fake"), FAKE_LINE)


@pytest.fixture
def stored(made_store, tmp_path) -> tuple[Path, str]:
    return _copy(made_store, tmp_path)


@pytest.fixture
def fake_line(made_fake_line, tmp_path) -> tuple[Path, str]:
    return _copy(made_fake_line, tmp_path)


# 71 ------------------------------------------------------------------------------------


def test_runs_and_show_print_stored_strings_escaped_on_one_line(fake_line, capsys):
    path, run_id = fake_line
    _execute(path, "UPDATE runs SET config = json_set(config, '$.budget.dataset', ?)",
             (ESCAPES,))
    assert main(["runs", "--store", str(path)]) == 0
    listing = capsys.readouterr().out
    assert not _control_characters(listing), listing
    (line,) = [line for line in listing.splitlines() if line.strip()]
    assert line.startswith(r"ok\n0000fake0000") and r"\x1b[2J" in line and r"\x07" in line
    assert main(["show", run_id, "--store", str(path)]) == 0
    shown = capsys.readouterr().out
    assert not _control_characters(shown)
    assert shown.splitlines()[0].startswith(r"run ok\n0000fake0000  taylorglo")
    assert not any(line.startswith("0000fake0000") for line in shown.splitlines())


# 72 ------------------------------------------------------------------------------------


class _Unblocked:
    """Opens ``fifo`` for writing after ``seconds`` (and closes it), so a reader that
    blocked on it returns instead of hanging the test; :attr:`fired` says it had to."""

    def __init__(self, fifo: Path, seconds: float = 10.0):
        self.fifo, self.fired = fifo, False
        self.timer = threading.Timer(seconds, self._release)

    def _release(self) -> None:
        try:
            os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            self.fired = True
        except OSError:  # no reader: nothing blocked
            pass

    def __enter__(self) -> _Unblocked:
        self.timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.timer.cancel()


@pytest.mark.parametrize("argv", [["runs"], ["show", "abc"], ["export", "abc", "--out", "x.py"],
                                  ["analyze", "run:abc"]], ids=lambda argv: argv[0])
def test_a_named_pipe_as_the_store_is_refused_before_it_is_opened(argv, tmp_path, capsys,
                                                                   monkeypatch):
    fifo = tmp_path / "runs.sqlite"
    os.mkfifo(fifo)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMLOSS_STORE", str(fifo))
    with _Unblocked(fifo) as guard:
        line = _one_line_exit_2(argv, capsys)
    assert not guard.fired, "the command blocked reading the pipe"
    assert line == f"symloss: error: run store {fifo} is not a regular file; pass --store FILE"
    assert not (tmp_path / "x.py").exists()


@pytest.mark.parametrize("reader", [read_idx, read_cifar_batch], ids=lambda f: f.__name__)
def test_a_named_pipe_as_a_data_file_is_refused_before_it_is_opened(reader, tmp_path):
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    with _Unblocked(fifo) as guard, pytest.raises(DataError) as raised:
        reader(fifo)
    assert not guard.fired, "the reader blocked on the pipe"
    assert str(raised.value) == f"dataset file {fifo} is not a regular file"


def test_a_named_pipe_in_an_mnist_folder_is_named_not_called_missing(tmp_path):
    """The loader found only regular files, so a pipe read as "missing mnist file" (row 72)."""
    from symloss.harness.data import load_dataset

    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"")
    fifo = folder / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    with _Unblocked(fifo) as guard, pytest.raises(DataError, match="is not a regular file"):
        load_dataset("mnist", data_dir=tmp_path)
    assert not guard.fired, "the loader blocked on the pipe"


# 74 ------------------------------------------------------------------------------------

SEARCH = ["search", "taylorglo", "--dataset", "digits", "--generations", "1", "--population",
          "4", "--steps", "4", "--batch-size", "64", "--no-progress", "--json"]


def test_a_search_on_a_missing_device_is_refused_before_a_store(tmp_path, capsys):
    store = tmp_path / "runs.sqlite"
    line = _one_line_exit_2([*SEARCH, "--device", "cuda:99", "--store", str(store)], capsys)
    assert "'cuda:99'" in line
    assert not store.exists()


def test_the_python_api_refuses_a_missing_device_before_a_store(tmp_path):
    """search_losses trained every candidate into 'failed' on cuda:99 (the CLI refused it)."""
    from symloss.harness.search import search_losses

    store = tmp_path / "runs.sqlite"
    with pytest.raises(ValueError, match="cuda:99"):
        search_losses(dataset="digits", generations=1, population=4, steps=4, device="cuda:99",
                      store=store, progress=False)
    assert not store.exists()


def test_a_cuda_index_past_the_visible_devices_is_refused(monkeypatch):
    import torch

    from symloss.harness.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"'cuda:99' requested but only 2 CUDA device"):
        resolve_device("cuda:99")


# 75 ------------------------------------------------------------------------------------

TAMPERED = {"params": ("UPDATE candidates SET params = ?", ("[1, 2]",)),
            "expression": ("UPDATE candidates SET params = NULL, expression = ?",
                           ("__import__('os').system('touch pwned')",))}


@pytest.mark.parametrize("column", sorted(TAMPERED))
@pytest.mark.parametrize("command", ["export", "analyze", "train"])
def test_a_tampered_stored_candidate_is_blamed_on_the_store(stored, column, command, tmp_path,
                                                           capsys, monkeypatch):
    path, run_id = stored
    _execute(path, *TAMPERED[column])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMLOSS_STORE", str(path))
    argv = {"export": ["export", run_id, "--out", str(tmp_path / "x.py")],
            "analyze": ["analyze", f"run:{run_id}"],
            "train": ["train", "--loss", f"run:{run_id}", "--dataset", "digits", "--steps",
                      "2", "--no-progress"]}[command]
    line = _one_line_exit_2(argv, capsys)
    assert line.startswith(f"symloss: error: run {run_id} in {path} is damaged")
    assert f"is damaged: candidates.{column} (generation 0, candidate" in line, line
    assert not (tmp_path / "x.py").exists() and not (tmp_path / "pwned").exists()


def test_a_damage_message_is_one_line_whatever_the_run_id_holds(fake_line, tmp_path, capsys):
    path, run_id = fake_line
    _execute(path, *TAMPERED["params"])
    line = _one_line_exit_2(["export", run_id, "--store", str(path), "--out",
                             str(tmp_path / "x.py")], capsys)
    assert line.startswith(f"symloss: error: run {printable(run_id)} in {path} is damaged: "
                           "candidates.params")


# 76 ------------------------------------------------------------------------------------


def test_a_damaged_resume_of_a_reported_run_is_one_line(stored, tmp_path, capsys):
    path, run_id = stored
    _execute(path, "UPDATE generations SET best_fitness = 'abc'")
    _execute(path, "UPDATE runs SET status = 'finished', report_dir = ?",
             (str(tmp_path / "old"),))
    line = _one_line_exit_2(["search", "--resume", run_id, "--store", str(path),
                             "--no-progress", "--json", "--out", str(tmp_path / "r")], capsys)
    assert "generations.best_fitness" in line


def test_a_resume_elsewhere_still_says_where_the_report_goes(stored, tmp_path, capsys):
    path, run_id = stored
    _execute(path, "UPDATE runs SET status = 'finished', report_dir = ?",
             (str(tmp_path / "old"),))
    assert main(["search", "--resume", run_id, "--store", str(path), "--no-progress",
                 "--json", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert f"report: {tmp_path / 'r'} (the run's earlier folder" in err
    assert (tmp_path / "r" / "report.md").exists() and not (tmp_path / "old").exists()


# 77 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    ([*SEARCH, "--gpus-per-task", "1"], "--gpus-per-task applies to --scheduler only"),
    (["train", "--loss", "cross_entropy", "--dataset", "digits", "--steps", "2",
      "--no-progress", "--attraction-samples", "5"],
     "--attraction-samples applies to --attraction-log only"),
], ids=["gpus-per-task", "attraction-samples"])
def test_a_flag_without_effect_is_refused_in_one_line(argv, message, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "runs.sqlite"
    line = _one_line_exit_2([*argv, "--store", str(store)] if argv[0] == "search" else argv,
                            capsys)
    assert line.startswith(f"symloss: error: {message}"), line
    assert not store.exists() and not list(tmp_path.iterdir())
