"""Runs side by side (``symloss runs --compare A B …``): what differs, what each found.

:func:`compare_runs` reads runs (by id or name, :meth:`RunStore.resolve
<symloss.harness.search.store.RunStore.resolve>`) from one store: the settings in which
their configurations differ (only those), each run's best fitness, evaluations paid,
model-steps (:func:`~symloss.harness.search.fidelity.model_steps`) and, where its final
evaluation is stored, the found loss's test-accuracy mean beside each baseline's.
:func:`comparison_figure` draws their best fitness per generation (Optuna dashboard's
"history" of several studies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["compare_runs", "comparison_figure", "config_differences", "plot_comparison"]


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config's settings as ``key`` / ``budget.key`` → value."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key == "budget":
            flat.update(_flat(value, f"{key}."))
        else:
            flat[prefix + key] = value
    return flat


def config_differences(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The settings whose values are not all equal, each with every run's value.

    >>> config_differences([{"seed": 0, "budget": {"steps": 10, "lr": 0.1}},
    ...                     {"seed": 1, "budget": {"steps": 10}}])
    {'budget.lr': [0.1, None], 'seed': [0, 1]}
    """
    flats = [_flat(config) for config in configs]
    keys = sorted(set().union(*flats)) if flats else []
    return {key: [flat.get(key) for flat in flats] for key in keys
            if any(flat.get(key) != flats[0].get(key) for flat in flats)}


def _final_means(final: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored final evaluation's means: the found loss's and each baseline's."""
    if final is None:
        return None
    baselines = final.get("baselines") or {
        "cross_entropy": {"test_accuracy": final["baseline_test_accuracy"],
                          "p_value": final.get("p_value")}}
    return {"found": final["test_accuracy"]["mean"],
            "baselines": {name: {"mean": row["test_accuracy"]["mean"],
                                 "p_value": row.get("p_value")}
                          for name, row in baselines.items()}}


def compare_runs(store, runs: list[str]) -> dict[str, Any]:
    """``runs`` (ids or names) side by side: ``runs`` (one object each, in the order
    given) and ``differences`` (:func:`config_differences` of their configs). A run the
    store does not hold, or a damaged one, is a one-line
    :class:`~symloss.harness.search.store.StoreError`."""
    from symloss.harness.search.config import SearchConfig
    from symloss.harness.search.fidelity import model_steps

    rows, configs = [], []
    for given in runs:
        run = store.run(store.resolve(given))
        steps = SearchConfig.from_dict(run.config).budget.steps
        configs.append(run.config)
        rows.append({"run_id": run.run_id, "name": run.name, "algorithm": run.algorithm,
                     "status": run.status, "dataset": run.config["budget"].get("dataset"),
                     "best_fitness": run.best_fitness, "evaluations": run.evaluations,
                     "model_steps": model_steps(store, run.run_id, steps),
                     "generations": len(store.generation_summary(run.run_id)),
                     "final": _final_means(store.final(run.run_id))})
    return {"runs": rows, "differences": config_differences(configs)}


def comparison_figure(store, run_ids: list[str], labels: list[str] | None = None):
    """Each run's best fitness per generation (a line) and its best so far (dotted)."""
    import numpy as np

    from symloss.figures import new_figure

    figure, (axis,) = new_figure(width=7.0, height=4.2)
    for k, run_id in enumerate(run_ids):
        summary = store.generation_summary(run_id)
        generations = [row["generation"] for row in summary]
        best = np.array([np.nan if row["best_fitness"] is None else row["best_fitness"]
                         for row in summary], dtype=float)
        label = labels[k] if labels else run_id
        line, = axis.plot(generations, best, "o-", label=label)
        if len(best):
            axis.plot(generations, np.fmax.accumulate(best), ":", color=line.get_color())
    axis.set_xlabel("generation")
    axis.set_ylabel("best fitness (dotted: best so far)")
    axis.grid(alpha=0.3)
    axis.legend()
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def plot_comparison(store, run_ids: list[str], path: str | Path,
                    labels: list[str] | None = None) -> Path:
    """Draw :func:`comparison_figure` to ``path`` (PNG, PDF or SVG by its extension)."""
    from symloss.figures import figure_format, save_figure

    figure_format(path)
    return save_figure(comparison_figure(store, run_ids, labels), path)
