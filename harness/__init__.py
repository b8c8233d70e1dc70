"""The torch side of symloss: losses as torch modules, data, models, training, attacks.

Public names are re-exported lazily (PEP 562), so ``import harness.cli`` — what
the ``symloss`` command does — does not import torch; touching any other name
does.

>>> import harness
>>> harness.torch_loss.__module__
'harness.losses'
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "generate": "harness.codegen",
    "term_source": "harness.codegen",
    "LossPrinter": "harness.codegen",
    "torch_loss": "harness.losses",
    "SymbolicLoss": "harness.losses",
    "clamp_probabilities": "harness.losses",
    "Dataset": "harness.data",
    "DataError": "harness.data",
    "DATASETS": "harness.data",
    "load_dataset": "harness.data",
    "read_idx": "harness.data",
    "read_cifar_batch": "harness.data",
    "augment_glo_cifar": "harness.data",
    "MODELS": "harness.models",
    "build_model": "harness.models",
    "Normalized": "harness.models",
    "TrainConfig": "harness.train",
    "TrainResult": "harness.train",
    "train": "harness.train",
    "evaluate": "harness.train",
    "fgsm_accuracy": "harness.fgsm",
    "AttractionLog": "harness.attraction",
    "AttractionRecorder": "harness.attraction",
    "default_device": "harness.device",
}

__all__ = sorted(_EXPORTS)


def lazy_exports(namespace: dict, exports: dict[str, str]):
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for names that load on first use.

    ``namespace``: the package's ``globals()``; ``exports``: name → module that defines it.
    A name, once loaded, is kept in ``namespace``.
    """
    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
