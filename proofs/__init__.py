"""The papers' claims as executable proofs (one module per claim).

Each proof module states its claim in its docstring and exposes ``CLAIM`` (one
line), ``PLACE`` (where in which paper), ``EXPECTED`` (the verdict it should reach)
and ``prove() -> Verdict``. ``python -m symloss.proofs`` runs them all and prints a table;
see :mod:`symloss.proofs._runner`.

A ``prove()`` may run past the ~60-line aim for functions (seven do, 61–112 lines): it
is the proof's derivation written as the paper reads, one step after another, each a
named ``Proof.step``; cut into helpers, the chain a reader checks against the paper
would be scattered over the module.

>>> "iclr_theorem1_baikal_zero_error" in proof_modules()
True
"""

from symloss.proofs._framework import Mismatch, Proof, StepFailed, Verdict
from symloss.proofs._runner import Outcome, proof_modules, run, run_all

__all__ = ["Mismatch", "Outcome", "Proof", "StepFailed", "Verdict", "proof_modules", "run",
           "run_all"]
