"""Do searches find losses that last? The confirmatory benchmark of issue 23.

Its plan — arms, seeds, budgets, tasks, the rules' code and the analysis — is fixed in
``benchmarks/PREREGISTRATION-lasting.md``, committed before any result of this script;
the script refuses to run when its plan (:func:`plan`) or the rules' source
(:func:`rules_fingerprint`) differs from what was registered.

Per task and arm, TaylorGLO searches (one per search seed) each pay the same compute in
model-steps (``model_steps``: a training of S steps costs S; filtered candidates are
free); each search's best loss (for successive-halving arms, the best at the longest
rung it reached) is retrained at the horizon (5× the screening steps) on eight seeds no
search trained on, beside cross-entropy, label-smoothed cross-entropy, Poly-1 and focal
on the same seeds. Per search: one-sided Welch p against each baseline and whether it
collapsed (a training diverged or scored below half of cross-entropy's mean). Across
searches: one-sided Mann–Whitney U of each arm against today's default, one-sided
Fisher exact on the counts that beat Poly-1 (p < 0.05) and on the collapse counts.

Every search trains on one thread with a fixed chunk of candidates, so its numbers do
not depend on the machine's load. Everything is kept in ``--out``: the searches' run
store (a rerun resumes every search where it stopped), the final trainings as JSON
lines (a rerun skips those done) and ``summary.json``; the report is written to
``--results`` and the loss outlook's data (:mod:`symloss.outlook`) from the summary.

Run: ``python benchmarks/bench_lasting.py`` (both tasks; in parts with ``--task`` and
``--shard I/N``: N processes, one core each, share the searches), ``--report`` (the
report from what is stored), or ``--quick`` (a smoke run in a temporary folder, a few
minutes: not evidence).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_filters import Trainings, _mean_std

from symloss import rules
from symloss.harness.search.evaluate import Budget
from symloss.harness.search.executors import InlineExecutor
from symloss.harness.search.fidelity import model_steps
from symloss.harness.search.final import BASELINES, baseline_loss, rebuild_loss
from symloss.harness.search.runner import SearchConfig, best_candidates, search
from symloss.harness.search.store import RunStore
from symloss.harness.stats import welch_p_value

HERE = Path(__file__).resolve().parent
PREREGISTRATION = HERE / "PREREGISTRATION-lasting.md"
MNIST_DIR = HERE.parent.parent / "shared" / "data" / "mnist"

#: The arms: today's default, each pre-registered rule, successive halving alone, and the
#: intended default (the ``lasting`` rule with successive halving).
ARMS = {
    "default": {"filter": "exact"},
    "lasting": {"filter": "lasting"},
    "equilibrium": {"filter": "equilibrium"},
    "halving": {"filter": "exact", "reduction_factor": 3},
    "lasting+halving": {"filter": "lasting", "reduction_factor": 3},
}
INTENDED_DEFAULT = "lasting+halving"
#: Search seeds and final seeds no earlier benchmark used (RESULTS-filters: searches 0–4,
#: finals 1000–1007; the README's job and tests: 0–3; RESULTS.md: below 100).
SEARCH_SEEDS = tuple(range(200, 208))
FINAL_SEEDS = tuple(range(3000, 3008))


@dataclass(frozen=True)
class Task:
    """One benchmark task: the data, the model, the lengths and the searches' compute."""

    dataset: str
    model: str | None
    steps: int
    horizon: int
    model_steps: int
    arms: tuple[str, ...]
    seeds: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "steps": self.steps,
                "horizon": self.horizon, "model_steps": self.model_steps,
                "arms": list(self.arms), "seeds": list(self.seeds)}


TASKS = {
    # MNIST-1D with the search's own model (cnn1d): every arm.
    "mnist1d": Task("mnist1d", None, 300, 1500, 36_000, tuple(ARMS), SEARCH_SEEDS),
    # Real MNIST with the harness's MLP: 10 trainings of 300 steps take ~2 s on one core,
    # where the paper's CNN would take the whole CPU budget; today's default against the
    # intended one, four searches each.
    "mnist": Task("mnist", "mlp", 300, 1500, 36_000, ("default", INTENDED_DEFAULT),
                  SEARCH_SEEDS[:4]),
}
#: Candidates trained together per task: fixed, so a search's numbers do not depend on load.
CHUNK = 10
#: Generations cap: the model-step budget ends every search long before.
GENERATIONS = 500


def plan() -> dict:
    """Everything the pre-registration fixes, as JSON."""
    return {"arms": ARMS, "intended_default": INTENDED_DEFAULT,
            "tasks": {name: task.to_dict() for name, task in TASKS.items()},
            "final_seeds": list(FINAL_SEEDS), "baselines": list(BASELINES),
            "threads": 1, "chunk": CHUNK, "alpha": 0.05,
            "collapse": "a final training diverged or scored below half of cross-entropy's "
                        "mean test accuracy on the same seeds"}


def rules_fingerprint() -> str:
    """SHA-256 of the pre-registered rules' code and thresholds."""
    source = "\n".join([inspect.getsource(rules.LastingRule), inspect.getsource(rules.StableRule),
                        inspect.getsource(rules._zero_error_limit),
                        inspect.getsource(rules._family_limits),
                        repr(rules.MAX_ZERO_ERROR_PULL), repr(rules.RULES["lasting"]),
                        repr(rules.RULES["equilibrium"])])
    return hashlib.sha256(source.encode()).hexdigest()


def check_preregistration(path: Path = PREREGISTRATION) -> None:
    """Refuse (one line on stderr, exit 2) to run a plan that is not the registered one."""
    def refuse(message: str):
        print(f"bench_lasting: {message}", file=sys.stderr)
        sys.exit(2)

    if not path.is_file():
        refuse(f"no pre-registration at {path}; commit one first")
    found = re.search(r"```json\n(.*?)\n```", path.read_text(), flags=re.S)
    try:
        registered = json.loads(found.group(1)) if found else None
    except json.JSONDecodeError:
        registered = None
    if not isinstance(registered, dict):
        refuse(f"{path.name} has no JSON plan block")
    if registered.get("plan") != json.loads(json.dumps(plan())):
        refuse(f"the plan in {path.name} does not match this script's; a changed plan needs "
               "a new pre-registration")
    if registered.get("rules_sha256") != rules_fingerprint():
        refuse(f"the rules' code differs from the one registered in {path.name} (sha256 "
               f"{rules_fingerprint()[:12]}…)")


def search_config(task: Task, arm: str, seed: int) -> SearchConfig:
    data_dir = str(MNIST_DIR) if task.dataset == "mnist" else None
    return SearchConfig("taylorglo", generations=GENERATIONS, seed=seed, horizon=task.horizon,
                        model_steps=task.model_steps, **ARMS[arm],
                        budget=Budget(dataset=task.dataset, model=task.model, steps=task.steps,
                                      seed=seed, data_dir=data_dir, threads=1))


def searches(names: list[str]) -> list[tuple[str, str, int]]:
    return [(name, arm, seed) for name in names for arm in TASKS[name].arms
            for seed in TASKS[name].seeds]


def run_searches(store: RunStore, jobs: list[tuple[str, str, int]]) -> None:
    """Each search to its model-step budget, resumed where a stored one stopped."""
    for name, arm, seed in tqdm(jobs, desc="searches", unit="search"):
        run_id = f"{name}-{arm}-{seed}"
        config = search_config(TASKS[name], arm, seed)
        if store.has_run(run_id) and store.run(run_id).status in ("searched", "finished"):
            continue
        search(config, store=store, run_id=run_id, resume=store.has_run(run_id),
               executor=InlineExecutor(chunk=CHUNK), batched=True)


def final_trainings(store: RunStore, out: Path, shard: str, jobs, names) -> dict:
    """Every finished search's best loss and the baselines at the horizon, on the final seeds."""
    seeds = list(FINAL_SEEDS)
    found = {}
    for name in names:
        task = TASKS[name]
        data_dir = str(MNIST_DIR) if task.dataset == "mnist" else None
        paths = sorted(out.glob(f"trainings-{name}-*.jsonl"))
        ledger = Trainings(out / f"trainings-{name}-{shard}.jsonl", also=tuple(paths),
                           dataset=task.dataset, model=task.model, data_dir=data_dir,
                           threads=1)
        losses = {b: baseline_loss(b, 10) for b in BASELINES}
        mine = [(n, a, s) for n, a, s in jobs if n == name]
        for _, arm, seed in mine:
            run_id = f"{name}-{arm}-{seed}"
            if not store.has_run(run_id) or store.run(run_id).status != "searched":
                continue
            best = best_candidates(store, run_id, 1)
            if best:
                losses[run_id] = rebuild_loss(best[0], search_config(task, arm, seed))
        work = [(loss, s) for loss in losses.values() for s in seeds]
        with tqdm(total=len(work), desc=f"final trainings ({name})", unit="training") as bar:
            ledger.train(work, task.horizon, bar)
        found[name] = ledger
    return found


def summarize(store: RunStore, out: Path) -> dict:
    """Per task: the baselines, every search's result, and each arm against the default."""
    from symloss.outlook import describe_basin

    summary = {"date": datetime.date.today().isoformat(), "machine": _machine(),
               "command": "python benchmarks/bench_lasting.py", "plan": plan(),
               "rules_sha256": rules_fingerprint(), "tasks": {}}
    seeds = list(FINAL_SEEDS)
    for name, task in TASKS.items():
        ledger = Trainings(out / "none.jsonl", also=tuple(sorted(out.glob(
            f"trainings-{name}-*.jsonl"))))

        def results(loss, steps=task.horizon, ledger=ledger):
            rows = [ledger.done.get((str(loss.expression), s, steps)) for s in seeds]
            return None if None in rows else rows

        baselines = {b: results(baseline_loss(b, 10)) for b in BASELINES}
        if any(v is None for v in baselines.values()):
            continue
        accuracy = {b: [r["test_accuracy"] for r in rows] for b, rows in baselines.items()}
        rows = []
        for _, arm, seed in searches([name]):
            run_id = f"{name}-{arm}-{seed}"
            if not store.has_run(run_id) or store.run(run_id).status != "searched":
                continue
            config = search_config(task, arm, seed)
            best = best_candidates(store, run_id, 1)[0]
            loss = rebuild_loss(best, config)
            trained = results(loss)
            if trained is None:
                continue
            values = [r["test_accuracy"] for r in trained]
            floor = 0.5 * float(np.mean(accuracy["cross_entropy"]))  # plan()["collapse"]
            collapsed = sum(r["status"] != "ok" or r["test_accuracy"] < floor for r in trained)
            rows.append({
                "arm": arm, "seed": seed, "run_id": run_id, "loss": str(loss.expression),
                "search_fitness": best.fitness,
                "model_steps": model_steps(store, run_id, task.steps),
                "final_test_accuracy": values, "final_mean": float(np.mean(values)),
                "p": {b: welch_p_value(values, accuracy[b]) for b in BASELINES},
                "collapsed": collapsed > 0, "collapsed_trainings": int(collapsed),
                "basin": describe_basin(loss, 10)})
        summary["tasks"][name] = {"task": task.to_dict(), "baselines": accuracy,
                                  "searches": rows, "arms": _arms(task, rows)}
    return summary


def _beats(row: dict, baseline: str) -> bool:
    p = row["p"].get(baseline)
    return p is not None and p < 0.05


def _arms(task: Task, rows: list[dict]) -> dict:
    """Each arm's counts, and its tests against today's default across searches."""
    arms = {}
    default = [r for r in rows if r["arm"] == "default"]
    for arm in task.arms:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        entry = {"searches": len(mine),
                 "beat_poly1": sum(_beats(r, "poly1") for r in mine),
                 "beat_cross_entropy": sum(_beats(r, "cross_entropy") for r in mine),
                 "collapsed": sum(r["collapsed"] for r in mine),
                 "final_means": [r["final_mean"] for r in mine],
                 "model_steps": [r["model_steps"] for r in mine]}
        if arm != "default" and default and len(mine) > 1 and len(default) > 1:
            entry["mann_whitney_p"] = float(mannwhitneyu(
                entry["final_means"], [r["final_mean"] for r in default],
                alternative="greater").pvalue)
            for key, count in (("beat_poly1", "fisher_beat_poly1_p"),):
                table = [[entry[key], len(mine) - entry[key]],
                         [arms["default"][key], len(default) - arms["default"][key]]]
                entry[count] = float(fisher_exact(table, alternative="greater")[1])
            table = [[entry["collapsed"], len(mine) - entry["collapsed"]],
                     [arms["default"]["collapsed"],
                      len(default) - arms["default"]["collapsed"]]]
            entry["fisher_fewer_collapses_p"] = float(fisher_exact(table, alternative="less")[1])
        arms[arm] = entry
    return arms


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, CPU only"


def _p(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def report(summary: dict) -> str:
    """RESULTS-lasting.md from the summary."""
    lines = ["# Do searches find losses that last? (issue 23, confirmatory)", "",
             f"`{summary['command']}` on {summary['date']}, {summary['machine']}. Plan "
             "pre-registered in `benchmarks/PREREGISTRATION-lasting.md` (rules sha256 "
             f"`{summary['rules_sha256'][:16]}…`); written by the script from `summary.json`.",
             ""]
    for name, data in summary["tasks"].items():
        task = data["task"]
        lines += [f"## {name} ({task['model'] or 'its default model'}; screening "
                  f"{task['steps']} steps, horizon {task['horizon']}; "
                  f"{task['model_steps']:,} model-steps per search)", "",
                  "Baselines at the horizon (test accuracy, seeds "
                  f"{FINAL_SEEDS[0]}–{FINAL_SEEDS[-1]}):", "",
                  "| baseline | mean ± std |", "| --- | ---: |"]
        lines += [f"| {b} | {_mean_std(v)} |" for b, v in data["baselines"].items()]
        lines += ["", "| arm | searches | beat Poly-1 (p < 0.05) | beat cross-entropy | "
                  "collapsed | final accuracy across searches | Mann–Whitney p vs default | "
                  "Fisher p (beat Poly-1) | Fisher p (fewer collapses) | model-steps, mean |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for arm, entry in data["arms"].items():
            lines.append(f"| {arm} | {entry['searches']} | {entry['beat_poly1']} | "
                         f"{entry['beat_cross_entropy']} | {entry['collapsed']} | "
                         f"{_mean_std(entry['final_means'])} | "
                         f"{_p(entry.get('mann_whitney_p'))} | "
                         f"{_p(entry.get('fisher_beat_poly1_p'))} | "
                         f"{_p(entry.get('fisher_fewer_collapses_p'))} | "
                         f"{np.mean(entry['model_steps']):,.0f} |")
        lines += ["", _answer(name, data), "", NOTES, "", "Every search:", "",
                  "| arm | seed | best (search) | final test accuracy | p vs CE | p vs Poly-1 | "
                  "collapsed | derived basin | model-steps |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        lines += [f"| {r['arm']} | {r['seed']} | {r['search_fitness']:.4f} | "
                  f"{_mean_std(r['final_test_accuracy'])} | {_p(r['p']['cross_entropy'])} | "
                  f"{_p(r['p']['poly1'])} | {r['collapsed_trainings']} of "
                  f"{len(r['final_test_accuracy'])} | "
                  f"{r['basin']['label']} | {r['model_steps']:,} |" for r in data["searches"]]
        lines.append("")
    return "\n".join(lines)


#: What the tables' columns mean, and where the run departed from the plan.
NOTES = ("*Reading the tables.* *best (search)* is the fitness a search selected on: "
         "validation accuracy at the screening length for one-fidelity arms, at the longest "
         "rung the loss reached (up to the horizon) for halving arms. Every search stopped "
         "after the generation that reached its model-step budget, so compute is equal to "
         "within one generation: a halving generation costs more, so those arms overshot "
         "more (*model-steps, mean*). *Deviation from the plan:* the first write of "
         "`summary.json` failed on a numpy integer after every search and final training was "
         "stored; the script was fixed (a cast, no number changed) and the report written "
         "with `--report` from the stored runs.")


def _answer(name: str, data: dict) -> str:
    """The answer in two sentences, from the numbers (never typed in)."""
    arms = data["arms"]
    intended = arms.get(INTENDED_DEFAULT)
    default = arms.get("default")
    if intended is None or default is None:
        return "**The answer.** Not all arms have finished; no answer yet."
    won = (intended.get("mann_whitney_p") or 1) < 0.05
    return (f"**The answer.** The intended default ({INTENDED_DEFAULT}) found a loss beating "
            f"Poly-1 at the horizon in {intended['beat_poly1']} of {intended['searches']} "
            f"searches (cross-entropy in {intended['beat_cross_entropy']}) and collapsed in "
            f"{intended['collapsed']}, against today's default's {default['beat_poly1']} "
            f"({default['beat_cross_entropy']}) and {default['collapsed']} of "
            f"{default['searches']}. Across searches it {'beat' if won else 'did not beat'} "
            f"today's default at p < 0.05 (one-sided Mann–Whitney p = "
            f"{_p(intended.get('mann_whitney_p'))}).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=(*TASKS, "all"), default="all")
    parser.add_argument("--shard", default="1/1", help="I/N: this process's share")
    parser.add_argument("--out", default=str(HERE / "lasting"))
    parser.add_argument("--results", default=str(HERE / "RESULTS-lasting.md"))
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument("--quick", action="store_true", help="a smoke run (not evidence)")
    args = parser.parse_args(argv)
    if args.quick:
        return quick()
    check_preregistration()
    index, count = (int(part) for part in args.shard.split("/"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(TASKS) if args.task == "all" else [args.task]
    if "mnist" in names and not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        print(f"bench_lasting: real MNIST is not at {MNIST_DIR}; skipping that task",
              file=sys.stderr)
        names.remove("mnist")
    jobs = searches(names)[index - 1::count]
    started = time.perf_counter()
    with RunStore.open(out / "runs.sqlite") as store:
        if not args.report:
            run_searches(store, jobs)
            final_trainings(store, out, f"{index}of{count}", jobs, names)
        summary = summarize(store, out)
    summary["seconds_this_part"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    Path(args.results).write_text(report(summary))
    from symloss.outlook import write_rates

    write_rates(summary)
    print(f"wrote {args.results} and {out / 'summary.json'}")


def quick() -> None:
    """Two arms, two seeds, a small budget, in a temporary folder: the code runs end to end."""
    global TASKS, FINAL_SEEDS
    TASKS = {"mnist1d": Task("mnist1d", None, 100, 300, 3_000, ("default", INTENDED_DEFAULT),
                             (900, 901))}
    FINAL_SEEDS = (9000, 9001, 9002)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        with RunStore.open(out / "runs.sqlite") as store:
            jobs = searches(["mnist1d"])
            run_searches(store, jobs)
            final_trainings(store, out, "1of1", jobs, ["mnist1d"])
            summary = summarize(store, out)
        print(report(summary))


if __name__ == "__main__":
    main()
