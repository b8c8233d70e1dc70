"""The red team's kit: one capped process per attack, judged as a user would.

Every attack runs as a real ``symloss ...`` (or ``python -c``) process, started
in its own temporary directory with its address space capped (``RLIMIT_AS``,
``--memory-gb``, default 3 GB) and a wall-clock limit (``--timeout``, default
60 s; the process group is killed past it). An attack *holds* when what a user
would check says so:

- a user error is one line on stderr starting with ``symloss`` and exit code 2,
  no ``Traceback`` (:func:`one_line`);
- algebra that cannot finish within its bounds is refused in that one line or
  answered *undecided* with its reason (``--json``), within the time limit
  (:func:`refused_or_undecided`);
- no code runs: every gadget tries to create a marker file, which must not
  exist afterwards;
- a file the command should only read keeps its sha256, and no file appears
  beside it (:func:`snapshot`);
- memory stays within the cap: the process is not killed (by the cap's
  ``MemoryError`` or a signal) and reports the problem itself (:func:`survived`);
- no training is lost or paid twice: the store's candidate rows are counted,
  each ``(generation, idx)`` once, equal to an uninterrupted run's (:func:`each_once`).

Each module of attacks holds an :class:`Attacks` list (``attack = ATTACKS.add``
is its decorator); ``benchmarks/red_team.py`` numbers them in its order of modules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GB = 2**30
MB = 2**20

#: The tiny search every search attack starts from (a few seconds on 2 cores).
TINY = ["--dataset", "digits", "--steps", "5", "--population", "4", "--generations", "1",
        "--no-progress", "--json"]


#: The tiny training every train attack starts from (a second or two).
TRAIN = ["train", "--loss", "cross_entropy", "--dataset", "digits", "--steps", "5", "--no-progress"]


def symloss_command() -> list[str]:
    executable = Path(sys.executable).with_name("symloss")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "symloss.cli"]


# --- running one capped process -----------------------------------------------------------------


class Broke(Exception):
    """The attack succeeded: the claim did not hold (the message says what was seen)."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Broke(message)


@dataclass
class Ran:
    """A finished (or killed) process: what a user sees of it."""

    argv: list[str]
    code: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool

    def last(self, limit: int = 110) -> str:
        lines = [line for line in self.err.strip().splitlines() if line.strip()]
        text = lines[-1] if lines else "(nothing on stderr)"
        return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class Sandbox:
    """One attack's temporary directory, memory cap and time limit."""

    folder: Path
    memory: int
    timeout: float
    symloss: list[str] = field(default_factory=symloss_command)

    def path(self, name: str) -> Path:
        return self.folder / name

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SYMLOSS_STORE"}
        env["PYTHONPATH"] = str(ROOT)
        return {**env, **(extra or {})}

    def start(self, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        memory = self.memory

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

        return subprocess.Popen(argv, cwd=cwd or self.folder, env=self.environment(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=cap, start_new_session=True)

    def finish(self, process: subprocess.Popen, started: float,
               timeout: float | None = None) -> Ran:
        timed_out = False
        try:
            out, err = process.communicate(timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
            out, err = process.communicate()
        return Ran(list(process.args), process.returncode, out, err,
                   time.monotonic() - started, timed_out)

    def run(self, argv: list[str], *, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: float | None = None) -> Ran:
        started = time.monotonic()
        return self.finish(self.start(argv, env=env, cwd=cwd), started, timeout)

    def cli(self, *args: str, **kwargs) -> Ran:
        return self.run([*self.symloss, *args], **kwargs)

    def python(self, code: str, *args: str, **kwargs) -> Ran:
        return self.run([sys.executable, "-c", code, *args], **kwargs)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --- how a user judges a process ----------------------------------------------------------------


def survived(ran: Ran) -> None:
    """It ended by itself, within the time limit and the memory cap, without a traceback."""
    expect(not ran.timed_out, f"still running after {ran.seconds:.0f} s (killed)")
    expect(ran.code is not None and ran.code >= 0,
           f"killed by signal {-(ran.code or 0)} (the memory cap or a crash)")
    expect("MemoryError" not in ran.err, f"ran out of the memory cap: {ran.last()}")
    expect("Traceback" not in ran.err, f"traceback: {ran.last()}")


def one_line(ran: Ran, *needles: str) -> str:
    """One line on stderr, starting with ``symloss``, and exit code 2; returns the line."""
    survived(ran)
    lines = [line for line in ran.err.strip().splitlines() if line.strip()]
    expect(ran.code == 2, f"exit {ran.code}: {ran.last()}")
    expect(len(lines) == 1 and lines[0].startswith("symloss"),
           f"{len(lines)} lines on stderr: {(lines or [''])[0][:80]}")
    for needle in needles:
        expect(needle in lines[-1], f"the line does not say {needle!r}: {ran.last()}")
    return lines[-1]


def clean_or_one_line(ran: Ran, *needles: str) -> str:
    """Exit 0 without a traceback (what the command is for, done), or :func:`one_line`."""
    survived(ran)
    if ran.code == 0:
        return "exit 0"
    return one_line(ran, *needles)


def strict_json(ran: Ran) -> dict:
    """Exit 0 and stdout valid JSON (no bare NaN/Infinity)."""
    survived(ran)
    expect(ran.code == 0, f"exit {ran.code}: {ran.last()}")

    def bare(name: str):
        raise Broke(f"bare {name} in the JSON")

    try:
        return json.loads(ran.out, parse_constant=bare)
    except json.JSONDecodeError as error:
        raise Broke(f"invalid JSON ({error})") from None


def refused_or_undecided(ran: Ran) -> str:
    """Bounded algebra: one line (exit 2), or ``--json`` with every undecided step's reason."""
    survived(ran)
    if ran.code == 2:
        return f"refused: {one_line(ran)}"
    payload = strict_json(ran)
    undecided = payload.get("undecided") or {}
    expect(all(reason for reason in undecided.values()), f"undecided without reason {undecided}")
    return f"answered, undecided: {undecided}" if undecided else "answered, all steps decided"


def shorten(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its sha256 (what "untouched" means)."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def read_store(path: Path, query: str, args: tuple = ()) -> list[tuple]:
    """Rows from a store, opened read-only from here (the judge never writes)."""
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(query, args).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        connection.close()


def candidates(path: Path) -> list[tuple]:
    return read_store(path, "SELECT generation, idx, status, params, fitness FROM candidates "
                            "ORDER BY generation, idx")


def each_once(rows: list[tuple], expected: int) -> None:
    keys = [(generation, idx) for generation, idx, *_ in rows]
    expect(len(set(keys)) == len(keys), f"{len(keys) - len(set(keys))} candidates stored twice")
    expect(len(keys) == expected, f"{len(keys)} candidates stored, expected {expected}")


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, seconds: float,
             what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise Broke(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            _kill_group(process)
            raise Broke(f"no {what} within {seconds:.0f} s")
        time.sleep(0.05)


# --- builders for the damaged inputs ------------------------------------------------------------

#: Builds runs in a store through the public API, ``symloss.harness.search`` (the attacker's
#: starting point).
SETUP_RUNS = """
import sys
from symloss.harness.search import Budget, RunStore, SearchConfig, search
path, generations, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run_id = sys.argv[4] if len(sys.argv) > 4 else None
config = SearchConfig("taylorglo", generations=generations, population=4,
                      budget=Budget(dataset="digits", steps=5))
with RunStore.open(path) as store:
    if stop < 0:  # -N: N runs created, none trained
        print("\\n".join(store.create_run("taylorglo", config.to_dict()) for _ in range(-stop)))
    else:
        print(search(config, store=store, stop_after=stop or None, run_id=run_id))
"""


def make_runs(box: Sandbox, store: Path, generations: int, stop: int,
              run_id: str | None = None) -> list[str]:
    """``stop`` > 0: interrupted after that many generations; 0: searched; −N: N empty runs.
    ``run_id``: the id of the (one) trained run, chosen through the Python API."""
    ran = box.python(SETUP_RUNS, str(store), str(generations), str(stop),
                     *([run_id] if run_id else []), timeout=180)
    if ran.code != 0:
        raise RuntimeError(f"setup failed: {ran.err[-400:]}")
    return ran.out.splitlines()



class Gadget:
    """Pickles as ``os.system(command)``: unpickling it runs the command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)

def idx_bytes(array: np.ndarray) -> bytes:
    """LeCun's IDX format: 0, 0, type code, ndim, big-endian dims, big-endian data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D,
             np.dtype(">f8"): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def one_run(box: Sandbox, generations: int = 1, stop: int = 0, run_id: str | None = None,
            store: Path | None = None) -> tuple[Path, str]:
    """One run in ``runs.sqlite`` (or ``store``): searched, or interrupted after ``stop``
    generations (:func:`make_runs`); returns the store and the run's id."""
    store = store or box.path("runs.sqlite")
    (made,) = make_runs(box, store, generations, stop, run_id)
    return store, made


def mnist_folder(box: Sandbox, train: np.ndarray | None = None, test: np.ndarray | None = None,
                 name: str = "data") -> Path:
    """MNIST files (uncompressed IDX) under ``NAME/mnist``, labels 0-9 in turn; returns
    ``NAME``. The images are ``train`` and ``test`` where given, else good tiny ones."""
    folder = box.path(name) / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, images, count in (("train", train, 60), ("t10k", test, 20)):
        if images is None:
            images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(len(images)) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return box.path(name)


def train_on(box: Sandbox, dataset: str, data: Path) -> Ran:
    return box.cli("train", "--loss", "cross_entropy", "--dataset", dataset, "--data-dir",
                   str(data), "--steps", "5", "--no-progress")

def execute(path: Path, *statements: tuple[str, tuple]) -> None:
    """The attacker's own writes to a store."""
    connection = sqlite3.connect(path)
    with connection:
        for statement, args in statements:
            connection.execute(statement, args)
    connection.close()

def interrupt(box: Sandbox, argv: list[str], store: Path, signal_number: int, *,
              stored: int, group: bool = False, env: dict[str, str] | None = None) -> Ran:
    """Start ``argv``, wait until ``stored`` candidates are in the store, then signal it."""
    started = time.monotonic()
    process = box.start(argv, env=env)
    try:
        wait_for(lambda: len(candidates(store)) >= stored, process, 120,
                 f"{stored} stored candidates")
        if group:  # a terminal's Ctrl-C reaches the whole foreground process group
            os.killpg(process.pid, signal_number)
        else:
            process.send_signal(signal_number)
    finally:
        ran = box.finish(process, started, timeout=120)
    return ran


# --- the attacks' registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    number: int
    group: str
    name: str
    expectation: str
    run: Callable[[Sandbox], str]
    slow: bool = False


class Attacks(list):
    """One module's attacks in the order written (numbered by ``benchmarks/red_team.py``)."""

    def add(self, group: str, name: str, expectation: str, *, slow: bool = False):
        def register(function: Callable[[Sandbox], str]) -> Callable[[Sandbox], str]:
            self.append(Attack(0, group, name, expectation, function, slow))
            return function
        return register
