"""A search on a real Dask cluster against the same search in one process, measured in one run.

Starts a real scheduler and N worker processes on loopback with the ``dask`` CLI
(``dask scheduler``; ``dask worker --nworkers N --nthreads 1``), and runs the same
TaylorGLO search — by default ``symloss search taylorglo --dataset mnist1d
--generations 2 --population 8 --steps 100``, batched — in this process, with
``--workers N`` local processes, and on the cluster for N = 1 and 2, each
``--rounds`` times, taking turns (a slower round measured other work on this shared
machine; the best round counts). It reports:

* evaluations per second over the search (paid trainings / the generations' time),
  the executors' start-up (processes started, workers warmed) apart;
* per-task overhead: each chunk's time from its submission to its result reaching
  the search, less its time on the worker (``runner._evaluate_chunk``'s third value),
  as a fraction of that time — scheduling, transfer, (de)serialization;
* whether every candidate's fitness is identical across executors and rounds;
* what a loss costs to send: pickled sympy (what travels) against its text parsed again;
* what one stored result costs the driver (a SQLite write);
* a projection for 8, 64 and 512 workers from a stated model (below), and where the
  scheduler or the driver, not training, becomes the limit.

The model: a worker trains chunks of K candidates, each taking T (measured, one thread)
plus the per-task overhead o (measured), so W workers train W·K/(T + o) evaluations per
second while a generation has at least W·K candidates to train; the scheduler handles
at most S tasks per second (``--scheduler-throughput``, default 3,000: Dask's documented
overhead is about 1 ms per task, a few thousand tasks a second), so at most S·K
evaluations per second; the driver writes each result to its store, at most 1/w per
second for a measured write time w. The projection is the smallest of the three.

    .venv/bin/python benchmarks/bench_cluster.py             # ~2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_cluster.py --write     # and update RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script or imported: reuse run.py's machine record
    sys.path.insert(0, str(HERE))

from results_file import write_section  # noqa: E402
from run import load, machine  # noqa: E402

from symloss.formula import parse_formula  # noqa: E402
from symloss.harness.search.evaluate import Budget, warm_up  # noqa: E402
from symloss.harness.search.executors import DaskExecutor, InlineExecutor, LocalExecutor  # noqa: E402
from symloss.harness.search.runner import SearchConfig, search  # noqa: E402
from symloss.harness.search.store import CandidateRecord, RunStore  # noqa: E402
from symloss.loss import Loss  # noqa: E402

PROJECTED_WORKERS = (8, 64, 512)
RESULTS = HERE / "RESULTS.md"
TITLE = "## Dask cluster against one process (`benchmarks/bench_cluster.py`)"
#: Issue 15's goals: the two-worker cluster's share of in-process throughput, and the
#: per-task overhead's share of a chunk's time on its worker.
PARITY_GOAL, OVERHEAD_GOAL = 0.8, 0.1


def timed(executor, tasks: list[dict]):
    """``executor`` whose ``map_unordered`` records each chunk: its size, its time from
    submission to the search, and its time on the worker."""
    inner = executor.map_unordered

    def map_unordered(fn, items):
        started = time.perf_counter()
        for item, result in inner(fn, items):
            if isinstance(result, tuple) and len(result) == 3:
                tasks.append({"size": len(item[1]), "latency": time.perf_counter() - started,
                              "worker_seconds": result[2]})
            yield item, result

    executor.map_unordered = map_unordered
    return executor


def run_search(config: SearchConfig, executor, folder: Path, name: str) -> dict:
    """One search through ``executor``: its generations, chunks and candidates."""
    tasks: list[dict] = []
    generations: list[dict] = []
    path = folder / f"{name}-{time.monotonic_ns()}.sqlite"
    with RunStore.open(path) as store:
        run_id = search(config, store=store, executor=timed(executor, tasks), batched=True,
                        on_generation=lambda s: generations.append(
                            {"generation": s.generation, "evaluations": s.evaluations,
                             "seconds": s.seconds}))
        table = [(r.generation, r.idx, r.status, r.fitness) for r in store.candidates(run_id)]
    path.unlink()
    evaluations = sum(g["evaluations"] for g in generations)
    seconds = sum(g["seconds"] for g in generations)
    return {"eval_per_s": evaluations / seconds, "evaluations": evaluations,
            "seconds": seconds, "generations": generations, "tasks": tasks, "table": table}


class Cluster:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on loopback."""

    def __init__(self, workers: int, folder: Path):
        dask = Path(sys.executable).parent / "dask"
        command = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
        started = time.perf_counter()
        self.file = folder / f"scheduler-{workers}.json"
        self.processes = []
        self.logs = []
        self._start([*command, "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(self.file)], folder)
        while not self.file.exists():
            time.sleep(0.05)
        self.address = json.loads(self.file.read_text())["address"]
        self._start([*command, "worker", self.address, "--nworkers", str(workers),
                     "--nthreads", "1", "--no-dashboard"], folder)
        from distributed import Client

        with Client(self.address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
        self.start_seconds = time.perf_counter() - started

    def _start(self, command: list[str], folder: Path) -> None:
        log = open(folder / f"dask-{len(self.processes)}-{os.getpid()}.log", "w")  # noqa: SIM115
        self.logs.append(log)
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def close(self) -> None:
        for process in reversed(self.processes):  # workers first, then the scheduler
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def loss_transport(config: SearchConfig) -> dict[str, dict[str, float]]:
    """Per loss: pickled sympy (bytes, µs to dump and load) against its text parsed again."""
    figures = {}
    for algorithm in ("taylorglo", "glo"):
        strategy = SearchConfig(algorithm, generations=2, population=40, filter="none",
                                budget=config.budget).strategy()
        losses = tuple(c.loss for c in strategy.ask())
        count = len(losses)
        started = time.perf_counter()
        blob = pickle.dumps(losses)
        pickle.loads(blob)
        pickled = time.perf_counter() - started
        texts = [(item.name, str(item.expression)) for item in losses]
        started = time.perf_counter()
        for name, text in pickle.loads(pickle.dumps(texts)):
            Loss(name, parse_formula(text))
        parsed = time.perf_counter() - started
        figures[algorithm] = {"pickled_bytes": len(blob) / count,
                              "pickled_us": pickled / count * 1e6,
                              "text_bytes": len(pickle.dumps(texts)) / count,
                              "text_parsed_us": parsed / count * 1e6}
    return figures


def store_write_seconds(folder: Path, count: int = 200) -> float:
    """Seconds the driver spends storing one result (a SQLite transaction)."""
    with RunStore.open(folder / "writes.sqlite") as store:
        run_id = store.create_run("taylorglo", {"bench": True})
        started = time.perf_counter()
        for idx in range(count):
            store.add_candidate(run_id, CandidateRecord(0, idx, "ok", 0.5, [0.1] * 8,
                                                        "h*y", None, {"steps": 100}, 1.0,
                                                        "worker"))
        return (time.perf_counter() - started) / count


def overhead(result: dict) -> dict[str, float]:
    """Per-task overhead of one search: each chunk's latency less its time on the worker."""
    extra = [t["latency"] - t["worker_seconds"] for t in result["tasks"]]
    busy = sum(t["worker_seconds"] for t in result["tasks"])
    return {"median_ms": statistics.median(extra) * 1e3, "fraction": sum(extra) / busy,
            "chunk": statistics.median(t["size"] for t in result["tasks"]),
            "chunk_seconds": statistics.median(t["worker_seconds"] for t in result["tasks"])}


def projection(chunk: float, chunk_seconds: float, task_overhead: float, scheduler: float,
               write: float) -> list[dict[str, float | str]]:
    """The model of the module docstring, for 1, 2 and :data:`PROJECTED_WORKERS` workers."""
    per_worker = chunk / (chunk_seconds + task_overhead)
    rows = []
    for workers in (1, 2, *PROJECTED_WORKERS):
        limits = {"training": workers * per_worker, "scheduler": scheduler * chunk,
                  "driver": 1 / write}
        limit = min(limits, key=limits.get)
        rows.append({"workers": workers, "population": workers * chunk,
                     **{f"{k}_cap": v for k, v in limits.items()},
                     "eval_per_s": limits[limit], "limit": limit})
    return rows


def cluster_name(workers: int) -> str:
    return f"cluster, {workers} worker{'s' if workers > 1 else ''}"


def measure(args: argparse.Namespace) -> dict:
    config = SearchConfig("taylorglo", generations=args.generations,
                          population=args.population, filter=args.filter, seed=args.seed,
                          budget=Budget(dataset=args.dataset, steps=args.steps))
    results: dict = {"machine": machine(), "load_before": load(),
                     "command": "python benchmarks/bench_cluster.py " + shlex.join(sys.argv[1:]),
                     "config": config.to_dict(), "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        warm_up(config.budget)  # this process's own warm state, as the workers get theirs
        results["inline_start_seconds"] = time.perf_counter() - began
        executors = {"in-process": InlineExecutor()}
        started = time.perf_counter()
        executors["--workers 2"] = LocalExecutor(2, budget=config.budget)
        start = {"--workers 2": time.perf_counter() - started}
        clusters = []
        try:
            for workers in args.cluster_workers:
                cluster = Cluster(workers, folder)
                clusters.append(cluster)
                started = time.perf_counter()
                name = cluster_name(workers)
                executors[name] = DaskExecutor(cluster.address, budget=config.budget)
                start[name] = cluster.start_seconds + time.perf_counter() - started
                results[f"{name} warm-up seconds"] = time.perf_counter() - started
            runs: dict[str, list[dict]] = {name: [] for name in executors}
            for round_ in range(args.rounds):
                for name, executor in executors.items():
                    runs[name].append(run_search(config, executor, folder, name))
                    print(f"round {round_ + 1}: {name:<20} "
                          f"{runs[name][-1]['eval_per_s']:.2f} eval/s", file=sys.stderr,
                          flush=True)
        finally:
            for executor in executors.values():
                with contextlib.suppress(Exception):
                    executor.close()
            for cluster in clusters:
                cluster.close()
        results["start_seconds"] = start
        results["write_seconds"] = store_write_seconds(folder)
    reference = runs["in-process"][0]["table"]
    results["identical_fitness"] = all(run["table"] == reference
                                       for name in runs for run in runs[name])
    results["trained_per_search"] = runs["in-process"][0]["evaluations"]
    results["executors"] = {}
    for name, rounds in runs.items():
        best = max(rounds, key=lambda run: run["eval_per_s"])
        results["executors"][name] = {
            "eval_per_s": best["eval_per_s"], "rounds": [r["eval_per_s"] for r in rounds],
            "generations": best["generations"], **overhead(best)}
    inline = results["executors"]["in-process"]["eval_per_s"]
    for figures in results["executors"].values():
        figures["of_in_process"] = figures["eval_per_s"] / inline
    widest = results["executors"][cluster_name(max(args.cluster_workers))]
    results["projection_chunk"] = widest["chunk"]
    results["projection"] = projection(widest["chunk"], widest["chunk_seconds"],
                                       max(widest["median_ms"], 0) / 1e3,
                                       args.scheduler_throughput, results["write_seconds"])
    results["scheduler_throughput"] = args.scheduler_throughput
    per_worker = widest["chunk"] / (widest["chunk_seconds"] + max(widest["median_ms"], 0) / 1e3)
    results["scheduler_bound_from_workers"] = args.scheduler_throughput * widest["chunk"] / \
        per_worker
    results["driver_bound_from_workers"] = 1 / results["write_seconds"] / per_worker
    results["loss_transport"] = loss_transport(config)
    results["load_after"] = load()
    return results


def markdown(results: dict) -> str:
    info = results["machine"]
    lines = [f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), CPU only, "
             f"torch {info['torch']}, Python {info['python']}; load average "
             f"{results['load_before']:.2f} before, {results['load_after']:.2f} after "
             "(other work on the machine skews timings).",
             "", f"`{results['command']}`: the same search "
             f"(`symloss search taylorglo --dataset {results['config']['budget']['dataset']} "
             f"--generations {results['config']['generations']} --population "
             f"{results['config']['population']} --steps "
             f"{results['config']['budget']['steps']}`, batched), "
             f"{results['trained_per_search']} paid trainings, best of {results['rounds']} "
             "rounds taken in turn. Fitness of every candidate identical across executors and "
             f"rounds: **{'yes' if results['identical_fitness'] else 'NO'}**.", "",
             goals(results), "",
             "| executor | eval/s | of in-process | chunk (median) | chunk on its worker | "
             "per-task overhead | overhead / chunk time | start-up |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, f in results["executors"].items():
        start = results["start_seconds"].get(name)
        lines.append(f"| {name} | {f['eval_per_s']:.2f} | {f['of_in_process']:.0%} | "
                     f"{f['chunk']:g} | {f['chunk_seconds']:.2f} s | {f['median_ms']:.1f} ms | "
                     f"{f['fraction']:.1%} | {'—' if start is None else f'{start:.1f} s'} |")
    lines += ["", "Start-up (once per executor, outside the eval/s): processes started and "
              "warmed (torch imported, dataset loaded, model template built). Rounds, eval/s: "
              + "; ".join(f"{name} " + ", ".join(f"{v:.2f}" for v in f["rounds"])
                          for name, f in results["executors"].items()) + ".", ""]
    transport = results["loss_transport"]
    lines.append("A loss sent as pickled sympy costs "
                 + ", ".join(f"{k} {v['pickled_bytes']:.0f} B and {v['pickled_us']:.0f} µs"
                             for k, v in transport.items())
                 + " to dump and load; as text parsed again "
                 + ", ".join(f"{k} {v['text_bytes']:.0f} B and {v['text_parsed_us']:.0f} µs"
                             for k, v in transport.items())
                 + ": pickled sympy is the cheaper, so losses travel pickled.")
    lines += ["", f"Projection (model in `bench_cluster.py`'s docstring): chunk K = "
              f"{results['projection_chunk']:g} (the median chunk), per-task overhead and "
              "chunk time from the widest cluster above, scheduler "
              f"{results['scheduler_throughput']:,.0f} tasks/s, driver "
              f"{results['write_seconds'] * 1e3:.2f} ms per stored result; a generation needs "
              "at least workers × K candidates to train to keep every worker busy.", "",
              "| workers | candidates per generation | training-bound eval/s | scheduler cap | "
              "driver cap | projected eval/s | limit |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in results["projection"]:
        lines.append(f"| {row['workers']} | {row['population']:,.0f} | "
                     f"{row['training_cap']:,.1f} | {row['scheduler_cap']:,.0f} | "
                     f"{row['driver_cap']:,.0f} | {row['eval_per_s']:,.1f} | {row['limit']} |")
    widest = widest_cluster(results)
    workers = int(widest.split()[1])
    modelled = next(r["eval_per_s"] for r in results["projection"] if r["workers"] == workers)
    measured = results["executors"][widest]["eval_per_s"]
    lines += ["", f"The model counts training and each task's cost only; a generation also "
              "waits for its slowest chunk (uneven when its candidates do not divide evenly "
              "over the workers) and for the driver's own work (asking, filtering, storing): "
              f"measured, {widest} reached {measured:.2f} eval/s, {measured / modelled:.0%} of "
              f"the model's {modelled:.2f} for {workers} workers."]
    bounds = sorted([(results["scheduler_bound_from_workers"], "the scheduler's tasks"),
                     (results["driver_bound_from_workers"], "the driver's store writes")])
    lines += ["", f"Training stays the limit up to about {bounds[0][0]:,.0f} workers, where "
              f"{bounds[0][1]} become the limit ({bounds[1][1]} at {bounds[1][0]:,.0f}); "
              "larger chunks raise the scheduler's cap (S·K evaluations a second), not the "
              "driver's (1/w)."]
    return "\n".join(lines)


def widest_cluster(results: dict) -> str:
    """The name of the cluster with the most workers measured (``"cluster, 2 workers"``)."""
    return max((n for n in results["executors"] if n.startswith("cluster")),
               key=lambda n: int(n.split()[1]))


def goals(results: dict) -> str:
    """Issue 15's two goals, met or not, for the widest cluster measured."""
    name = widest_cluster(results)
    figures = results["executors"][name]
    parity = figures["of_in_process"] >= PARITY_GOAL
    cheap = figures["fraction"] < OVERHEAD_GOAL
    return (f"Goals ({name}, the same cores as in-process): throughput "
            f"{figures['of_in_process']:.0%} of in-process (goal >= {PARITY_GOAL:.0%}: "
            f"{'met' if parity else 'NOT met'}); per-task overhead {figures['fraction']:.1%} "
            f"of a chunk's time on its worker (goal < {OVERHEAD_GOAL:.0%}: "
            f"{'met' if cheap else 'NOT met'}).")


def write(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (appended the first time)."""
    write_section("cluster", TITLE.removeprefix("## "), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--filter", default="exact")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cluster-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scheduler-throughput", type=float, default=3000.0,
                        help="tasks per second the projection assumes of the scheduler")
    parser.add_argument("--json", action="store_true", help="print the JSON too")
    parser.add_argument("--write", action="store_true", help="replace this benchmark's "
                        "section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    results = measure(args)
    text = markdown(results)
    print(text)
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
