"""The kill loop: SIGKILL a running ``symloss search`` again and again, resume, compare.

A search (``symloss search taylorglo`` on digits, tiny trainings) runs as a real
subprocess. At ``--kills`` moments drawn from a seeded ``numpy.random.Generator``
it is killed with ``SIGKILL`` and started again with ``--resume RUN_ID``. The
moments come in three kinds, in a seeded order:

- ``training``: a random delay after the attempt's first new candidate row,
  so the process is usually inside a candidate's training;
- ``write``: with ``SYMLOSS_TEST_SLOW_WRITE`` set (the store sleeps inside
  each write transaction, before ``COMMIT``), the kill waits until the child
  holds the store's write lock (a ``BEGIN IMMEDIATE`` from here fails), so it
  lands inside an open transaction;
- ``between``: the moment a generation's optimizer state appears in the store.

After every kill: ``PRAGMA integrity_check`` is ``ok``, each ``(generation,
idx)`` is stored once, and every stored candidate equals the uninterrupted
run's. At the end the candidate table (generation, idx, status, params,
fitness), the generation summaries and the final optimizer state equal those
of an uninterrupted run with the same seed.

Run: ``python benchmarks/kill_loop.py [--kills 20] [--seed 0] [--json]``.
CI runs a reduced form (``tests/test_reliability_kill.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symloss.harness.search.strategies import read_snapshot

KINDS = ("training", "write", "between")
SLOW_WRITE_SECONDS = "0.3"


@dataclass(frozen=True)
class Search:
    generations: int = 40
    population: int = 3
    steps: int = 5
    seed: int = 1

    def arguments(self, store: Path) -> list[str]:
        return ["search", "taylorglo", "--dataset", "digits", "--filter", "none",
                "--generations", str(self.generations), "--population", str(self.population),
                "--steps", str(self.steps), "--seed", str(self.seed), "--store", str(store),
                "--no-progress", "--json"]


def _symloss() -> list[str]:
    executable = Path(sys.executable).with_name("symloss")
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-m", "symloss.cli"]


def _read(store: Path, query: str, args: tuple = ()) -> list[tuple]:
    if not store.exists():
        return []
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
        try:
            return db.execute(query, args).fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return []


def _write_locked(store: Path) -> bool:
    """True while another connection holds the store's write lock (a transaction is open)."""
    if not store.exists():
        return False
    db = sqlite3.connect(store, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        return "locked" in str(error)
    else:
        db.execute("ROLLBACK")
        return False
    finally:
        db.close()


def candidate_table(store: Path, run_id: str) -> list[tuple]:
    return _read(store, "SELECT generation, idx, status, params, fitness FROM candidates "
                 "WHERE run_id = ? ORDER BY generation, idx", (run_id,))


def generation_table(store: Path, run_id: str) -> list[tuple]:
    return _read(store, "SELECT generation, best_fitness, median_fitness FROM generations "
                 "WHERE run_id = ? ORDER BY generation", (run_id,))


def final_mean(store: Path, run_id: str) -> list[float]:
    rows = _read(store, "SELECT state FROM generations WHERE run_id = ? "
                 "ORDER BY generation DESC LIMIT 1", (run_id,))
    return [float(v) for v in read_snapshot(rows[0][0])["es"]["mean"]]


def run_ids(store: Path) -> list[str]:
    return [row[0] for row in _read(store, "SELECT run_id FROM runs ORDER BY created")]


def uninterrupted(search: Search, folder: Path) -> tuple[str, Path, float]:
    store = folder / "whole.sqlite"
    began = time.perf_counter()
    completed = subprocess.run([*_symloss(), *search.arguments(store)], capture_output=True,
                               text=True, timeout=600, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the uninterrupted search failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout)["run_id"], store, time.perf_counter() - began


def _wait_for_kill(process: subprocess.Popen, store: Path, kind: str, delay: float,
                   deadline: float) -> bool:
    """Wait for the kind's moment; False if the process ended (or time ran out) first."""
    def rows() -> int:
        return len(_read(store, "SELECT 1 FROM candidates"))

    def generations() -> int:
        return len(_read(store, "SELECT 1 FROM generations"))

    start_rows, start_generations = rows(), generations()
    while process.poll() is None and time.monotonic() < deadline:
        if kind == "between":
            if generations() > start_generations:
                return True
        elif rows() > start_rows:
            if kind == "training":
                time.sleep(delay)
                return process.poll() is None
            # write: the next time the child holds the write lock
            while process.poll() is None and time.monotonic() < deadline:
                if _write_locked(store):
                    return True
                time.sleep(0.002)
            return False
        time.sleep(0.01)
    return False


def check_store(store: Path, run_id: str | None, reference: dict[tuple, tuple]) -> None:
    """Integrity, each slot once, and every stored row equal to the uninterrupted run's."""
    with sqlite3.connect(store, timeout=30) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        duplicates = db.execute("SELECT run_id, generation, idx, COUNT(*) FROM candidates "
                                "GROUP BY run_id, generation, idx HAVING COUNT(*) > 1").fetchall()
    if verdict != "ok":
        raise AssertionError(f"integrity_check after a kill: {verdict}")
    if duplicates:
        raise AssertionError(f"slots stored more than once: {duplicates}")
    if run_id is None:
        return
    for row in candidate_table(store, run_id):
        if reference.get(row[:2]) != row:
            raise AssertionError(f"stored {row} differs from the uninterrupted run's "
                                 f"{reference.get(row[:2])}")


def kill_loop(folder: Path, *, kills: int = 20, seed: int = 0,
              search: Search | None = None) -> dict:
    """Run the loop in ``folder``; a summary dict. Raises AssertionError on any loss."""
    search = search or Search()
    rng = np.random.default_rng(seed)
    whole_id, whole_store, whole_seconds = uninterrupted(search, folder)
    expected = candidate_table(whole_store, whole_id)
    reference = {row[:2]: row for row in expected}
    store = folder / "killed.sqlite"
    order = list(rng.permutation(np.resize(np.array(KINDS), kills)))
    landed: dict[str, int] = dict.fromkeys(KINDS, 0)
    attempts, run_id = 0, None
    began = time.perf_counter()
    while True:
        ids = run_ids(store)
        run_id = ids[0] if ids else None
        arguments = search.arguments(store) + (["--resume", run_id] if run_id else [])
        kind = order[sum(landed.values())] if sum(landed.values()) < kills else None
        environment = dict(os.environ)
        if kind == "write":
            environment["SYMLOSS_TEST_SLOW_WRITE"] = SLOW_WRITE_SECONDS
        attempts += 1
        process = subprocess.Popen([*_symloss(), *arguments], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=environment)
        if kind is not None and _wait_for_kill(process, store, kind,
                                               float(rng.uniform(0.0, 0.15)),
                                               time.monotonic() + 300):
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            landed[kind] += 1
            check_store(store, run_ids(store)[0] if run_ids(store) else None, reference)
            continue
        _, stderr = process.communicate(timeout=600)
        if process.returncode != 0:
            raise AssertionError(f"a resumed search failed ({process.returncode}): "
                                 f"{stderr[-2000:]}")
        break  # finished: either every kill has landed, or the search ended first
    ids = run_ids(store)
    if len(ids) != 1:
        raise AssertionError(f"the killed store holds {len(ids)} runs, expected 1")
    run_id = ids[0]
    check_store(store, run_id, reference)
    got = candidate_table(store, run_id)
    if got != expected:
        raise AssertionError("the final candidate table differs from the uninterrupted run's")
    if generation_table(store, run_id) != generation_table(whole_store, whole_id):
        raise AssertionError("the generation summaries differ from the uninterrupted run's")
    if final_mean(store, run_id) != final_mean(whole_store, whole_id):
        raise AssertionError("the final optimizer state differs from the uninterrupted run's")
    status = _read(store, "SELECT status FROM runs WHERE run_id = ?", (run_id,))[0][0]
    return {"kills": sum(landed.values()), "by_kind": landed, "starts": attempts,
            "candidates": len(got), "generations": search.generations,
            "final_status": status, "identical_to_uninterrupted": True,
            "uninterrupted_seconds": round(whole_seconds, 1),
            "loop_seconds": round(time.perf_counter() - began, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generations", type=int, default=Search.generations)
    parser.add_argument("--population", type=int, default=Search.population)
    parser.add_argument("--steps", type=int, default=Search.steps)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    search = Search(args.generations, args.population, args.steps)
    with tempfile.TemporaryDirectory() as folder:
        summary = kill_loop(Path(folder), kills=args.kills, seed=args.seed, search=search)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"kills survived: {summary['kills']} {summary['by_kind']} over "
              f"{summary['starts']} starts; {summary['candidates']} candidates, each once; "
              f"final state identical to the uninterrupted run: "
              f"{summary['identical_to_uninterrupted']}; {summary['loop_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
