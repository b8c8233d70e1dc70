"""Population-batched training: K candidates' models trained in one pass.

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
  ``∂ℓ/∂h`` (:func:`harness.codegen.generate_with_derivative`, sympy's
  derivative printed to torch next to ``ℓ``, common subexpressions once) and
  the softmax Jacobian. Supports ``Linear``, ``Conv1d``, ``ReLU``, ``Flatten``,
  ``Unflatten``, ``Identity``, ``Dropout`` in (nested) ``Sequential`` models: the
  harness's ``mlp`` and ``cnn1d``.
* ``"vmap"`` — ``torch.func.vmap`` over ``functional_call`` with the weights
  from ``torch.func.stack_module_state``, autograd for the model's backward:
  any model without BatchNorm (whose running statistics would couple the
  candidates).

``benchmarks/run.py`` measures both; ``"auto"`` picks ``"kernels"`` where it
applies (it was the faster one on every model measured, see
``benchmarks/RESULTS.md``) and ``"vmap"`` elsewhere.

Per-candidate isolation: a candidate whose training loss turns non-finite is
marked ``diverged`` at that step, exactly as :func:`harness.train.train` would
(its parameters are those of the last finite step); its slot is then frozen
(parameters and momentum zeroed, gradients discarded), so it cannot touch the
others. Dropout masks are drawn per element, hence independently per
candidate. Optional gradient clipping (``clip_norm``) is per candidate.

Same seed ⇒ same run: each candidate is initialized by building the model under
``torch.manual_seed(seed)`` and sees the batches of
``torch.randperm(..., generator=Generator().manual_seed(seed))``, as in
:func:`harness.train.train`, so the result matches training the candidates one
by one up to floating-point summation order (``tests/test_batched.py``).

>>> from symloss.catalog import loss
>>> results = train_population([loss("cross_entropy"), loss("mse")], "digits",
...                            TrainConfig(steps=20, model="mlp"), seed=0)
>>> [(r.status, r.metrics["steps"]) for r in results]
[('ok', 20), ('ok', 20)]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from harness.codegen import generate, generate_with_derivative
from harness.data import Dataset, load_dataset
from harness.device import resolve_device, torch_threads
from harness.models import Normalized, build_model
from harness.train import TrainConfig, TrainResult, learning_rate_factor, train
from symloss.loss import Loss

BACKENDS = ("auto", "kernels", "vmap")

#: Layers the ``kernels`` backend batches by hand.
KERNEL_LAYERS = (nn.Linear, nn.Conv1d, nn.ReLU, nn.Flatten, nn.Unflatten, nn.Identity,
                 nn.Dropout)

#: Modules whose state couples a batch's samples across steps (running statistics).
COUPLING_LAYERS = (nn.modules.batchnorm._BatchNorm,)

#: Fraction of free memory a population chunk may plan to use, and the cap on K per chunk.
MEMORY_FRACTION = 0.5
MAX_CHUNK = 256


# Which models batch ------------------------------------------------------------------------


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def kernel_backend_applies(model: nn.Module) -> bool:
    """True when every layer of ``model`` (inside ``Normalized``) is one of :data:`KERNEL_LAYERS`.

    >>> kernel_backend_applies(build_model("cnn1d", input_shape=(40,), classes=10))
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


def supports_model(name: str, options: dict[str, object] | None = None) -> bool:
    """Whether :func:`train_population` batches the registry model ``name``.

    >>> supports_model("cnn1d"), supports_model("preresnet20"), supports_model("allcnn_c",
    ...     {"batch_norm": True})
    (True, False, False)
    """
    from harness.models import resolve_model

    key, _ = resolve_model(name)
    return key in BATCHED_MODELS and not (options or {}).get("batch_norm")


# Stacked forward ---------------------------------------------------------------------------


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
    convolution).
    """

    def __init__(self, template: nn.Module):
        self.template = template
        inner = template.model if isinstance(template, Normalized) else template
        self.mean = template.mean if isinstance(template, Normalized) else None
        self.std = template.std if isinstance(template, Normalized) else None
        prefix = "model." if isinstance(template, Normalized) else ""
        names = {id(m): n for n, m in inner.named_modules()}
        self.ops = [_kernel_op(layer, prefix + names[id(layer)]) for layer in _leaves(inner)]
        self.ops.append(_Logits())

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor, *,
                 training: bool) -> torch.Tensor:
        return self.forward(params, x, training=training)

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor, *, training: bool,
                tape: list | None = None) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        count = next(iter(params.values())).shape[0]
        layout = "shared"
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
            if layout == "shared":  # its input is the data: nothing before has parameters
                break
        return grads


def _kernel_op(layer: nn.Module, name: str):
    for kind, op in ((nn.Linear, _Linear), (nn.Conv1d, _Conv1d), (nn.ReLU, _ReLU),
                     (nn.Dropout, _Dropout), (nn.Flatten, _Flatten), (nn.Unflatten, _Unflatten),
                     (nn.Identity, _Identity)):
        if isinstance(layer, kind):
            return op(layer, name)
    raise ValueError(f"the kernels backend does not batch {type(layer).__name__}")


class _Op:
    """One layer of the K stacked models.

    ``forward(params, x, layout, count, training) → (y, layout of y, saved)``;
    ``backward(params, saved, grad, grads, layout) → gradient w.r.t. x`` (in x's
    ``layout``), adding the layer's parameter gradients to ``grads``.
    """

    def __init__(self, layer: nn.Module, name: str):
        self.layer, self.name = layer, name


class _Identity(_Op):
    def forward(self, params, x, layout, count, training):
        return x, layout, None

    def backward(self, params, saved, grad, grads, layout):
        return grad


class _Linear(_Op):
    """``y = x Wᵀ + b`` for K stacked layers, computed as ``yᵀ = W xᵀ + b``.

    The activations are ``[K, B, features]`` views of ``[K, features, B]`` memory:
    each product then has the batch as its long side, which MKL runs much faster
    than few columns (measured 2.6× for the logits, ``[20, 100] × [100, 10]``), and a
    shared input needs no copy into per-candidate order. Weight gradients as ``gᵀx``
    straight into the weights' ``[K, out, in]`` layout.
    """

    def forward(self, params, x, layout, count, training):
        weight, bias = params[self.name + ".weight"], params.get(self.name + ".bias")
        if layout == "kclb":
            raise NotImplementedError("Linear on a convolution's output without Flatten")
        if layout == "shared":  # one matmul with the K weight matrices stacked: [K·out, B]
            flat = weight.reshape(-1, weight.shape[-1])
            out = (torch.addmm(bias.reshape(-1, 1), flat, x.t()) if bias is not None
                   else flat @ x.t())
            return out.view(count, -1, x.shape[0]).transpose(1, 2), "kb", x
        if bias is not None:
            out = torch.baddbmm(bias.unsqueeze(2), weight, x.transpose(1, 2))
        else:
            out = torch.bmm(weight, x.transpose(1, 2))
        return out.transpose(1, 2), "kb", x

    def backward(self, params, saved, grad, grads, layout):
        weight = params[self.name + ".weight"]
        x = saved.expand(weight.shape[0], *saved.shape) if layout == "shared" else saved
        grads[self.name + ".weight"] = torch.bmm(grad.transpose(1, 2), x)
        if self.name + ".bias" in params:
            grads[self.name + ".bias"] = grad.sum(1)
        if layout == "shared":
            return None
        return torch.bmm(weight.transpose(1, 2), grad.transpose(1, 2)).transpose(1, 2)


class _Conv1d(_Op):
    """K stacked 1-D convolutions as unfold + (batched) matmul, output ``kclb``.

    Activations are ``[K, C, L, B]``: the batch innermost, so that every gather and
    every strided add moves rows of B contiguous numbers. The patches are gathered
    once as ``[K, C·k, L'·B]``, one strided copy per kernel tap straight from the
    input (no padded copy), and each product is ``W [K, C', C·k] × patches``: the
    length times the batch is the long side, the output lands in ``[K, C', L', B]``
    and the weights keep their ``[K, C', C, k]`` layout. A ``shared`` input (the
    data) is one matmul against all K filter banks; the input gradient is folded
    back with one strided add per tap (autograd's ``unfold_backward`` and its copies
    measured several times slower). On ``cnn1d`` at K = 20 this measured 1.2–1.5× per
    step against the pad-and-unfold version it replaced (interleaved runs).
    """

    def forward(self, params, x, layout, count, training):
        weight, bias = params[self.name + ".weight"], params.get(self.name + ".bias")
        outputs = weight.shape[1]
        if layout == "shared":  # x [B, C, L]: one matmul against all K filter banks
            columns = self._columns(x.permute(1, 2, 0), *self._taps(x.shape[-1]))  # [C,k,L',B]
            length, batch = columns.shape[2:]
            columns = columns.view(-1, length * batch)
            flat = weight.reshape(count * outputs, -1)
            out = (torch.addmm(bias.reshape(-1, 1), flat, columns) if bias is not None
                   else flat @ columns)
            return out.view(count, outputs, length, batch), "kclb", columns
        if layout == "kb":  # [K, B, C, L] → [K, C, L, B]
            x = x.permute(0, 2, 3, 1)
        elif layout != "kclb":
            raise NotImplementedError(f"Conv1d on {layout} activations")
        length, taps = self._taps(x.shape[-2])
        columns = self._columns(x, length, taps)  # [K, C, k, L', B]
        batch = columns.shape[-1]
        columns = columns.view(count, -1, length * batch)
        flat = weight.reshape(count, outputs, -1)
        out = (torch.baddbmm(bias.unsqueeze(2), flat, columns) if bias is not None
               else torch.bmm(flat, columns))
        return out.view(count, outputs, length, batch), "kclb", (columns, x.shape[-2], length, taps)

    def _taps(self, size: int) -> tuple[int, list[tuple[int, int, int, slice]]]:
        """Output length, and per kernel tap the output positions ``lo:hi`` that read
        inside the input (the rest read the zero padding) and the input slice they read."""
        (kernel,), (stride,), (padding,) = (self.layer.kernel_size, self.layer.stride,
                                            self.layer.padding)
        length = (size + 2 * padding - kernel) // stride + 1
        taps = []
        for tap in range(kernel):
            lo = max(0, -((tap - padding) // stride))  # ceil((padding − tap) / stride)
            hi = min(length, (size - 1 - tap + padding) // stride + 1)
            start = tap + stride * lo - padding
            hi = max(lo, hi)
            taps.append((tap, lo, hi, slice(start, start + stride * max(hi - lo - 1, 0) + 1,
                                            stride)))
        return length, taps

    @staticmethod
    def _columns(x: torch.Tensor, length: int, taps: list) -> torch.Tensor:
        """``x [..., C, L, B]`` → the patches ``[..., C, k, L', B]``: one strided copy per tap
        (:meth:`_taps`) straight from ``x`` (no padded copy of the input), zeros where a tap
        reads padding."""
        columns = x.new_empty(*x.shape[:-2], len(taps), length, x.shape[-1])
        for tap, lo, hi, source in taps:
            target = columns[..., tap, :, :]
            if hi > lo:
                target[..., lo:hi, :].copy_(x[..., source, :])
            target[..., :lo, :].zero_()
            target[..., hi:, :].zero_()
        return columns

    def backward(self, params, saved, grad, grads, layout):
        weight, name = params[self.name + ".weight"], self.name
        count, outputs, channels, kernel = weight.shape
        grad = grad.reshape(count, outputs, -1)  # [K, C', B·L']
        if name + ".bias" in params:
            grads[name + ".bias"] = grad.sum(2)
        if layout == "shared":
            grads[name + ".weight"] = (grad.reshape(count * outputs, -1) @ saved.t()).view(
                weight.shape)
            return None
        columns, size, length, taps = saved
        flat = weight.reshape(count, outputs, -1)
        grads[name + ".weight"] = torch.bmm(grad, columns.transpose(1, 2)).view(weight.shape)
        batch = grad.shape[2] // length
        spread = torch.bmm(flat.transpose(1, 2), grad).view(count, channels, kernel, length,
                                                           batch)
        grad_x = grad.new_zeros(count, channels, size, batch)
        for tap, lo, hi, source in taps:
            if hi > lo:
                grad_x[..., source, :].add_(spread[:, :, tap, lo:hi, :])
        return grad_x.permute(0, 3, 1, 2) if layout == "kb" else grad_x


class _ReLU(_Op):
    """In place on our own intermediates (never on the shared data); backward as autograd's."""

    def forward(self, params, x, layout, count, training):
        if layout == "shared":
            return torch.relu(x), layout, None
        return torch.relu_(x), layout, x

    def backward(self, params, saved, grad, grads, layout):
        return torch.ops.aten.threshold_backward(grad, saved, 0)


class _Dropout(_Op):
    """Masks drawn per element of ``[K, B, ...]``: independent per candidate."""

    def forward(self, params, x, layout, count, training):
        p = self.layer.p
        if not training or p == 0:
            return x, layout, None
        if layout == "shared":  # independent masks need per-candidate activations
            x, layout = x.unsqueeze(0).expand(count, *x.shape), "kb"
        mask = torch.empty_like(x)
        if p == 1:
            mask.zero_()
        else:
            mask.bernoulli_(1 - p).div_(1 - p)
        return x * mask, layout, mask

    def backward(self, params, saved, grad, grads, layout):
        return grad if saved is None else grad * saved


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """``kclb`` ``[K, C, L, B]`` → ``[K, B, C·L]``, the order of ``nn.Flatten`` on ``[B, C, L]``."""
    return x.permute(0, 3, 1, 2).flatten(2)


def _channels_first_backward(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    count, channels, length, batch = shape
    return grad.reshape(count, batch, channels, length).permute(0, 2, 3, 1)


class _Flatten(_Op):
    def forward(self, params, x, layout, count, training):
        if layout == "shared":
            return x.flatten(1), layout, None
        if layout == "kb":
            return x.flatten(2), layout, x.shape
        return _channels_first(x), "kb", x.shape

    def backward(self, params, saved, grad, grads, layout):
        if layout == "kb":
            return grad.reshape(saved)
        return _channels_first_backward(grad, saved)


class _Unflatten(_Op):
    def forward(self, params, x, layout, count, training):
        if layout == "kclb":
            raise NotImplementedError("Unflatten after a convolution")
        dim = 1 if layout == "shared" else 2
        return x.unflatten(dim, self.layer.unflattened_size), layout, x.shape

    def backward(self, params, saved, grad, grads, layout):
        return grad.reshape(saved)


class _Logits(_Op):
    """The network's output as ``[K, B, classes]`` whatever layout the last layer left."""

    def __init__(self):
        super().__init__(nn.Identity(), "")

    def forward(self, params, x, layout, count, training):
        if layout == "shared":
            return x.unsqueeze(0).expand(count, *x.shape), "kb", None
        if layout == "kclb":
            return _channels_first(x), "kb", x.shape
        return x, layout, None

    def backward(self, params, saved, grad, grads, layout):
        if layout == "kclb":
            return _channels_first_backward(grad, saved)
        return grad


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
        self.template = template

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor, *,
                 training: bool) -> torch.Tensor:
        self.template.train(training)
        return self.batched(params, x)

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor, *, training: bool,
                tape: list | None = None) -> torch.Tensor:
        if tape is None:
            return self(params, x, training=training)
        with torch.enable_grad():
            leaves = {name: value.detach().requires_grad_() for name, value in params.items()}
            logits = self(leaves, x, training=training)
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


# Losses ------------------------------------------------------------------------------------


@dataclass
class _LossGroup:
    """Candidates sharing one generated term (one family, or one GP expression)."""

    function: object
    gradient: object  # (ℓ, ∂ℓ/∂h) in one function, or None: autograd differentiates
    index: torch.Tensor  # positions in the population
    values: tuple[torch.Tensor, ...]  # per-parameter [Kg, 1, 1]

    def value_and_derivative(self, labels: torch.Tensor,
                             h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate mean loss ``[Kg]`` and its derivative with respect to ``h``."""
        scale = 1.0 / (h.shape[1] * h.shape[2])
        if self.gradient is not None:
            terms, derivative = self.gradient(labels, h, self.values)
            return (_expand(terms, h).mean(dim=(1, 2)),
                    _expand(derivative, h) * scale)
        with torch.enable_grad():
            leaf = h.detach().requires_grad_()
            losses = _group_losses(self, labels, leaf)
            derivative, = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), derivative


def _expand(terms, h: torch.Tensor) -> torch.Tensor:
    if not isinstance(terms, torch.Tensor):  # a constant term or derivative
        return h.new_full(h.shape, float(terms))
    return terms if terms.shape == h.shape else terms.expand_as(h)


class PopulationLoss:
    """``forward(logits [K, B, n], target [B]) → per-candidate losses [K]``.

    Each candidate's value is :class:`harness.losses.SymbolicLoss` (reduction
    ``mean``) of its own logits: TaylorGLO members share one generated function
    with λ as per-candidate tensors; GP trees each get theirs (cached by
    :func:`harness.codegen.generate`). :meth:`value_and_grad` gives the values and
    their gradient with respect to the logits from the derived ``∂ℓ/∂h``
    (:func:`harness.codegen.generate_with_derivative`) and the softmax Jacobian,
    without autograd.
    """

    def __init__(self, losses: Sequence[Loss], *, label_smoothing: float = 0.0,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        for loss in losses:
            if loss.is_family:
                raise ValueError(f"loss {loss.name!r} is a family; bind its "
                                 f"{len(loss.parameters)} parameters first")
        self.label_smoothing = float(label_smoothing)
        self.count = len(losses)
        grouped: dict[tuple, list[int]] = {}
        for position, loss in enumerate(losses):
            grouped.setdefault((loss.expr, tuple(loss.parameters)), []).append(position)
        self.groups = []
        for (expr, parameters), positions in grouped.items():
            function = generate(expr, parameters).function  # a loss torch cannot run: raise
            try:
                gradient = generate_with_derivative(expr, parameters).function
            except (NotImplementedError, ValueError):  # a derivative torch cannot print
                gradient = None  # autograd differentiates the loss instead
            table = torch.tensor([list(losses[p].values or ()) for p in positions],
                                 dtype=dtype, device=device).reshape(len(positions), -1)
            values = tuple(table[:, j].reshape(-1, 1, 1) for j in range(table.shape[1]))
            self.groups.append(_LossGroup(function, gradient,
                                          torch.tensor(positions, device=device), values))
        self.single = len(self.groups) == 1

    def _prepare(self, logits: torch.Tensor, target: torch.Tensor, differentiable: bool = True):
        """Probabilities, the clamped ``h`` the loss sees, and the (smoothed) one-hot labels."""
        classes = logits.shape[-1]
        # softmax over the classes taken as dim -2 of the transposed logits: torch's kernel
        # along the last dim is slow for few classes (measured ~10x for [20, 100, 10])
        probabilities = torch.softmax(logits.transpose(-1, -2).contiguous(),
                                      dim=-2).transpose(-1, -2)
        eps = torch.finfo(logits.dtype).eps
        h = (_ClampPassGradient.apply(probabilities, eps) if differentiable
             else probabilities.clamp_min(eps))
        labels = torch.zeros(logits.shape[1:], dtype=logits.dtype, device=logits.device)
        labels.scatter_(-1, target.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        return probabilities, h, labels

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, h, labels = self._prepare(logits, target)
        if self.single:
            return _group_losses(self.groups[0], labels, h)
        losses = logits.new_empty(self.count)
        for group in self.groups:
            losses = losses.index_put((group.index,),
                                      _group_losses(group, labels, h.index_select(0, group.index)))
        return losses

    def value_and_grad(self, logits: torch.Tensor, target: torch.Tensor,
                       active: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate losses ``[K]`` and ``∂(Σ_k loss_k)/∂logits`` ``[K, B, n]``.

        The gradient rows of candidates that are not ``active`` (a boolean ``[K]``;
        ``None``: all are) or whose loss is not finite are zero (what autograd gives
        for ``where(active, loss, 0)``), so they cannot touch the parameters.

        >>> from symloss.catalog import loss
        >>> criterion = PopulationLoss([loss("cross_entropy"), loss("mse")], dtype=torch.float64)
        >>> logits = torch.randn(2, 5, 10, dtype=torch.float64, requires_grad=True)
        >>> target = torch.randint(0, 10, (5,))
        >>> values, grad = criterion.value_and_grad(logits.detach(), target)
        >>> torch.allclose(grad, torch.autograd.grad(criterion(logits, target).sum(), logits)[0])
        True
        """
        with torch.no_grad():
            probabilities, h, labels = self._prepare(logits, target, differentiable=False)
            if self.single:
                losses, derivative = self.groups[0].value_and_derivative(labels, h)
            else:
                losses = logits.new_empty(self.count)
                derivative = torch.empty_like(h)
                for group in self.groups:
                    part, slope = group.value_and_derivative(labels,
                                                             h.index_select(0, group.index))
                    losses.index_copy_(0, group.index, part)
                    derivative.index_copy_(0, group.index, slope)
            if active is not None or not math.isfinite(float(losses.sum())):
                keep = torch.isfinite(losses) if active is None else active & torch.isfinite(
                    losses)
                derivative = torch.where(keep.view(-1, 1, 1), derivative, 0.0)
            # the clamp passes the gradient through; then the softmax Jacobian
            inner = (derivative * probabilities).sum(dim=-1, keepdim=True)
            return losses, probabilities * (derivative - inner)


class _ClampPassGradient(torch.autograd.Function):
    """:func:`harness.losses.clamp_probabilities` (``max(h, eps)``, identity backward).

    The same operation, written with ``forward(ctx, ...)``: that one's ``setup_context``
    form makes every call bind default arguments through ``inspect.signature``
    (measured ~0.2 ms a step, more than the operation).
    """

    @staticmethod
    def forward(ctx, h, eps):
        return h.clamp_min(eps)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _group_losses(group: _LossGroup, labels: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return _expand(group.function(labels, h, group.values), h).mean(dim=(1, 2))


# Training ----------------------------------------------------------------------------------


def _stack(models: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    names = [n for n, _ in models[0].named_parameters()]
    params = [dict(m.named_parameters()) for m in models]
    return {name: torch.stack([p[name].detach() for p in params]) for name in names}


#: Whether torch's fused SGD kernel is used (where this build has it), and on which devices.
FUSED_SGD = hasattr(torch, "_fused_sgd_")
FUSED_SGD_DEVICES = frozenset({"cpu", "cuda"})


def _sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor],
              buffers: list[torch.Tensor | None], lr: float, momentum: float,
              weight_decay: float) -> None:
    """:class:`torch.optim.SGD` (no dampening, no Nesterov), the same operations in order.

    The stacked tensors updated by torch's fused SGD kernel (what ``SGD(fused=True)``
    runs: one pass per tensor, measured 1.4–1.7× faster than the ``_foreach`` ops and
    bitwise equal to them), or, where a build lacks it, each operation once over all
    tensors (``torch._foreach_*``). ``grads`` are this step's own tensors: updated in
    place, and the first step's become the momentum buffers.
    """
    first = any(buffer is None for buffer in buffers)
    # the fused kernel walks the memory of each tensor as the parameter's: same strides
    grads[:] = [grad.contiguous() for grad in grads]
    if momentum and first:
        buffers[:] = [torch.empty_like(grad) for grad in grads]
    if FUSED_SGD and params[0].device.type in FUSED_SGD_DEVICES:
        torch._fused_sgd_(params, grads, buffers if momentum else [], weight_decay=weight_decay,
                          momentum=momentum, lr=lr, dampening=0.0, nesterov=False,
                          maximize=False, is_first_step=first)
        return
    if weight_decay:
        torch._foreach_add_(grads, params, alpha=weight_decay)
    if momentum:
        if first:
            torch._foreach_copy_(buffers, grads)
        else:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
        grads = buffers
    torch._foreach_add_(params, grads, alpha=-lr)


def population_chunk(template: nn.Module, input_shape: tuple[int, ...], batch_size: int,
                     eval_batch_size: int, device: torch.device) -> int:
    """How many candidates of ``template`` fit one chunk in the device's free memory.

    Per candidate: parameters ×4 (weights, gradients, momentum, a snapshot) and
    every layer's activation for a training batch ×3 (output, saved for
    backward, gradient) or an evaluation batch; at most :data:`MEMORY_FRACTION`
    of the free memory, at most :data:`MAX_CHUNK`.
    """
    element = next(template.parameters()).element_size()
    parameters = sum(p.numel() for p in template.parameters()) * 4
    activations = 0
    with torch.no_grad():
        x = torch.zeros(1, *input_shape, dtype=next(template.parameters()).dtype,
                        device=next(template.parameters()).device)
        for leaf in _leaves(template.model if isinstance(template, Normalized) else template):
            x = leaf(x)
            activations += x.numel()
    per_candidate = element * (parameters + activations * max(3 * batch_size, eval_batch_size))
    free = _free_memory(device)
    return max(1, min(MAX_CHUNK, int(free * MEMORY_FRACTION // max(per_candidate, 1))))


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency of the dev tools only
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def train_population(losses: Sequence[Loss], dataset: Dataset | str,
                     config: TrainConfig | None = None, *, seed: int = 0,
                     data_dir: str | Path | None = None, backend: str = "auto",
                     chunk: int | None = None, clip_norm: float | None = None,
                     parameters: list[dict[str, torch.Tensor]] | None = None,
                     ) -> list[TrainResult]:
    """Train one model per loss, all at once; one :class:`~harness.train.TrainResult` each.

    Every candidate is trained as :func:`harness.train.train` would train it with
    ``seed`` (same initialization, batches, schedule, momentum, weight decay).
    ``chunk`` caps how many train together (default: what fits in memory,
    :func:`population_chunk`). A model that cannot be batched (BatchNorm), GLO's
    CIFAR augmentation, FGSM attraction logging or a chunk that raises falls
    back to :func:`harness.train.train` one by one, so the results are always
    complete; a loss torch cannot run comes back ``failed`` (where ``train``
    raises: in a population it is one candidate's outcome). ``clip_norm``: clip each
    candidate's gradient to this L2 norm (as :func:`torch.nn.utils.clip_grad_norm_` per
    model). ``parameters``: a list that receives each batched candidate's final
    ``named_parameters`` (for equivalence checks).
    """
    data = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
    config = (config or TrainConfig()).resolved(data.name)
    losses = list(losses)
    if not losses:
        return []
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk!r}")
    device = resolve_device(config.device)
    augment = bool(config.augment) and len(data.input_shape) == 3 and data.input_shape[-1] > 24
    with torch_threads(config.threads):
        template = _build(config, data, seed, device)
        if augment or config.attraction_samples or not supports(template):
            return [train(loss, data, config, seed=seed) for loss in losses]
        size = chunk or population_chunk(template, data.input_shape, config.batch_size,
                                         config.eval_batch_size, device)
        # a loss torch cannot run (say a constant 1/0 in a GP tree) is that candidate's
        # failure, not the population's: the others still train batched
        errors = [_generation_error(loss) for loss in losses]
        if any(errors):
            runnable = [loss for loss, error in zip(losses, errors, strict=True) if not error]
            batched = iter(train_population(runnable, data, config, seed=seed, backend=backend,
                                            chunk=chunk, clip_norm=clip_norm,
                                            parameters=parameters))
            return [_failed(loss, data, config, seed, error) if error else next(batched)
                    for loss, error in zip(losses, errors, strict=True)]
        results: list[TrainResult] = []
        start = 0
        while start < len(losses):
            part = losses[start:start + size]
            try:
                results += _train_chunk(part, data, config, seed, device, backend, clip_norm,
                                        parameters)
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                size = max(1, size // 2)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            except (RuntimeError, ValueError, FloatingPointError, ZeroDivisionError,
                    NotImplementedError):
                results += [train(loss, data, config, seed=seed) for loss in part]
            start += len(part)
        return results


def _generation_error(loss: Loss) -> str | None:
    """Why the code generator cannot print ``loss`` for torch, or ``None``."""
    try:
        generate(loss.expr, tuple(loss.parameters))
    except (ValueError, NotImplementedError, TypeError) as caught:
        return f"{type(caught).__name__}: {caught}"
    return None


def _failed(loss: Loss, data: Dataset, config: TrainConfig, seed: int, error: str) -> TrainResult:
    return TrainResult("failed", loss.name, data.name, config.model, seed,
                       {"steps": 0, "val_accuracy": None, "test_accuracy": None},
                       {"step": [], "train_loss": [], "eval_step": [], "val_accuracy": []},
                       0.0, _record(config), error)


def _record(config: TrainConfig) -> dict[str, object]:
    """The config as the run record stores it (tuples as lists)."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(config).items()}


def _build(config: TrainConfig, data: Dataset, seed: int, device: torch.device) -> nn.Module:
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_model(config.model, input_shape=data.input_shape, classes=data.classes,
                            **config.model_options)
        return Normalized(model, data.mean, data.std).to(device)


def _train_chunk(losses: list[Loss], data: Dataset, config: TrainConfig, seed: int,
                 device: torch.device, backend: str, clip_norm: float | None,
                 parameters: list | None = None) -> list[TrainResult]:
    started = time.perf_counter()
    count = len(losses)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # as train(): the model is built right after seeding
        template = Normalized(build_model(config.model, input_shape=data.input_shape,
                                          classes=data.classes, **config.model_options),
                              data.mean, data.std).to(device)
        # every candidate starts from the same initialization (same seed)
        params = _stack([template] * count)
        dtype = next(iter(params.values())).dtype
        network = _network_for(template, backend)
        criterion = PopulationLoss(losses, label_smoothing=config.label_smoothing, dtype=dtype,
                                   device=device)
        state = _Population(count, device)
        steps, curves = _loop(params, network, criterion, data, config, device, seed, state,
                              clip_norm)
    seconds = (time.perf_counter() - started) / count
    results = _results(params, network, data, config, seed, losses, state, steps, curves,
                       seconds, device)
    if parameters is not None:
        parameters.extend({name: value[k].detach().clone() for name, value in params.items()}
                          for k in range(count))
    return results


@dataclass
class _Population:
    """Per-candidate bookkeeping while a chunk trains."""

    count: int
    device: torch.device

    def __post_init__(self) -> None:
        self.stopped = [None] * self.count  # step at which each diverged
        # on the device, for masks without a host-to-device copy each step
        self.active = torch.ones(self.count, dtype=torch.bool, device=self.device)
        self.errors: list[str | None] = [None] * self.count
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    @property
    def active_list(self) -> list[bool]:
        """Which candidates still train (none has diverged)."""
        return [step is None for step in self.stopped]


def _loop(params, network, criterion, data, config, device, seed, state, clip_norm):
    generator = torch.Generator().manual_seed(seed)
    dtype = next(iter(params.values())).dtype
    x_train, y_train = data.x_train.to(device, dtype), data.y_train.to(device)
    size = len(x_train)
    batch_size = min(config.batch_size, size)
    steps_per_epoch = math.ceil(size / batch_size)
    total = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    eval_every = max(1, total // max(config.evaluations, 1))
    tensors = list(params.values())
    buffers: list[torch.Tensor | None] = [None] * len(tensors)
    count = state.count
    curves = [{"step": [], "train_loss": [], "eval_step": [], "val_accuracy": []}
              for _ in range(count)]
    # the running training loss of the candidates still active (once frozen, never again)
    running = torch.zeros(count, dtype=torch.float64, device=device)
    counted = 0
    order = torch.randperm(size, generator=generator)
    step = 0
    while step < total and any(state.active_list):
        position = (step % steps_per_epoch) * batch_size
        if step and step % steps_per_epoch == 0:
            order = torch.randperm(size, generator=generator)
        index = order[position:position + batch_size].to(device)
        inputs, labels = x_train[index], y_train[index]
        lr = config.lr * learning_rate_factor(config, step, total, steps_per_epoch)
        tape: list = []
        logits = network.forward(params, inputs, training=True, tape=tape)
        everyone = all(state.active_list)
        # inactive or non-finite candidates get a zero gradient (value_and_grad)
        values, slope = criterion.value_and_grad(logits, labels,
                                                 None if everyone else state.active)
        found = network.backward(params, tape, slope)
        del tape, logits, slope
        grads = [found[name] for name in params]
        if not math.isfinite(float(values.sum())):  # one synchronization a step
            values_list = values.tolist()
            newly = [k for k in range(count) if state.stopped[k] is None and not math.isfinite(
                values_list[k])]
            if newly:  # after the backward, which needs the parameters as they were
                _freeze(params, buffers, state, newly, step, values_list)
        everyone = all(state.active_list)
        if not everyone:  # NaN · 0 is NaN: zero the frozen slots' gradients
            inactive = ~state.active
            grads = [torch.where(inactive.view(-1, *([1] * (grad.dim() - 1))), 0.0, grad)
                     for grad in grads]
        if clip_norm is not None:
            _clip(grads, clip_norm)
        _sgd_step(tensors, grads, buffers, lr, config.momentum, config.weight_decay)
        step += 1
        running += values if everyone else torch.where(state.active, values, 0.0)
        counted += 1
        if step % eval_every == 0 or step == total:
            accuracy = _accuracy(params, network, data.x_val, data.y_val, config, device)
            losses = (running / counted).tolist()
            for k in range(count):
                if state.stopped[k] is None:
                    curves[k]["step"].append(step)
                    curves[k]["train_loss"].append(losses[k])
                    curves[k]["eval_step"].append(step)
                    curves[k]["val_accuracy"].append(accuracy[k])
            running.zero_()
            counted = 0
    return step, curves


def _freeze(params, buffers, state, newly, step, values_list) -> None:
    """Keep the last finite parameters of the candidates that just diverged; zero their slots."""
    for k in newly:
        state.active[k] = False
        state.stopped[k] = step
        state.errors[k] = f"non-finite training loss {values_list[k]} at step {step}"
        state.snapshots[k] = {n: p[k].detach().clone() for n, p in params.items()}
    with torch.no_grad():
        slots = torch.tensor(newly, device=state.device)
        for tensor in params.values():
            tensor.index_fill_(0, slots, 0.0)
        for buffer in buffers:
            if buffer is not None:
                buffer.index_fill_(0, slots, 0.0)


def _clip(grads: list[torch.Tensor], max_norm: float) -> None:
    """Per candidate, :func:`torch.nn.utils.clip_grad_norm_` (norm 2, ``+ 1e-6``), in place
    on the stacked gradients ``[K, ...]``."""
    squares = sum(grad.flatten(1).pow(2).sum(1) for grad in grads)
    coefficient = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(coefficient.view(-1, *([1] * (grad.dim() - 1))))


@torch.no_grad()
def _accuracy(params, forward, inputs, labels, config, device) -> list[float]:
    """Each candidate's accuracy on ``inputs`` (evaluation mode: no dropout)."""
    dtype = next(iter(params.values())).dtype
    inputs, labels = inputs.to(device, dtype), labels.to(device)
    correct = None
    for start in range(0, len(inputs), config.eval_batch_size):
        logits = forward(params, inputs[start:start + config.eval_batch_size], training=False)
        hits = (logits.argmax(dim=-1) == labels[start:start + config.eval_batch_size]).sum(1)
        correct = hits if correct is None else correct + hits
    if correct is None:
        return [0.0] * next(iter(params.values())).shape[0]
    return [c / max(len(inputs), 1) for c in correct.tolist()]


def _results(params, forward, data, config, seed, losses, state, steps, curves, seconds,
             device) -> list[TrainResult]:
    with torch.no_grad():
        for k, snapshot in state.snapshots.items():
            for name, value in snapshot.items():
                params[name][k].copy_(value)
    finite = [bool(all(torch.isfinite(p[k]).all() for p in params.values()))
              for k in range(state.count)]
    val = _accuracy(params, forward, data.x_val, data.y_val, config, device)
    test = _accuracy(params, forward, data.x_test, data.y_test, config, device)
    record = _record(config)
    results = []
    for k in range(state.count):
        diverged = state.stopped[k] is not None
        metrics: dict[str, object] = {"steps": state.stopped[k] if diverged else steps,
                                      "val_accuracy": val[k] if finite[k] else None,
                                      "test_accuracy": test[k] if finite[k] else None}
        if finite[k] and (config.fgsm or config.fgsm_validation):
            metrics.update(_fgsm_metrics(params, k, forward.template, data, config, losses[k],
                                         device))
        results.append(TrainResult("diverged" if diverged else "ok", losses[k].name, data.name,
                                   config.model, seed, metrics, curves[k], seconds, record,
                                   state.errors[k]))
    return results


def _fgsm_metrics(params, k, template, data, config, loss, device) -> dict[str, object]:
    """FGSM accuracies of candidate ``k``: its weights put back in a standalone model."""
    import copy

    from harness.fgsm import fgsm_accuracy
    from harness.losses import torch_loss

    model = copy.deepcopy(template)
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            parameter.copy_(params[parameter_name][k])
    model.eval()
    criterion = torch_loss(loss, label_smoothing=config.label_smoothing).to(device)
    metrics: dict[str, object] = {}
    for strengths, inputs, labels, key in ((config.fgsm, data.x_test, data.y_test,
                                            "fgsm_accuracy"),
                                           (config.fgsm_validation, data.x_val, data.y_val,
                                            "val_fgsm_accuracy")):
        if strengths:
            accuracies = fgsm_accuracy(model, criterion, inputs.to(device), labels.to(device),
                                       strengths, bounds=data.bounds,
                                       batch_size=config.eval_batch_size)
            metrics[key] = {str(float(e)): a for e, a in accuracies.items()}
    return metrics
