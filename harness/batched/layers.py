"""Stacked layers: K models' layers as one, forward and backward written out.

Each op's ``forward(params, x, layout, count, training) → (y, layout of y,
saved)`` and ``backward(params, saved, grad, grads, layout) → the gradient with
respect to x`` (in x's ``layout``, ``None`` when x is data), adding the layer's
parameter gradients to ``grads``. Layouts of the activations:

============  ======================  =============================================
layout        shape                   what
============  ======================  =============================================
``shared``    ``[B, ...]``            the data, the same for every candidate
``kdata``     ``[K, B, ...]``         each candidate's own data (seeds differ)
``kb``        ``[K, B, features...]`` per-candidate activations
``kclb``      ``[K, C, L, B]``        a 1-D convolution's output, batch innermost
``grouped``   ``[B, K·C, H, W]``      a 2-D convolution's output: the K candidates'
                                      channels side by side, torch's own NCHW
============  ======================  =============================================
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.utils import _pair

#: Layouts that hold data, not activations: no gradient flows into them.
DATA_LAYOUTS = ("shared", "kdata")
#: Layouts with the candidates first and the batch second.
PER_CANDIDATE = ("kb", "kdata")


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
        if layout in ("kclb", "grouped"):
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
        if layout in DATA_LAYOUTS:
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
        if layout in PER_CANDIDATE:  # [K, B, C, L] → [K, C, L, B]
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
        if layout == "kdata":
            return None
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
        if layout == "kdata":
            x = torch.relu(x)
            return x, "kb", x
        return torch.relu_(x), layout, x

    def backward(self, params, saved, grad, grads, layout):
        return torch.ops.aten.threshold_backward(grad, saved, 0)


class _Dropout(_Op):
    """Masks drawn per element of ``[K, B, ...]``: independent per candidate."""

    def forward(self, params, x, layout, count, training):
        p = self.layer.p
        if not training or p == 0:
            return x, layout, None
        if layout in DATA_LAYOUTS:  # independent masks need per-candidate activations
            x = x if layout == "kdata" else x.unsqueeze(0).expand(count, *x.shape)
            layout = "kb"
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
        if layout in PER_CANDIDATE:
            return x.flatten(2), layout, x.shape
        if layout == "grouped":
            return _candidates_first(x, count), "kb", x.shape
        return _channels_first(x), "kb", x.shape

    def backward(self, params, saved, grad, grads, layout):
        if layout in PER_CANDIDATE:
            return grad.reshape(saved)
        if layout == "grouped":
            return _candidates_first_backward(grad, saved)
        return _channels_first_backward(grad, saved)


class _Unflatten(_Op):
    def forward(self, params, x, layout, count, training):
        if layout in ("kclb", "grouped"):
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
        if layout == "grouped":
            return _candidates_first(x, count), "kb", x.shape
        return x, "kb", None

    def backward(self, params, saved, grad, grads, layout):
        if layout == "kclb":
            return _channels_first_backward(grad, saved)
        if layout == "grouped":
            return _candidates_first_backward(grad, saved)
        return grad


def _grouped(x: torch.Tensor) -> torch.Tensor:
    """``[K, B, C, H, W]`` → ``grouped`` ``[B, K·C, H, W]``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])


def _candidates_first(x: torch.Tensor, count: int) -> torch.Tensor:
    """``grouped`` ``[B, K·C, ...]`` → ``[K, B, C·...]`` (a view), the order of ``nn.Flatten``
    on each candidate's ``[B, C, ...]``."""
    return x.reshape(x.shape[0], count, -1).transpose(0, 1)


def _candidates_first_backward(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return grad.transpose(0, 1).reshape(shape)


class _Conv2d(_Op):
    """K stacked 2-D convolutions as one grouped convolution (``groups = K``) on the
    ``grouped`` layout ``[B, K·C, H, W]``; the data (``shared``) is one ordinary
    convolution against all K filter banks (``K·C'`` output channels). The backward
    is torch's ``convolution_backward``, which gives the input, weight and bias
    gradients of the grouped convolution in one call; none for the data."""

    def _geometry(self):
        layer = self.layer
        return (list(_pair(layer.stride)), list(_pair(layer.padding)),
                list(_pair(layer.dilation)))

    def forward(self, params, x, layout, count, training):
        weight, bias = params[self.name + ".weight"], params.get(self.name + ".bias")
        if layout in PER_CANDIDATE:
            x = _grouped(x)
        elif layout not in ("shared", "grouped"):
            raise NotImplementedError(f"Conv2d on {layout} activations")
        groups = 1 if layout == "shared" else count
        flat = weight.reshape(-1, *weight.shape[2:])
        stride, padding, dilation = self._geometry()
        out = torch.nn.functional.conv2d(x, flat, None if bias is None else bias.reshape(-1),
                                         stride, padding, dilation, groups)
        return out, "grouped", (x, groups)

    def backward(self, params, saved, grad, grads, layout):
        x, groups = saved
        weight, bias = params[self.name + ".weight"], params.get(self.name + ".bias")
        flat = weight.reshape(-1, *weight.shape[2:])
        stride, padding, dilation = self._geometry()
        wanted = [layout not in DATA_LAYOUTS, True, bias is not None]
        grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad.contiguous(), x, flat, [flat.shape[0]] if bias is not None else None, stride,
            padding, dilation, False, [0, 0], groups, wanted)
        grads[self.name + ".weight"] = grad_weight.view(weight.shape)
        if bias is not None:
            grads[self.name + ".bias"] = grad_bias.view(bias.shape)
        if layout in DATA_LAYOUTS:
            return None
        if layout == "kb":  # [B, K·C, H, W] → [K, B, C, H, W]
            return grad_x.reshape(grad_x.shape[0], groups, -1, *grad_x.shape[2:]).transpose(0, 1)
        return grad_x


class _MaxPool2d(_Op):
    """Max pooling of every candidate's channels at once (``grouped`` or the data)."""

    def _geometry(self):
        layer = self.layer
        stride = layer.stride if layer.stride is not None else layer.kernel_size
        return (list(_pair(layer.kernel_size)), list(_pair(stride)), list(_pair(layer.padding)),
                list(_pair(layer.dilation)), bool(layer.ceil_mode))

    def forward(self, params, x, layout, count, training):
        if layout in PER_CANDIDATE:
            x, layout = _grouped(x), "grouped"
        elif layout not in ("shared", "grouped"):
            raise NotImplementedError(f"MaxPool2d on {layout} activations")
        out, indices = torch.ops.aten.max_pool2d_with_indices(x, *self._geometry())
        return out, layout, (x, indices, count)

    def backward(self, params, saved, grad, grads, layout):
        x, indices, count = saved
        if layout in DATA_LAYOUTS:
            return None
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *self._geometry(),
                                                                 indices)
        if layout == "kb":  # [B, K·C, H, W] → [K, B, C, H, W]
            return grad_x.reshape(grad_x.shape[0], count, -1, *grad_x.shape[2:]).transpose(0, 1)
        return grad_x


#: Each layer type the ``kernels`` backend batches, and its stacked op.
OPS = ((nn.Linear, _Linear), (nn.Conv1d, _Conv1d), (nn.Conv2d, _Conv2d),
       (nn.MaxPool2d, _MaxPool2d), (nn.ReLU, _ReLU), (nn.Dropout, _Dropout),
       (nn.Flatten, _Flatten), (nn.Unflatten, _Unflatten), (nn.Identity, _Identity))


def kernel_op(layer: nn.Module, name: str) -> _Op:
    """The stacked op of ``layer`` (named ``name`` in the model's parameters)."""
    for kind, op in OPS:
        if isinstance(layer, kind):
            return op(layer, name)
    raise ValueError(f"the kernels backend does not batch {type(layer).__name__}")
