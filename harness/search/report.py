"""A search's report: ``report.md``, ``summary.json`` and its figures, from the store alone.

:func:`write_report` writes the run's status and config, the fitness per generation
(:func:`progress_figure`), the best losses with the best one's symbolic analysis and
attraction curve, and the final evaluation (:mod:`symloss.harness.search.final`) when
there is one. :func:`best_entry` is the one JSON shape of a found loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from symloss.catalog import loss as catalog_loss
from symloss.harness.search.config import SearchConfig
from symloss.harness.search.runner import best_candidates
from symloss.harness.search.store import CandidateRecord, RunStore
from symloss.harness.search.strategies import rebuild_loss
from symloss.loss import Loss
from symloss.report import markdown_code as code
from symloss.report import markdown_text as text
from symloss.report import strict_json


def best_entry(record: CandidateRecord, loss: str | None = None,
               analysis: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's best (or k-th best) loss in the one JSON shape every output uses:
    ``loss`` (the formula, parameters bound), ``fitness``, ``params`` (a family's λ, else
    ``None``), ``generation``, ``idx``, and ``analysis`` where it was derived.

    >>> from symloss.harness.search.store import CandidateRecord
    >>> best_entry(CandidateRecord(3, 7, "ok", 0.91, [1.0, 2.0], "-y*log(h)"))
    {'loss': '-y*log(h)', 'fitness': 0.91, 'params': [1.0, 2.0], 'generation': 3, 'idx': 7}
    """
    entry = {"loss": loss or record.expression, "fitness": record.fitness,
             "params": record.params, "generation": record.generation, "idx": record.idx}
    if analysis is not None:
        entry["analysis"] = analysis
    return entry


def _mean_std(summary: dict[str, Any]) -> str:
    return f"{_fmt(summary['mean'])} ± {_fmt(summary['std'])}"


def _seeds(summary: dict[str, Any]) -> str:
    return ", ".join("-" if v is None else f"{v:.3f}" for v in summary["per_seed"])


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


#: Candidate outcomes in the search-progress figure, in stacking order, with their colours.
OUTCOME_COLOURS = {"ok": "tab:green", "filtered": "tab:gray", "diverged": "tab:orange",
                   "failed": "tab:red"}


def generation_counts(store: RunStore, run_id: str) -> dict[int, dict[str, int]]:
    """Per generation, how many candidates ended in each status (``ok``, ``filtered``, …)."""
    counts: dict[int, dict[str, int]] = {}
    for record in store.candidates(run_id):
        mine = counts.setdefault(record.generation, {})
        mine[record.status] = mine.get(record.status, 0) + 1
    return counts


def plot_progress(summary: list[dict[str, Any]], counts: dict[int, dict[str, int]],
                  path: str | Path) -> Path:
    """Draw :func:`progress_figure` to ``path`` (PNG, PDF or SVG by its extension)."""
    from symloss.figures import figure_format, save_figure

    figure_format(path)
    return save_figure(progress_figure(summary, counts), path)


def progress_figure(summary: list[dict[str, Any]], counts: dict[int, dict[str, int]]):
    """The search-progress figure: fitness per generation (best, median, best so far)
    beside each generation's candidates by outcome (trained, filtered, diverged, failed)."""
    from symloss.figures import new_figure

    figure, (left, right) = new_figure(columns=2, width=11, height=4.0)
    generations = [row["generation"] for row in summary]
    best = np.array([np.nan if row["best_fitness"] is None else row["best_fitness"]
                     for row in summary], dtype=float)
    left.plot(generations, best, "o-", label="best of the generation")
    left.plot(generations, [row["median_fitness"] for row in summary], "s--",
              label="median of those trained")
    left.plot(generations, np.fmax.accumulate(best), ":", color="black", label="best so far")
    left.set_xlabel("generation")
    left.set_ylabel("fitness (validation accuracy)")
    left.grid(alpha=0.3)
    left.legend()
    bottom = np.zeros(len(generations))
    statuses = list(OUTCOME_COLOURS) + sorted(
        {s for row in counts.values() for s in row} - set(OUTCOME_COLOURS))
    for status in statuses:
        heights = np.array([counts.get(g, {}).get(status, 0) for g in generations], float)
        if heights.any():
            right.bar(generations, heights, bottom=bottom, label=status,
                      color=OUTCOME_COLOURS.get(status))
            bottom += heights
    right.set_xlabel("generation")
    right.set_ylabel("candidates")
    right.legend()
    right.grid(alpha=0.3, axis="y")
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):  # generations are whole numbers
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def write_report(store: RunStore, run_id: str, out_dir: str | Path,
                 final: Any = None, *, update_store: bool = True) -> Path:
    """Write ``report.md``, ``progress.png``, ``attraction.png`` and ``summary.json``.

    Everything comes from the store and ``final`` (a stored final evaluation's dict, or
    a :class:`~symloss.harness.search.final.FinalResult`), so a report can be rebuilt at
    any time (``symloss show RUN_ID --report``, with ``update_store=False``: the store is
    then only read). The best loss's analysis is best-effort: if the symbolic side
    cannot analyze it, the report says so.

    Every stored string enters ``report.md`` escaped (:func:`symloss.report.markdown_text`,
    formulas and the config as code spans, :func:`symloss.report.markdown_code`), so a
    stored run id, name or formula cannot add Markdown or HTML to it; ``summary.json``
    is strict JSON. The store is read (and a damaged value refused) before ``out_dir``
    is made.
    """
    from symloss.harness.search.fidelity import compute_paid
    from symloss.harness.search.sessions import run_provenance

    run = store.run(run_id)
    config = SearchConfig.from_dict(run.config)
    summary = store.generation_summary(run_id)
    counts = store.counts(run_id)
    best = best_candidates(store, run_id, 5)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compute = compute_paid(store, run_id, config)
    lines = _header(run_id, run, config, counts, compute)
    if summary:
        plot_progress(summary, generation_counts(store, run_id), out / "progress.png")
        lines += _fitness_section(summary)
    record: dict[str, Any] = {"run_id": run_id, "counts": counts, "generations": summary,
                              "compute": compute}
    if best:
        lines += _best_section(best, config, out, record)
    if final is not None:
        data = final if isinstance(final, dict) else final.to_dict()
        lines += _final_section(data)
        record["final"] = data
    record["provenance"] = run_provenance(store, run_id)
    (out / "report.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(strict_json(record, indent=2, default=str))
    if update_store:
        store.set_status(run_id, run.status, report_dir=str(out))
    return out / "report.md"


def _header(run_id: str, run, config: SearchConfig, counts: dict[str, int],
            compute: dict[str, Any]) -> list[str]:
    """The report's title, status, compute and config (the budget's label only for a user's
    fitness)."""
    shown = dict(run.config)
    if config.fitness is not None:  # the user's function trains: the budget's settings do not
        shown["budget"] = {"dataset": config.budget.dataset}  # apply; its dataset is a label
    lines = [f"# Search {text(run_id)}: {text(run.algorithm)} on "
             f"{text(config.budget.dataset)}", "",
             f"- status: {text(run.status)}; evaluations paid: {run.evaluations}; "
             f"counts: {code(json.dumps(counts))}"]
    if config.fitness is None:
        rungs = " → ".join(map(str, compute["rungs"]))
        lines.append(f"- compute: {compute['model_steps']:,} model-steps (rungs of {rungs} "
                     f"steps; {compute['rung_trainings']} longer trainings); final evaluation "
                     f"at {compute['horizon']} steps")
    if config.fitness is not None:
        lines.append(f"- fitness: {code(config.fitness)} (your function; it trains, so the "
                     "built-in trainer's settings do not apply)")
    return [*lines, f"- config: {code(strict_json(shown, sort_keys=True))}", ""]


def _fitness_section(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["## Fitness per generation", "", "![search progress](progress.png)", "",
             "| generation | best | median |", "| --- | --- | --- |"]
    lines += [f"| {r['generation']} | {_fmt(r['best_fitness'])} | "
              f"{_fmt(r['median_fitness'])} |" for r in summary]
    return [*lines, ""]


def _best_section(best: list[CandidateRecord], config: SearchConfig, out: Path,
                  record: dict[str, Any]) -> list[str]:
    """The best losses, and the best one's analysis and attraction curve (best effort);
    ``record["best"]`` is filled as the report's JSON has it."""
    from symloss.analysis import analyze
    from symloss.curves import plot_attraction
    from symloss.outlook import analysis_outlook

    lines = ["## Best losses", "", "| fitness | at steps | ℓ(y, h) |", "| --- | ---: | --- |"]
    lines += [f"| {r.fitness:.4f} | {r.metrics.get('rung_steps', config.budget.steps)} | "
              f"{code(r.expression, in_table=True)} |" for r in best]
    record["best"] = best_entry(best[0])
    try:
        top = rebuild_loss(best[0], config)
        analysis = analyze(top, classes=config.classes, smoothing=config.smoothing)
        verdicts, lasting = analysis.to_dict(), analysis_outlook(analysis)
        plot_attraction([Loss("best", top.expression), catalog_loss("cross_entropy")],
                        config.classes, out / "attraction.png")
    except Exception as error:  # best effort: the results are already stored
        reason = f"{type(error).__name__}: {str(error)[:120]}"
        record["best"]["analysis_error"] = reason
        return [*lines, "", "## Analysis of the best loss", "",
                f"- not available: the analysis failed ({text(reason)})", ""]
    record["best"] = best_entry(best[0], str(top.expression), verdicts)
    record["best"]["outlook"] = lasting
    return [*lines, "", "## Analysis of the best loss", "",
            f"- trainable at the null epoch: {verdicts['trainable']} "
            f"(paper's invariant: {verdicts['paper_invariant']['trainable']})",
            f"- zero training error: limit of Δ(ε) = "
            f"{text(verdicts['zero_error']['limit'])}, "
            f"attractor: {verdicts['zero_error']['attractor']}",
            f"- binary minimum at p = {text(verdicts['binary_minimum'])}",
            f"- will it last? {text(lasting['text'])}", "",
            "![attraction](attraction.png)", ""]


def _final_section(data: dict[str, Any]) -> list[str]:
    """The final evaluation's table: the found loss and each baseline, same seeds."""
    baselines = data.get("baselines") or {"cross_entropy": {
        "test_accuracy": data["baseline_test_accuracy"], "p_value": data["p_value"]}}
    lines = ["## Final evaluation (test accuracy, same seeds)", "",
             "p: one-sided Welch t-test, H1: the found loss beats the baseline.", "",
             "| loss | mean ± std | per seed | p |", "| --- | --- | --- | ---: |",
             f"| found | {_mean_std(data['test_accuracy'])} | "
             f"{_seeds(data['test_accuracy'])} | |"]
    lines += [f"| {text(name)} | {_mean_std(row['test_accuracy'])} | "
              f"{_seeds(row['test_accuracy'])} | {_p(row['p_value'])} |"
              for name, row in baselines.items()]
    return [*lines, ""]
