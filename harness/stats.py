"""The one statistical test every comparison here uses: a one-sided Welch t-test.

H1: the candidate's mean accuracy exceeds the baseline's (ICLR Table 1's test);
unequal variances, so seeds of two losses need not spread alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def welch_p_value(candidate: Sequence[float | None],
                  baseline: Sequence[float | None]) -> float | None:
    """One-sided Welch p that ``candidate`` beats ``baseline``; ``None`` below two values each.

    ``None`` entries (failed runs) are left out. Two constant samples give 0 or 1.

    >>> welch_p_value([0.9, 0.91, 0.92], [0.8, 0.81, 0.82]) < 0.001
    True
    >>> welch_p_value([0.8, 0.81, 0.82], [0.9, 0.91, 0.92]) > 0.999  # the other tail
    True
    >>> welch_p_value([0.9], [0.8, 0.81]) is None
    True
    """
    a = [float(v) for v in candidate if v is not None and math.isfinite(v)]
    b = [float(v) for v in baseline if v is not None and math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) > np.mean(b) else 1.0
    from scipy import stats

    p_value = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return p_value if math.isfinite(p_value) else None
