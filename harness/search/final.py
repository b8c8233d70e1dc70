"""A search's final evaluation and its report.

The best loss is trained (for ``--final-steps``, by default the search's own
length) on ``seeds`` seeds beside
cross-entropy on the same seeds; test accuracies, a one-tailed Welch t-test
(as ICLR Table 1), the loss's formula and its symbolic analysis, the
attraction curve and the fitness per generation go into ``report.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.search.runner import SearchConfig, best_candidates
from harness.search.store import CandidateRecord, RunStore
from harness.stats import welch_p_value
from symloss.catalog import loss as catalog_loss
from symloss.catalog import taylorglo
from symloss.loss import Loss


def rebuild_loss(record: CandidateRecord, config: SearchConfig) -> Loss:
    """The stored candidate's loss: a TaylorGLO member by its λ, else its formula re-parsed."""
    if config.algorithm == "taylorglo" and record.params is not None:
        return taylorglo(config.order).bind(record.params)
    result = catalog_loss(record.expression)  # our parser, never eval
    return Loss(f"{config.algorithm}-best", result.expr)


@dataclass(frozen=True)
class FinalResult:
    loss: str
    test_accuracy: list[float]
    baseline_test_accuracy: list[float]
    p_value: float | None
    statuses: list[str]

    def to_dict(self) -> dict[str, Any]:
        def summary(values: list[float]) -> dict[str, Any]:
            return {"mean": float(np.mean(values)) if values else None,
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    "per_seed": values}

        return {"loss": self.loss, "test_accuracy": summary(self.test_accuracy),
                "baseline_test_accuracy": summary(self.baseline_test_accuracy),
                "p_value": self.p_value, "statuses": self.statuses}


def final_evaluation(loss: Loss, config: SearchConfig, seeds: int) -> FinalResult:
    """Train ``loss`` and cross-entropy on seeds ``0 … seeds−1`` for ``final_steps`` steps.

    The default is the search's own training length: the regime the loss was selected in.
    """
    from harness.train import TrainConfig, train

    budget = config.budget
    steps = config.final_steps or budget.steps  # the length the search selected for
    train_config = TrainConfig(model=budget.model, steps=steps, lr=budget.lr,
                               batch_size=budget.batch_size, threads=budget.threads,
                               device=budget.device, evaluations=1)
    ours, theirs, statuses = [], [], []
    baseline = catalog_loss("cross_entropy")
    for seed in range(seeds):
        result = train(loss, budget.dataset, train_config, seed=seed, data_dir=budget.data_dir)
        statuses.append(result.status)
        ours.append(float(result.metrics.get("test_accuracy") or 0.0))
        reference = train(baseline, budget.dataset, train_config, seed=seed,
                          data_dir=budget.data_dir)
        theirs.append(float(reference.metrics.get("test_accuracy") or 0.0))
    return FinalResult(str(loss.expression), ours, theirs, welch_p_value(ours, theirs), statuses)


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def plot_fitness(summary: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    generations = [row["generation"] for row in summary]
    axis.plot(generations, [row["best_fitness"] for row in summary], "o-", label="best")
    axis.plot(generations, [row["median_fitness"] for row in summary], "s--", label="median")
    axis.set_xlabel("generation")
    axis.set_ylabel("fitness")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(store: RunStore, run_id: str, out_dir: str | Path,
                 final: FinalResult | dict[str, Any] | None = None, *,
                 update_store: bool = True) -> Path:
    """Write ``report.md``, ``fitness.png``, ``attraction.png`` and ``summary.json``.

    Everything comes from the store and ``final`` (a stored final evaluation's dict),
    so a report can be rebuilt at any time (``symloss show RUN_ID --report``, with
    ``update_store=False``: the store is then only read). The best loss's analysis is
    best-effort: if the symbolic side cannot analyze it, the report says so.
    """
    from symloss.analysis import analyze
    from symloss.curves import plot_attraction

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = store.run(run_id)
    config = SearchConfig.from_dict(run.config)
    summary = store.generation_summary(run_id)
    counts = store.counts(run_id)
    best = best_candidates(store, run_id, 5)
    lines = [f"# Search {run_id}: {run.algorithm} on {config.budget.dataset}", "",
             f"- status: {run.status}; evaluations paid: {run.evaluations}; "
             f"counts: {json.dumps(counts)}",
             f"- config: `{json.dumps(run.config, sort_keys=True)}`", ""]
    if summary:
        plot_fitness(summary, out / "fitness.png")
        lines += ["## Fitness per generation", "", "![fitness](fitness.png)", "",
                  "| generation | best | median |", "| --- | --- | --- |"]
        lines += [f"| {r['generation']} | {_fmt(r['best_fitness'])} | "
                  f"{_fmt(r['median_fitness'])} |" for r in summary]
        lines.append("")
    record: dict[str, Any] = {"run_id": run_id, "counts": counts, "generations": summary}
    if best:
        lines += ["## Best losses", "", "| fitness | ℓ(y, h) |", "| --- | --- |"]
        lines += [f"| {r.fitness:.4f} | `{r.expression}` |" for r in best]
        record["best"] = {"loss": best[0].expression, "fitness": best[0].fitness}
        try:
            top = rebuild_loss(best[0], config)
            verdicts = analyze(top, classes=config.classes,
                               smoothing=config.smoothing).to_dict()
            plot_attraction([Loss("best", top.expression), catalog_loss("cross_entropy")],
                            config.classes, out / "attraction.png")
        except Exception as error:  # best effort: the results are already stored
            reason = f"{type(error).__name__}: {str(error)[:120]}"
            lines += ["", "## Analysis of the best loss", "",
                      f"- not available: the analysis failed ({reason})", ""]
            record["best"]["analysis_error"] = reason
        else:
            lines += ["", "## Analysis of the best loss", "",
                      f"- trainable at the null epoch: {verdicts['trainable']} "
                      f"(paper's invariant: {verdicts['paper_invariant']['trainable']})",
                      f"- zero training error: limit of Δ(ε) = "
                      f"{verdicts['zero_error']['limit']}, "
                      f"attractor: {verdicts['zero_error']['attractor']}",
                      f"- binary minimum at p = {verdicts['binary_minimum']}", "",
                      "![attraction](attraction.png)", ""]
            record["best"].update(loss=str(top.expression), analysis=verdicts)
    if final is not None:
        data = final if isinstance(final, dict) else final.to_dict()
        lines += ["## Final evaluation (test accuracy, same seeds)", "",
                  "| loss | mean | std | per seed |", "| --- | --- | --- | --- |",
                  f"| best | {data['test_accuracy']['mean']:.4f} | "
                  f"{data['test_accuracy']['std']:.4f} | {data['test_accuracy']['per_seed']} |",
                  f"| cross_entropy | {data['baseline_test_accuracy']['mean']:.4f} | "
                  f"{data['baseline_test_accuracy']['std']:.4f} | "
                  f"{data['baseline_test_accuracy']['per_seed']} |", "",
                  f"One-tailed Welch t-test p-value (best > cross-entropy): {data['p_value']}", ""]
        record["final"] = data
    (out / "report.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(record, indent=2, default=str))
    if update_store:
        store.set_status(run_id, run.status, report_dir=str(out))
    return out / "report.md"
