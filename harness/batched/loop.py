"""The population trainer: chunks of K candidates, the training loop, the results.

How many candidates fit one chunk is :mod:`~symloss.harness.batched.memory`'s (its names
are re-exported here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from symloss.harness.batched import optim
from symloss.harness.batched.loss import PopulationLoss
from symloss.harness.batched.memory import MAX_CHUNK as MAX_CHUNK  # re-exported: the old home
from symloss.harness.batched.memory import MEMORY_FRACTION as MEMORY_FRACTION
from symloss.harness.batched.memory import population_chunk
from symloss.harness.batched.network import _network_for, supports
from symloss.harness.batched.optim import _clip
from symloss.harness.codegen import generate
from symloss.harness.data import Dataset, load_dataset
from symloss.harness.device import resolve_device, torch_threads
from symloss.harness.models import Normalized, build_model
from symloss.harness.train import (
    TrainConfig,
    TrainResult,
    confidence_counts,
    learning_rate_factor,
    train,
)
from symloss.loss import Loss


def _stack(models: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    names = [n for n, _ in models[0].named_parameters()]
    params = [dict(m.named_parameters()) for m in models]
    return {name: torch.stack([p[name].detach() for p in params]) for name in names}


def train_population(losses: Sequence[Loss], dataset: Dataset | str,
                     config: TrainConfig | None = None, *, seed: int | Sequence[int] = 0,
                     data_dir: str | Path | None = None, backend: str = "auto",
                     chunk: int | None = None, clip_norm: float | None = None,
                     parameters: list[dict[str, torch.Tensor]] | None = None,
                     ) -> list[TrainResult]:
    """Train one model per loss, all at once; one :class:`~symloss.harness.train.TrainResult` each.

    Every candidate is trained as :func:`symloss.harness.train.train` would train it with
    ``seed`` (same initialization, batches, schedule, momentum, weight decay);
    ``seed`` is one seed for all, or one per loss — K seeds of one loss train
    together too, each candidate with its own initialization and its own batches.
    ``chunk`` caps how many train together (default: what fits in memory,
    :func:`population_chunk`). A model that cannot be batched (BatchNorm), GLO's
    CIFAR augmentation, FGSM attraction logging or a chunk that raises falls
    back to :func:`symloss.harness.train.train` one by one, so the results are always
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
    seeds = _seeds(seed, losses, chunk)
    device = resolve_device(config.device)
    augment = bool(config.augment) and len(data.input_shape) == 3 and data.input_shape[-1] > 24
    with torch_threads(config.threads):
        template = _build(config, data, seeds[0], device)
        if augment or config.attraction_samples or not supports(template):
            return [train(loss, data, config, seed=s) for loss, s in zip(losses, seeds,
                                                                          strict=True)]
        size = chunk or population_chunk(template, data.input_shape, config.batch_size,
                                         config.eval_batch_size, device)
        # a loss torch cannot run (say a constant 1/0 in a GP tree) is that candidate's
        # failure, not the population's: the others still train batched
        errors = [_generation_error(loss) for loss in losses]
        if any(errors):
            kept = [k for k, error in enumerate(errors) if not error]
            batched = iter(train_population([losses[k] for k in kept], data, config,
                                            seed=[seeds[k] for k in kept], backend=backend,
                                            chunk=chunk, clip_norm=clip_norm,
                                            parameters=parameters))
            return [_failed(loss, data, config, s, error) if error else next(batched)
                    for loss, s, error in zip(losses, seeds, errors, strict=True)]
        return _train_chunks(losses, seeds, data, config, device, size,
                             backend=backend, clip_norm=clip_norm, parameters=parameters)


def _seeds(seed: int | Sequence[int], losses: list[Loss], chunk: int | None) -> list[int]:
    """One seed per loss; a wrong count of seeds or a chunk below 1 is a ``ValueError``."""
    seeds = [int(seed)] * len(losses) if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != len(losses):
        raise ValueError(f"one seed per loss: got {len(seeds)} seeds for {len(losses)} losses")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk!r}")
    return seeds


def _train_chunks(losses: list[Loss], seeds: list[int], data: Dataset, config: TrainConfig,
                  device: torch.device, size: int, *, backend: str, clip_norm: float | None,
                  parameters: list | None) -> list[TrainResult]:
    """Train ``size`` candidates at a time, halving ``size`` when the device runs out of
    memory; a chunk that raises otherwise trains one by one."""
    results: list[TrainResult] = []
    start = 0
    while start < len(losses):
        part, part_seeds = losses[start:start + size], seeds[start:start + size]
        try:
            results += _train_chunk(part, part_seeds, data, config, device, backend,
                                    clip_norm, parameters)
        except torch.OutOfMemoryError:
            if size == 1:
                raise
            size = max(1, size // 2)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        except (RuntimeError, ValueError, FloatingPointError, ZeroDivisionError,
                NotImplementedError):
            results += [train(loss, data, config, seed=s)
                        for loss, s in zip(part, part_seeds, strict=True)]
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


def _train_chunk(losses: list[Loss], seeds: list[int], data: Dataset, config: TrainConfig,
                 device: torch.device, backend: str, clip_norm: float | None,
                 parameters: list | None = None) -> list[TrainResult]:
    started = time.perf_counter()
    count = len(losses)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        models = {}
        for seed in dict.fromkeys(seeds):
            torch.manual_seed(seed)  # as train(): the model is built right after seeding
            models[seed] = Normalized(build_model(config.model, input_shape=data.input_shape,
                                                  classes=data.classes, **config.model_options),
                                      data.mean, data.std).to(device)
        template = models[seeds[0]]
        # candidates of one seed start from the same initialization
        params = _stack([models[seed] for seed in seeds])
        dtype = next(iter(params.values())).dtype
        network = _network_for(template, backend)
        criterion = PopulationLoss(losses, label_smoothing=config.label_smoothing,
                                   scale=config.loss_scale, dtype=dtype, device=device)
        state = _Population(count, device)
        steps, curves = _loop(params, network, criterion, data, config, device, seeds, state,
                              clip_norm)
    seconds = (time.perf_counter() - started) / count
    results = _results(params, network, data, config, seeds, losses, state, steps, curves,
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


def _loop(params, network, criterion, data, config, device, seeds, state, clip_norm):
    # each seed its own batches (as train()); one order serves candidates of one seed
    distinct = len(set(seeds)) > 1
    generators = [torch.Generator().manual_seed(seed) for seed in (seeds if distinct
                                                                    else seeds[:1])]
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
    curve = f"{config.curve_split}_accuracy"
    curve_inputs, curve_labels = ((data.x_val, data.y_val) if config.curve_split == "val"
                                  else (data.x_test, data.y_test))
    curves = [{"step": [], "train_loss": [], "eval_step": [], curve: []} for _ in range(count)]
    # the running training loss of the candidates still active (once frozen, never again)
    running = torch.zeros(count, dtype=torch.float64, device=device)
    counted = 0
    batches = _population_batches(x_train, y_train, generators, distinct, batch_size,
                                  steps_per_epoch, device)
    step = 0
    while step < total and any(state.active_list):
        inputs, labels = next(batches)
        lr = config.lr * learning_rate_factor(config, step, total, steps_per_epoch)
        values, grads = _gradients(params, network, criterion, inputs, labels, distinct, state,
                                   buffers, step)
        everyone = all(state.active_list)
        if clip_norm is not None:
            _clip(grads, clip_norm)
        optim._sgd_step(tensors, grads, buffers, lr, config.momentum, config.weight_decay)
        step += 1
        running += values if everyone else torch.where(state.active, values, 0.0)
        counted += 1
        if step % eval_every == 0 or step == total:
            accuracy = _accuracy(params, network, curve_inputs, curve_labels, config, device)
            _record_curves(curves, curve, step, (running / counted).tolist(), accuracy, state)
            running.zero_()
            counted = 0
    return step, curves


def _population_batches(x_train, y_train, generators, distinct, batch_size, steps_per_epoch,
                        device):
    """The training minibatches, step after step: ``[K, B]`` inputs when the seeds differ
    (one order per seed), else one ``[B]`` batch shared; a fresh order each epoch."""
    size = len(x_train)
    orders = [torch.randperm(size, generator=generator) for generator in generators]
    step = 0
    while True:
        position = (step % steps_per_epoch) * batch_size
        if step and step % steps_per_epoch == 0:
            orders = [torch.randperm(size, generator=generator) for generator in generators]
        index = torch.stack([order[position:position + batch_size] for order in orders])
        index = (index if distinct else index[0]).to(device)  # [K, B] or the shared [B]
        yield x_train[index], y_train[index]
        step += 1


def _gradients(params, network, criterion, inputs, labels, distinct, state, buffers, step):
    """Each candidate's loss and gradient on one batch; a candidate whose loss just turned
    non-finite is frozen (:func:`_freeze`), and every frozen slot's gradient is zero."""
    tape: list = []
    logits = network.forward(params, inputs, training=True, tape=tape, per_candidate=distinct)
    everyone = all(state.active_list)
    # inactive or non-finite candidates get a zero gradient (value_and_grad)
    values, slope = criterion.value_and_grad(logits, labels, None if everyone else state.active)
    found = network.backward(params, tape, slope)
    del tape, logits, slope
    grads = [found[name] for name in params]
    if not math.isfinite(float(values.sum())):  # one synchronization a step
        values_list = values.tolist()
        newly = [k for k in range(state.count) if state.stopped[k] is None
                 and not math.isfinite(values_list[k])]
        if newly:  # after the backward, which needs the parameters as they were
            _freeze(params, buffers, state, newly, step, values_list)
    if not all(state.active_list):  # NaN · 0 is NaN: zero the frozen slots' gradients
        inactive = ~state.active
        grads = [torch.where(inactive.view(-1, *([1] * (grad.dim() - 1))), 0.0, grad)
                 for grad in grads]
    return values, grads


def _record_curves(curves, curve, step, losses, accuracy, state) -> None:
    """One evaluation's points, for the candidates still training."""
    for k in range(state.count):
        if state.stopped[k] is None:
            curves[k]["step"].append(step)
            curves[k]["train_loss"].append(losses[k])
            curves[k]["eval_step"].append(step)
            curves[k][curve].append(accuracy[k])


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


def _results(params, forward, data, config, seeds, losses, state, steps, curves, seconds,
             device) -> list[TrainResult]:
    with torch.no_grad():
        for k, snapshot in state.snapshots.items():
            for name, value in snapshot.items():
                params[name][k].copy_(value)
    finite = [bool(all(torch.isfinite(p[k]).all() for p in params.values()))
              for k in range(state.count)]
    val = _accuracy(params, forward, data.x_val, data.y_val, config, device)
    test = _accuracy(params, forward, data.x_test, data.y_test, config, device)
    if config.confidence_bins:
        dtype = next(iter(params.values())).dtype
        confidence = confidence_counts(lambda x: forward(params, x, training=False),
                                       data.x_test.to(device, dtype), config.confidence_bins,
                                       config.eval_batch_size)
    record = _record(config)
    results = []
    for k in range(state.count):
        diverged = state.stopped[k] is not None
        metrics: dict[str, object] = {"steps": state.stopped[k] if diverged else steps,
                                      "val_accuracy": val[k] if finite[k] else None,
                                      "test_accuracy": test[k] if finite[k] else None}
        if finite[k] and config.confidence_bins:
            metrics["test_confidence"] = confidence[k]
        if finite[k] and (config.fgsm or config.fgsm_validation):
            metrics.update(_fgsm_metrics(params, k, forward.template, data, config, losses[k],
                                         device))
        results.append(TrainResult("diverged" if diverged else "ok", losses[k].name, data.name,
                                   config.model, seeds[k], metrics, curves[k], seconds, record,
                                   state.errors[k]))
    return results


def _fgsm_metrics(params, k, template, data, config, loss, device) -> dict[str, object]:
    """FGSM accuracies of candidate ``k``: its weights put back in a standalone model."""
    import copy

    from symloss.harness.fgsm import fgsm_accuracy
    from symloss.harness.losses import torch_loss

    model = copy.deepcopy(template)
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            parameter.copy_(params[parameter_name][k])
    model.eval()
    criterion = torch_loss(loss, label_smoothing=config.label_smoothing,
                           scale=config.loss_scale).to(device)
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
