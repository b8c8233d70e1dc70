"""Training steps per second for the mnist1d models, through :func:`symloss.harness.train.train`.

For each model: 1 vs 2 CPU threads (the ratio picks ``symloss.harness.device.DEFAULT_CPU_THREADS``),
and the generated cross-entropy against torch's own ``F.cross_entropy / n`` (the
same loss, hand-written) as the criterion. Steps/s include one final evaluation.

    .venv/bin/python benchmarks/bench_training.py
"""

from __future__ import annotations

import argparse
import statistics

import torch

from symloss.catalog import loss
from symloss.harness.data import load_dataset
from symloss.harness.train import TrainConfig, train


class TorchCrossEntropy(torch.nn.Module):
    """``F.cross_entropy / n``: the catalog's cross-entropy in the ``(1/n) Σ_k`` convention."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, target) / logits.shape[-1]


def steps_per_second(criterion, data, model: str, threads: int, steps: int, rounds: int) -> float:
    config = TrainConfig(model=model, steps=steps, threads=threads, evaluations=1)
    rates = [steps / train(criterion, data, config, seed=0).seconds for _ in range(rounds)]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    data = load_dataset("mnist1d")
    generated, hand = loss("cross_entropy"), TorchCrossEntropy()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available, "
          f"{options.steps} steps × median of {options.rounds}, batch 100")
    print(f"{'model':<8}{'criterion':<12}{'1 thread':>10}{'2 threads':>11}{'2t/1t':>7}")
    for model in ("mlp", "cnn1d"):
        rates = {}
        for name, criterion in (("generated", generated), ("torch", hand)):
            for threads in (1, 2):
                rates[name, threads] = steps_per_second(criterion, data, model, threads,
                                                        options.steps, options.rounds)
            print(f"{model:<8}{name:<12}{rates[name, 1]:>10.0f}{rates[name, 2]:>11.0f}"
                  f"{rates[name, 2] / rates[name, 1]:>7.2f}")
        for threads in (1, 2):
            ratio = rates["torch", threads] / rates["generated", threads]
            print(f"{model:<8}generated-loss time / torch-loss time ({threads} thread): "
                  f"{ratio:.3f}")


if __name__ == "__main__":
    main()
