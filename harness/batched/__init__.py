"""Population-batched training: K candidates' models trained in one pass.

Modules: :mod:`~symloss.harness.batched.layers` (stacked layers, forward and backward),
:mod:`~symloss.harness.batched.network` (which models batch, the two backends),
:mod:`~symloss.harness.batched.loss` (the population's loss and its derived gradient),
:mod:`~symloss.harness.batched.optim` (stacked SGD, clipping),
:mod:`~symloss.harness.batched.memory` (how many candidates fit a chunk),
:mod:`~symloss.harness.batched.loop` (chunks, the training loop, results).

A search spends nearly all of its time in short trainings of small models, one
candidate after another. :func:`train_population` trains K of them at once:
their weights are stacked along a leading axis (``[K, ...]``), one data batch
feeds all K models, each candidate's loss term is evaluated on its own logits,
and each candidate gets the gradient of its own loss (no parameter is shared,
so the gradient of the K losses' sum is every candidate's own). SGD is
elementwise, so one update of the stacked tensors is K independent updates
(torch's fused SGD kernel).

Two backends:

* ``"kernels"`` — hand-batched layers, forward *and* backward written out, no
  autograd graph: the first layer, whose input is the shared batch, is one
  matmul with the K weight matrices stacked; later :class:`~torch.nn.Linear`
  layers are batched matmuls, :class:`~torch.nn.Conv1d` layers unfold + batched
  matmul. The loss's gradient with respect to the logits comes from the derived
  ``∂ℓ/∂log h`` (log space: finite where ``h`` underflows; autograd where
  ``log(1−h)`` or a precise ``log h`` is needed; :mod:`symloss.harness.codegen`,
  sympy's derivative printed to torch next to ``ℓ``, common subexpressions once)
  and the softmax Jacobian. Supports ``Linear``, ``Conv1d``, ``Conv2d`` (one grouped
  convolution for the K candidates), ``MaxPool2d``, ``ReLU``, ``Flatten``,
  ``Unflatten``, ``Identity``, ``Dropout`` in (nested) ``Sequential`` models: the
  harness's ``mlp``, ``cnn1d`` and ``glo_mnist_cnn``.
* ``"vmap"`` — ``torch.func.vmap`` over ``functional_call`` with the weights
  from ``torch.func.stack_module_state``, autograd for the model's backward:
  any model without BatchNorm (whose running statistics would couple the
  candidates).

``benchmarks/run.py`` measures both; ``"auto"`` picks ``"kernels"`` where it
applies (it was the faster one on every model measured, see
``benchmarks/RESULTS.md``) and ``"vmap"`` elsewhere.

Per-candidate isolation: a candidate whose training loss turns non-finite is
marked ``diverged`` at that step, exactly as :func:`symloss.harness.train.train` would
(its parameters are those of the last finite step); its slot is then frozen
(parameters and momentum zeroed, gradients discarded), so it cannot touch the
others. Dropout masks are drawn per element, hence independently per
candidate. Optional gradient clipping (``clip_norm``) is per candidate.

Same seed ⇒ same run: each candidate is initialized by building the model under
``torch.manual_seed(seed)`` and sees the batches of
``torch.randperm(..., generator=Generator().manual_seed(seed))``, as in
:func:`symloss.harness.train.train`, so the result matches training the candidates one
by one up to floating-point summation order (``tests/test_batched.py``). The
seed may differ per candidate (K seeds of one loss): each then has its own
initialization and its own batches (``[K, B, ...]`` data).

>>> from symloss.harness.train import TrainConfig
>>> from symloss.catalog import loss
>>> results = train_population([loss("cross_entropy"), loss("mse")], "digits",
...                            TrainConfig(steps=20, model="mlp"), seed=0)
>>> [(r.status, r.metrics["steps"]) for r in results]
[('ok', 20), ('ok', 20)]
"""

from symloss.harness.batched.loop import train_population
from symloss.harness.batched.loss import PopulationLoss
from symloss.harness.batched.memory import MAX_CHUNK, MEMORY_FRACTION, population_chunk
from symloss.harness.batched.network import (
    BACKENDS,
    BATCHED_MODELS,
    COUPLING_LAYERS,
    KERNEL_LAYERS,
    batching_pays,
    kernel_backend_applies,
    supports,
    supports_model,
)

__all__ = [
    "BACKENDS",
    "BATCHED_MODELS",
    "COUPLING_LAYERS",
    "KERNEL_LAYERS",
    "MAX_CHUNK",
    "MEMORY_FRACTION",
    "PopulationLoss",
    "batching_pays",
    "kernel_backend_applies",
    "population_chunk",
    "supports",
    "supports_model",
    "train_population",
]
