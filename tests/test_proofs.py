"""The papers' claims as executable proofs (proofs/): each reaches its declared verdict.

Oracle: each proof module's ``EXPECTED`` — the verdict its docstring argues for
(CONFIRMED, CORRECTED or REFUTED). A failing step raises; a changed verdict fails.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from symloss.proofs import Mismatch, Proof, StepFailed, Verdict, proof_modules, run
from symloss.proofs._framework import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
MODULES = proof_modules()


def test_every_required_place_has_a_proof():
    required = {"iclr_section3_gamma_decompositions", "iclr_appendix_b_zero_error_coefficients",
                "iclr_section4_1_zero_error_mse_cross_entropy",
                "iclr_section4_1_taylorglo_zero_error", "iclr_theorem1_baikal_zero_error",
                "iclr_theorem2_entropy_criticality", "iclr_appendix_c_null_epoch",
                "iclr_theorem3_invariant", "iclr_appendix_d2_label_smoothing",
                "glo_section5a_binary_minima", "glo_section3_baikal_in_search_space"}
    assert required <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_proof_reaches_its_expected_verdict(name):
    module = importlib.import_module(f"symloss.proofs.{name}")
    assert module.EXPECTED in VERDICTS
    assert module.CLAIM and module.PLACE and module.__doc__
    assert "Verdict." in module.__doc__, "the docstring must state the verdict it argues for"
    verdict = module.prove()
    assert isinstance(verdict, Verdict)
    assert verdict.verdict == module.EXPECTED, verdict.reason
    assert verdict.steps > 0
    if verdict.verdict != "CONFIRMED":
        assert verdict.mismatches, "a CORRECTED/REFUTED verdict must name what the paper got wrong"


def test_printed_numbers_of_eq_30_are_checked():
    # ICLR App. C eq. 30: −373.917 − 13.0264 − 0.112188 = −387.055588 ≠ −386.9546188 (printed).
    verdict = run("iclr_appendix_c_null_epoch").verdict
    assert verdict is not None
    assert Mismatch("eq. 30, γ_N at n = 10 (y = 0)", "-386.9546188", "-387.055588") in \
        verdict.mismatches


def test_a_failing_step_names_itself():
    with pytest.raises(StepFailed, match="'x is x plus one'"):
        Proof().identity("x is x plus one", 1, 2)
    with pytest.raises(StepFailed, match="spot check 'numbers'"):
        Proof().spot_check("numbers", False)


def test_number_rounds_to_the_printed_digits():
    proof = Proof()
    assert proof.number("rounds", "0.71", 0.7071)
    assert not proof.number("does not", "0.7", 0.76)
    assert proof.mismatches == [Mismatch("does not", "0.7", "0.76")]


def test_verdict_rejects_unknown_outcomes():
    with pytest.raises(ValueError, match="'MAYBE'"):
        Verdict("MAYBE", "no")


def test_unknown_module_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "symloss.proofs", "no_such_proof"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown proof module" in result.stderr


@pytest.mark.slow
def test_cli_json_runs_every_proof_and_exits_zero():
    result = subprocess.run([sys.executable, "-m", "symloss.proofs", "--json"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {row["module"] for row in report["proofs"]} == set(MODULES)
    assert all(row["verdict"] == row["expected"] for row in report["proofs"])


def test_cli_markdown_has_a_table():
    result = subprocess.run([sys.executable, "-m", "symloss.proofs", "--markdown",
                             "glo_section3_baikal_in_search_space"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0
    assert result.stdout.startswith("| claim | place in paper | verdict | reason |")


@pytest.mark.parametrize("module", ["symloss.proofs", "symloss.proofs._framework"])
def test_doctests(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
