"""Do the derived filters make TaylorGLO find losses that last? Filters compared across seeds.

For each candidate filter — ``none``, ``paper`` (ICLR Theorem 3 as published),
``exact`` (null-epoch trainability from first principles) and ``stable`` (exact,
and the null epoch's basin is zero error or an equilibrium at target probability
≥ 0.25) — TaylorGLO searches MNIST-1D with ``--search-seeds`` different seeds,
each one generation at a time until it has paid for ``--budget`` trainings of
``--steps`` steps (filtered candidates are free, so every filter pays the same).

Each search's best loss is then retrained at ``--final-factor``× the search's
length on ``--final-seeds`` seeds that no search trained on, beside the
baselines (cross-entropy, label-smoothed cross-entropy α = 0.1, Poly-1, focal
γ = 2) on the same seeds. Per filter: how many searches' best losses beat
cross-entropy, and the best baseline, at p < 0.05 (one-sided Welch); the mean
± std of their final accuracy across searches; the trainings paid. The filters
are compared with ``none`` across search seeds (one-sided Mann–Whitney U on the
searches' mean final accuracies).

The stability prediction is scored on its own: candidates drawn at random from
the unfiltered searches (which trained whatever CMA-ES proposed) and every best
loss are trained at the final length, and the derived basin of the null epoch
is set against what happened — *collapsed* meaning a diverged training or test
accuracy below half of cross-entropy's mean at that length.

Everything is kept in ``--out``: the searches' SQLite store (a rerun resumes
it), every final training as a JSON line (a rerun skips those done), and
``summary.json``; the report goes to ``--results``.

Run: ``python benchmarks/bench_filters.py`` (under an hour on 2 cores) or
``--quick`` (a few minutes, 2 seeds and a small budget: a smoke run, not
evidence).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu
from tqdm import tqdm

from symloss.catalog import taylorglo
from symloss.harness.batched import train_population
from symloss.harness.data import load_dataset
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.final import BASELINES, baseline_loss, rebuild_loss
from symloss.harness.search.runner import SearchConfig, search
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.stats import welch_p_value
from symloss.harness.train import TrainConfig
from symloss.loss import Loss
from symloss.stability_batch import DEFAULT_MIN_TARGET_PROBABILITY, family_stability

FILTERS = ("none", "paper", "exact", "stable")
#: Final-training seeds start here: no search trained on them (searches use seeds 0, 1, …).
FINAL_SEED_BASE = 1000
#: The sampled candidates' one final training uses this seed.
SAMPLE_SEED = 2000


def search_config(rule: str, seed: int, args: argparse.Namespace) -> SearchConfig:
    """A search of one filter and seed; its candidates trained on seed ``seed`` as well."""
    return SearchConfig("taylorglo", generations=1000, filter=rule, seed=seed,
                        budget=Budget(dataset="mnist1d", steps=args.steps, seed=seed))


def best_within(store: RunStore, run_id: str, budget: int) -> CandidateRecord:
    """The best of the run's first ``budget`` paid trainings, in the order they were proposed.

    A search stops at the end of the generation that reaches the budget, so it may
    have paid for a few more; they are not looked at: every filter spends exactly
    ``budget``.
    """
    paid = [c for c in sorted(store.candidates(run_id), key=lambda c: (c.generation, c.idx))
            if c.status != "filtered" and c.worker != "cache"][:budget]
    return max(paid, key=lambda c: c.fitness if np.isfinite(c.fitness) else -np.inf)


def run_with_budget(config: SearchConfig, store: RunStore, budget: int) -> str:
    """Search a generation at a time until ``budget`` trainings are paid (resumes a stored run)."""
    stored = [r for r in store.runs() if r.config == config.to_dict()]
    run_id = stored[0].run_id if stored else search(config, store=store, stop_after=1,
                                                    batched=True)
    while store.run(run_id).evaluations < budget and store.run(run_id).status != "searched":
        search(config, store=store, run_id=run_id, resume=True, stop_after=1, batched=True)
    return run_id


class Trainings:
    """Final trainings, one JSON line each, keyed by (loss, seed, steps): never paid twice.

    ``path`` is where new lines go; ``also`` are files read beside it (another process's
    share of the same trainings). ``dataset``, ``model``, ``data_dir``: what is trained
    (default MNIST-1D and its model); ``threads``: torch threads (None: torch's own).
    """

    def __init__(self, path: Path, *, also: tuple[Path, ...] = (), dataset: str = "mnist1d",
                 model: str | None = None, data_dir: str | None = None,
                 threads: int | None = None):
        self.path = path
        self.dataset, self.model, self.data_dir, self.threads = dataset, model, data_dir, threads
        self.done: dict[tuple[str, int, int], dict] = {}
        for source in (path, *also):
            if source.exists():
                for line in source.read_text().splitlines():
                    if line.strip():
                        record = json.loads(line)
                        self.done[(record["loss"], record["seed"], record["steps"])] = record

    def accuracies(self, loss: Loss, seeds: list[int], steps: int) -> list[float]:
        return [self.done[(str(loss.expression), s, steps)]["test_accuracy"] for s in seeds]

    def train(self, jobs: list[tuple[Loss, int]], steps: int, progress: tqdm) -> None:
        """Train the ``(loss, seed)`` pairs not yet done, together, and append their lines."""
        todo = [(loss, s) for loss, s in jobs if (str(loss.expression), s, steps) not in self.done]
        config = TrainConfig(model=self.model, steps=steps, evaluations=1, threads=self.threads)
        data = load_dataset(self.dataset, data_dir=self.data_dir)
        chunk = 20  # a line is written per chunk: an interrupted run loses at most one chunk
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            results = train_population([loss for loss, _ in part], data, config,
                                       seed=[s for _, s in part])
            with self.path.open("a") as out:
                for (loss, s), result in zip(part, results, strict=True):
                    accuracy = result.metrics.get("test_accuracy")
                    accuracy = float(accuracy) if result.status == "ok" and accuracy is not None \
                        else 0.0
                    record = {"loss": str(loss.expression), "seed": s, "steps": steps,
                              "status": result.status, "test_accuracy": accuracy,
                              "seconds": result.seconds}
                    self.done[(record["loss"], s, steps)] = record
                    out.write(json.dumps(record) + "\n")
            progress.update(len(part))
        progress.update(len(jobs) - len(todo))


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else \
        f"{np.mean(values):.4f}"


def _sample(store: RunStore, run_ids: list[str], per_search: int,
            rng: np.random.Generator) -> list[CandidateRecord]:
    """``per_search`` trained candidates drawn at random from each run (no repeats)."""
    chosen = []
    for run_id in run_ids:
        trained = [c for c in store.candidates(run_id) if c.status == "ok" and c.params]
        picks = rng.choice(len(trained), size=min(per_search, len(trained)), replace=False)
        chosen.extend(trained[int(k)] for k in picks)
    return chosen


def _basin_label(kind: str, probability: float, bound: float) -> str:
    if kind == "equilibrium":
        return f"equilibrium, p ≥ {bound:g}" if probability >= bound else \
            f"equilibrium, p < {bound:g}"
    return kind.replace("_", " ")


def _basin_order(item: tuple[str, dict]) -> int:
    order = ("zero error", "equilibrium, p ≥", "equilibrium, p <", "collapse", "undecided")
    return next(k for k, start in enumerate(order) if item[0].startswith(start))


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    final_steps = args.final_factor * args.steps
    final_seeds = [FINAL_SEED_BASE + k for k in range(args.final_seeds)]
    store = RunStore.open(out / "runs.sqlite")
    trainings = Trainings(out / "trainings.jsonl")

    # 1. the searches, every filter at the same paid budget
    searches: dict[str, list[dict]] = {rule: [] for rule in args.filters}
    for rule in args.filters:
        for seed in tqdm(range(args.search_seeds), desc=f"searches, filter {rule}",
                         disable=args.no_progress):
            config = search_config(rule, seed, args)
            run_id = run_with_budget(config, store, args.budget)
            best = best_within(store, run_id, args.budget)
            searches[rule].append({
                "seed": seed, "run_id": run_id, "trainings": store.run(run_id).evaluations,
                "counts": store.counts(run_id),
                "generations": len(store.generation_summary(run_id)),
                "best_validation_accuracy": best.fitness, "best_params": best.params,
                "best_loss": str(rebuild_loss(best, config).expression)})
    search_seconds = time.perf_counter() - started

    # 2. the final trainings: best losses, baselines, and the sample for the confusion table
    family = taylorglo(3)
    bests = {(rule, row["seed"]): family.bind(row["best_params"])
             for rule in args.filters for row in searches[rule]}
    baselines = {name: baseline_loss(name, 10) for name in BASELINES}
    rng = np.random.default_rng(args.seed)
    unfiltered = [row["run_id"] for row in searches.get("none", [])]
    sample = _sample(store, unfiltered, args.sample, rng)
    sample_losses = [family.bind(c.params) for c in sample]
    jobs = [(loss, s) for loss in [*bests.values(), *baselines.values()] for s in final_seeds]
    jobs += [(loss, SAMPLE_SEED) for loss in sample_losses]
    with tqdm(total=len(jobs), desc=f"final trainings, {final_steps} steps",
              disable=args.no_progress) as progress:
        trainings.train(jobs, final_steps, progress)
    final_seconds = time.perf_counter() - started - search_seconds

    # 3. statistics
    base_acc = {name: trainings.accuracies(loss, final_seeds, final_steps)
                for name, loss in baselines.items()}
    best_baseline = max(base_acc, key=lambda name: np.mean(base_acc[name]))
    ce = base_acc["cross_entropy"]
    per_filter = {}
    for rule in args.filters:
        for row in searches[rule]:
            acc = trainings.accuracies(bests[(rule, row["seed"])], final_seeds, final_steps)
            row.update(final_test_accuracy=acc, final_mean=float(np.mean(acc)),
                       p_vs_cross_entropy=welch_p_value(acc, ce),
                       p_vs_best_baseline=welch_p_value(acc, base_acc[best_baseline]))
        rows = searches[rule]
        means = [row["final_mean"] for row in rows]
        per_filter[rule] = {
            "searches": len(rows),
            "beats_cross_entropy": sum(row["p_vs_cross_entropy"] < 0.05 for row in rows),
            "beats_best_baseline": sum(row["p_vs_best_baseline"] < 0.05 for row in rows),
            "final_mean": float(np.mean(means)),
            "final_std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
            "trainings": sum(row["trainings"] for row in rows),
            "filtered": sum(row["counts"].get("filtered", 0) for row in rows),
        }
        if rule != "none" and "none" in searches and len(rows) > 1:
            none_means = [row["final_mean"] for row in searches["none"]]
            per_filter[rule]["mann_whitney_p_vs_none"] = float(
                mannwhitneyu(means, none_means, alternative="greater").pvalue)

    # 4. the stability prediction against what happened at the final length
    bound = DEFAULT_MIN_TARGET_PROBABILITY
    threshold = 0.5 * float(np.mean(ce))
    scored = [(loss, [trainings.done[(str(loss.expression), s, final_steps)]
                      for s in final_seeds]) for loss in bests.values()]
    scored += [(loss, [trainings.done[(str(loss.expression), SAMPLE_SEED, final_steps)]])
               for loss in sample_losses]
    params = np.array([loss.values for loss, _ in scored], dtype=float)
    basins = family_stability(family, 10).basins(params)
    confusion: dict[str, dict[str, int]] = {}
    for kind, probability, (_, records) in zip(basins.kinds(), basins.target_probability,
                                               scored, strict=True):
        label = _basin_label(kind, float(probability), bound)
        cell = confusion.setdefault(label, {"learned": 0, "collapsed": 0})
        for record in records:
            collapsed = record["status"] != "ok" or record["test_accuracy"] < threshold
            cell["collapsed" if collapsed else "learned"] += 1
    predicted_ok = {label for label in confusion
                    if label == "zero error" or label.startswith("equilibrium, p ≥")}
    counts = {(pred, obs): sum(cell[obs] for label, cell in confusion.items()
                               if (label in predicted_ok) == pred)
              for pred in (True, False) for obs in ("learned", "collapsed")}

    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "command": " ".join(["python", "benchmarks/bench_filters.py", *sys.argv[1:]]),
        "settings": {"budget": args.budget, "steps": args.steps, "final_steps": final_steps,
                     "final_seeds": final_seeds, "search_seeds": args.search_seeds,
                     "sample_per_unfiltered_search": args.sample,
                     "min_target_probability": bound, "collapse_threshold": threshold},
        "seconds": {"searches": search_seconds, "final": final_seconds,
                    "total": time.perf_counter() - started},
        "baselines": {name: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)),
                             "per_seed": v} for name, v in base_acc.items()},
        "best_baseline": best_baseline,
        "filters": per_filter, "searches": searches,
        "confusion": confusion,
        "prediction": {"stable_learned": counts[(True, "learned")],
                       "stable_collapsed": counts[(True, "collapsed")],
                       "unstable_learned": counts[(False, "learned")],
                       "unstable_collapsed": counts[(False, "collapsed")]},
    }


def _answer(summary: dict) -> list[str]:
    """The question answered from the table: does a filter beat no filter, across seeds?"""
    rows = summary["filters"]
    if "none" not in rows or len(rows) < 2:
        return []
    base = rows["none"]
    lines = ["**The answer.** Per filter against `none`: the one-sided Mann–Whitney p of the "
             "searches' final accuracies, and one-sided Fisher exact p of how many searches "
             "found a loss beating cross-entropy / the best baseline:", ""]
    significant = []
    for rule, row in rows.items():
        if rule == "none":
            continue
        fisher = [fisher_exact([[row[k], row["searches"] - row[k]],
                                [base[k], base["searches"] - base[k]]],
                               alternative="greater").pvalue
                  for k in ("beats_cross_entropy", "beats_best_baseline")]
        mw = row.get("mann_whitney_p_vs_none")
        lines.append(f"- `{rule}`: Mann–Whitney p = {mw:.3g}; {row['beats_cross_entropy']} of "
                     f"{row['searches']} beat cross-entropy (none: "
                     f"{base['beats_cross_entropy']}; Fisher p = {fisher[0]:.3g}), "
                     f"{row['beats_best_baseline']} beat {summary['best_baseline']} (none: "
                     f"{base['beats_best_baseline']}; Fisher p = {fisher[1]:.3g})")
        if min(mw, *fisher) < 0.05:
            significant.append(rule)
    verdict = (f"At p < 0.05, {', '.join(significant)} made searches find lasting losses "
               "more often than no filter." if significant else
               "At p < 0.05 no filter made searches find losses that beat cross-entropy or the "
               "best baseline at the final length more often than no filter did; with "
               f"{base['searches']} searches per filter, only a large effect could show.")
    return [*lines, "", verdict]


def report(summary: dict) -> str:
    """The markdown report (``RESULTS-filters.md``) from ``summary.json``'s contents."""
    settings, seconds = summary["settings"], summary["seconds"]
    best = summary["best_baseline"]
    lines = [
        "# Do the derived filters find losses that last? (TaylorGLO on MNIST-1D)", "",
        f"`{summary['command']}` on {summary['date']}, {summary['machine']}; "
        f"{seconds['total'] / 60:.0f} min in all ({seconds['searches'] / 60:.0f} min of "
        f"searches, {seconds['final'] / 60:.0f} min of final trainings). Written by the "
        "script from `summary.json`.", "",
        f"Each filter ran {settings['search_seeds']} TaylorGLO searches (seeds "
        f"0–{settings['search_seeds'] - 1}), each until it had paid for {settings['budget']} "
        f"trainings of {settings['steps']} steps (filtered candidates are free; a search "
        "ends with the generation that reaches the budget, and only its first "
        f"{settings['budget']} paid trainings are looked at). Each "
        f"search's best loss was retrained at {settings['final_steps']} steps on seeds "
        f"{settings['final_seeds'][0]}–{settings['final_seeds'][-1]} (no search trained on "
        "them) beside the baselines on the same seeds. p: one-sided Welch (the found loss "
        "beats the baseline); across filters: one-sided Mann–Whitney U of the searches' "
        "mean final accuracies against the unfiltered searches'.", "",
        f"Baselines at {settings['final_steps']} steps (test accuracy):", "",
        "| baseline | mean ± std |", "| --- | ---: |",
        *[f"| {name}{' (best)' if name == best else ''} | "
          f"{row['mean']:.4f} ± {row['std']:.4f} |"
          for name, row in summary["baselines"].items()], "",
        "| filter | searches | beat cross-entropy (p < 0.05) | beat the best baseline | "
        "final accuracy, mean ± std across searches | Mann–Whitney p vs none | "
        "trainings paid | filtered (free) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule, row in summary["filters"].items():
        mw = row.get("mann_whitney_p_vs_none")
        lines.append(f"| {rule} | {row['searches']} | {row['beats_cross_entropy']} | "
                     f"{row['beats_best_baseline']} | {row['final_mean']:.4f} ± "
                     f"{row['final_std']:.4f} | {'—' if mw is None else f'{mw:.3g}'} | "
                     f"{row['trainings']} | {row['filtered']} |")
    lines += ["", *_answer(summary), "", "Every search:", "",
              "| filter | seed | best validation (search) | best loss | final test accuracy | "
              "p vs CE | p vs best baseline |", "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for rule, rows in summary["searches"].items():
        for row in rows:
            lines.append(f"| {rule} | {row['seed']} | {row['best_validation_accuracy']:.4f} | "
                         f"`{row['best_loss']}` | {_mean_std(row['final_test_accuracy'])} | "
                         f"{row['p_vs_cross_entropy']:.3g} | {row['p_vs_best_baseline']:.3g} |")
    prediction = summary["prediction"]
    sample_size = settings["sample_per_unfiltered_search"]
    lines += ["", f"## The stability prediction against {settings['final_steps']}-step "
              "trainings", "",
              f"Every best loss (one row per final seed) and {sample_size} candidates "
              "drawn at random from each unfiltered search (one seed each). Collapsed: "
              "diverged, or test accuracy below "
              f"{settings['collapse_threshold']:.3f} (half of cross-entropy's mean).", "",
              "| derived basin of the null epoch | learned | collapsed | collapsed, share |",
              "| --- | ---: | ---: | ---: |",
              *[f"| {label} | {cell['learned']} | {cell['collapsed']} | "
                f"{cell['collapsed'] / max(cell['learned'] + cell['collapsed'], 1):.0%} |"
                for label, cell in sorted(summary["confusion"].items(), key=_basin_order)],
              "",
              f"Passing the stable rule (zero error, or an equilibrium at target probability ≥ "
              f"{settings['min_target_probability']:g}): {prediction['stable_learned']} learned, "
              f"{prediction['stable_collapsed']} collapsed; failing it: "
              f"{prediction['unstable_learned']} learned, {prediction['unstable_collapsed']} "
              "collapsed."]
    return "\n".join(lines) + "\n"


def outlook_rates(out: Path) -> dict:
    """The loss outlook's rates (:mod:`symloss.outlook`) from this benchmark's 1,500-step
    trainings: per derived-basin label, the trainings and how many collapsed (diverged, or
    below the summary's collapse threshold). The exploration data of issue 23."""
    from symloss.catalog import loss as parse
    from symloss.outlook import describe_basin

    summary = json.loads((out / "summary.json").read_text())
    threshold, steps = summary["settings"]["collapse_threshold"], summary["settings"][
        "final_steps"]
    labels: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for line in (out / "trainings.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["steps"] != steps:
            continue
        label = describe_basin(parse(record["loss"]), 10)["label"]
        cell = labels.setdefault(label, {"trainings": 0, "collapsed": 0, "losses": 0})
        cell["trainings"] += 1
        cell["collapsed"] += record["status"] != "ok" or record["test_accuracy"] < threshold
        cell["losses"] += record["loss"] not in seen
        seen.add(record["loss"])
    return {"source": f"benchmarks/RESULTS-filters.md (exploration), {summary['date']}",
            "horizon_factor": summary["settings"]["final_steps"] // summary["settings"]["steps"],
            "labels": dict(sorted(labels.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", default=",".join(FILTERS),
                        help=f"comma-separated, from {', '.join(FILTERS)} (default: all)")
    parser.add_argument("--search-seeds", type=int, default=5, help="searches per filter")
    parser.add_argument("--budget", type=int, default=120, help="paid trainings per search")
    parser.add_argument("--steps", type=int, default=300, help="steps per candidate training")
    parser.add_argument("--final-factor", type=int, default=5,
                        help="final trainings are this many times the search's steps")
    parser.add_argument("--final-seeds", type=int, default=8)
    parser.add_argument("--sample", type=int, default=6,
                        help="candidates drawn from each unfiltered search for the prediction "
                             "table")
    parser.add_argument("--seed", type=int, default=0, help="seed of that draw")
    parser.add_argument("--out", default="benchmarks/filters",
                        help="store, trainings and summary.json (resumed when present)")
    parser.add_argument("--results", default="benchmarks/RESULTS-filters.md")
    parser.add_argument("--quick", action="store_true",
                        help="2 search seeds, budget 40 of 150 steps, 3 final seeds: a smoke run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite --results from --out's summary.json (no training)")
    parser.add_argument("--outlook", action="store_true",
                        help="write symloss/outlook_rates.json from --out (no training)")
    args = parser.parse_args()
    if args.outlook:
        from symloss.outlook import RATES

        RATES.write_text(json.dumps(outlook_rates(Path(args.out)), indent=2,
                                    ensure_ascii=False) + "\n")
        print(f"wrote {RATES}")
        return
    args.filters = [rule.strip() for rule in args.filters.split(",") if rule.strip()]
    unknown = [rule for rule in args.filters if rule not in FILTERS]
    if unknown:
        parser.error(f"unknown filter {unknown[0]!r}; choose from {', '.join(FILTERS)}")
    if args.quick:
        args.search_seeds, args.budget, args.steps, args.final_seeds, args.sample = 2, 40, 150, 3, 4
        if args.out == parser.get_default("out"):
            args.out = "benchmarks/filters-quick"
        if args.results == parser.get_default("results"):
            args.results = str(Path(args.out) / "RESULTS-filters.md")
    if args.report_only:
        summary = json.loads(Path(args.out, "summary.json").read_text())
    else:
        summary = run(args)
        Path(args.out, "summary.json").write_text(json.dumps(summary, indent=1))
    text = report(summary)
    Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
