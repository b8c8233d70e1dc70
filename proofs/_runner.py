"""Discover the proof modules, run them, and render the outcome table.

A run *fails* when a step raises or when the verdict differs from the module's
``EXPECTED``; CONFIRMED, CORRECTED and REFUTED are all legitimate outcomes.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
import traceback
from dataclasses import dataclass

import symloss.proofs
from symloss.proofs._framework import Verdict


@dataclass(frozen=True)
class Outcome:
    """One proof module's run: its declared claim and place, and what came of it."""

    module: str
    claim: str
    place: str
    expected: str
    verdict: Verdict | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.verdict is not None and \
            self.verdict.verdict == self.expected

    @property
    def status(self) -> str:
        if self.error is not None:
            return "FAILED"
        assert self.verdict is not None
        if self.verdict.verdict != self.expected:
            return f"{self.verdict.verdict} (expected {self.expected})"
        return self.verdict.verdict

    @property
    def reason(self) -> str:
        if self.error is not None:
            return self.error
        assert self.verdict is not None
        return self.verdict.reason


#: Reading order: the ICLR paper front to back, then GLO; modules not listed come last.
ORDER = (
    "iclr_section3_gamma_decompositions", "iclr_appendix_b_zero_error_coefficients",
    "iclr_section4_1_zero_error_mse_cross_entropy", "iclr_theorem1_baikal_zero_error",
    "iclr_section4_1_taylorglo_zero_error", "iclr_theorem2_entropy_criticality",
    "iclr_appendix_e_attraction_curves", "iclr_appendix_c_null_epoch",
    "iclr_theorem3_invariant", "iclr_table1_p_values", "iclr_appendix_d2_label_smoothing",
    "glo_section3_baikal_in_search_space", "glo_section5a_binary_minima",
)


def proof_modules() -> list[str]:
    """The names of the proof modules under ``proofs/`` (those not starting with ``_``)."""
    names = [info.name for info in pkgutil.iter_modules(symloss.proofs.__path__)
             if not info.name.startswith("_") and not info.ispkg]
    return sorted(names, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER),
                                           name))


def run(name: str) -> Outcome:
    """Import ``proofs.<name>`` and run its ``prove()``; exceptions become a failed outcome."""
    module = importlib.import_module(f"symloss.proofs.{name}")
    claim, place = getattr(module, "CLAIM", "?"), getattr(module, "PLACE", "?")
    expected = getattr(module, "EXPECTED", "?")
    start = time.perf_counter()
    try:
        verdict = module.prove()
        error = None
        if not isinstance(verdict, Verdict):
            verdict, error = None, f"prove() returned {type(verdict).__name__}, not a Verdict"
    except Exception as exception:  # a failed step is an outcome to report, not a crash
        verdict = None
        frames = [frame for frame in traceback.extract_tb(exception.__traceback__)
                  if frame.filename.endswith(f"{name}.py")]
        where = f" ({name}.py line {frames[-1].lineno})" if frames else ""
        error = f"{type(exception).__name__}: {exception}{where}"
    return Outcome(name, claim, place, expected, verdict, error, time.perf_counter() - start)


def run_all() -> list[Outcome]:
    return [run(name) for name in proof_modules()]


def to_json(outcomes: list[Outcome]) -> str:
    rows = []
    for outcome in outcomes:
        verdict = outcome.verdict
        rows.append({
            "module": outcome.module, "claim": outcome.claim, "place": outcome.place,
            "expected": outcome.expected, "verdict": verdict.verdict if verdict else None,
            "ok": outcome.ok, "reason": outcome.reason,
            "steps": verdict.steps if verdict else 0,
            "spot_checks": verdict.spot_checks if verdict else 0,
            "mismatches": [m._asdict() for m in verdict.mismatches] if verdict else [],
            "seconds": round(outcome.seconds, 3),
        })
    return json.dumps({"ok": all(o.ok for o in outcomes), "proofs": rows}, indent=2,
                      ensure_ascii=False)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(outcomes: list[Outcome]) -> str:
    lines = ["| claim | place in paper | verdict | reason |", "| --- | --- | --- | --- |"]
    lines += [f"| {_escape(o.claim)} | {_escape(o.place)} | **{o.status}** | {_escape(o.reason)} |"
              for o in outcomes]
    mismatches = [(o, m) for o in outcomes if o.verdict for m in o.verdict.mismatches]
    if mismatches:
        lines += ["", "Mismatches with the papers' printed values:", "",
                  "| place | what | paper | recomputed |", "| --- | --- | --- | --- |"]
        lines += [f"| {_escape(o.place)} | {_escape(m.what)} | {_escape(m.paper)} | "
                  f"{_escape(m.recomputed)} |" for o, m in mismatches]
    return "\n".join(lines)


def to_text(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        verdict = o.verdict
        counts = (f"{verdict.steps} steps, {verdict.spot_checks} spot checks"
                  if verdict else "")
        lines += [f"{o.status:<10} {o.place}  [{o.module}, {o.seconds:.2f} s] {counts}",
                  f"           claim:  {o.claim}",
                  f"           reason: {o.reason}"]
    mismatches = [(o, m) for o in outcomes if o.verdict for m in o.verdict.mismatches]
    if mismatches:
        lines += ["", "Mismatches with the papers' printed values:"]
        lines += [f"  [{o.place}] {m.what}\n      paper: {m.paper}\n      recomputed: "
                  f"{m.recomputed}" for o, m in mismatches]
    failed = [o for o in outcomes if not o.ok]
    lines += ["", f"{len(outcomes) - len(failed)}/{len(outcomes)} proofs completed with their "
              "expected verdict" + (f"; FAILED: {', '.join(o.module for o in failed)}"
                                    if failed else ".")]
    return "\n".join(lines)
