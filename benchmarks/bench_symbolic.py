"""Symbolic-core timings, measured in one run and printed as ratios.

- ``symloss analyze baikal --json`` cold (a fresh process, imports included);
- warm ``analyze`` per catalog loss;
- the hot path of a GP search per candidate (γ, canonical key, null-epoch Δ):
  symengine vs the same steps in sympy;
- a bound TaylorGLO-3 candidate's analysis from the compiled family;
- the vectorized invariant filter, candidates per second.

Run: ``python benchmarks/bench_symbolic.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sympy as sp


def best_of(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def analyze_cold_seconds(repeats: int = 3) -> float:
    executable = Path(sys.executable).with_name("symloss")
    command = [str(executable) if executable.exists() else "symloss", "analyze", "baikal",
               "--json"]
    return best_of(lambda: subprocess.run(command, check=True, capture_output=True), repeats)


def analyze_warm_seconds() -> dict[str, float]:
    import symloss
    from symloss.dynamics import _gamma

    results = {}
    for name in ("cross_entropy", "mse", "baikal", "baikal_cma", "focal"):
        loss = symloss.loss(name)
        symloss.analyze(loss)

        def fresh(loss=loss):
            _gamma.cache_clear()
            symloss.analyze(loss)

        results[name] = best_of(fresh, 3)
    return results


def gp_hot_path(count: int = 2000, seed: int = 0) -> dict[str, float]:
    """Per-candidate γ + canonical key + null-epoch Δ: symengine vs sympy."""
    from symloss import gp
    from symloss.symbols import h, y

    rng = np.random.default_rng(seed)
    prefixes = [tuple(gp.to_prefix(gp.random_tree(rng, max_depth=4))) for _ in range(count)]

    def with_symengine():
        gp._fast_gamma.cache_clear()
        for prefix in prefixes:
            tree = gp.from_prefix(prefix)
            gp.canonical_key(tree)
            gp.null_epoch_delta(tree, 10)

    def with_sympy():
        gp._to_sympy.cache_clear()
        for prefix in prefixes:
            expression = gp._to_sympy(prefix)
            coefficient = sp.expand(sp.diff(expression, h))
            constant, _ = coefficient.as_coeff_Add()
            str(coefficient - constant)
            point = sp.Rational(1, 10)
            sp.N(coefficient.subs({y: 1, h: point}) - coefficient.subs({y: 0, h: point}))

    fast = best_of(with_symengine, 2) / count
    slow = best_of(with_sympy, 1) / count

    def keys_only():
        gp._fast_gamma.cache_clear()
        for prefix in prefixes:
            gp.canonical_key(gp.from_prefix(prefix))

    keys = count / best_of(keys_only, 3)
    return {"symengine_ms": fast * 1e3, "sympy_ms": slow * 1e3, "ratio": slow / fast,
            "canonical_keys_per_s": keys}


def taylorglo_candidate_ms(count: int = 20000) -> float:
    from symloss.catalog import taylorglo
    from symloss.compiled import compile_family

    compiled = compile_family(taylorglo(3), 10)
    vectors = np.random.default_rng(0).normal(size=(count, 8)).tolist()

    def run():
        for vector in vectors:
            compiled.evaluate(vector)

    return best_of(run, 3) / count * 1e3


def filter_candidates_per_s(count: int = 2_000_000) -> dict[str, float]:
    from symloss.catalog import taylorglo
    from symloss.trainability import candidate_filter

    batch = np.random.default_rng(0).normal(size=(count, 8))
    rates = {}
    for rule in ("exact", "paper"):
        keep = candidate_filter(taylorglo(3), 10, rule=rule)
        keep.mask(batch[:10])
        rates[rule] = count / best_of(lambda keep=keep: keep.mask(batch), 5)
    return rates


def measure() -> dict[str, object]:
    hot = gp_hot_path()
    filters = filter_candidates_per_s()
    return {
        "analyze_cold_s": analyze_cold_seconds(),
        "analyze_warm_s": analyze_warm_seconds(),
        "gp_candidate_symengine_ms": hot["symengine_ms"],
        "gp_candidate_sympy_ms": hot["sympy_ms"],
        "symengine_speedup": hot["ratio"],
        "canonical_keys_per_s": hot["canonical_keys_per_s"],
        "symbolic_candidate_ms": taylorglo_candidate_ms(),
        "filter_candidates_per_s": filters["exact"],
        "paper_filter_candidates_per_s": filters["paper"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"symloss analyze baikal --json, cold:   {results['analyze_cold_s']:.3f} s")
    for name, seconds in results["analyze_warm_s"].items():
        print(f"analyze {name:<14} warm:       {seconds * 1e3:8.1f} ms")
    print(f"GP candidate hot path, symengine:      {results['gp_candidate_symengine_ms']:.3f} ms")
    print(f"GP candidate hot path, sympy:          {results['gp_candidate_sympy_ms']:.3f} ms")
    print(f"  symengine speedup:                   {results['symengine_speedup']:.1f}x")
    print(f"GP canonical keys per second:          {results['canonical_keys_per_s']:,.0f}")
    print(f"TaylorGLO-3 bound candidate analysis:  {results['symbolic_candidate_ms']:.4f} ms")
    print(f"invariant filter (exact), cand/s:      {results['filter_candidates_per_s']:,.0f}")
    print(f"invariant filter (paper), cand/s:      "
          f"{results['paper_filter_candidates_per_s']:,.0f}")


if __name__ == "__main__":
    main()
