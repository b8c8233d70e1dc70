"""Applications over the symbolic core, the torch harness and the proofs.

``symloss paper`` (:mod:`symloss.reproduce.paper`) reruns the papers' claims: the verdicts
of :mod:`proofs`, figures derived by :mod:`symloss`, trainings by :mod:`harness`.
It lives above all three, so that neither ``harness`` nor ``proofs`` imports the
other.
"""
