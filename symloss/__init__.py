"""symloss: derive the learning dynamics of any classification loss.

A loss is the per-class term ``ℓ(y, h)`` (docs/conventions.md §1); everything else is derived
from its sympy expression.

>>> import symloss
>>> result = symloss.analyze(symloss.loss("baikal"), classes=10)
>>> result.null_epoch.trainable, result.zero_error.attractor
(True, False)
"""

from symloss.analysis import Analysis, analyze, to_json
from symloss.binary import BinaryView, binary_loss, binary_view
from symloss.catalog import CATALOG, family, loss, taylorglo, taylorglo_terms
from symloss.curves import attraction_table, plot_attraction, plot_binary
from symloss.dynamics import (
    NullEpoch,
    ZeroError,
    attraction,
    attraction_function,
    decompose,
    delta,
    delta_function,
    gamma,
    gamma_nontarget,
    gamma_target,
    labels,
    logit_step,
    null_epoch,
    zero_error,
    zero_error_polynomial,
)
from symloss.formula import FormulaError, parse_formula
from symloss.loss import Loss
from symloss.smoothing import SmoothingMap, label_smoothing_map
from symloss.stability import (
    Basin,
    Equilibrium,
    Stability,
    implied_smoothing,
    stability,
)
from symloss.stability_batch import Basins, FamilyStability, family_stability
from symloss.trainability import (
    CandidateFilter,
    candidate_filter,
    is_trainable,
    paper_condition,
    paper_trainable,
    trainability_condition,
)

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "Analysis",
    "Basin",
    "Basins",
    "BinaryView",
    "CandidateFilter",
    "Equilibrium",
    "FamilyStability",
    "FormulaError",
    "Loss",
    "NullEpoch",
    "SmoothingMap",
    "Stability",
    "ZeroError",
    "analyze",
    "attraction",
    "attraction_function",
    "attraction_table",
    "binary_loss",
    "binary_view",
    "candidate_filter",
    "decompose",
    "delta",
    "delta_function",
    "family",
    "family_stability",
    "gamma",
    "gamma_nontarget",
    "gamma_target",
    "implied_smoothing",
    "is_trainable",
    "label_smoothing_map",
    "labels",
    "logit_step",
    "loss",
    "null_epoch",
    "paper_condition",
    "paper_trainable",
    "parse_formula",
    "plot_attraction",
    "plot_binary",
    "stability",
    "taylorglo",
    "taylorglo_terms",
    "to_json",
    "trainability_condition",
    "zero_error",
    "zero_error_polynomial",
]
