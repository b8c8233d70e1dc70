"""The human-readable report of an :class:`~symloss.analysis.Analysis`.

>>> from symloss.catalog import loss
>>> from symloss.analysis import analyze
>>> print(format_report(analyze(loss("cross_entropy"), classes=10)).splitlines()[0])
cross_entropy   ℓ(y, h) = -y*log(h)
"""

from __future__ import annotations

import math

import sympy as sp

from symloss.analysis import Analysis, to_json
from symloss.stability import Stability


def _verdict(value: bool | None, yes: str, no: str, unknown: str = "undecided") -> str:
    return unknown if value is None else (yes if value else no)


def _number(value: sp.Expr | None) -> str:
    shown = to_json(value)
    if isinstance(shown, float):
        return f"{shown:.6g}"
    return "undecided" if shown is None else str(shown)


def format_report(result: Analysis) -> str:
    """A few aligned lines: γ, Δ(ε), null epoch, zero error, trainability, binary view."""
    loss = result.loss
    lines = [f"{loss.name:<15} ℓ(y, h) = {loss.expression}"]
    if loss.parameters and loss.values is not None:
        bound = ", ".join(f"{p}={v:g}" for p, v in zip(loss.parameters, loss.values, strict=True))
        lines.append(f"{'parameters':<15} {bound}")
    smoothing = f", label smoothing α = {result.smoothing:g}" if result.smoothing else ""
    lines.append(f"{'classes':<15} n = {result.classes}{smoothing}")
    lines.append(f"{'γ(y, h)':<15} {result.gamma}    (γ = −∂ℓ/∂h)")
    lines.append(f"{'γ_T(h)':<15} {result.gamma_target}")
    lines.append(f"{'γ_N(h)':<15} {result.gamma_nontarget}")
    if result.decomposition is not None:
        terms = ", ".join(f"{k}={v}" for k, v in result.decomposition.items() if v != 0)
        lines.append(f"{'decomposition':<15} {terms or 'γ ≡ 0'}")
    lines.append(f"{'Δ(ε)':<15} {result.delta}")
    null = result.null_epoch
    undecided = "undefined at the labels" if null.delta.has(sp.nan, sp.zoo) else \
        "depends on the parameters" if null.reason in ("", "depends on the parameters") else \
        "undecided"
    grows = _verdict(null.trainable, "target grows: trainable", "target does not grow: "
                     "untrainable", undecided)
    lines.append(f"{'null epoch':<15} γ_T(1/n) = {_number(null.gamma_target)}, "
                 f"γ_N(1/n) = {_number(null.gamma_nontarget)}, Δ = {_number(null.delta)} → {grows}")
    if null.reason and null.reason != "depends on the parameters":
        lines.append(f"{'':<17}{null.reason}")
    zero = result.zero_error
    behaviour = _verdict(zero.attractor, "zero training error attracts",
                         "zero training error repels (not an attractor)")
    if zero.neutral:
        behaviour = "neutral: Δ(ε) ≡ 0 near ε = 0, zero error neither attracts nor repels"
    order = (f" (decided at order ε^{zero.leading_order})"
             if zero.leading_order and zero.attractor is not None else "")
    lines.append(f"{'zero error':<15} lim ε→0+ Δ(ε) = {_number(zero.limit)} → {behaviour}{order}")
    if zero.reason and not zero.neutral and zero.reason != "depends on the parameters":
        lines.append(f"{'':<17}{zero.reason}")
    if loss.is_family:
        lines.append(f"{'trainable iff':<15} {result.trainability_condition} > 0")
        lines.append(f"{'paper (Thm 3)':<15} {result.paper_condition} >= 0")
    else:
        lines.append(f"{'paper (Thm 3)':<15} " + _verdict(
            result.paper_trainable, "trainable", "untrainable")
            + ("   ← disagrees with first principles"
               if result.paper_trainable is not None and result.trainable is not None
               and result.paper_trainable != result.trainable else ""))
    if result.label_smoothing_map is not None:
        if result.label_smoothing_map.exists:
            lines.append(f"{'smoothing map':<15} λ̂ with γ_λ̂(y, h) ≡ γ_λ(y(1−α)+α/n, h):")
            lines += [f"{'':<17}{k}̂ = {v}" for k, v in result.label_smoothing_map.mapping.items()]
        else:
            lines.append(f"{'smoothing map':<15} none: {result.label_smoothing_map.reason}")
    if result.stability is not None and not loss.is_family:
        lines += _stability_lines(result.stability)
    binary = result.binary
    if binary.minimum_at is not None:
        lines.append(f"{'binary (n = 2)':<15} L(p) = {binary.expression}; minimum "
                     f"{_minima(binary.minima)}")
    elif binary.reason and not result.loss.is_family:
        lines.append(f"{'binary (n = 2)':<15} undecided: {binary.reason}")
    for step, reason in result.undecided:
        lines.append(f"{'undecided':<15} {step}: {reason}")
    return "\n".join(lines)


def _minima(minima: tuple[tuple[float, float], ...]) -> str:
    """``at p = 0.7071 (interior)``, ``on p ∈ [0.9000, 1.0000] (flat)``, ties joined by "and"."""
    def where(start: float, end: float) -> str:
        if start != end:
            return f"on p ∈ [{start:.4f}, {end:.4f}] (flat)"
        return f"at p = {start:.4f} ({'interior' if 0.0 < start < 1.0 else 'at the boundary'})"

    parts = [where(start, end) for start, end in minima]
    return " and ".join(parts) + (" (a tie)" if len(parts) > 1 else "")


_STABLE = {True: "attracts", False: "repels", None: "attracts from one side only"}


def _stability_lines(found: Stability) -> list[str]:
    """Equilibria of Δ and where the null epoch goes (:mod:`symloss.stability`)."""
    lines = []
    for item in found.equilibria:
        exact = f" = {item.exact}" if item.exact is not None else \
            f" in [{item.interval[0]:.6g}, {item.interval[1]:.6g}]"
        bound = (f", one step overshoots it for the papers' η ≥ {item.max_stable_lr:.4g} "
                 f"(a training lr ≥ {item.max_stable_lr / found.classes:.4g} on the sum scale)"
                 if item.stable and math.isfinite(item.max_stable_lr) else "")
        lines.append(f"{'equilibrium':<15} ε*{exact} ≈ {item.epsilon:.6g}: target probability "
                     f"{item.target_probability:.6g}, {_STABLE[item.stable]}; implied label "
                     f"smoothing α = {item.implied_smoothing:.4g}{bound}")
    if not found.equilibria and found.method != "undecided":
        lines.append(f"{'equilibria':<15} none: Δ(ε) has no zero in (0, (n−1)/n]")
    basin = found.null_epoch_basin
    where = {"zero_error": "zero training error (Δ > 0 on all of (0, (n−1)/n])",
             "collapse": "stays at chance (Δ ≤ 0 at the null epoch)",
             "undecided": f"undecided: {basin.reason}"}.get(basin.kind)
    if basin.kind == "equilibrium":
        where = (f"the equilibrium ε* ≈ {basin.epsilon:.6g}, target probability "
                 f"{basin.target_probability:.6g}")
    lines.append(f"{'null epoch →':<15} {where}   ({found.method})")
    return lines
