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
    lines = _formula_lines(result)
    lines += _null_epoch_lines(result)
    lines += _zero_error_lines(result)
    lines += _theorem_lines(result)
    if result.label_smoothing_map is not None:
        lines += _smoothing_map_lines(result)
    if result.stability is not None and not result.loss.is_family:
        lines += _stability_lines(result.stability)
    lines += _binary_lines(result)
    for step, reason in result.undecided:
        lines.append(f"{'undecided':<15} {step}: {reason}")
    return "\n".join(lines)


def _formula_lines(result: Analysis) -> list[str]:
    """The loss, its parameters and classes, γ, γ_T, γ_N, the decomposition and Δ(ε)."""
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
    return lines


def _null_epoch_lines(result: Analysis) -> list[str]:
    """γ_T, γ_N and Δ at the null epoch and whether the target grows (and why not decided)."""
    null = result.null_epoch
    undecided = "undefined at the labels" if null.delta.has(sp.nan, sp.zoo) else \
        "depends on the parameters" if null.reason in ("", "depends on the parameters") else \
        "undecided"
    grows = _verdict(null.trainable, "target grows: trainable", "target does not grow: "
                     "untrainable", undecided)
    lines = [f"{'null epoch':<15} γ_T(1/n) = {_number(null.gamma_target)}, "
             f"γ_N(1/n) = {_number(null.gamma_nontarget)}, Δ = {_number(null.delta)} → {grows}"]
    if null.reason and null.reason != "depends on the parameters":
        lines.append(f"{'':<17}{null.reason}")
    return lines


def _zero_error_lines(result: Analysis) -> list[str]:
    """lim ε→0+ Δ(ε) and whether zero training error attracts, repels or is neutral."""
    zero = result.zero_error
    behaviour = _verdict(zero.attractor, "zero training error attracts",
                         "zero training error repels (not an attractor)")
    if zero.neutral:
        behaviour = "neutral: Δ(ε) ≡ 0 near ε = 0, zero error neither attracts nor repels"
    order = (f" (decided at order ε^{zero.leading_order})"
             if zero.leading_order and zero.attractor is not None else "")
    lines = [f"{'zero error':<15} lim ε→0+ Δ(ε) = {_number(zero.limit)} → {behaviour}{order}"]
    if zero.reason and not zero.neutral and zero.reason != "depends on the parameters":
        lines.append(f"{'':<17}{zero.reason}")
    return lines


def _theorem_lines(result: Analysis) -> list[str]:
    """A family's trainability conditions, or a loss's ICLR Theorem 3 verdict."""
    if result.loss.is_family:
        return [f"{'trainable iff':<15} {result.trainability_condition} > 0",
                f"{'paper (Thm 3)':<15} {result.paper_condition} >= 0"]
    return [f"{'paper (Thm 3)':<15} " + _verdict(
        result.paper_trainable, "trainable", "untrainable")
        + ("   ← disagrees with first principles"
           if result.paper_trainable is not None and result.trainable is not None
           and result.paper_trainable != result.trainable else "")]


def _smoothing_map_lines(result: Analysis) -> list[str]:
    """The label-smoothing parameter map λ → λ̂, or why there is none."""
    found = result.label_smoothing_map
    if not found.exists:
        return [f"{'smoothing map':<15} none: {found.reason}"]
    return [f"{'smoothing map':<15} λ̂ with γ_λ̂(y, h) ≡ γ_λ(y(1−α)+α/n, h):",
            *(f"{'':<17}{k}̂ = {v}" for k, v in found.mapping.items())]


def _binary_lines(result: Analysis) -> list[str]:
    """The binary view's minimum, or why it is undecided (none for a family)."""
    binary = result.binary
    if binary.minimum_at is not None:
        return [f"{'binary (n = 2)':<15} L(p) = {binary.expression}; minimum "
                f"{_minima(binary.minima)}"]
    if binary.reason and not result.loss.is_family:
        return [f"{'binary (n = 2)':<15} undecided: {binary.reason}"]
    return []


def markdown_report(result: Analysis) -> str:
    """:func:`format_report` as a Markdown table (what a notebook shows for an
    :class:`~symloss.analysis.Analysis`): one row per quantity, the value in a code span
    (:func:`markdown_code`), a continuation line joined to its row.

    >>> from symloss.catalog import loss
    >>> from symloss.analysis import analyze
    >>> print("\\n".join(markdown_report(analyze(loss("cross_entropy"))).splitlines()[:4]))
    | quantity | value |
    | --- | --- |
    | cross\\_entropy | `ℓ(y, h) = -y*log(h)` |
    | classes | `n = 10` |
    """
    rows: list[list[str]] = []
    for line in format_report(result).splitlines():
        label, value = line[:15].strip(), line[15:].strip()
        if not label and rows:
            rows[-1][1] += f"; {value}"
        else:
            rows.append([label, value])
    return "\n".join(["| quantity | value |", "| --- | --- |"] + [
        f"| {markdown_text(label)} | {markdown_code(value, in_table=True)} |"
        for label, value in rows])


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


# --- writing stored strings into generated files -----------------------------------------------

#: Characters that start Markdown inline syntax mid-line (emphasis, code, links, images,
#: table cells, headings, strikethrough, math); ``<``, ``>`` and ``&`` become entities.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]()#!|~$")


def markdown_text(value: object) -> str:
    """``value`` as literal Markdown text inside a line: each character that Markdown
    would read is backslash-escaped, ``<``, ``>`` and ``&`` become HTML entities (shown,
    never run), line breaks and other unprintable characters become spaces. For a stored
    string (a run id, a status, a dataset's name) written into a report: it shows as it
    is and cannot add a heading, a link, an image, a table cell or raw HTML.

    >>> markdown_text("run <script>alert(1)</script>")
    'run &lt;script&gt;alert\\\\(1\\\\)&lt;/script&gt;'
    >>> markdown_text("a | b\\n# title")
    'a \\\\| b \\\\# title'
    """
    text = " ".join(str(value).splitlines())
    out = []
    for character in text:
        if character == "<":
            out.append("&lt;")
        elif character == ">":
            out.append("&gt;")
        elif character == "&":
            out.append("&amp;")
        elif character in _MARKDOWN_SPECIAL:
            out.append("\\" + character)
        elif not character.isprintable():
            out.append(" ")
        else:
            out.append(character)
    return "".join(out)


def markdown_code(value: object, *, in_table: bool = False) -> str:
    """``value`` as a Markdown code span on one line (a formula, a JSON config). A code
    span shows its text literally (no emphasis, links or HTML), so only what could end
    it is changed: the fence is longer than any run of backticks inside, line breaks
    become spaces, and in a table (``in_table``) ``|`` is ``\\|``, which GitHub's tables
    read as a literal bar inside a span too.

    >>> markdown_code("-y*log(h)")
    '`-y*log(h)`'
    >>> markdown_code("a``b")
    '``` a``b ```'
    >>> markdown_code("h | y", in_table=True)
    '`h \\\\| y`'
    """
    text = "".join(c if c.isprintable() else " " for c in " ".join(str(value).splitlines()))
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (_longest_backtick_run(text) + 1)
    if len(fence) > 1 or text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for character in text:
        current = current + 1 if character == "`" else 0
        longest = max(longest, current)
    return longest


def strict_json(value: object, **options) -> str:
    """``json.dumps`` that writes strict JSON: a non-finite float is ``"inf"``/``"-inf"``
    (as :func:`symloss.analysis.to_json` writes infinities) or ``null`` (NaN), never the
    bare ``Infinity``/``NaN`` that strict parsers refuse (``allow_nan=False`` guards it).

    >>> strict_json({"best": float("inf"), "median": float("nan"), "p": [0.5]})
    '{"best": "inf", "median": null, "p": [0.5]}'
    """
    import json

    return json.dumps(finite(value), allow_nan=False, **options)


def finite(value: object) -> object:
    """``value`` with every non-finite float replaced as :func:`strict_json` does."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
