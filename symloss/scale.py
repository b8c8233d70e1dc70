"""The two loss scales, and the learning rate that carries one into the other.

The papers' equations write the loss as ``L = (1/n) Σ_k ℓ(y_k, h_k)`` (ICLR eq. 3,
TaylorGLO's ``−(1/n) Σ f``), and the analysis keeps that convention: Δ(ε), A(ε)
and the logit step use ``η' = η/n`` (``docs/conventions.md`` §1). Their
experiments cannot have trained with that ``1/n``: on real MNIST with the GLO
CNN at the paper's learning rate 0.01, cross-entropy reaches 0.888 validation
accuracy at 2,000 steps with it and 0.9700 — the GLO paper's figure — without
it. So the trainer's default is the per-sample sum ``Σ_k ℓ(y_k, h_k)``, which
is ``nn.CrossEntropyLoss`` for cross-entropy.

===========  ==============================  ==================================
scale        per-sample loss                 use
===========  ==============================  ==================================
``"sum"``    ``Σ_k ℓ(y_k, h_k)``             training (the default): the papers'
                                             experiments, ``nn.CrossEntropyLoss``
``"paper"``  ``(1/n) Σ_k ℓ(y_k, h_k)``       the papers' equations
===========  ==============================  ==================================

The factor only rescales the step: training with ``"sum"`` at learning rate
``η`` takes the step the analysis describes with ``η_paper = n·η``
(:func:`paper_learning_rate`), which is what attraction logged during training
must use.

>>> paper_learning_rate(0.01, classes=10, scale="sum")
0.1
>>> paper_learning_rate(0.01, classes=10, scale="paper")
0.01
"""

from __future__ import annotations

#: The loss scales, the trainer's default first.
LOSS_SCALES = ("sum", "paper")


def check_scale(scale: str) -> str:
    """``scale`` if it is one of :data:`LOSS_SCALES`, else a ``ValueError`` naming them.

    >>> check_scale("mean")
    Traceback (most recent call last):
    ...
    ValueError: loss scale must be one of ('sum', 'paper'), got 'mean'
    """
    if scale not in LOSS_SCALES:
        raise ValueError(f"loss scale must be one of {LOSS_SCALES}, got {scale!r}")
    return scale


def class_factor(scale: str, classes: int) -> float:
    """What multiplies ``Σ_k ℓ(y_k, h_k)`` in a sample's loss: 1, or ``1/n`` (``"paper"``).

    >>> class_factor("sum", 10), class_factor("paper", 4)
    (1.0, 0.25)
    """
    if int(classes) < 2:
        raise ValueError(f"classes must be at least 2, got {classes!r}")
    return 1.0 if check_scale(scale) == "sum" else 1.0 / int(classes)


def paper_learning_rate(lr: float, classes: int, scale: str) -> float:
    """The papers' ``η`` (their ``1/n`` loss) that takes the same step as ``lr`` on ``scale``.

    One SGD step on ``c·Σ_k ℓ`` with rate ``lr`` is one step on ``(1/n)·Σ_k ℓ`` with
    rate ``lr·c·n``; ``c`` is :func:`class_factor`.
    """
    return float(lr) * class_factor(scale, classes) * int(classes)
