"""Will it last? A loss's derived basin beside what losses of that kind did when trained long.

The basin is derived for the loss at hand (:mod:`symloss.stability`: where one-step
training from the null epoch goes; :mod:`symloss.dynamics`: how hard zero training error
pulls, ``lim_{ε→0+} Δ(ε)``), and put in one of the labels the search rules use
(:data:`symloss.rules.MAX_ZERO_ERROR_PULL`, the ``stable`` rule's target probability).
The rates come from a committed benchmark — ``outlook_rates.json``, written by the
benchmark script from its results (:func:`write_rates`), never typed in: each label's
final trainings at 5× the search's length and how many of them collapsed.

>>> from symloss.catalog import loss
>>> describe_basin(loss("baikal"), 10)["label"]
'equilibrium, p ≥ 0.25'
>>> describe_basin(loss("cross_entropy"), 10)["label"]
'zero error, lim Δ ≤ 3'
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from symloss.loss import Loss

__all__ = ["RATES", "analysis_outlook", "describe_basin", "outlook", "rates", "write_rates"]

#: The committed rates (:func:`write_rates` writes it; the package ships it).
RATES = Path(__file__).with_name("outlook_rates.json")


def describe_basin(loss: Loss, classes: int, smoothing: float = 0.0) -> dict[str, Any]:
    """The null epoch's basin kind, its target probability, the zero-error pull and the label.

    Labels: ``zero error, lim Δ ≤ 3`` / ``> 3`` (the ``lasting`` rule's bound),
    ``equilibrium, p ≥ 0.25`` / ``< 0.25`` (the ``stable`` rule's), ``collapse``,
    ``undecided``.
    """
    from symloss.rules import _zero_error_limit
    from symloss.stability import stability

    try:
        basin = stability(loss, classes, smoothing).null_epoch_basin
        pull = _zero_error_limit(loss, classes, smoothing) if basin.kind == "zero_error" \
            else None
    except Exception as error:  # an outlook never stops a report
        return {**_labelled("undecided", None, None),
                "reason": f"{type(error).__name__}: {error}"[:160]}
    return _labelled(basin.kind, basin.target_probability, pull)


def _labelled(kind: str, target_probability: float | None, pull: float | None
              ) -> dict[str, Any]:
    """The basin's facts and its label (module docstring)."""
    from symloss.rules import MAX_ZERO_ERROR_PULL
    from symloss.stability_batch import DEFAULT_MIN_TARGET_PROBABILITY

    label = kind.replace("_", " ")
    if kind == "zero_error" and (pull is None or math.isnan(pull)):
        label = "zero error, lim Δ undecided"
    elif kind == "zero_error":
        label = f"zero error, lim Δ {'≤' if pull <= MAX_ZERO_ERROR_PULL else '>'} " \
            f"{MAX_ZERO_ERROR_PULL:g}"
    elif kind == "equilibrium":
        bound = DEFAULT_MIN_TARGET_PROBABILITY
        above = (target_probability or 0) >= bound
        label = f"equilibrium, p {'≥' if above else '<'} {bound:g}"
    return {"kind": kind, "target_probability": target_probability,
            "pull": None if pull is None or math.isnan(pull) else pull, "label": label}


def _pull(limit) -> float | None:
    """A derived ``lim Δ`` (sympy) as a float; ``inf`` for +∞, ``None`` when undecided."""
    if limit is None:
        return None
    try:
        return float(limit)
    except (TypeError, ValueError):
        return math.inf if getattr(limit, "is_infinite", False) and limit.is_positive else None


def rates(path: Path = RATES) -> dict[str, Any] | None:
    """The committed rates, or ``None`` where there are none."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def outlook(loss: Loss, classes: int, smoothing: float = 0.0,
            path: Path = RATES) -> dict[str, Any]:
    """The derived basin (:func:`describe_basin`) and, from the committed benchmark, how
    many final trainings of losses with that label collapsed, as a dict with a ``text``.

    >>> from symloss.catalog import loss
    >>> outlook(loss("baikal"), 10)["text"]  # doctest: +ELLIPSIS
    'equilibrium, p ≥ 0.25: ... of ... such trainings collapsed at 5× the search length (...)'
    """
    return _with_rates(describe_basin(loss, classes, smoothing), path)


def analysis_outlook(analysis, path: Path = RATES) -> dict[str, Any]:
    """:func:`outlook` from an :class:`~symloss.analysis.Analysis` already derived (its
    stability and zero-error limit, within its budget: nothing is derived again)."""
    stability = getattr(analysis, "stability", None)
    if stability is None:
        return _with_rates(_labelled("undecided", None, None), path)
    basin = stability.null_epoch_basin
    pull = _pull(analysis.zero_error.limit) if basin.kind == "zero_error" else None
    return _with_rates(_labelled(basin.kind, basin.target_probability,
                                 math.nan if basin.kind == "zero_error" and pull is None
                                 else pull), path)


def _with_rates(basin: dict[str, Any], path: Path) -> dict[str, Any]:
    known = rates(path)
    cell = (known or {}).get("labels", {}).get(basin["label"])
    head = basin["label"]
    if basin["pull"] is not None:
        head = f"{head} (lim Δ = {basin['pull']:.3g})"
    if cell is None:
        text = f"{head}: no benchmark has trained losses of this kind long"
    else:
        text = (f"{head}: {cell['collapsed']} of {cell['trainings']} such trainings collapsed "
                f"at {known['horizon_factor']:g}× the search length ({known['source']})")
    return {**basin, "collapsed": None if cell is None else cell["collapsed"],
            "trainings": None if cell is None else cell["trainings"],
            "source": None if known is None else known["source"], "text": text}


def write_rates(summary: dict[str, Any], path: Path = RATES) -> None:
    """Count each label's final trainings and collapses in a benchmark summary (the
    searches' best losses, each trained on every final seed) and write them to ``path``."""
    labels: dict[str, dict[str, int]] = {}
    for data in summary["tasks"].values():
        for row in data["searches"]:
            cell = labels.setdefault(row["basin"]["label"], {"trainings": 0, "collapsed": 0,
                                                            "losses": 0})
            cell["trainings"] += len(row["final_test_accuracy"])
            cell["collapsed"] += row["collapsed_trainings"]
            cell["losses"] += 1
    if not labels:
        return
    document = {"source": f"benchmarks/RESULTS-lasting.md, {summary['date']}",
                "horizon_factor": 5, "labels": dict(sorted(labels.items()))}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
