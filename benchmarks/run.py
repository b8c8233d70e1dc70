"""The benchmark suite: every figure the project promises, measured in one run, as ratios.

Measures, on this machine:

- population-batched training (``symloss.harness.batched``) against training the same
  candidates one by one, in model-steps per second, for K = 1, 5, 20, 80
  (MNIST-1D MLP 40-100-100-10, batch 100; the ``cnn1d`` at K = 20), each at 1
  and 2 threads, and the two batched backends (stacked kernels vs ``vmap``);
- the generated torch loss against a hand-written one, and generated cross-entropy
  against torch's fused ``F.cross_entropy`` (``bench_torch_loss``);
- the symbolic hot paths (``bench_symbolic``): a bound TaylorGLO-3 candidate's
  analysis, GP canonical keys per second, the invariant filter's candidates per
  second, ``symloss analyze`` cold start and warm analysis;
- a TaylorGLO search end to end, evaluations per second, batched vs not.

Throughputs are the best of a few rounds, batched and one by one alike (timeit's
convention: a slower round measured other work on this shared machine, not
ours), the rounds of the figures compared taken in turn (:func:`alternating`).
It prints a table with each goal, writes ``benchmarks/RESULTS.md`` (this
machine's section: CPU or GPU, the other kept) and, with ``--json``, prints the
figures as one object instead of the table.

    .venv/bin/python benchmarks/run.py            # full, about 3.5 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # about a minute
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script or imported: reuse the single benchmarks
    sys.path.insert(0, str(HERE))

import bench_symbolic  # noqa: E402
import bench_torch_loss  # noqa: E402
import torch  # noqa: E402
from results_file import write_section  # noqa: E402

from symloss.catalog import taylorglo  # noqa: E402
from symloss.harness.batched import train_population  # noqa: E402
from symloss.harness.data import load_dataset  # noqa: E402
from symloss.harness.device import available_cores, resolve_device, torch_threads  # noqa: E402
from symloss.harness.train import TrainConfig, train  # noqa: E402

POPULATIONS = (1, 5, 20, 80)

#: What each headline figure should reach on the 2-core CPU machine (issue 6).
GOALS = {
    "batched_speedup_k20": (">=", 5.0),
    "model_steps_per_s_k20": (">=", 10_000.0),
    "loss_overhead_ratio": ("<=", 1.05),
    "cross_entropy_vs_torch_b4096": ("<=", 1.3),
    "symbolic_candidate_ms": ("<=", 0.1),
    "canonical_keys_per_s": (">=", 10_000.0),
    "filter_candidates_per_s": (">=", 1e7),
    "analyze_cold_s": ("<=", 1.0),
}


def _candidates(count: int, seed: int = 0) -> list:
    """TaylorGLO-3 members near MSE (they train, as a search's candidates mostly do)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = np.array([0, 0, 0, -1, 0, 2, 0, 0], dtype=float)
    return [taylorglo(3).bind((base + rng.normal(scale=0.1, size=8)).tolist())
            for _ in range(count)]


def one_by_one_rate(data, model: str, steps: int, models: int, threads: int,
                    device: str | None, rounds: int = 1) -> float:
    """Model-steps/s of :func:`symloss.harness.train.train`, wall time per call (setup included);
    the best of ``rounds`` rounds of ``models`` trainings (see :func:`alternating`)."""
    config = TrainConfig(model=model, steps=steps, threads=threads, evaluations=1, device=device)
    losses = _candidates(models)
    train(losses[0], data, config, seed=0)  # warm-up
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for item in losses:
            train(item, data, config, seed=0)
        rates.append(models * steps / (time.perf_counter() - started))
    return max(rates)


def batched_rate(data, model: str, steps: int, count: int, threads: int, device: str | None,
                 backend: str = "auto", rounds: int = 1) -> float:
    """Model-steps/s of :func:`symloss.harness.batched.train_population` for K = ``count``; the best
    of ``rounds`` (as for :func:`one_by_one_rate`)."""
    config = TrainConfig(model=model, steps=steps, threads=threads, evaluations=1, device=device)
    losses = _candidates(count)
    train_population(losses[:2], data, dataclasses_replace(config, steps=5), seed=0,
                     backend=backend)  # warm-up
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        train_population(losses, data, config, seed=0, backend=backend)
        rates.append(count * steps / (time.perf_counter() - started))
    return max(rates)


def dataclasses_replace(config: TrainConfig, **changes) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def alternating(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The best of ``rounds`` for each measure, taken in turn round by round: each sees
    the machine's quiet and busy spells alike, so their ratios are fair."""
    best = dict.fromkeys(measures, 0.0)
    for _ in range(rounds):
        for name, measure in measures.items():
            best[name] = max(best[name], measure())
    return best


def training_figures(quick: bool, device: str | None) -> dict[str, object]:
    data = load_dataset("mnist1d")
    steps = 300  # shorter trainings weigh set-up more than a search's do
    rounds = 1 if quick else 3
    models = 3 if quick else 8

    def one_by_one(model: str, threads: int) -> Callable[[], float]:
        return lambda: one_by_one_rate(data, model, steps, models, threads, device)

    def batched(model: str, count: int, threads: int,
                backend: str = "auto") -> Callable[[], float]:
        return lambda: batched_rate(data, model, steps, count, threads, device, backend)

    # the headline pair, K = 20 against one by one, alternated over more rounds
    headline = alternating({"single_1": one_by_one("mlp", 1), "single_2": one_by_one("mlp", 2),
                            "k20_1": batched("mlp", 20, 1), "k20_2": batched("mlp", 20, 2)},
                           2 if quick else 5)
    single = {1: headline["single_1"], 2: headline["single_2"]}
    best_single = max(single.values())
    rows = []
    for count in POPULATIONS:
        rates = ({1: headline["k20_1"], 2: headline["k20_2"]} if count == 20 else
                 alternating({1: batched("mlp", count, 1), 2: batched("mlp", count, 2)},
                             rounds))
        rows.append({"K": count, "batched_1t": rates[1], "batched_2t": rates[2],
                     "one_by_one": best_single, "speedup": max(rates.values()) / best_single})
    backends = alternating({f"{model}_{backend}": batched(model, 20, 2, backend)
                            for model in ("mlp", "cnn1d") for backend in ("kernels", "vmap")},
                           rounds)
    cnn = alternating({"single_1": one_by_one("cnn1d", 1), "single_2": one_by_one("cnn1d", 2),
                       "batched": batched("cnn1d", 20, 2)}, rounds)
    cnn_single = max(cnn["single_1"], cnn["single_2"])
    k20 = next(r for r in rows if r["K"] == 20)
    return {
        "batched_speedup_k20": k20["speedup"],
        "model_steps_per_s_k20": max(k20["batched_1t"], k20["batched_2t"]),
        "one_by_one_model_steps_per_s": best_single,
        "one_by_one_threads": single,
        "batched_by_k": rows,
        "backends_k20_model_steps_per_s": backends,
        "cnn1d_batched_speedup_k20": cnn["batched"] / cnn_single,
        "cnn1d_one_by_one_model_steps_per_s": cnn_single,
        "training_steps": steps,
        "training_rounds": rounds,
        "headline_rounds": 2 if quick else 5,
    }


def loss_figures(quick: bool) -> dict[str, object]:
    torch.set_num_threads(1)
    ratios = bench_torch_loss.ratios(5 if quick else 15)
    hand_written = {k: v for k, v in ratios.items() if not k.startswith("cross_entropy")}
    return {"loss_overhead_ratio": statistics.median(hand_written.values()),
            "loss_overhead_ratios": hand_written,
            "cross_entropy_vs_torch_b4096": ratios["cross_entropy_b4096"],
            "cross_entropy_vs_torch_b100": ratios["cross_entropy_b100"]}


def symbolic_figures(quick: bool) -> dict[str, object]:
    hot = bench_symbolic.gp_hot_path(count=300 if quick else 2000)
    filters = bench_symbolic.filter_candidates_per_s(count=500_000 if quick else 2_000_000)
    return {
        "symbolic_candidate_ms": bench_symbolic.taylorglo_candidate_ms(
            count=5000 if quick else 20000),
        "canonical_keys_per_s": hot["canonical_keys_per_s"],
        "gp_candidate_symengine_ms": hot["symengine_ms"],
        "gp_candidate_sympy_ms": hot["sympy_ms"],
        "filter_candidates_per_s": filters["exact"],
        "paper_filter_candidates_per_s": filters["paper"],
        "analyze_cold_s": bench_symbolic.analyze_cold_seconds(repeats=2 if quick else 3),
        "analyze_warm_s": bench_symbolic.analyze_warm_seconds(),
    }


def search_figures(quick: bool, device: str | None) -> dict[str, object]:
    """One TaylorGLO generation (population 20, no filter: all trained), batched vs not."""
    from symloss.harness.search.evaluate import Budget
    from symloss.harness.search.runner import SearchConfig, search
    from symloss.harness.search.store import RunStore

    budget = Budget(dataset="mnist1d", model="mlp", steps=100 if quick else 300, device=device)
    config = SearchConfig("taylorglo", generations=1 if quick else 2, population=20,
                          filter="none", budget=budget)
    from symloss.harness.search.evaluate import _dataset

    _dataset(budget.dataset, budget.data_dir)  # load once, outside the timings
    rates: dict[bool, float] = {False: 0.0, True: 0.0}
    fitness = {}
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(1 if quick else 2):  # alternate the two; best of each
            for batched in (False, True):
                path = Path(folder) / f"{batched}-{attempt}.sqlite"
                with RunStore.open(path) as store:
                    started = time.perf_counter()
                    run_id = search(config, store=store, batched=batched)
                    seconds = time.perf_counter() - started
                    records = store.candidates(run_id)
                    rate = sum(r.worker != "cache" for r in records) / seconds
                    rates[batched] = max(rates[batched], rate)
                    fitness[batched] = {(r.generation, r.idx): r.fitness for r in records}
    differences = [abs(fitness[True][k] - fitness[False][k]) for k in fitness[False]]
    return {"search_evaluations_per_s": rates[False],
            "search_evaluations_per_s_batched": rates[True],
            "search_batched_speedup": rates[True] / rates[False],
            "search_fitness_max_difference": max(differences),
            "search_fitness_identical_fraction": sum(d == 0 for d in differences)
            / len(differences)}


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.date.today().isoformat()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def reference_speed(device: str | None, seconds: float = 1.0) -> dict[str, float]:
    """The machine's pace during the run: a fixed batched matmul (GFLOP/s, at most two
    threads) and a fixed copy (GB/s), best of repeats for ``seconds`` each; to read the
    absolute figures against, on a machine whose neighbours come and go."""
    target = resolve_device(device)
    left, right = (torch.randn(20, 100, 100, device=target) for _ in range(2))
    source = torch.randn(4_000_000, device=target)
    destination = torch.empty_like(source)
    figures = {}
    with torch_threads(min(2, available_cores())):
        for name, work, run in (("reference_bmm_gflops", 2 * 20 * 100 ** 3 / 1e9,
                                 lambda: torch.bmm(left, right)),
                                ("reference_copy_gbs", 2 * source.numel() * 4 / 1e9,
                                 lambda: destination.copy_(source))):
            best = math.inf
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                run()
                if target.type == "cuda":
                    torch.cuda.synchronize(target)
                best = min(best, time.perf_counter() - started)
            figures[name] = work / best
    return figures


def measure(quick: bool = False, device: str | None = None) -> dict[str, object]:
    """Every figure, as one dict (what ``--json`` prints)."""
    started = time.perf_counter()
    device_name = resolve_device(device).type
    results: dict[str, object] = {"mode": "quick" if quick else "full", "device": device_name,
                                  "machine": machine(), "load_before": load()}
    results.update(reference_speed(device))
    results.update(symbolic_figures(quick))
    results.update(loss_figures(quick))
    results.update(training_figures(quick, device))
    results.update(search_figures(quick, device))
    results["load_after"] = load()
    results.update({f"{name}_after": value for name, value in reference_speed(device).items()})
    results["seconds"] = time.perf_counter() - started
    return results


def verdict(name: str, value: float) -> str:
    if name not in GOALS:
        return ""
    sign, goal = GOALS[name]
    met = value >= goal if sign == ">=" else value <= goal
    return f"goal {sign} {goal:g}: {'met' if met else 'NOT met'}"


def table(results: dict[str, object]) -> str:
    """The results as Markdown (printed, and this machine's section of RESULTS.md)."""
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores"
             + (f", {m['gpu']}" if "gpu" in m else "") + f"), torch {m['torch']}, "
             f"Python {m['python']}; device `{results['device']}`; `{results['mode']}` run "
             f"in {results['seconds']:.0f} s; load average {results['load_before']} before, "
             f"{results['load_after']} after (other work on the machine skews timings); "
             f"the machine's pace: batched matmul {results['reference_bmm_gflops']:.0f} GFLOP/s "
             f"before, {results['reference_bmm_gflops_after']:.0f} after, copy "
             f"{results['reference_copy_gbs']:.1f} GB/s before, "
             f"{results['reference_copy_gbs_after']:.1f} after.", "",
             "| figure | value | goal |", "| --- | ---: | --- |"]
    rows = [("batched_speedup_k20", "{:.2f}×"), ("model_steps_per_s_k20", "{:,.0f}"),
            ("one_by_one_model_steps_per_s", "{:,.0f}"),
            ("cnn1d_batched_speedup_k20", "{:.2f}×"),
            ("search_batched_speedup", "{:.2f}×"), ("search_evaluations_per_s", "{:.2f}"),
            ("search_evaluations_per_s_batched", "{:.2f}"),
            ("search_fitness_max_difference", "{:.4f}"),
            ("search_fitness_identical_fraction", "{:.2f}"),
            ("loss_overhead_ratio", "{:.3f}"), ("cross_entropy_vs_torch_b4096", "{:.3f}"),
            ("symbolic_candidate_ms", "{:.4f}"),
            ("canonical_keys_per_s", "{:,.0f}"), ("filter_candidates_per_s", "{:,.0f}"),
            ("paper_filter_candidates_per_s", "{:,.0f}"), ("analyze_cold_s", "{:.3f}")]
    for name, form in rows:
        lines.append(f"| `{name}` | {form.format(results[name])} | "
                     f"{verdict(name, results[name])} |")
    lines += ["", "Model-steps/s, MNIST-1D MLP 40-100-100-10, batch 100, "
              f"{results['training_steps']} steps per training (setup and final evaluation "
              f"included); K = 20 and one by one best of {results.get('headline_rounds', 1)} "
              f"rounds taken in turn, other K best of {results.get('training_rounds', 1)}; "
              "one by one: best of 1 and 2 threads "
              f"({', '.join(f'{t}t {v:,.0f}' for t, v in results['one_by_one_threads'].items())})."
              "", "", "| K | batched, 1 thread | batched, 2 threads | one by one | speedup |",
              "| ---: | ---: | ---: | ---: | ---: |"]
    for row in results["batched_by_k"]:
        lines.append(f"| {row['K']} | {row['batched_1t']:,.0f} | {row['batched_2t']:,.0f} | "
                     f"{row['one_by_one']:,.0f} | {row['speedup']:.2f}× |")
    lines += ["", "Batched backends at K = 20, 2 threads, model-steps/s: "
              + ", ".join(f"{k} {v:,.0f}" for k, v in
                          results["backends_k20_model_steps_per_s"].items()) + ".", "",
              "Generated / hand-written loss time (forward + backward): "
              + ", ".join(f"{k} {v:.3f}" for k, v in results["loss_overhead_ratios"].items())
              + "; generated cross-entropy / `F.cross_entropy`: batch 100 "
              + f"{results['cross_entropy_vs_torch_b100']:.3f}, batch 4096 "
              + f"{results['cross_entropy_vs_torch_b4096']:.3f}; warm `analyze`: "
              + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in results["analyze_warm_s"].items())
              + "."]
    return "\n".join(lines)


def write_results(results: dict[str, object], path: Path = HERE / "RESULTS.md") -> None:
    """Replace this device's section of ``RESULTS.md`` (CPU or GPU), keeping every other."""
    name = "gpu" if results["device"] == "cuda" else "cpu"
    text = table(results) + "\n\n<details><summary>JSON</summary>\n\n```json\n" \
        + json.dumps(results, indent=1, default=str) + "\n```\n</details>"
    write_section(name, name.upper(), text, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as one object")
    parser.add_argument("--device", help="cpu or cuda (default: CUDA when present)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    options = parser.parse_args()
    results = measure(options.quick, options.device)
    if not options.no_write:
        write_results(results)
    if options.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(table(results))


if __name__ == "__main__":
    main()
