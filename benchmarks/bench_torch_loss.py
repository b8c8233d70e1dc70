"""Generated vs hand-written torch loss, forward + backward; cross-entropy vs torch's fused
``F.cross_entropy``; the extreme-logit table (torch's and ours).

Generated and hand-written compute the same thing — the trainer's scale,
``Σ_k ℓ(y_k, h_k)`` per sample averaged over the batch (docs/conventions.md §1), in
log space from the same ``log_softmax``
(:func:`symloss.harness.losses.log_probabilities`) — so their ratio is the cost of
code generation (printer output, the generated functions, the module's checks)
against what a person would write by hand as a loss module (TaylorGLO's λ as Python
floats, powers as ``**``). Goal: ratio ≤ 1.05. Cross-entropy against
``F.cross_entropy`` is what a user pays for ``torch_loss("cross_entropy")`` instead of
``nn.CrossEntropyLoss`` (goal ≤ 1.3 at batch 4096 on CPU). Timings are interleaved
and the median of repeats is reported.

    .venv/bin/python benchmarks/bench_torch_loss.py [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from symloss.catalog import taylorglo
from symloss.harness.losses import log_probabilities, torch_loss

CLASSES = 10
LAMBDAS = [0.3, -0.2, 1.0, -1.5, 0.7, 2.0, -0.4, 0.9]
BATCHES = (100, 4096)

#: Logit gaps of the extreme-logit table: a confidently wrong sample, float32.
GAPS = (20.0, 100.0, 1e3, 1e4)


class HandWrittenBaikal(torch.nn.Module):
    """Baikal ``−log h + y/h`` in log space: ``Σ_k −L_k + exp(−L_T)`` per sample."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_h = log_probabilities(logits, -1)
        chosen = log_h.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return (torch.exp(-chosen) - log_h.sum(dim=-1)).mean()


class HandWrittenTaylorGLO(torch.nn.Module):
    """ICLR eq. 10 with λ as Python floats, ``h = exp(L)``, one-hot ``y``."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l0, l1, l2, l3, l4, l5, l6, l7 = LAMBDAS
        h = torch.exp(log_probabilities(logits, -1))
        y = torch.zeros_like(h).scatter_(-1, target.unsqueeze(-1), 1.0)
        dh, dy = h - l1, y - l0
        terms = (l2 * dh + l3 * dh**2 + l4 * dh**3 + l5 * dy * dh + l6 * dy * dh**2
                 + l7 * dy**2 * dh)
        return (-terms).sum(dim=-1).mean()


class TorchCrossEntropy(torch.nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)


def cases() -> dict[str, tuple[torch.nn.Module, torch.nn.Module]]:
    """name → (generated, the reference it is timed against)."""
    return {"baikal": (torch_loss("baikal"), HandWrittenBaikal()),
            "taylorglo3": (torch_loss(taylorglo(3, LAMBDAS)), HandWrittenTaylorGLO()),
            "cross_entropy": (torch_loss("cross_entropy"), TorchCrossEntropy())}


def time_step(function, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        logits.grad = None
        function(logits, target).backward()
    return (time.perf_counter() - start) / repeats


def measure(generated, hand, batch: int, rounds: int) -> tuple[float, float]:
    """Median seconds per forward+backward of ``generated`` and ``hand``, interleaved."""
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


def ratios(rounds: int) -> dict[str, float]:
    """``{name}_b{batch}`` → generated / reference time, every case and batch."""
    return {f"{name}_b{batch}": (lambda t: t[0] / t[1])(measure(*pair, batch, rounds))
            for name, pair in cases().items() for batch in BATCHES}


def extreme_logits(dtype: torch.dtype = torch.float32) -> list[dict[str, float]]:
    """Cross-entropy of one sample whose target logit is ``gap`` below another's: the loss
    and the target logit's gradient, torch's ``F.cross_entropy`` and ours (exact: gap, −1)."""
    rows = []
    for gap in GAPS:
        row = {"gap": gap}
        for name, criterion in (("torch", F.cross_entropy),
                                ("ours", torch_loss("cross_entropy"))):
            logits = torch.tensor([[gap, 0.0, 0.0]], dtype=dtype, requires_grad=True)
            value = criterion(logits, torch.tensor([1]))
            (gradient,) = torch.autograd.grad(value, logits)
            row[f"{name}_loss"], row[f"{name}_gradient"] = value.item(), gradient[0, 1].item()
        rows.append(row)
    return rows


def extreme_table(rows: list[dict[str, float]]) -> str:
    """The rows of :func:`extreme_logits` as a Markdown table (the README's)."""
    lines = ["| logit gap | torch loss | ours | torch ∂/∂f_target | ours |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['gap']:g} | {r['torch_loss']:g} | {r['ours_loss']:g} | "
              f"{r['torch_gradient']:g} | {r['ours_gradient']:g} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    print(f"torch {torch.__version__}, {options.threads} thread(s), forward+backward, "
          f"median of {options.rounds} interleaved rounds")
    print(f"{'loss':<14}{'batch':>7}{'generated µs':>15}{'reference µs':>14}{'ratio':>8}")
    for name, (generated, reference) in cases().items():
        for batch in BATCHES:
            ours, theirs = measure(generated, reference, batch, options.rounds)
            print(f"{name:<14}{batch:>7}{ours * 1e6:>15.1f}{theirs * 1e6:>14.1f}"
                  f"{ours / theirs:>8.3f}")
    print("\n(cross_entropy's reference is torch's fused F.cross_entropy; the others are "
          "hand-written)\n\nCross-entropy, float32, one confidently wrong sample:\n")
    print(extreme_table(extreme_logits()))


if __name__ == "__main__":
    main()
