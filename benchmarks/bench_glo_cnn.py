"""Population training of the GLO MNIST CNN against one by one, measured in one run.

The GLO paper's MNIST CNN (5×5 conv 32, pool, 5×5 conv 64, pool, FC 1024,
dropout 0.4; SGD, batch 100) trained K = 10 at once by
:func:`symloss.harness.batched.train_population` — K losses on the same batches, and K
seeds of one loss (each its own initialization and batches) — against the
same trainings one by one with :func:`symloss.harness.train.train`. Model-steps per
second, the best of ``--rounds`` rounds taken in turn (a slower round measured
other work on this shared machine), and the machine's matmul pace beside them:
this model is compute-bound on a CPU (one training step is ~8 GFLOP), so the
ceiling of any batching is the ratio of the machine's peak to what one model
already reaches.

Timing does not depend on the pixels: without ``--data-dir`` the images are
seeded noise of MNIST's shape (55,000 training images would be loaded
otherwise, and the evaluation sets are kept small so that the steps dominate).

    .venv/bin/python benchmarks/bench_glo_cnn.py                # ~5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_glo_cnn.py --write        # and update RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

from symloss.catalog import loss
from symloss.harness.batched import train_population
from symloss.harness.data import Dataset, load_dataset
from symloss.harness.device import available_cores, resolve_device
from symloss.harness.train import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_section

LOSSES = ("cross_entropy", "baikal", "baikal_cma", "mse", "focal")


def mnist_shaped(data_dir: str | None) -> Dataset:
    """Real MNIST from ``data_dir``, or seeded noise of its shape; small evaluation sets."""
    if data_dir:
        data = load_dataset("mnist", data_dir=data_dir)
        return Dataset("mnist", data.x_train, data.y_train, data.x_val[:500], data.y_val[:500],
                       data.x_test[:500], data.y_test[:500], 10, data.mean, data.std,
                       data.bounds)
    generator = torch.Generator().manual_seed(0)

    def images(count: int) -> torch.Tensor:
        return torch.rand(count, 1, 28, 28, generator=generator)

    def labels(count: int) -> torch.Tensor:
        return torch.randint(0, 10, (count,), generator=generator)

    return Dataset("mnist", images(10_000), labels(10_000), images(500), labels(500),
                   images(500), labels(500), 10, torch.tensor([0.13]), torch.tensor([0.31]),
                   (0.0, 1.0))


def step_gflop(data: Dataset, batch: int = 100) -> float:
    """FLOPs of one training step (forward and backward, batch ``batch``) of the GLO CNN,
    counted by torch's ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    from symloss.harness.models import build_model

    model = build_model("glo_mnist_cnn", input_shape=data.input_shape, classes=data.classes)
    with FlopCounterMode(display=False) as counter:
        model(data.x_train[:batch]).logsumexp(-1).sum().backward()
    return counter.get_total_flops() / 1e9


def matmul_gflops(threads: int) -> float:
    """The machine's pace: a 2048² float32 matmul, GFLOP/s."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ (IDX); default: noise of its shape")
    parser.add_argument("--count", type=int, default=10, help="K, the population (default 10)")
    parser.add_argument("--steps", type=int, default=30, help="steps per training (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, best kept (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: every core)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    threads = args.threads or available_cores()
    device = resolve_device(args.device)
    data = mnist_shaped(args.data_dir)
    config = TrainConfig(model="glo_mnist_cnn", steps=args.steps, evaluations=1,
                         threads=threads, device=str(device))
    count = args.count
    losses = [loss(LOSSES[k % len(LOSSES)]) for k in range(count)]
    pace_before = matmul_gflops(threads)
    started_all = time.perf_counter()

    def one_by_one() -> float:
        started = time.perf_counter()
        for k, item in enumerate(losses):
            train(item, data, config, seed=k)
        return count * args.steps / (time.perf_counter() - started)

    def batched_losses() -> float:
        started = time.perf_counter()
        train_population(losses, data, config, seed=0)
        return count * args.steps / (time.perf_counter() - started)

    def batched_seeds() -> float:
        started = time.perf_counter()
        train_population([losses[0]] * count, data, config, seed=list(range(count)))
        return count * args.steps / (time.perf_counter() - started)

    measures = {"one by one": one_by_one, f"K = {count} losses, batched": batched_losses,
                f"K = {count} seeds, batched": batched_seeds}
    best = dict.fromkeys(measures, 0.0)
    for _ in range(args.rounds):
        for name, measure in measures.items():
            best[name] = max(best[name], measure())
    seconds = time.perf_counter() - started_all
    pace_after = matmul_gflops(threads)
    base = best["one by one"]
    flop = step_gflop(data)
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores), torch {torch.__version__}, device `{device}`, "
        f"{threads} threads; {args.steps} steps per training, best of {args.rounds} rounds "
        f"taken in turn, {seconds:.0f} s; load average {os.getloadavg()[0]:.2f} at the end; "
        f"matmul pace {pace_before:.0f} GFLOP/s before, {pace_after:.0f} after.",
        "",
        f"| GLO MNIST CNN, batch 100 | model-steps/s | vs one by one | "
        f"GFLOP/s ({flop:.1f} a step) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, rate in best.items():
        lines.append(f"| {name} | {rate:.2f} | {rate / base:.2f}× | {rate * flop:.0f} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write(text)


def write(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (appended the first time)."""
    write_section("glo-cnn", "GLO MNIST CNN, population-batched (`benchmarks/bench_glo_cnn.py`)",
                  text)


if __name__ == "__main__":
    main()
