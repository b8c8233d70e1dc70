"""The GPU checks of issue 21 (item 8): one prepared script for a CUDA machine, under 10 minutes.

1. **PyTorch's own samples on CUDA.** The ``ModuleInfo`` samples of ``CrossEntropyLoss``
   (``torch.testing._internal.common_modules``) in float64, float32, bfloat16 and
   float16, with and without input gradients, through ``torch_loss("cross_entropy")``
   and an exported module: value against torch's Python reference in float64, input
   gradient against ``nn.CrossEntropyLoss`` in float64, with torch's ``test_forward``
   tolerances, and the result's dtype as torch's (:func:`check_samples`, which
   ``tests/test_torch_exact.py`` runs on the CPU).
2. **The stacked GLO MNIST CNN** (K = 10) against one by one:
   ``benchmarks/bench_glo_cnn.py --device cuda``.
3. **The GLO paper's 20,000-step test figures** on real MNIST: cross-entropy, Baikal,
   BaikalCMA, ``--seeds`` seeds each, a loss's seeds stacked
   (``benchmarks/reproduce_glo_mnist.py --parts main --steps 20000 --batched``, its
   report in ``docs/glo-mnist/gpu-20k/``); paper: 0.9899 / 0.9933 / 0.9947 (n = 10).

It writes the section ``gpu-checks`` of ``benchmarks/RESULTS.md``. Without CUDA it
says so and exits 0; without ``--data-dir`` (a folder holding ``mnist/`` IDX files) part 3
is skipped, said in the section. The device machine reaches nothing: carry the data
in the working tree (``shared/data``).

    .venv/bin/python benchmarks/gpu_check.py --data-dir shared/data
    .venv/bin/python benchmarks/gpu_check.py --parts samples    # one part (samples, cnn, 20k)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from results_file import write_section  # noqa: E402

DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
#: torch's test_forward tolerances for CrossEntropyLoss: float16 overridden in its
#: ModuleInfo, the others assert_close's defaults for the dtype.
TORCH_TOLERANCE = {torch.float16: {"atol": 0.03, "rtol": 1e-3}}
#: The samples draw from torch's global generator; seeded, so a check is repeatable.
SAMPLE_SEED = 0
PARTS = ("samples", "cnn", "20k")
#: GLO §IV-C: mean test accuracy at 20,000 steps, n = 10.
PAPER_TEST_20000 = {"cross_entropy": 0.9899, "baikal": 0.9933, "baikal_cma": 0.9947}
REPORT_20K = ROOT / "docs" / "glo-mnist" / "gpu-20k"


def module_info_samples(device: str | torch.device = "cpu") -> dict:
    """``(dtype, requires_grad)`` → the ModuleInfo samples of ``CrossEntropyLoss``."""
    from torch.testing._internal.common_modules import module_db

    info = next(m for m in module_db if m.module_cls is nn.CrossEntropyLoss)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SAMPLE_SEED)
        return {(dtype, grad): info.module_inputs_func(info, device=device, dtype=dtype,
                                                       requires_grad=grad, training=True)
                for dtype in DTYPES for grad in (False, True)}


def _wide(options: dict) -> dict:
    return {k: v.double() if isinstance(v, torch.Tensor) else v for k, v in options.items()}


def _reference(logits: torch.Tensor, target: torch.Tensor, options: dict) -> torch.Tensor:
    """torch's own Python reference of the loss, in float64."""
    from torch.testing._internal.common_nn import cross_entropy_loss_reference

    options, target = _wide(options), target.double() if target.is_floating_point() else target
    if logits.dim() == 1:  # the reference wants a batch
        value = cross_entropy_loss_reference(logits[None], target[None], **options)
        return value[0] if options.get("reduction") == "none" else value
    return cross_entropy_loss_reference(logits, target, **options)


def check_samples(forms: dict[str, Callable[..., nn.Module]], samples: dict
                  ) -> tuple[int, list[str]]:
    """Each sample through each form (a constructor taking nn.CrossEntropyLoss's arguments):
    how many were checked, and a line per mismatch (empty: all match)."""
    checked, failures = 0, []
    for (dtype, grad), group in samples.items():
        tolerance = TORCH_TOLERANCE.get(dtype, {})
        for sample in group:
            options = sample.constructor_input.kwargs
            logits, target = (a.detach() for a in sample.forward_input.args)
            expected = _reference(logits.double(), target, options).to(dtype)
            wide = logits.to(torch.float64, copy=True).requires_grad_()
            torch_dtype = nn.CrossEntropyLoss(**options)(logits, target).dtype
            (expected_grad,) = torch.autograd.grad(nn.CrossEntropyLoss(**_wide(options))(
                wide, target.double() if target.is_floating_point() else target).sum(), wide)
            for name, make in forms.items():
                checked += 1
                context = f"{name} {sample.desc} {dtype} requires_grad={grad}"
                try:
                    leaf = logits.clone().requires_grad_(grad)
                    value = make(**options)(leaf, target)
                    assert value.dtype == torch_dtype, f"dtype {value.dtype}, torch {torch_dtype}"
                    torch.testing.assert_close(value, expected, equal_nan=True, **tolerance)
                    if grad:
                        (gradient,) = torch.autograd.grad(value.sum(), leaf)
                        torch.testing.assert_close(gradient, expected_grad.to(dtype),
                                                   **tolerance)
                except (AssertionError, RuntimeError, ValueError, IndexError) as error:
                    failures.append(f"{context}: {str(error).splitlines()[0]}")
    return checked, failures


def exported_class(item, folder: Path, name: str) -> type:
    """The class of ``item`` exported by ``symloss export``'s code, imported from ``folder``
    under ``name`` (registered, so pickle finds it)."""
    from symloss.harness.search.export import export_source

    path = folder / f"{name}.py"
    path.write_text(export_source(item))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.FoundLoss


def samples_part(device: str) -> list[str]:
    from symloss.catalog import loss
    from symloss.harness.losses import torch_loss

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        exported = exported_class(loss("cross_entropy"), Path(folder), "gpu_check_exported")
        forms = {"torch_loss": lambda **k: torch_loss("cross_entropy", **k).to(device),
                 "exported": lambda **k: exported(**k).to(device)}
        checked, failures = check_samples(forms, module_info_samples(device))
    lines = [f"PyTorch's ModuleInfo samples of CrossEntropyLoss on `{device}` (4 dtypes, with "
             f"and without gradients, `torch_loss` and an exported module): "
             f"{checked - len(failures)} of {checked} match torch's float64 reference "
             f"({time.perf_counter() - started:.0f} s)."]
    lines += [f"- {failure}" for failure in failures[:20]]
    return lines


def cnn_part(device: str, data_dir: str | None) -> list[str]:
    command = [sys.executable, str(HERE / "bench_glo_cnn.py"), "--device", device,
               "--steps", "100", "--rounds", "2"] + (["--data-dir", data_dir] if data_dir else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"`bench_glo_cnn.py` failed: {result.stderr.strip().splitlines()[-1:]}"]
    return ["The GLO MNIST CNN, K = 10 stacked against one by one "
            "(`benchmarks/bench_glo_cnn.py --device cuda --steps 100`):", "",
            result.stdout.strip()]


def twenty_thousand_part(device: str, data_dir: str | None, seeds: int,
                         steps: int) -> list[str]:
    if data_dir is None:
        return ["GLO's 20,000-step test figures: skipped (no `--data-dir` with real MNIST)."]
    command = [sys.executable, str(HERE / "reproduce_glo_mnist.py"), "--data-dir", data_dir,
               "--parts", "main", "--steps", str(steps), "--seeds", str(seeds), "--device",
               device, "--batched", "--eval-every", str(max(steps // 10, 1)), "--out",
               str(REPORT_20K)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"`reproduce_glo_mnist.py` failed: {result.stderr.strip().splitlines()[-1:]}"]
    records = [json.loads(line) for path in REPORT_20K.glob("runs*.jsonl")
               for line in path.read_text().splitlines() if line.strip()]
    lines = [f"GLO's MNIST test accuracy at {steps:,} steps on real MNIST, {seeds} seeds per "
             f"loss stacked on `{device}` (report: `docs/glo-mnist/gpu-20k/report.md`):", "",
             "| loss | n | ours, test accuracy | paper (n = 10) |", "| --- | ---: | ---: | ---: |"]
    for name, paper in PAPER_TEST_20000.items():
        accuracies = [r["metrics"]["test_accuracy"] for r in records
                      if r["part"] == "main" and r["loss"] == name and r["steps"] == steps
                      and r["metrics"].get("test_accuracy") is not None]
        spread = f" ± {statistics.stdev(accuracies):.4f}" if len(accuracies) > 1 else ""
        mean = f"{statistics.mean(accuracies):.4f}{spread}" if accuracies else "—"
        lines.append(f"| {name} | {len(accuracies)} | {mean} | {paper:.4f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding mnist/ (IDX files), for part 20k")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per loss, part 20k (5)")
    parser.add_argument("--steps", type=int, default=20000, help="steps, part 20k (20000)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, built for "
              f"{'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU only'}); "
              "nothing to check. Run it on a machine with a GPU.")
        return 0
    device = "cuda"
    started = time.perf_counter()
    lines = [f"Measured {datetime.date.today()} on {torch.cuda.get_device_name(0)}, torch "
             f"{torch.__version__}."]
    for part, run in (("samples", lambda: samples_part(device)),
                      ("cnn", lambda: cnn_part(device, args.data_dir)),
                      ("20k", lambda: twenty_thousand_part(device, args.data_dir, args.seeds,
                                                           args.steps))):
        if part in parts:
            found = run()
            print("\n".join(found), flush=True)
            lines += ["", *found]
    lines += ["", f"All parts in {time.perf_counter() - started:.0f} s."]
    text = "\n".join(lines)
    if not args.no_write:
        write_section("gpu-checks", "GPU checks (`benchmarks/gpu_check.py`, issue 21)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
