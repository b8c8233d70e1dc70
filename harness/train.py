"""Training: SGD with momentum, weight decay and a schedule; seeded, with a result record.

A run trains for ``steps`` (or ``epochs``) minibatch steps, evaluates on the
validation split along the way and on validation and test at the end. A
non-finite training loss ends the run as ``"diverged"`` with the metrics it
had (the parameters are still those of the last finite step, since the check
comes before the update); an exception inside the loop ends it as
``"failed"``. On CPU the same seed gives the same run, bit for bit.

>>> from symloss.catalog import loss
>>> result = train(loss("cross_entropy"), "digits", TrainConfig(steps=30), seed=0)
>>> result.status, result.metrics["steps"]
('ok', 30)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from symloss.harness.attraction import AttractionLog, AttractionRecorder
from symloss.harness.data import Dataset, augment_glo_cifar, center_crop, load_dataset
from symloss.harness.device import check_learning_rate, resolve_device, torch_threads
from symloss.harness.fgsm import fgsm_accuracy
from symloss.harness.losses import torch_loss
from symloss.harness.models import DEFAULT_MODELS, MODELS, Normalized, build_model, resolve_model
from symloss.loss import Loss
from symloss.scale import check_scale, paper_learning_rate

SCHEDULES = ("constant", "step", "cosine")
CURVE_SPLITS = ("val", "test")
STATUSES = ("ok", "diverged", "failed")

#: Used when neither the config nor the model's paper defaults give a value.
FALLBACK = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100,
            "schedule": "cosine", "milestones": (0.5, 0.75), "gamma": 0.1, "step_epochs": None,
            "augment": False, "epochs": 30}


@dataclass(frozen=True)
class TrainConfig:
    """How to train; ``None`` means the model's paper default (``symloss.harness.models.MODELS``).

    ``steps`` wins over ``epochs``. ``schedule``: ``constant``, ``cosine`` or ``step``
    (multiply by ``gamma`` at each of ``milestones``, fractions of the run, or
    every ``step_epochs`` epochs). ``attraction_samples > 0`` logs ICLR Fig. 1's
    per-sample attraction each epoch; ``fgsm`` lists attack strengths for the test
    set (metric ``fgsm_accuracy``), ``fgsm_validation`` for the validation set
    (``val_fgsm_accuracy``, a search objective that never looks at the test set).
    ``loss_scale``: ``"sum"`` trains ``Σ_k ℓ`` per sample (``nn.CrossEntropyLoss``
    for cross-entropy, what the papers' experiments ran), ``"paper"`` the papers'
    ``(1/n) Σ_k ℓ`` (:mod:`symloss.scale`). ``curve_split``: the split the accuracy
    curve evaluates (``"val"``, or ``"test"`` for GLO Fig. 3's test curves).
    ``confidence_bins > 0``: the metric ``test_confidence``, counts of the largest
    softmax output per test sample in that many equal bins of [0, 1] (GLO Fig. 7).
    """

    model: str | None = None
    model_options: dict[str, object] = field(default_factory=dict)
    steps: int | None = None
    epochs: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    schedule: str | None = None
    milestones: tuple[float, ...] | None = None
    gamma: float | None = None
    step_epochs: int | None = None
    augment: bool | None = None
    label_smoothing: float = 0.0
    loss_scale: str = "sum"
    evaluations: int = 10
    curve_split: str = "val"
    confidence_bins: int = 0
    eval_batch_size: int = 1000
    attraction_samples: int = 0
    fgsm: tuple[float, ...] = ()
    fgsm_validation: tuple[float, ...] = ()
    threads: int | None = None
    device: str | None = None
    progress: bool = False

    def resolved(self, dataset: str) -> TrainConfig:
        """Fill every ``None`` from the model's paper defaults, then :data:`FALLBACK`."""
        model = self.model or DEFAULT_MODELS.get(dataset, "mlp")
        key, _ = resolve_model(model)
        paper = MODELS[key].training
        filled = {name: paper.get(name, FALLBACK[name]) for name in FALLBACK
                  if getattr(self, name) is None}
        if self.steps is not None:
            filled.pop("epochs", None)
        else:
            filled.setdefault("steps", paper.get("steps") if self.epochs is None else None)
            if filled.get("steps") is not None:
                filled.pop("epochs", None)
        result = replace(self, model=model, **filled)
        if result.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {result.schedule!r}")
        check_scale(result.loss_scale)
        if result.lr is not None:
            check_learning_rate(result.lr)
        if result.curve_split not in CURVE_SPLITS:
            raise ValueError(f"curve_split must be one of {CURVE_SPLITS}, "
                             f"got {result.curve_split!r}")
        for name in ("lr", "batch_size", "steps", "epochs", "evaluations", "eval_batch_size"):
            value = getattr(result, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("momentum", "weight_decay", "label_smoothing"):
            value = getattr(result, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if result.label_smoothing > 1:
            raise ValueError(f"label_smoothing must be in [0, 1], got {result.label_smoothing!r}")
        return result


@dataclass(frozen=True)
class TrainResult:
    """What a run produced. ``status`` is one of ``ok``, ``diverged``, ``failed``."""

    status: str
    loss: str
    dataset: str
    model: str
    seed: int
    metrics: dict[str, object]
    curves: dict[str, list]
    seconds: float
    config: dict[str, object]
    error: str | None = None
    attraction: AttractionLog | None = None

    def to_dict(self) -> dict[str, object]:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["attraction"] = self.attraction.to_dict() if self.attraction is not None else None
        return record


def learning_rate_factor(config: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """The schedule's multiplier of ``lr`` at ``step`` of ``total``.

    >>> config = TrainConfig(schedule="step", milestones=(0.5,), gamma=0.1)
    >>> [learning_rate_factor(config, s, 10, 5) for s in (0, 4, 5, 9)]
    [1.0, 1.0, 0.1, 0.1]
    """
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
    if config.schedule == "step":
        if config.step_epochs:
            return config.gamma ** (step // (config.step_epochs * steps_per_epoch))
        passed = sum(step >= fraction * total for fraction in config.milestones or ())
        return config.gamma**passed
    return 1.0


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
             transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Accuracy of ``model`` (in eval mode) on ``inputs``."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        if transform is not None:
            batch = transform(batch)
        correct += int((model(batch).argmax(dim=-1) == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(inputs), 1)


def train(loss: Loss | nn.Module, dataset: Dataset | str, config: TrainConfig | None = None, *,
          seed: int = 0, data_dir: str | Path | None = None) -> TrainResult:
    """Train the config's model on ``dataset`` with ``loss``; see the module docstring.

    ``loss`` is a bound :class:`~symloss.loss.Loss` (turned into a torch loss by
    :func:`symloss.harness.losses.torch_loss`) or any ``criterion(logits, target)`` module.
    """
    data = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
    config = (config or TrainConfig()).resolved(data.name)
    device = resolve_device(config.device)
    criterion = (torch_loss(loss, label_smoothing=config.label_smoothing,
                            scale=config.loss_scale)
                 if isinstance(loss, Loss) else loss)
    name = loss.name if isinstance(loss, Loss) else type(loss).__name__
    augment = bool(config.augment) and len(data.input_shape) == 3 and data.input_shape[-1] > 24
    eval_transform = center_crop if augment else None
    input_shape = (data.input_shape[0], 24, 24) if augment else data.input_shape
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch_threads(config.threads), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_model(config.model, input_shape=input_shape, classes=data.classes,
                            **config.model_options)
        model = Normalized(model, data.mean, data.std).to(device)
        criterion = criterion.to(device)
        return _run(model, criterion, data, config, device, seed, name, eval_transform, augment,
                    loss if isinstance(loss, Loss) else None)


def _run(model: nn.Module, criterion: nn.Module, data: Dataset, config: TrainConfig,
         device: torch.device, seed: int, name: str, eval_transform, augment: bool,
         symbolic: Loss | None) -> TrainResult:
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    size = len(x_train)
    batch_size = min(config.batch_size, size)
    steps_per_epoch = math.ceil(size / batch_size)
    total = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    eval_every = max(1, total // max(config.evaluations, 1))
    recorder = _attraction_recorder(model, symbolic, x_train, y_train, data, config, seed,
                                    eval_transform)
    curve = f"{config.curve_split}_accuracy"
    curve_inputs, curve_labels = ((data.x_val, data.y_val) if config.curve_split == "val"
                                  else (data.x_test, data.y_test))
    curves: dict[str, list] = {"step": [], "train_loss": [], "eval_step": [], curve: []}
    status, error, running, counted, step = "ok", None, 0.0, 0, 0
    progress = _progress(total, name) if config.progress else None

    def evaluate_on(inputs: torch.Tensor, labels: torch.Tensor) -> float:
        return evaluate(model, inputs.to(device), labels.to(device),
                        batch_size=config.eval_batch_size, transform=eval_transform)

    model.train()
    batches = _batches(x_train, y_train, batch_size, steps_per_epoch, generator, augment, device)
    try:
        while step < total:
            inputs, labels = next(batches)
            factor = learning_rate_factor(config, step, total, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            loss_value = _sgd_step(model, criterion, optimizer, inputs, labels)
            if not math.isfinite(loss_value):
                status, error = "diverged", f"non-finite training loss {loss_value} at step {step}"
                break
            step += 1
            running, counted = running + loss_value, counted + 1
            if progress is not None:
                progress.update(1)
            if step % eval_every == 0 or step == total:
                _record_curves(curves, curve, step, running / counted,
                               lambda: evaluate_on(curve_inputs, curve_labels))
                running, counted = 0.0, 0
            if recorder is not None and step % steps_per_epoch == 0:
                recorder.record(model, step // steps_per_epoch,
                                _paper_lr(config.lr * factor, data, config), eval_transform)
    except (RuntimeError, ValueError, IndexError, FloatingPointError, ZeroDivisionError) as caught:
        status, error = "failed", f"{type(caught).__name__}: {caught}"
    finally:
        if progress is not None:
            progress.close()
    metrics = _final_metrics(model, criterion, data, config, step, status, evaluate_on,
                             eval_transform)
    return TrainResult(status, name, data.name, config.model, seed, metrics, curves,
                       time.perf_counter() - started, _jsonable(asdict(config)), error,
                       recorder.log() if recorder is not None else None)


def _paper_lr(lr: float, data: Dataset, config: TrainConfig) -> float:
    """``lr`` on the papers' 1/n scale, which the attraction log speaks."""
    return paper_learning_rate(lr, data.classes, config.loss_scale)


def _attraction_recorder(model: nn.Module, symbolic: Loss | None, x_train: torch.Tensor,
                         y_train: torch.Tensor, data: Dataset, config: TrainConfig, seed: int,
                         eval_transform) -> AttractionRecorder | None:
    """The attraction log's recorder with epoch 0 recorded; ``None`` when none is asked for
    (or the loss is a torch module, with no formula to read)."""
    if not (config.attraction_samples and symbolic is not None):
        return None
    recorder = AttractionRecorder(symbolic, x_train, y_train, data.classes,
                                  samples=config.attraction_samples,
                                  rng=np.random.default_rng(seed),
                                  label_smoothing=config.label_smoothing)
    recorder.record(model, 0, _paper_lr(config.lr, data, config), eval_transform)
    return recorder


def _batches(x_train: torch.Tensor, y_train: torch.Tensor, batch_size: int,
             steps_per_epoch: int, generator: torch.Generator, augment: bool,
             device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training minibatches, step after step: a fresh permutation each epoch drawn
    from ``generator`` (as the augmentation is, after each batch's indices)."""
    order = torch.randperm(len(x_train), generator=generator)
    step = 0
    while True:
        position = (step % steps_per_epoch) * batch_size
        if step and step % steps_per_epoch == 0:
            order = torch.randperm(len(x_train), generator=generator)
        index = order[position:position + batch_size].to(device)
        inputs, labels = x_train[index], y_train[index]
        if augment:
            inputs = augment_glo_cifar(inputs, generator=generator)
        yield inputs, labels
        step += 1


def _sgd_step(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
              inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """One step on a batch; the loss it measured. A non-finite loss takes no step (the
    parameters stay those of the last finite one)."""
    value = criterion(model(inputs), labels)
    loss_value = value.detach().item()
    if not math.isfinite(loss_value):
        return loss_value
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return loss_value


def _record_curves(curves: dict[str, list], curve: str, step: int, train_loss: float,
                   accuracy: Callable[[], float]) -> None:
    """One evaluation's points; ``accuracy`` is evaluated last (a failure there leaves the
    step's other points recorded)."""
    curves["step"].append(step)
    curves["train_loss"].append(train_loss)
    curves["eval_step"].append(step)
    curves[curve].append(accuracy())


def _final_metrics(model, criterion, data, config, step, status, evaluate_on, eval_transform):
    metrics: dict[str, object] = {"steps": step, "val_accuracy": None, "test_accuracy": None}
    if status == "failed" or not all(torch.isfinite(p).all() for p in model.parameters()):
        return metrics
    metrics["val_accuracy"] = evaluate_on(data.x_val, data.y_val)
    metrics["test_accuracy"] = evaluate_on(data.x_test, data.y_test)
    device = next(model.parameters()).device
    if config.confidence_bins:
        metrics["test_confidence"] = confidence_counts(
            lambda batch: model(batch), data.x_test.to(device), config.confidence_bins,
            config.eval_batch_size, model, eval_transform)
    for strengths, inputs, labels, key in ((config.fgsm, data.x_test, data.y_test, "fgsm_accuracy"),
                                           (config.fgsm_validation, data.x_val, data.y_val,
                                            "val_fgsm_accuracy")):
        if strengths:
            accuracies = fgsm_accuracy(model, criterion, inputs.to(device), labels.to(device),
                                       strengths, bounds=data.bounds,
                                       batch_size=config.eval_batch_size, transform=eval_transform)
            metrics[key] = {str(float(e)): a for e, a in accuracies.items()}
    return metrics


@torch.no_grad()
def confidence_counts(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                      bins: int, batch_size: int, model: nn.Module | None = None,
                      transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      ) -> list:
    """Counts of the largest softmax output per sample in ``bins`` equal bins of [0, 1]
    (GLO Fig. 7); ``forward`` gives logits ``[..., B, n]`` (one model, or K stacked:
    then one list of counts per model). ``model`` is put in eval mode meanwhile.

    >>> counts = confidence_counts(lambda x: x, torch.tensor([[9.0, 0.0], [0.0, 0.0]]), 4, 10)
    >>> counts  # 0.9999 and 0.5: the last bin and the third
    [0, 0, 1, 1]
    """
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    total = None
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        logits = forward(transform(batch) if transform is not None else batch)
        top = torch.softmax(logits.double(), dim=-1).amax(dim=-1)
        index = (top * bins).long().clamp(0, bins - 1)
        counts = torch.zeros(*index.shape[:-1], bins, dtype=torch.long, device=index.device)
        counts.scatter_add_(-1, index, torch.ones_like(index))
        total = counts if total is None else total + counts
    if model is not None:
        model.train(was_training)
    return total.tolist() if total is not None else [0] * bins


def _progress(total: int, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"train {name}", unit="step", leave=False, mininterval=0.5)


def _jsonable(record: dict[str, object]) -> dict[str, object]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in record.items()}
