"""The tests that start processes, N times in a row under busy CPUs (issue 20): do they flake?

A test that passes alone can fail when the machine is loaded: a race its
assertions did not allow for, a deadline that load pushes past. This script runs
every test file that starts processes or races them — the files whose source
names one of :data:`PROCESS_MARKERS` (subprocesses, signals and kills, Dask
clusters, worker pools, the run lock), found by reading ``tests/`` so that a new
such file is covered without editing this list — ``--rounds`` times in a row
(default 5), each round one ``pytest`` process, while ``--busy`` processes
(default 2) spin on the CPU. It starts the busy processes itself and stops them
when it ends, however it ends (they also stop when this script's process goes).

It prints one row per test file — ``passed/run`` in each round, bold where a
test failed — then every failure with its first line, and the load average each
round saw. Exit code 1 if any test failed or errored, or a round ran past
``--timeout`` (its process group killed); 0 otherwise.

Run: ``python benchmarks/stress_tests.py [--rounds N] [--busy K] [--timeout S]
[--tests tests/test_x.py ...] [-- PYTEST_ARGS]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What a test file's source says when it starts processes or races them.
PROCESS_MARKERS = frozenset({"subprocess", "Popen", "os.kill", "killpg", "SIGKILL", "SIGINT",
                             "SIGTERM", "LocalCluster", "LocalExecutor", "ProcessPool",
                             "run_lock", "--workers", "multiprocessing"})

#: A busy process: spins until its parent (this script) is gone.
BUSY = ("import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
        "    for _ in range(1_000_000):\n        pass\n")


def process_test_files(folder: Path = ROOT / "tests") -> list[Path]:
    """The test files whose source names a :data:`PROCESS_MARKERS` entry."""
    pattern = re.compile("|".join(re.escape(marker) for marker in sorted(PROCESS_MARKERS)))
    return [path for path in sorted(folder.glob("test_*.py"))
            if pattern.search(path.read_text(encoding="utf-8"))]


@dataclass
class Round:
    """One pytest run: per file ``[passed, run]``, the failures, its time and load."""

    number: int
    files: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: float = 0.0
    code: int | None = None
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.failures) or self.timed_out or self.code not in (0,)


def parse_junit(text: str, result: Round) -> None:
    """Fill ``result`` from pytest's ``--junitxml`` report (skipped tests are not run).

    >>> result = Round(1)
    >>> parse_junit('<testsuite><testcase classname="tests.test_a" name="test_x"/>'
    ...             '<testcase classname="tests.test_a" name="test_y"><failure message='
    ...             '"assert 1 == 2"/></testcase></testsuite>', result)
    >>> result.files, result.failures
    ({'test_a.py': [1, 2]}, ['round 1: test_a.py::test_y: assert 1 == 2'])
    """
    for case in ElementTree.fromstring(text).iter("testcase"):
        path = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        name = Path(path).name if path.endswith(".py") else path
        counts = result.files.setdefault(name, [0, 0])
        if case.find("skipped") is not None:
            continue
        counts[1] += 1
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            counts[0] += 1
            continue
        first = (problem.get("message") or problem.text or "").strip().splitlines()
        result.failures.append(f"round {result.number}: {name}::{case.get('name')}: "
                               f"{(first or ['(no message)'])[0][:160]}")


def load_average() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return float(Path("/proc/loadavg").read_text().split()[0])
    return float("nan")


def run_round(number: int, files: list[Path], extra: list[str], timeout: float,
              folder: Path) -> Round:
    """One ``pytest`` process over ``files``, in its own process group."""
    result = Round(number)
    report = folder / f"round-{number}.xml"
    argv = [sys.executable, "-m", "pytest", *map(str, files), "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", *extra]
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    except BaseException:  # Ctrl-C: the round's tests go with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    result.seconds = time.monotonic() - started
    result.load = load_average()
    result.code = process.returncode
    if report.exists():
        parse_junit(report.read_text(encoding="utf-8"), result)
    if result.timed_out:
        result.failures.append(f"round {number}: killed after {timeout:.0f} s (a hang?)")
    elif result.code not in (0,) and not result.failures:
        tail = output.strip().splitlines()[-1:] or ["(no output)"]
        result.failures.append(f"round {number}: pytest exit {result.code}: {tail[0][:160]}")
    return result


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` processes spinning on the CPU for as long as the block runs."""
    processes = [subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.DEVNULL)
                 for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def table(rounds: list[Round]) -> str:
    names = sorted({name for r in rounds for name in r.files})
    lines = ["| test file | " + " | ".join(f"round {r.number}" for r in rounds) + " |",
             "| --- |" + " ---: |" * len(rounds)]
    for name in names:
        cells = []
        for r in rounds:
            passed, run = r.files.get(name, [0, 0])
            cells.append(f"{passed}/{run}" if passed == run else f"**{passed}/{run}**")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| seconds (load average) | " + " | ".join(
        f"{r.seconds:.0f} ({r.load:.1f})" + (" **timed out**" if r.timed_out else "")
        for r in rounds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs in a row (default 5)")
    parser.add_argument("--busy", type=int, default=2,
                        help="busy processes spinning meanwhile (default 2)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds a round may take before it is killed (default 3600)")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="test files (default: those that start processes, from tests/)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)
    for flag, value in (("--rounds", args.rounds), ("--timeout", args.timeout)):
        if not value > 0:
            parser.error(f"{flag} must be > 0, got {value}")
    if args.busy < 0:
        parser.error(f"--busy must be >= 0, got {args.busy}")
    files = [Path(name).resolve() for name in args.tests] if args.tests else \
        process_test_files()
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        parser.error(f"no such test file: {', '.join(missing)}")
    print(f"{len(files)} test files, {args.rounds} rounds, {args.busy} busy processes: "
          + ", ".join(path.name for path in files), file=sys.stderr, flush=True)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="stress-tests-") as folder, \
            busy_processes(args.busy):
        for number in range(1, args.rounds + 1):
            result = run_round(number, files, args.pytest_args, args.timeout, Path(folder))
            rounds.append(result)
            print(f"round {number}: {'FAILED' if result.failed else 'passed'} "
                  f"in {result.seconds:.0f} s (load {result.load:.1f})", file=sys.stderr,
                  flush=True)
    print(table(rounds))
    failures = [line for r in rounds for line in r.failures]
    for line in failures:
        print(f"- {line}")
    failed = sum(r.failed for r in rounds)
    print(f"\n{len(rounds) - failed} of {len(rounds)} rounds passed"
          + (f"; {len(failures)} failures" if failures else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
