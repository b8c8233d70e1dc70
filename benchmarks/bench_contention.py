"""Batched training on a quiet and on a loaded machine: threads chosen so batching never loses.

A population of TaylorGLO candidates on MNIST-1D is trained four ways — one by
one (1 thread each, the unbatched path), and batched with 1 thread, with every
core, and with the search's choice (:func:`symloss.harness.device.free_cores`: this
process's cores less the other runnable work, read just before the population
trains) — first on a quiet machine, then while ``--load`` busy processes (one
per core by default) compete for the cores. Each figure is the best of
``--repeats`` runs, in trainings per second; the ratios are against one by one
under the same condition.

Run: ``python benchmarks/bench_contention.py [--population 16] [--steps 200]`` (about
two minutes on 2 cores); ``--json`` prints one object, ``--write`` also puts the table
in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import sys
import time
from contextlib import contextmanager

import numpy as np

from symloss.catalog import taylorglo
from symloss.harness.batched import train_population
from symloss.harness.data import load_dataset
from symloss.harness.device import available_cores, free_cores
from symloss.harness.train import TrainConfig, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_file import write_section


def _spin() -> None:  # a competing process: pure CPU, no I/O
    while True:
        pass


@contextmanager
def load(processes: int):
    """``processes`` busy loops in their own processes for the duration of the block."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spin, daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let them reach the run queue
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()


def population(size: int, seed: int):
    """``size`` trainable TaylorGLO members: cross-entropy's Taylor coefficients, perturbed."""
    rng = np.random.default_rng(seed)
    family = taylorglo(3)
    # λ near a member that learns (λ_5 > 0 drives the target up at the null epoch)
    centre = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    return [family.bind(centre + rng.normal(0, 0.3, 8)) for _ in range(size)]


def measure(mode: str, losses, data, steps: int, repeats: int) -> tuple[float, int]:
    """Best trainings/s of ``mode`` over ``repeats`` runs, and the threads it used."""
    best, used = 0.0, 1
    for _ in range(repeats):
        if mode in ("one by one", "batched, 1 thread"):
            threads = 1
        elif mode == "batched, every core":
            threads = available_cores()
        else:
            threads = free_cores()
        config = TrainConfig(steps=steps, evaluations=1, threads=threads)
        started = time.perf_counter()
        if mode == "one by one":
            for loss in losses:
                train(loss, data, config, seed=0)
        else:
            train_population(losses, data, config, seed=0)
        rate = len(losses) / (time.perf_counter() - started)
        if rate > best:
            best, used = rate, threads
    return best, used


MODES = ("one by one", "batched, 1 thread", "batched, every core", "batched, free cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=16, help="candidates (16)")
    parser.add_argument("--steps", type=int, default=200, help="steps per training (200)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure, best kept (2)")
    parser.add_argument("--load", type=int, default=None,
                        help="competing busy processes (default: one per core)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--write", action="store_true",
                        help="also write the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    losses = population(args.population, 0)
    train(losses[0], data, TrainConfig(steps=5, evaluations=1), seed=0)  # warm caches
    busy = args.load if args.load is not None else available_cores()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for condition in ("quiet", f"loaded ({busy} busy processes)"):
        rows: dict[str, dict[str, float]] = {}
        with load(busy if condition != "quiet" else 0):
            for mode in MODES:
                rate, threads = measure(mode, losses, data, args.steps, args.repeats)
                rows[mode] = {"trainings_per_s": rate, "threads": threads}
        for row in rows.values():
            row["vs_one_by_one"] = row["trainings_per_s"] / rows["one by one"]["trainings_per_s"]
        results[condition] = rows
    record = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
              "population": args.population, "steps": args.steps, "conditions": results}
    text = table(record)
    if args.write:
        write_section("contention", "Batched training on a loaded machine "
                      "(`benchmarks/bench_contention.py`)", text)
    print(json.dumps(record, indent=2) if args.json else text)


def table(record: dict) -> str:
    """The markdown section: trainings/s per mode, quiet and loaded side by side."""
    conditions = list(record["conditions"])
    lines = [f"Measured {record['date']} on {record['machine']}: {record['population']} "
             f"TaylorGLO candidates on MNIST-1D, {record['steps']} steps each, best of the "
             "runs; ratios against one by one under the same condition. *Free cores* is the "
             "search's choice (`symloss.harness.device.free_cores`, read as the population "
             "starts).",
             "", "| mode | " + " | ".join(conditions) + " |",
             "| --- |" + " ---: |" * len(conditions)]
    for mode in MODES:
        cells = [f"{r[mode]['trainings_per_s']:.2f}/s, {r[mode]['threads']} thread"
                 f"{'s' if r[mode]['threads'] > 1 else ''} ({r[mode]['vs_one_by_one']:.2f}×)"
                 for r in record["conditions"].values()]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
