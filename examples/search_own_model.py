"""Search a loss for your own PyTorch model, data and training loop.

The model, the data split and the training loop below are ordinary PyTorch on
scikit-learn's bundled 8×8 digits (nothing is downloaded); symloss only supplies
each candidate loss, as a torch module with ``nn.CrossEntropyLoss``'s API, and
runs a TaylorGLO search over what ``fitness`` returns. Filtered candidates (the
derived trainability condition) never reach ``fitness``; every score is stored in
``--store`` the moment it returns, and running the script again with the same
``--run-id`` resumes the run without training anything twice.

    python examples/search_own_model.py [--generations 4] [--population 16] [--steps 150]
"""

from __future__ import annotations

import argparse
from functools import lru_cache, partial

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from symloss.harness import torch_loss
from symloss.harness.search import search_losses
from symloss.loss import Loss


@lru_cache(maxsize=1)
def digits() -> dict[str, torch.Tensor]:
    """Digits split once, 1,077 train / 360 validation / 360 test (a fixed permutation)."""
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    x = torch.tensor(data.data[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target[order], dtype=torch.long)
    return {"x_train": x[720:], "y_train": y[720:], "x_val": x[360:720], "y_val": y[360:720],
            "x_test": x[:360], "y_test": y[:360]}


def make_model() -> nn.Module:
    """Your model: here a small MLP for 64 pixels and 10 classes."""
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train_and_score(loss: Loss, seed: int = 0, *, split: str = "val", steps: int = 150) -> float:
    """Train :func:`make_model` with ``loss`` (SGD, ``steps`` batches of 64 drawn with
    ``seed``); its accuracy on ``split``. NaN if the training diverged."""
    data = digits()
    torch.manual_seed(seed)
    model, criterion = make_model(), torch_loss(loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(data["y_train"]), (64,), generator=batches)
        optimizer.zero_grad()
        value = criterion(model(data["x_train"][index]), data["y_train"][index])
        if not torch.isfinite(value):
            return float("nan")  # stored as diverged, fitness 0
        value.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(data[f"x_{split}"]).argmax(dim=1)
    return (predicted == data[f"y_{split}"]).float().mean().item()


def main(argv: list[str] | None = None):
    """Search, print the best loss and its fitness, and return the search's result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--steps", type=int, default=150, help="SGD steps per training")
    parser.add_argument("--final-seeds", type=int, default=3,
                        help="seeds of the final comparison with the baselines (0: none)")
    parser.add_argument("--store", default="out/examples.sqlite")
    parser.add_argument("--run-id", default="digits-mlp")
    parser.add_argument("--out", default=None, help="report folder (default: beside the store)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    # fitness(loss): validation accuracy after a short training; final_score(loss, seed):
    # test accuracy, for the final comparison with the baselines on the same seeds.
    fitness = partial(train_and_score, seed=0, split="val", steps=args.steps)
    final_score = partial(train_and_score, split="test", steps=args.steps)
    result = search_losses(
        fitness, "taylorglo", generations=args.generations, population=args.population,
        dataset="digits", classes=10, final_seeds=args.final_seeds,
        final_score=final_score, store=args.store, run_id=args.run_id,
        report_dir=args.out, cma_options={"bounds": [-10, 10]})
    best = result.best
    print(f"run {result.run_id}: {result.evaluations} trainings, counts {result.counts}")
    print(f"best fitness {best.fitness:.4f}  ℓ(y, h) = {best.loss.expression.evalf(4)}")
    if result.final:
        found = result.final["test_accuracy"]
        print(f"test accuracy {found['mean']:.4f} ± {found['std']:.4f}; cross-entropy "
              f"{result.final['baseline_test_accuracy']['mean']:.4f} "
              f"(one-sided Welch p = {result.final['p_value']:.2g})")
    print(f"report {result.report}")
    return result


if __name__ == "__main__":
    main()
