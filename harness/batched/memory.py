"""How many candidates fit one population chunk in the device's free memory."""

from __future__ import annotations

import torch
from torch import nn

from symloss.harness.batched.network import _leaves
from symloss.harness.models import Normalized

#: Fraction of free memory a population chunk may plan to use, and the cap on K per chunk.
MEMORY_FRACTION = 0.5
MAX_CHUNK = 256


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
