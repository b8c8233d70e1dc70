"""Regenerate the README's figures from real runs, or check that they are current.

A generated block in ``README.md`` is fenced by two HTML comments; the first names
where its content comes from::

    <!-- generated: command symloss analyze baikal -->
    ...
    <!-- end generated -->

Sources:

- ``command ARGV…`` — the ``symloss`` command is run in this process and its
  output shown under a ``$ `` prompt; with ``--status`` first, its exit status is
  printed after it (as ``; echo $?`` would);
- ``table FILE HEADING [K]`` — the K-th (default first) markdown table under the
  line starting with ``HEADING`` in ``FILE`` (a report that a benchmark wrote from
  its stored runs: ``docs/glo-mnist/report.md``, ``benchmarks/RESULTS-filters.md``);
- ``file FILE`` — a committed transcript, fenced: ``docs/make-run.txt``, what ``make
  run``'s search printed when ``--make-run`` last ran it in a fresh folder (its
  trainings are not rerun by ``--check``).

Run: ``python benchmarks/readme.py`` rewrites the blocks in place; ``--check``
changes nothing and exits 1 naming each stale block (CI runs it through
``tests/test_readme.py``). Commands that train are never run here: only the cheap,
deterministic analysis; tables come from the committed reports.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- generated: (?P<source>.+?) -->\n)(?P<body>.*?)(<!-- end generated -->)",
                   re.DOTALL)


def _shown(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) if re.search(r"[^\w@%+=:,./-]", a) else a for a in argv)


def run_command(argv: list[str], status: bool = False) -> str:
    """``$ symloss …`` and what it printed (stdout, then stderr), as a fenced block."""
    from symloss.cli import main

    if not argv or argv[0] != "symloss":
        raise ValueError(f"a generated command runs symloss, got {argv!r}")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv[1:])
        except SystemExit as stop:  # argparse's own errors
            code = stop.code
    prompt = "$ " + _shown(argv) + ("; echo $?" if status else "")
    text = out.getvalue() + err.getvalue()
    lines = [prompt, *text.rstrip("\n").splitlines()] + ([str(code)] if status else [])
    return "```\n" + "\n".join(lines) + "\n```\n"


def table(path: str, heading: str, which: int = 1) -> str:
    """The ``which``-th markdown table after the line starting with ``heading`` in ``path``."""
    lines = (ROOT / path).read_text().splitlines()
    start = next((k for k, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise ValueError(f"{path} has no line starting with {heading!r}")
    tables, current = [], []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    if len(tables) < which:
        raise ValueError(f"{path} has {len(tables)} tables after {heading!r}, not {which}")
    return "\n".join(tables[which - 1]) + "\n"


#: What ``make run``'s search printed on a fresh clone (:func:`record_make_run` writes it).
MAKE_RUN = ROOT / "docs" / "make-run.txt"


def make_run_search() -> list[str]:
    """The search line of the Makefile's ``run`` target, as arguments (read from the
    Makefile, so the transcript cannot drift from what ``make run`` runs)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if "symloss search" in line)
    argv = shlex.split(line.strip().replace("$(BIN)/", ""))
    return [*argv, "--no-progress"]


def record_make_run() -> Path:
    """Run ``make run``'s search in a fresh folder, as a new user's first run, and write what
    it printed (stderr's lines, then stdout's) to :data:`MAKE_RUN`, its wall time first."""
    import subprocess
    import tempfile
    import time

    argv = make_run_search()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / argv[0]), *argv[1:]],
                              cwd=folder, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
    text = f"$ {_shown(argv)}      # {seconds:.0f} s\n{done.stderr}{done.stdout}"
    MAKE_RUN.write_text(text)
    return MAKE_RUN


def render(source: str) -> str:
    """The content of one generated block from its source line."""
    kind, *args = shlex.split(source)
    if kind == "file":
        return "```\n" + (ROOT / args[0]).read_text().rstrip("\n") + "\n```\n"
    if kind == "command":
        status = bool(args) and args[0] == "--status"
        return run_command(args[1:] if status else args, status)
    if kind == "table":
        return table(args[0], args[1], int(args[2]) if len(args) > 2 else 1)
    raise ValueError(f"unknown generated source {kind!r}: command, table or file")


def regenerate(text: str) -> tuple[str, list[str]]:
    """``text`` with every generated block rendered anew, and the sources that changed."""
    stale: list[str] = []

    def replace(match: re.Match) -> str:
        body = render(match["source"])
        if body != match["body"]:
            stale.append(match["source"])
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text), stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a generated block is stale")
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="file to process")
    parser.add_argument("--make-run", action="store_true",
                        help="first run make run's search anew (a minute or two) and record "
                             "what it printed in docs/make-run.txt")
    args = parser.parse_args(argv)
    if args.make_run and not args.check:
        print(f"recorded {record_make_run()}")
    path = Path(args.readme)
    try:
        text = path.read_text()
        new, stale = regenerate(text)
    except (OSError, ValueError) as error:  # a missing file, a bad source line
        print(f"readme: error: {error}", file=sys.stderr)
        return 2
    blocks = len(BLOCK.findall(text))
    if args.check:
        for source in stale:
            print(f"stale: {source} (run python benchmarks/readme.py)", file=sys.stderr)
        print(f"{blocks} generated blocks, {len(stale)} stale")
        return 1 if stale else 0
    if new != text:
        path.write_text(new)
    print(f"{blocks} generated blocks, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
