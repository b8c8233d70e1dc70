"""Issue 20, attacked again (red-team rows 71–77): stored strings never reach the terminal
raw, a store or data file that is not a regular file is refused before it is opened, the
search checks its device as ``train`` does, a tampered stored candidate is blamed on the
store, a damaged resume is one line, and a flag without effect is refused.

Every user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import RunStore

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


@pytest.fixture(scope="module")
def made_store(tmp_path_factory) -> tuple[Path, str]:
    """One small finished run whose id holds a newline and a fake listing line."""
    path = tmp_path_factory.mktemp("round3") / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = search(SearchConfig("taylorglo", generations=1, population=4, budget=TINY),
                        store=store, run_id=FAKE_LINE)
    return path, run_id


@pytest.fixture
def stored(made_store, tmp_path, capsys) -> tuple[Path, str]:
    """A copy of :func:`made_store` this test may damage."""
    source, run_id = made_store
    path = tmp_path / "runs.sqlite"
    shutil.copy(source, path)
    capsys.readouterr()
    return path, run_id


# 71 ------------------------------------------------------------------------------------


def test_runs_and_show_print_stored_strings_escaped_on_one_line(stored, capsys):
    path, run_id = stored
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
