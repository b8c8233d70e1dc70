"""TaylorGLO on MNIST-1D: does the found loss beat cross-entropy, and what does the filter buy?

Three searches with the same seed and the same training budget (paid
trainings, filtered candidates are free), one per candidate filter: ``exact``
(first principles, the default), ``paper`` (ICLR Theorem 3 as published) and
``none``. Each runs generation by generation until it has spent ``--budget``
trainings. The best loss of each is then retrained for ``--seeds`` seeds at
full length beside cross-entropy on the same seeds (one-tailed Welch t-test).

Run: ``python benchmarks/bench_search.py [--budget 240] [--steps 300] [--seeds 10]``
(about 10 minutes on 2 cores); ``--json`` prints the figures as one object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.search.evaluate import Budget
from harness.search.final import final_evaluation, rebuild_loss
from harness.search.runner import SearchConfig, best_candidates, search
from harness.search.store import RunStore


def run_with_budget(config: SearchConfig, store: RunStore, budget: int) -> tuple[str, float]:
    """Search one generation at a time until ``budget`` trainings are spent."""
    started = time.perf_counter()
    run_id = search(config, store=store, stop_after=1)
    while store.run(run_id).evaluations < budget:
        before = store.run(run_id).evaluations
        search(config, store=store, run_id=run_id, resume=True, stop_after=1)
        if store.run(run_id).evaluations == before and store.run(run_id).status == "searched":
            break
    return run_id, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=240, help="trainings per search")
    parser.add_argument("--steps", type=int, default=300, help="steps per candidate training")
    parser.add_argument("--final-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    results: dict[str, object] = {"machine": machine, "budget": args.budget, "steps": args.steps,
                                  "final_steps": args.final_steps, "seeds": args.seeds}
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore.open(Path(folder) / "runs.sqlite")
        for rule in ("exact", "paper", "none"):
            config = SearchConfig("taylorglo", generations=1000, filter=rule, seed=args.seed,
                                  final_steps=args.final_steps,
                                  budget=Budget(dataset="mnist1d", steps=args.steps))
            run_id, seconds = run_with_budget(config, store, args.budget)
            best = best_candidates(store, run_id, 1)[0]
            counts = store.counts(run_id)
            final = final_evaluation(rebuild_loss(best, config), config, args.seeds)
            results[rule] = {
                "trainings": store.run(run_id).evaluations, "counts": counts,
                "generations": len(store.generation_summary(run_id)),
                "best_validation_accuracy": best.fitness, "best_loss": best.expression,
                "search_seconds": seconds,
                "test_accuracy_mean": float(np.mean(final.test_accuracy)),
                "test_accuracy_std": float(np.std(final.test_accuracy, ddof=1)),
                "cross_entropy_mean": float(np.mean(final.baseline_test_accuracy)),
                "cross_entropy_std": float(np.std(final.baseline_test_accuracy, ddof=1)),
                "p_value": final.p_value,
                "beats_cross_entropy": bool(final.p_value is not None and final.p_value < 0.05),
            }
            if not args.json:
                row = results[rule]
                print(f"{rule:>5}: {row['trainings']} trainings in {row['generations']} "
                      f"generations ({seconds:.0f} s), counts {counts}; best val "
                      f"{best.fitness:.4f}; test {row['test_accuracy_mean']:.4f} ± "
                      f"{row['test_accuracy_std']:.4f} vs CE {row['cross_entropy_mean']:.4f} ± "
                      f"{row['cross_entropy_std']:.4f}, p = {row['p_value']:.3g}", flush=True)
        store.close()
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
