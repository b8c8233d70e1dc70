"""Reproduce the GLO paper's MNIST results (CEC 2020, §IV) on real MNIST, paper figures beside ours.

Parts (``--parts``, all by default), each on the paper's CNN and settings
(§IV-A-1: SGD, learning rate 0.01, batch 100, dropout 0.4) with the trainer's
sum scale (``docs/conventions.md`` §1, :mod:`symloss.scale`):

``main``       cross-entropy, Baikal and BaikalCMA, ``--seeds`` seeds each, ``--steps``
               steps: validation accuracy at the end (§IV-B), test accuracy every
               ``--eval-every`` steps (Fig. 3), the largest softmax output on the test
               set (Fig. 7), one-sided Welch p of each against cross-entropy;
``fractions``  the same at training-set fractions (§IV-E, Fig. 4), ``--fraction-seeds``
               seeds each (fraction 1.0 is ``main``'s runs);
``scale``      cross-entropy with the papers' ``1/n`` scale at the paper's rate (the
               finding of ``proofs/glo_section4_loss_scale.py``); ``scale_cma``: BaikalCMA
               likewise, ``--seeds`` seeds;
``search``     a GLO search on MNIST at a CPU budget (``symloss search glo``), its best
               loss then trained like ``main`` against cross-entropy.

Every training is appended to ``OUT/runs.jsonl`` as it finishes; a rerun with the
same settings skips what is there (nothing paid is lost), and the report
``OUT/report.md`` with its figures is rebuilt from that file each time.

The paper trained 20,000 steps; on 2 CPU cores this runs 2,000 (the length at
which the paper reports validation accuracy); ``--steps 20000 --seeds 10`` is the
paper's full table where a GPU is available (``--device cuda``).

    .venv/bin/python benchmarks/reproduce_glo_mnist.py --data-dir ../shared/data
    .venv/bin/python benchmarks/reproduce_glo_mnist.py --data-dir ../shared/data --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from symloss.catalog import loss
from symloss.formula import parse_formula
from symloss.harness.batched import train_population
from symloss.harness.data import Dataset, load_dataset
from symloss.harness.device import available_cores, resolve_device
from symloss.harness.stats import welch_p_value
from symloss.harness.train import TrainConfig, train
from symloss.loss import Loss

ROOT = Path(__file__).resolve().parent.parent
SYMLOSS = str(Path(sys.executable).parent / "symloss")
LOSSES = ("cross_entropy", "baikal", "baikal_cma")
DISPLAY = {"cross_entropy": "cross-entropy", "baikal": "Baikal", "baikal_cma": "BaikalCMA"}
#: GLO §IV-B: validation accuracy at 2,000 steps; §IV-C: mean test accuracy, 20,000 steps, n = 10.
PAPER_VALIDATION_2000 = {"cross_entropy": 0.9700, "baikal": 0.9838, "baikal_cma": 0.9902}
PAPER_TEST_20000 = {"cross_entropy": 0.9899, "baikal": 0.9933, "baikal_cma": 0.9947}
PARTS = ("main", "fractions", "scale", "scale_cma", "search")
HISTOGRAM_BINS = 20


def main() -> None:
    args = _arguments()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist", data_dir=args.data_dir)
    # one file per invocation's parts: two processes may run different parts side by side
    tag = "-".join(args.parts)
    runs = Runs(out, f"runs-{tag}.jsonl")
    base = TrainConfig(model="glo_mnist_cnn", steps=args.steps, threads=args.threads,
                       device=args.device)
    for part in args.parts:
        started = time.perf_counter()
        if part == "main":
            curve = TrainConfig(**{**dataclasses.asdict(base), "curve_split": "test",
                                   "evaluations": max(1, args.steps // args.eval_every),
                                   "confidence_bins": HISTOGRAM_BINS})
            if args.batched:
                for name in LOSSES:
                    runs.train(args, "main", loss(name), data, curve, range(args.seeds))
            else:  # seed by seed: an interrupted run leaves every loss with as many seeds
                for seed in range(args.seeds):
                    for name in LOSSES:
                        runs.train(args, "main", loss(name), data, curve, [seed])
        elif part == "fractions":
            single = dataclasses.replace(base, evaluations=1)
            subsets = {f: training_subset(data, f) for f in args.fractions if f < 1.0}
            groups = ([range(args.fraction_seeds)] if args.batched
                      else [[seed] for seed in range(args.fraction_seeds)])
            # one by one: seed by seed, every cell alike; --reverse takes the queue from
            # its end, so a second process shares the work (each skips what is stored)
            queue = [(seeds, fraction, name) for seeds in groups for fraction in subsets
                     for name in LOSSES]
            for seeds, fraction, name in (reversed(queue) if args.reverse else queue):
                runs.train(args, f"fraction {fraction:g}", loss(name), subsets[fraction],
                           single, seeds)
        elif part == "scale":
            paper = dataclasses.replace(base, evaluations=1, loss_scale="paper")
            runs.train(args, "scale paper", loss("cross_entropy"), data, paper,
                       range(args.scale_seeds))
        elif part == "scale_cma":  # BaikalCMA on the papers' 1/n: seed by seed
            paper = dataclasses.replace(base, evaluations=1, loss_scale="paper")
            seeds = range(args.seeds)
            for seed in reversed(seeds) if args.reverse else seeds:
                runs.train(args, "scale paper", loss("baikal_cma"), data, paper, [seed])
        elif part == "search":
            best = run_search(args, out)
            if best is not None:
                runs.train(args, "search best", best, data,
                           dataclasses.replace(base, evaluations=1), range(args.seeds))
        print(f"{part}: {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        write_report(args, out, Runs(out))
    write_report(args, out, Runs(out))
    print(f"report: {out / 'report.md'}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding mnist/ (IDX files)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "glo-mnist"), help="report folder")
    parser.add_argument("--steps", type=int, default=2000, help="steps per training (2000)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per loss, main (5)")
    parser.add_argument("--fraction-seeds", type=int, default=3, help="seeds per fraction (3)")
    parser.add_argument("--scale-seeds", type=int, default=3, help="seeds, the scale part (3)")
    parser.add_argument("--fractions", default="0.05,0.1,0.2,0.5,1.0",
                        help="training-set fractions (0.05,0.1,0.2,0.5,1.0)")
    parser.add_argument("--eval-every", type=int, default=250, help="test curve period (250)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    parser.add_argument("--search-steps", type=int, default=200,
                        help="training steps per search candidate (200)")
    parser.add_argument("--search-population", type=int, default=24)
    parser.add_argument("--search-generations", type=int, default=3)
    parser.add_argument("--search-cma-generations", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                        help="train a loss's seeds together (default: on a GPU; on a CPU this "
                        "model is compute-bound and one by one measured faster, "
                        "benchmarks/bench_glo_cnn.py)")
    parser.add_argument("--reverse", action="store_true",
                        help="take the fractions' (and scale_cma's) queue from its end (a "
                        "second process)")
    parser.add_argument("--quick", action="store_true",
                        help="~10 minutes: 500 steps, 2 seeds, fractions 0.1 and 1.0, no search")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds, args.fraction_seeds, args.scale_seeds = 500, 2, 1, 1
        args.fractions, args.eval_every = "0.1,1.0", 100
        if args.parts == ",".join(PARTS):
            args.parts = "main,fractions,scale"
        if args.out == str(ROOT / "docs" / "glo-mnist"):
            args.out = str(ROOT / "out" / "glo-mnist-quick")
    try:
        args.fractions = [float(f) for f in args.fractions.split(",")]
        args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--fractions takes numbers separated by commas, got {args.fractions!r}")
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("fractions must be in (0, 1]")
    for name in ("steps", "seeds", "fraction_seeds", "scale_seeds", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.threads = args.threads or available_cores()
    args.device = str(resolve_device(args.device))
    if args.batched is None:
        args.batched = args.device.startswith("cuda")
    return args


def training_subset(data: Dataset, fraction: float) -> Dataset:
    """The first ``fraction`` of a fixed seeded shuffle of the training split (the same
    subset for every loss and seed)."""
    order = torch.from_numpy(np.random.default_rng(12345).permutation(len(data.x_train)))
    keep = order[:max(1, round(fraction * len(order)))]
    return dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])


class Runs:
    """The trainings done so far, one JSON line each, keyed by part, loss and seed: every
    ``runs*.jsonl`` in ``out`` is read, new ones are appended to ``name``."""

    def __init__(self, out: Path, name: str = "runs.jsonl"):
        self.out, self.path = out, out / name
        self.records: list[dict] = []
        self.reload()

    def reload(self) -> None:
        """Read every process's records again (another may have trained some meanwhile)."""
        self.records = []
        for path in sorted(self.out.glob("runs*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by an interruption: trained again
                    continue

    def key(self, part: str, name: str, seed: int, steps: int) -> tuple:
        return part, name, seed, steps

    def done(self) -> set[tuple]:
        return {self.key(r["part"], r["loss"], r["seed"], r["steps"]) for r in self.records}

    def select(self, part: str, name: str, steps: int) -> list[dict]:
        return [r for r in self.records
                if (r["part"], r["loss"], r["steps"]) == (part, name, steps)]

    def train(self, args, part: str, item: Loss, data: Dataset, config: TrainConfig,
              seeds) -> None:
        self.reload()
        done = self.done()
        todo = [s for s in seeds if self.key(part, item.name, s, args.steps) not in done]
        if not todo:
            return
        print(f"[{datetime.datetime.now():%H:%M:%S}] {part}: {item.name}, seeds {todo}",
              flush=True)
        if args.batched:
            results = train_population([item] * len(todo), data, config, seed=todo)
        else:
            results = [train(item, data, config, seed=s) for s in todo]
        with self.path.open("a") as handle:
            for result in results:
                record = {"part": part, "loss": item.name, "seed": result.seed,
                          "steps": args.steps, "formula": str(item.expression),
                          "status": result.status, "metrics": result.metrics,
                          "curves": result.curves, "seconds": result.seconds,
                          "finished": time.time()}
                handle.write(json.dumps(record) + "\n")
                self.records.append(record)
        accuracies = [r.metrics.get("val_accuracy") for r in results]
        print(f"    validation accuracy {accuracies}", flush=True)


def run_search(args, out: Path) -> Loss | None:
    """A GLO search on MNIST through the CLI (its store and report under OUT/search)."""
    summary = out / "search" / "summary.json"
    if not summary.exists():
        command = [SYMLOSS, "search", "glo", "--dataset", "mnist",
                   "--data-dir", args.data_dir, "--steps", str(args.search_steps),
                   "--population", str(args.search_population),
                   "--generations", str(args.search_generations),
                   "--cma-generations", str(args.search_cma_generations),
                   "--store", str(out / "search.sqlite"), "--out", str(out / "search"),
                   "--device", args.device, "--no-progress"]
        if not args.batched:
            command.append("--no-batched")
        print("search:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    best = json.loads(summary.read_text()).get("best")
    if not best:
        return None
    analysis = out / "search" / "analysis.txt"
    if not analysis.exists():
        shown = subprocess.run([SYMLOSS, "analyze", best["loss"]], capture_output=True,
                               text=True, cwd=ROOT)
        analysis.write_text(shown.stdout or shown.stderr)
    return Loss("search_best", parse_formula(best["loss"]))


# The report -----------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def _p(candidate: list[float], baseline: list[float]) -> str:
    p = welch_p_value(candidate, baseline) if len(candidate) > 1 and len(baseline) > 1 else None
    return "—" if p is None else f"{p:.2g}"


def _metric(records: list[dict], key: str) -> list[float]:
    return [r["metrics"][key] for r in records if r["metrics"].get(key) is not None]


def write_report(args, out: Path, runs: Runs) -> None:
    steps = args.steps
    main = {name: runs.select("main", name, steps) for name in LOSSES}
    lines = [
        "# GLO on real MNIST: the paper's figures beside ours",
        "",
        f"`benchmarks/reproduce_glo_mnist.py` on {datetime.date.today()}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, device `{args.device}`, {args.threads} threads, "
        f"{'population-batched seeds' if args.batched else 'one by one'}. The GLO MNIST CNN "
        f"(§IV-A-1), SGD lr 0.01, batch 100, dropout 0.4, {steps:,} steps; MNIST's 60,000 "
        "training images split 55,000 / 5,000 validation (seeded), the 10,000 test images. "
        "The loss is the per-sample sum `Σ_k ℓ(y_k, h_k)` (`docs/conventions.md` §1; "
        "`nn.CrossEntropyLoss` for cross-entropy). p: one-sided Welch test, H1: the loss's "
        "mean exceeds cross-entropy's (the paper's p are two-tailed).",
        "",
        f"Time: {len(runs.records)} trainings, "
        f"{sum(r['seconds'] for r in runs.records) / 60:.0f} process-minutes of training "
        f"(parts may run in processes side by side, `--reverse`); "
        f"wall clock {_wall_clock(runs)}.",
        "",
        f"## §IV-B: validation accuracy at {steps:,} steps",
        "",
        "| loss | n | ours, validation | paper, validation at 2,000 | "
        "ours, test | paper, test at 20,000 (n = 10) | p vs cross-entropy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    baseline_val = _metric(main["cross_entropy"], "val_accuracy")
    for name in LOSSES:
        val, test = _metric(main[name], "val_accuracy"), _metric(main[name], "test_accuracy")
        p = "—" if name == "cross_entropy" else _p(val, baseline_val)
        lines.append(f"| {DISPLAY[name]} | {len(main[name])} | {_mean_std(val)} | "
                     f"{PAPER_VALIDATION_2000[name]:.4f} | "
                     f"{_mean_std(test)} | {PAPER_TEST_20000[name]:.4f} | {p} |")
    troubled = [f"{DISPLAY[r['loss']]} seed {r['seed']} ({_trouble(r)})" for name in LOSSES
                for r in main[name] if _trouble(r)]
    lines += ["", "Diverged, failed or collapsed runs (test accuracy below "
              f"{COLLAPSED:.1f}, twice chance, with a finite loss): "
              + (", ".join(troubled) or "none") + "."]
    if troubled:
        lines += ["", "Without them:", "", "| loss | n | validation | test | p vs cross-entropy |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        kept_baseline = _metric([r for r in main["cross_entropy"] if not _trouble(r)],
                                "val_accuracy")
        for name in LOSSES:
            kept = [r for r in main[name] if not _trouble(r)]
            p = "—" if name == "cross_entropy" else _p(_metric(kept, "val_accuracy"),
                                                       kept_baseline)
            lines.append(f"| {DISPLAY[name]} | {len(kept)} | "
                         f"{_mean_std(_metric(kept, 'val_accuracy'))} | "
                         f"{_mean_std(_metric(kept, 'test_accuracy'))} | {p} |")
    healthy = {name: [r for r in main[name] if not _trouble(r)] for name in LOSSES}
    figures = _figures(args, out, runs, healthy)
    if "fig3" in figures:
        lines += ["", f"## Fig. 3: test accuracy every {args.eval_every} steps", "",
                  "Mean over the seeds that learned (band: ± one standard deviation). The "
                  "paper's curves run to 20,000 steps; in their first 2,000, Baikal and "
                  "BaikalCMA learn faster than cross-entropy.", "",
                  "![Fig. 3](fig3_test_curves.png)", ""]
        lines += _curve_table(healthy, args)
    fractions = [f for f in args.fractions if f < 1.0]
    if any(runs.select(f"fraction {f:g}", name, steps) for f in fractions for name in LOSSES):
        lines += ["", f"## §IV-E, Fig. 4: training-set fractions, test accuracy at {steps:,} "
                  "steps", "",
                  f"n = {args.fraction_seeds} seeds per cell (1.0: the {args.seeds} seeds "
                  "above). The paper plots these (n = 5, 20,000 steps) without printing the "
                  "values; its finding: Baikal and BaikalCMA increasingly outperform "
                  "cross-entropy on small datasets.", "",
                  "| fraction | images | " + " | ".join(DISPLAY[n] for n in LOSSES)
                  + " | p Baikal | p BaikalCMA |", "| ---: | ---: |" + " ---: |" * 5]
        for fraction in [*fractions, 1.0]:
            part = "main" if fraction == 1.0 else f"fraction {fraction:g}"
            cells = {n: _metric(runs.select(part, n, steps), "test_accuracy") for n in LOSSES}
            images = round(fraction * 55000)
            lines.append(f"| {fraction:g} | {images:,} | " + " | ".join(
                _mean_std(cells[n]) for n in LOSSES) + " | " + " | ".join(
                _p(cells[n], cells["cross_entropy"]) for n in LOSSES[1:]) + " |")
        if "fig4" in figures:
            lines += ["", "![Fig. 4](fig4_fractions.png)"]
    if "fig7" in figures:
        lines += ["", "## §V-B, Fig. 7: the largest softmax output on the test set", "",
                  "Histograms over the 10,000 test images, the seeds that learned pooled "
                  f"(cross-entropy {len(healthy['cross_entropy'])}, BaikalCMA "
                  f"{len(healthy['baikal_cma'])}), after {steps:,} steps (the paper's: 15,000 "
                  "steps). Share of outputs above 0.95: " + ", ".join(
                      f"{DISPLAY[n]} {_share_above(healthy[n], 0.95):.3f}"
                      for n in ("cross_entropy", "baikal_cma")) + ".",
                  "", "![Fig. 7](fig7_confidence.png)", "", *_confidence_table(healthy)]
    scale = runs.select("scale paper", "cross_entropy", steps)
    scale_cma = runs.select("scale paper", "baikal_cma", steps)
    if scale or scale_cma:
        lines += ["", "## The loss scale the paper trained with", "",
                  "The paper's learning rate 0.01, with the `1/n` its equations write "
                  "(`scale=\"paper\"`) and without it (the trainer's sum scale, the runs "
                  "above). `proofs/glo_section4_loss_scale.py` proves the two differ only by "
                  "the step size (`1/n` at rate η is the sum at rate η/n).", "",
                  "| loss | scale | n | learned | validation accuracy | test accuracy | "
                  "paper, validation |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, records in (("cross_entropy", scale), ("baikal_cma", scale_cma)):
            for label, rows in (("`1/n` (`paper`)", records), ("sum (default)", main[name])):
                if rows:
                    learned = sum(not _trouble(r) for r in rows)
                    lines.append(f"| {DISPLAY[name]} | {label} | {len(rows)} | {learned} | "
                                 f"{_mean_std(_metric(rows, 'val_accuracy'))} | "
                                 f"{_mean_std(_metric(rows, 'test_accuracy'))} | "
                                 f"{PAPER_VALIDATION_2000[name]:.4f} |")
    lines += _search_section(args, out, runs, main)
    (out / "report.md").write_text("\n".join(lines) + "\n")


#: A run whose test accuracy stays below this (twice chance on MNIST) learned nothing.
COLLAPSED = 0.2


def _trouble(record: dict) -> str:
    """``diverged``/``failed``, ``collapsed`` (finite loss, chance accuracy), or ``""``."""
    if record["status"] != "ok":
        return record["status"]
    accuracy = record["metrics"].get("test_accuracy")
    return "collapsed" if accuracy is None or accuracy < COLLAPSED else ""


def _wall_clock(runs: Runs) -> str:
    """From the first training's start to the last one's end, as the records tell it."""
    spans = [(r["finished"] - r["seconds"], r["finished"]) for r in runs.records
             if "finished" in r]
    if not spans:
        return "not recorded"
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    return f"{(last - first) / 60:.0f} min ({len(spans)} trainings)"


def _confidence_table(healthy: dict) -> list[str]:
    """Where each loss's largest softmax output concentrates, beside where the derived
    one-step dynamics say training settles (:func:`symloss.stability`, n = 10)."""
    import symloss

    lines = ["Where the outputs concentrate, against the derived dynamics: the null epoch's "
             "basin (`symloss analyze`, n = 10) is an equilibrium at target probability "
             "1 − ε* for Baikal and BaikalCMA, zero training error for cross-entropy.", "",
             "| loss | derived: training settles at | median largest softmax output | "
             "its most common bin |", "| --- | ---: | ---: | ---: |"]
    for name in LOSSES:
        counts = np.sum([r["metrics"]["test_confidence"] for r in healthy[name]
                         if r["metrics"].get("test_confidence")], axis=0)
        if np.ndim(counts) == 0:
            continue
        edges = np.linspace(0, 1, len(counts) + 1)
        cumulative = np.cumsum(counts) / counts.sum()
        median = edges[1:][np.searchsorted(cumulative, 0.5)]
        top = int(np.argmax(counts))
        basin = symloss.stability(loss(name), classes=10).null_epoch_basin
        settles = ("zero error (1.0)" if basin.kind == "zero_error" else
                   f"{basin.target_probability:.3f}" if basin.target_probability is not None
                   else basin.kind)
        lines.append(f"| {DISPLAY[name]} | {settles} | ≤ {median:.2f} | "
                     f"[{edges[top]:.2f}, {edges[top + 1]:.2f}) |")
    return lines


def _share_above(records: list[dict], threshold: float) -> float:
    counts = np.sum([r["metrics"]["test_confidence"] for r in records
                     if r["metrics"].get("test_confidence")], axis=0)
    if np.ndim(counts) == 0:
        return float("nan")
    edges = np.linspace(0, 1, len(counts) + 1)[:-1]
    return float(counts[edges >= threshold].sum() / max(counts.sum(), 1))


def _curve_table(main: dict, args) -> list[str]:
    steps = sorted({s for r in main["cross_entropy"] for s in r["curves"].get("eval_step", [])})
    if not steps:
        return []
    shown = [s for s in steps if s % max(args.eval_every, args.steps // 8) == 0] or steps
    lines = ["| step | " + " | ".join(DISPLAY[n] for n in LOSSES) + " |",
             "| ---: |" + " ---: |" * len(LOSSES)]
    for step in shown:
        cells = []
        for name in LOSSES:
            values = [r["curves"]["test_accuracy"][r["curves"]["eval_step"].index(step)]
                      for r in main[name] if step in r["curves"].get("eval_step", [])]
            cells.append(_mean_std(values))
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return lines


def _figures(args, out: Path, runs: Runs, main: dict) -> set[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    made = set()
    if all(main[n] for n in LOSSES):
        figure, axes = pyplot.subplots(figsize=(6, 4))
        for name in LOSSES:
            curves = [r["curves"] for r in main[name] if r["curves"].get("test_accuracy")]
            if not curves:
                continue
            length = min(len(c["test_accuracy"]) for c in curves)
            values = np.array([c["test_accuracy"][:length] for c in curves])
            steps = curves[0]["eval_step"][:length]
            axes.plot(steps, values.mean(0), label=DISPLAY[name])
            axes.fill_between(steps, values.mean(0) - values.std(0),
                              values.mean(0) + values.std(0), alpha=0.2)
        axes.set_xlabel("training step")
        axes.set_ylabel("test accuracy")
        axes.set_ylim(0.9, 1.0)
        axes.set_title("GLO Fig. 3 on MNIST (mean ± std over seeds)")
        axes.legend()
        figure.savefig(out / "fig3_test_curves.png", dpi=120, bbox_inches="tight")
        pyplot.close(figure)
        made.add("fig3")
        figure, axes = pyplot.subplots(figsize=(6, 4))
        edges = np.linspace(0, 1, HISTOGRAM_BINS + 1)
        for name in ("cross_entropy", "baikal_cma"):
            counts = np.sum([r["metrics"]["test_confidence"] for r in main[name]
                             if r["metrics"].get("test_confidence")], axis=0)
            if np.ndim(counts):
                axes.stairs(counts / counts.sum(), edges, label=DISPLAY[name], fill=False,
                            linewidth=1.5)
        axes.set_yscale("log")
        axes.set_xlabel("largest softmax output")
        axes.set_ylabel("fraction of test images")
        axes.set_title("GLO Fig. 7 on MNIST")
        axes.legend()
        figure.savefig(out / "fig7_confidence.png", dpi=120, bbox_inches="tight")
        pyplot.close(figure)
        made.add("fig7")
    fractions = sorted({*args.fractions})
    points = {n: [] for n in LOSSES}
    for fraction in fractions:
        part = "main" if fraction == 1.0 else f"fraction {fraction:g}"
        for name in LOSSES:
            values = _metric(runs.select(part, name, args.steps), "test_accuracy")
            if values:
                points[name].append((fraction, np.mean(values), np.std(values)))
    if sum(len(p) for p in points.values()) > len(LOSSES):
        figure, axes = pyplot.subplots(figsize=(6, 4))
        for name, rows in points.items():
            if rows:
                x, mean, spread = zip(*rows, strict=True)
                axes.errorbar(x, mean, yerr=spread, marker="o", capsize=3, label=DISPLAY[name])
        axes.set_xscale("log")
        axes.set_xlabel("fraction of the training set")
        axes.set_ylabel("test accuracy")
        axes.set_title(f"GLO Fig. 4 on MNIST, {args.steps:,} steps")
        axes.legend()
        figure.savefig(out / "fig4_fractions.png", dpi=120, bbox_inches="tight")
        pyplot.close(figure)
        made.add("fig4")
    return made


def _search_section(args, out: Path, runs: Runs, main: dict) -> list[str]:
    summary = out / "search" / "summary.json"
    if not summary.exists():
        return []
    found = json.loads(summary.read_text())
    best = found.get("best") or {}
    if not best:
        return []
    records = runs.select("search best", "search_best", args.steps)
    val, baseline = _metric(records, "val_accuracy"), _metric(main["cross_entropy"],
                                                              "val_accuracy")
    test = _metric(records, "test_accuracy")
    analysis = out / "search" / "analysis.txt"
    lines = ["", "## A GLO search on MNIST, at a CPU budget", "",
             f"`symloss search glo --dataset mnist --steps {args.search_steps} --population "
             f"{args.search_population} --generations {args.search_generations} "
             f"--cma-generations {args.search_cma_generations}` (the derived `exact` filter, "
             f"candidates trained {'batched' if args.batched else 'one by one'}); the search's "
             "own report is `search/report.md`. Its best "
             f"loss, trained like the runs above ({args.steps:,} steps, {len(records)} seeds):",
             "", f"- formula: `{best.get('loss', '?')}`",
             f"- search fitness (validation accuracy at {args.search_steps} steps): "
             f"{best.get('fitness', float('nan')):.4f}",
             f"- validation accuracy: {_mean_std(val)} against cross-entropy's "
             f"{_mean_std(baseline)}, one-sided Welch p = {_p(val, baseline)}",
             f"- test accuracy: {_mean_std(test)}"]
    if analysis.exists():
        lines += ["", "```", analysis.read_text().rstrip(), "```"]
    return lines


if __name__ == "__main__":
    main()
