"""Generated vs hand-written torch loss: forward + backward time ratio.

Both sides compute the same thing — softmax, the same clamp of ``h``, one-hot
labels, ``(1/n) Σ_k ℓ(y_k, h_k)`` averaged over the batch — so the ratio is the
cost of code generation (printer output, parameters as a tensor input) against
what a person would write by hand as a loss module (TaylorGLO's λ as Python
floats, powers as ``**``). Timings are
interleaved and the median of repeats is reported; goal: ratio ≤ 1.05.

    .venv/bin/python benchmarks/bench_torch_loss.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from symloss.catalog import loss, taylorglo
from symloss.harness.losses import clamp_probabilities, torch_loss

CLASSES = 10
LAMBDAS = [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9]


class HandWrittenBaikal(torch.nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = clamp_probabilities(torch.softmax(logits, dim=-1), torch.finfo(logits.dtype).eps)
        y = torch.zeros_like(logits).scatter_(-1, target.unsqueeze(-1), 1.0)
        return (-torch.log(h) + y / h).mean()


class HandWrittenTaylorGLO(torch.nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l0, l1, l2, l3, l4, l5, l6, l7 = LAMBDAS
        h = clamp_probabilities(torch.softmax(logits, dim=-1), torch.finfo(logits.dtype).eps)
        y = torch.zeros_like(logits).scatter_(-1, target.unsqueeze(-1), 1.0)
        dh, dy = h - l1, y - l0
        terms = (l2 * dh + l3 * dh**2 + l4 * dh**3 + l5 * dy * dh + l6 * dy * dh**2
                 + l7 * dy**2 * dh)
        return (-terms).mean()


def time_step(function, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        logits.grad = None
        function(logits, target).backward()
    return (time.perf_counter() - start) / repeats


def measure(generated, hand, batch: int, rounds: int) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, CLASSES, generator=generator, requires_grad=True)
    target = torch.randint(0, CLASSES, (batch,), generator=generator)
    assert torch.allclose(generated(logits, target), hand(logits, target), rtol=1e-5, atol=1e-6)
    repeats = 400 if batch <= 1000 else 40
    for function in (generated, hand):
        time_step(function, logits, target, repeats // 4)  # warm-up
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(time_step(generated, logits, target, repeats))
        theirs.append(time_step(hand, logits, target, repeats))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    cases = {"baikal": (torch_loss(loss("baikal")), HandWrittenBaikal()),
             "taylorglo3": (torch_loss(taylorglo(3, LAMBDAS)), HandWrittenTaylorGLO())}
    print(f"torch {torch.__version__}, {options.threads} thread(s), forward+backward, "
          f"median of {options.rounds} interleaved rounds")
    print(f"{'loss':<12}{'batch':>7}{'generated µs':>15}{'hand µs':>10}{'ratio':>8}")
    for name, (generated, hand) in cases.items():
        for batch in (100, 4096):
            ours, theirs = measure(generated, hand, batch, options.rounds)
            print(f"{name:<12}{batch:>7}{ours * 1e6:>15.1f}{theirs * 1e6:>10.1f}"
                  f"{ours / theirs:>8.3f}")


if __name__ == "__main__":
    main()
