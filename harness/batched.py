"""Population-batched training: K candidates' models trained in one pass.

A search spends nearly all of its time in short trainings of small models, one
candidate after another. :func:`train_population` trains K of them at once:
their weights are stacked along a leading axis (``[K, ...]``), one data batch
feeds all K models, each candidate's loss term is evaluated on its own logits,
the K losses are summed and one backward pass gives every candidate its own
gradient (the sum's derivative with respect to each candidate's loss is 1, and
no parameter is shared). SGD is elementwise, so one update of the stacked
tensors is K independent updates.

Two forward backends:

* ``"kernels"`` — hand-batched layers: the first layer, whose input is the
  shared batch, is one matmul (or convolution) with the K weight matrices
  concatenated; later :class:`~torch.nn.Linear` layers are ``baddbmm`` over the
  candidates, later :class:`~torch.nn.Conv1d` layers a grouped convolution
  (``groups = K``). Supports ``Linear``, ``Conv1d``, ``ReLU``, ``Flatten``,
  ``Unflatten``, ``Identity``, ``Dropout`` in (nested) ``Sequential`` models: the
  harness's ``mlp`` and ``cnn1d``.
* ``"vmap"`` — ``torch.func.vmap`` over ``functional_call`` with the weights
  from ``torch.func.stack_module_state``: any model without BatchNorm (whose
  running statistics would couple the candidates).

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

from harness.codegen import generate
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


class _KernelForward:
    """The ``kernels`` backend: ``forward(params, x) → logits [K, B, classes]``.

    Layouts while running: ``shared`` (``[B, ...]``, the same for every candidate),
    ``kb`` (``[K, B, features...]``) and ``kblc`` (``[K, B, length, channels]``, a
    1-D convolution's activations channels-last, so that each convolution is one
    ``unfold`` and one batched matmul: measured much faster on CPU than a grouped
    convolution with ``groups = K``).
    """

    def __init__(self, template: nn.Module):
        self.template = template
        inner = template.model if isinstance(template, Normalized) else template
        self.mean = template.mean if isinstance(template, Normalized) else None
        self.std = template.std if isinstance(template, Normalized) else None
        self.layers = _leaves(inner)
        prefix = "model." if isinstance(template, Normalized) else ""
        names = {id(m): n for n, m in inner.named_modules()}
        self.names = [prefix + names[id(layer)] for layer in self.layers]

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor, *,
                 training: bool) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        count = next(iter(params.values())).shape[0]
        layout = "shared"
        for layer, name in zip(self.layers, self.names, strict=True):
            if isinstance(layer, nn.Linear):
                weight, bias = params[name + ".weight"], params.get(name + ".bias")
                if layout == "shared":  # one matmul with the K weight matrices side by side
                    x, layout = _SharedLinear.apply(x, weight, bias), "kb"
                else:
                    x = _StackedLinear.apply(x, weight, bias)
            elif isinstance(layer, nn.Conv1d):
                x, layout = _conv1d(layer, params[name + ".weight"], params.get(name + ".bias"),
                                    x, layout, count), "kblc"
            elif isinstance(layer, nn.ReLU):  # in place on our own intermediates
                x = torch.relu(x) if layout == "shared" else torch.relu_(x)
            elif isinstance(layer, nn.Dropout):
                if layout == "shared":  # independent masks need per-candidate activations
                    x, layout = x.unsqueeze(0).expand(count, *x.shape), "kb"
                x = nn.functional.dropout(x, layer.p, training)
            elif isinstance(layer, nn.Flatten):
                if layout == "shared":
                    x = x.flatten(1)
                elif layout == "kb":
                    x = x.flatten(2)
                else:  # channels-first order, as nn.Flatten of [B, C, L]
                    x, layout = x.transpose(2, 3).flatten(2), "kb"
            elif isinstance(layer, nn.Unflatten):
                if layout == "shared":
                    x = x.unflatten(1, layer.unflattened_size)
                elif layout == "kb":
                    x = x.unflatten(2, layer.unflattened_size)
                else:
                    raise NotImplementedError("Unflatten after a convolution")
            # nn.Identity: nothing
        if layout == "shared":
            x = x.unsqueeze(0).expand(count, *x.shape)
        elif layout == "kblc":
            x = x.transpose(2, 3).flatten(2)
        return x


class _SharedLinear(torch.autograd.Function):
    """K linear layers on one shared input ``x [B, in]``: ``[K, B, out]``.

    Forward: one matmul with the K weight matrices side by side, ``[B, K·out]``, made
    contiguous as ``[K, B, out]`` once (the elementwise ops and batched matmuls that
    follow run faster on it). Backward: each candidate's weight gradient as one batched
    matmul ``g^T x`` straight into the weights' ``[K, out, in]`` layout (autograd's own
    formula went through two transposed copies; measured slower).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        count, outputs, inputs = weight.shape
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        flat = weight.reshape(count * outputs, inputs)
        out = torch.addmm(bias.reshape(-1), x, flat.t()) if bias is not None else x @ flat.t()
        moved = out.view(x.shape[0], count, outputs).transpose(0, 1)
        # a fresh tensor either way (a view of ``out`` could not be modified in place)
        return moved.clone() if moved.is_contiguous() else moved.contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.einsum("kbo,koi->bi", grad, weight)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(grad.transpose(1, 2), x.expand(weight.shape[0], *x.shape))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1)
        return grad_x, grad_weight, grad_bias


class _StackedLinear(torch.autograd.Function):
    """K linear layers on their own inputs ``x [K, B, in]``: ``baddbmm`` → ``[K, B, out]``.

    Backward with every batched matmul in the layout the weights keep (``g^T x`` for
    ``[K, out, in]``): autograd's formula for ``baddbmm(b, x, W^T)`` computes ``x^T g``
    (slow for few outputs) and copies the transposed result (measured slower).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is not None:
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        return torch.bmm(x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, weight)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(grad.transpose(1, 2), x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1)
        return grad_x, grad_weight, grad_bias


def _conv1d(layer: nn.Conv1d, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor,
            layout: str, count: int) -> torch.Tensor:
    """K stacked 1-D convolutions as unfold + (batched) matmul; returns ``[K, B, L', C']``."""
    (kernel,), (stride,), (padding,) = layer.kernel_size, layer.stride, layer.padding
    outputs = weight.shape[1]
    if layout == "shared":  # x [B, C, L]: one matmul against all K filters banks
        batch = x.shape[0]
        patches = nn.functional.pad(x, (padding, padding)).unfold(2, kernel, stride)
        length = patches.shape[2]
        patches = patches.permute(0, 2, 1, 3).reshape(batch * length, -1)  # [B·L', C·k]
        flat = weight.reshape(count * outputs, -1).t()
        out = (torch.addmm(bias.reshape(-1), patches, flat) if bias is not None
               else patches @ flat)
        return out.view(batch, length, count, outputs).permute(2, 0, 1, 3).contiguous()
    if layout == "kb":  # [K, B, C, L] → channels-last
        x = x.transpose(2, 3)
    out = _StackedConv1d.apply(x, weight, bias, kernel, stride, padding)  # [K, B·L', C']
    return out.view(count, x.shape[1], -1, outputs)


class _StackedConv1d(torch.autograd.Function):
    """K 1-D convolutions of channels-last ``x [K, B, L, C]``: unfold + ``baddbmm``.

    Backward by hand: the weight gradient straight in the weights' layout, and the input
    gradient folded back with one strided add per kernel tap (autograd's
    ``unfold_backward`` and its copies measured several times slower).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, kernel, stride, padding):
        count, batch, _, channels = x.shape
        patches = nn.functional.pad(x, (0, 0, padding, padding)).unfold(2, kernel, stride)
        length = patches.shape[2]
        # [K, B·L', k·C]: tap-major, so that the gather copies runs of C contiguous channels
        patches = patches.transpose(3, 4).reshape(count, batch * length, -1)
        flat = weight.transpose(2, 3).reshape(count, weight.shape[1], -1)  # [K, C', k·C]
        out = (torch.baddbmm(bias.unsqueeze(1), patches, flat.transpose(1, 2))
               if bias is not None else torch.bmm(patches, flat.transpose(1, 2)))
        ctx.save_for_backward(patches, weight)
        ctx.geometry = (x.shape, kernel, stride, padding, length, channels)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        patches, weight = ctx.saved_tensors
        shape, kernel, stride, padding, length, channels = ctx.geometry
        count, batch, size, _ = shape
        outputs = weight.shape[1]
        grad = grad.reshape(count, batch * length, outputs)
        flat = weight.transpose(2, 3).reshape(count, outputs, -1)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            taps = torch.bmm(grad, flat).view(count, batch, length, kernel, channels)
            padded = grad.new_zeros(count, batch, size + 2 * padding, channels)
            span = stride * (length - 1) + 1
            for tap in range(kernel):
                padded[:, :, tap:tap + span:stride].add_(taps[:, :, :, tap])
            grad_x = padded[:, :, padding:padding + size]
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(grad.transpose(1, 2), patches).view(
                count, outputs, kernel, channels).transpose(2, 3).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1)
        return grad_x, grad_weight, grad_bias, None, None, None


class _VmapForward:
    """The ``vmap`` backend: ``functional_call`` of the template, vmapped over the stack."""

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


def _forward_for(template: nn.Module, backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "kernels" or (backend == "auto" and kernel_backend_applies(template)):
        if not kernel_backend_applies(template):
            raise ValueError(f"the kernels backend does not batch {type(template).__name__}; "
                             "use backend='vmap'")
        return _KernelForward(template)
    return _VmapForward(template)


# Losses ------------------------------------------------------------------------------------


@dataclass
class _LossGroup:
    """Candidates sharing one generated term (one family, or one GP expression)."""

    function: object
    index: torch.Tensor  # positions in the population
    values: tuple[torch.Tensor, ...]  # per-parameter [Kg, 1, 1]


class PopulationLoss:
    """``forward(logits [K, B, n], target [B]) → per-candidate losses [K]``.

    Each candidate's value is :class:`harness.losses.SymbolicLoss` (reduction
    ``mean``) of its own logits: TaylorGLO members share one generated function
    with λ as per-candidate tensors; GP trees each get theirs (cached by
    :func:`harness.codegen.generate`).
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
            term = generate(expr, parameters)
            table = torch.tensor([list(losses[p].values or ()) for p in positions],
                                 dtype=dtype, device=device).reshape(len(positions), -1)
            values = tuple(table[:, j].reshape(-1, 1, 1) for j in range(table.shape[1]))
            self.groups.append(_LossGroup(term.function,
                                          torch.tensor(positions, device=device), values))
        self.single = len(self.groups) == 1

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[-1]
        # softmax over the classes taken as dim -2 of the transposed logits: torch's kernel
        # along the last dim is slow for few classes (measured ~10x for [20, 100, 10])
        probabilities = torch.softmax(logits.transpose(-1, -2).contiguous(), dim=-2)
        h = _ClampPassGradient.apply(probabilities.transpose(-1, -2),
                                     torch.finfo(logits.dtype).eps)
        labels = torch.zeros(logits.shape[1:], dtype=logits.dtype, device=logits.device)
        labels.scatter_(-1, target.unsqueeze(-1), 1.0)
        if self.label_smoothing:
            labels = labels * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        if self.single:
            group = self.groups[0]
            return _group_losses(group, labels, h)
        losses = logits.new_empty(self.count)
        for group in self.groups:
            losses = losses.index_put((group.index,),
                                      _group_losses(group, labels, h.index_select(0, group.index)))
        return losses


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
    terms = group.function(labels, h, group.values)
    if terms.shape != h.shape:
        terms = terms.expand_as(h)
    return terms.mean(dim=(1, 2))


# Training ----------------------------------------------------------------------------------


def _stack(models: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    names = [n for n, _ in models[0].named_parameters()]
    params = [dict(m.named_parameters()) for m in models]
    return {name: torch.stack([p[name].detach() for p in params]).requires_grad_()
            for name in names}


def _sgd_step(params: list[torch.Tensor], buffers: list[torch.Tensor | None], lr: float,
              momentum: float, weight_decay: float) -> None:
    """:class:`torch.optim.SGD` (no dampening, no Nesterov), the same operations in order.

    Each operation once over all stacked tensors (``torch._foreach_*``: one call, not one
    per tensor).
    """
    grads = [param.grad for param in params]
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum:
        if any(buffer is None for buffer in buffers):
            buffers[:] = [torch.clone(grad).detach() for grad in grads]
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
    complete. ``clip_norm``: clip each candidate's gradient to this L2 norm
    (as :func:`torch.nn.utils.clip_grad_norm_` per model). ``parameters``: a list that
    receives each batched candidate's final ``named_parameters`` (for equivalence checks).
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
        forward = _forward_for(template, backend)
        criterion = PopulationLoss(losses, label_smoothing=config.label_smoothing, dtype=dtype,
                                   device=device)
        state = _Population(count, device)
        steps, curves = _loop(params, forward, criterion, data, config, device, seed, state,
                              clip_norm)
    seconds = (time.perf_counter() - started) / count
    results = _results(params, forward, data, config, seed, losses, state, steps, curves,
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
        self.active = torch.ones(self.count, dtype=torch.bool, device=self.device)
        self.active_list = [True] * self.count
        self.stopped = [None] * self.count  # step at which each diverged
        self.errors: list[str | None] = [None] * self.count
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}


def _loop(params, forward, criterion, data, config, device, seed, state, clip_norm):
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
    running, counted = [0.0] * count, [0] * count
    order = torch.randperm(size, generator=generator)
    step = 0
    while step < total and any(state.active_list):
        position = (step % steps_per_epoch) * batch_size
        if step and step % steps_per_epoch == 0:
            order = torch.randperm(size, generator=generator)
        index = order[position:position + batch_size].to(device)
        inputs, labels = x_train[index], y_train[index]
        lr = config.lr * learning_rate_factor(config, step, total, steps_per_epoch)
        values = criterion(forward(params, inputs, training=True), labels)
        finite = torch.isfinite(values.detach())
        values_list = values.detach().tolist()
        newly = [k for k in range(count) if state.active_list[k] and not math.isfinite(
            values_list[k])]
        active = state.active & finite
        for tensor in tensors:
            tensor.grad = None
        torch.where(active, values, torch.zeros_like(values)).sum().backward()
        if newly:  # after the backward, which needs the parameters as they were
            _freeze(params, buffers, state, newly, step, values_list)
        if not all(state.active_list):
            inactive = ~state.active
            for tensor in tensors:
                view = inactive.view(-1, *([1] * (tensor.dim() - 1)))
                tensor.grad = torch.where(view, torch.zeros_like(tensor.grad), tensor.grad)
        if clip_norm is not None:
            _clip(tensors, clip_norm)
        with torch.no_grad():
            _sgd_step(tensors, buffers, lr, config.momentum, config.weight_decay)
        step += 1
        for k in range(count):
            if state.active_list[k]:
                running[k] += values_list[k]
                counted[k] += 1
        if step % eval_every == 0 or step == total:
            accuracy = _accuracy(params, forward, data.x_val, data.y_val, config, device)
            for k in range(count):
                if state.active_list[k]:
                    curves[k]["step"].append(step)
                    curves[k]["train_loss"].append(running[k] / counted[k])
                    curves[k]["eval_step"].append(step)
                    curves[k]["val_accuracy"].append(accuracy[k])
                    running[k], counted[k] = 0.0, 0
    return step, curves


def _freeze(params, buffers, state, newly, step, values_list) -> None:
    """Keep the last finite parameters of the candidates that just diverged; zero their slots."""
    for k in newly:
        state.active_list[k] = False
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


def _clip(tensors: list[torch.Tensor], max_norm: float) -> None:
    """Per candidate, :func:`torch.nn.utils.clip_grad_norm_` (norm 2, ``+ 1e-6``)."""
    squares = sum(t.grad.flatten(1).pow(2).sum(1) for t in tensors)
    coefficient = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for tensor in tensors:
        tensor.grad.mul_(coefficient.view(-1, *([1] * (tensor.dim() - 1))))


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
    record = {key: list(value) if isinstance(value, tuple) else value
              for key, value in asdict(config).items()}
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
