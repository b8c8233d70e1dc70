"""Which models train population-batched, and the two backends that stack them.

``kernels`` (:class:`_KernelNet`): the stacked layers of
:mod:`symloss.harness.batched.layers`, forward and backward written out, no autograd.
``vmap`` (:class:`_VmapNet`): ``torch.func.vmap`` over ``functional_call``, the
backward pass autograd's; any model without BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from symloss.harness.batched.layers import DATA_LAYOUTS, OPS, _Logits, kernel_op
from symloss.harness.models import Normalized, build_model  # noqa: F401  (doctests)

BACKENDS = ("auto", "kernels", "vmap")

#: Layers the ``kernels`` backend batches by hand.
KERNEL_LAYERS = tuple(kind for kind, _ in OPS)

#: Modules whose state couples a batch's samples across steps (running statistics).
COUPLING_LAYERS = (nn.modules.batchnorm._BatchNorm,)


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def kernel_backend_applies(model: nn.Module) -> bool:
    """True when every layer of ``model`` (inside ``Normalized``) is one of :data:`KERNEL_LAYERS`.

    >>> kernel_backend_applies(build_model("cnn1d", input_shape=(40,), classes=10))
    True
    >>> kernel_backend_applies(build_model("glo_mnist_cnn", input_shape=(1, 28, 28), classes=10))
    True
    """
    inner = model.model if isinstance(model, Normalized) else model
    for leaf in _leaves(inner):
        if not isinstance(leaf, KERNEL_LAYERS):
            return False
        if isinstance(leaf, nn.Conv1d) and (leaf.groups != 1 or leaf.padding_mode != "zeros"
                                            or isinstance(leaf.padding, str)
                                            or leaf.dilation != (1,)):
            return False
        if isinstance(leaf, nn.Conv2d) and (leaf.groups != 1 or leaf.padding_mode != "zeros"
                                            or isinstance(leaf.padding, str)):
            return False
        if isinstance(leaf, nn.MaxPool2d) and leaf.return_indices:
            return False
        if isinstance(leaf, nn.Flatten) and (leaf.start_dim != 1 or leaf.end_dim != -1):
            return False
        if isinstance(leaf, nn.Unflatten) and leaf.dim != 1:
            return False
    return True


def supports(model: nn.Module) -> bool:
    """True when ``model`` can be trained population-batched (no BatchNorm coupling).

    >>> supports(build_model("preresnet20", input_shape=(3, 32, 32), classes=10))
    False
    """
    return not any(isinstance(m, COUPLING_LAYERS) for m in model.modules())


#: Registry models without BatchNorm, trained batched (GLO's CIFAR net augments per sample:
#: one by one).
BATCHED_MODELS = frozenset({"mlp", "cnn1d", "glo_mnist_cnn", "allcnn_c"})


#: Registry models that are compute-bound on a CPU: one model already keeps the cores busy,
#: and stacking K measured slower than one by one (GLO CNN, K = 3: 0.88×,
#: ``benchmarks/bench_glo_cnn.py``).
CPU_BOUND_MODELS = frozenset({"glo_mnist_cnn", "allcnn_c"})


def batching_pays(name: str, options: dict[str, object] | None = None,
                  device: str | None = None) -> bool:
    """Whether training candidates of the registry model ``name`` together is the faster
    way on ``device`` (default: CUDA when present): every batchable model on a GPU; on a
    CPU, the small ones.

    >>> batching_pays("cnn1d", device="cpu"), batching_pays("glo_mnist_cnn", device="cpu")
    (True, False)
    """
    from symloss.harness.device import resolve_device
    from symloss.harness.models import resolve_model

    if not supports_model(name, options):
        return False
    key, _ = resolve_model(name)
    return resolve_device(device).type != "cpu" or key not in CPU_BOUND_MODELS


def supports_model(name: str, options: dict[str, object] | None = None) -> bool:
    """Whether :func:`train_population` batches the registry model ``name``.

    >>> supports_model("cnn1d"), supports_model("preresnet20"), supports_model("allcnn_c",
    ...     {"batch_norm": True})
    (True, False, False)
    """
    from symloss.harness.models import resolve_model

    key, _ = resolve_model(name)
    return key in BATCHED_MODELS and not (options or {}).get("batch_norm")


class _KernelNet:
    """The ``kernels`` backend: K stacked models, forward and backward written out.

    ``net(params, x, training=...)`` gives the logits ``[K, B, classes]``;
    ``net.forward(params, x, training=True, tape=[])`` also records what the
    backward pass needs, and ``net.backward(params, tape, grad)`` returns every
    stacked parameter's gradient — no autograd graph: on these small models
    autograd's bookkeeping, its copies and its allocations cost more than the
    arithmetic (measured 2.3× slower per step at K = 20, ``benchmarks/run.py``).

    Layouts while running: ``shared`` (``[B, ...]``, the same for every candidate:
    the data, before the first layer with parameters), ``kb`` (``[K, B,
    features...]``) and ``kclb`` (``[K, channels, length, B]``, a 1-D convolution's
    activations, so that each convolution is one gather and one batched matmul with
    the batch on the long side: measured much faster on CPU than a grouped
    convolution); 2-D convolutions keep torch's NCHW with the candidates as channel
    groups (:mod:`symloss.harness.batched.layers`). ``per_candidate=True``: ``x`` is
    ``[K, B, ...]``, each candidate's own batch (candidates of different seeds).
    """

    def __init__(self, template: nn.Module):
        self.template = template
        inner = template.model if isinstance(template, Normalized) else template
        self.mean = template.mean if isinstance(template, Normalized) else None
        self.std = template.std if isinstance(template, Normalized) else None
        prefix = "model." if isinstance(template, Normalized) else ""
        names = {id(m): n for n, m in inner.named_modules()}
        self.ops = [kernel_op(layer, prefix + names[id(layer)]) for layer in _leaves(inner)]
        self.ops.append(_Logits())

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor, *,
                 training: bool) -> torch.Tensor:
        return self.forward(params, x, training=training)

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor, *, training: bool,
                tape: list | None = None, per_candidate: bool = False) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        count = next(iter(params.values())).shape[0]
        layout = "kdata" if per_candidate else "shared"
        for op in self.ops:
            x, out_layout, saved = op.forward(params, x, layout, count, training)
            if tape is not None:
                tape.append((op, layout, saved))
            layout = out_layout
        return x

    @staticmethod
    def backward(params: dict[str, torch.Tensor], tape: list,
                 grad: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gradients of ``Σ_k ⟨grad_k, logits_k⟩`` with respect to every stacked parameter."""
        grads: dict[str, torch.Tensor] = {}
        for op, layout, saved in reversed(tape):
            grad = op.backward(params, saved, grad, grads, layout)
            if layout in DATA_LAYOUTS:  # its input is the data: nothing before has parameters
                break
        return grads


class _VmapNet:
    """The ``vmap`` backend: ``functional_call`` of the template, vmapped over the stack;
    the backward pass is autograd's."""

    def __init__(self, template: nn.Module):
        from torch.func import functional_call, vmap

        self.buffers = {n: b for n, b in template.named_buffers()}
        base = template

        def one(params, x):
            return functional_call(base, (params, self.buffers), (x,))

        self.batched = vmap(one, in_dims=(0, None), randomness="different")
        self.each = vmap(one, in_dims=(0, 0), randomness="different")
        self.template = template

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor, *,
                 training: bool, per_candidate: bool = False) -> torch.Tensor:
        self.template.train(training)
        return (self.each if per_candidate else self.batched)(params, x)

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor, *, training: bool,
                tape: list | None = None, per_candidate: bool = False) -> torch.Tensor:
        if tape is None:
            return self(params, x, training=training, per_candidate=per_candidate)
        with torch.enable_grad():
            leaves = {name: value.detach().requires_grad_() for name, value in params.items()}
            logits = self(leaves, x, training=training, per_candidate=per_candidate)
        tape.append((leaves, logits))
        return logits.detach()

    @staticmethod
    def backward(params: dict[str, torch.Tensor], tape: list,
                 grad: torch.Tensor) -> dict[str, torch.Tensor]:
        (leaves, logits), = tape
        found = torch.autograd.grad(logits, list(leaves.values()), grad, allow_unused=True)
        return {name: torch.zeros_like(leaf) if value is None else value
                for (name, leaf), value in zip(leaves.items(), found, strict=True)}


def _network_for(template: nn.Module, backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "kernels" or (backend == "auto" and kernel_backend_applies(template)):
        if not kernel_backend_applies(template):
            raise ValueError(f"the kernels backend does not batch {type(template).__name__}; "
                             "use backend='vmap'")
        return _KernelNet(template)
    return _VmapNet(template)
