"""The torch side of symloss: losses as torch modules, data, models, training, attacks.

Public names are re-exported lazily (PEP 562), so ``import symloss.harness.cli`` — what
the ``symloss`` command does — does not import torch; touching any other name
does.

>>> import symloss.harness
>>> symloss.harness.torch_loss.__module__
'symloss.harness.losses'
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "generate": "symloss.harness.codegen",
    "term_source": "symloss.harness.codegen",
    "LossPrinter": "symloss.harness.codegen",
    "torch_loss": "symloss.harness.losses",
    "SymbolicLoss": "symloss.harness.losses",
    "Dataset": "symloss.harness.data",
    "DataError": "symloss.harness.data",
    "DATASETS": "symloss.harness.data",
    "load_dataset": "symloss.harness.data",
    "read_idx": "symloss.harness.data",
    "read_cifar_batch": "symloss.harness.data",
    "augment_glo_cifar": "symloss.harness.data",
    "MODELS": "symloss.harness.models",
    "build_model": "symloss.harness.models",
    "Normalized": "symloss.harness.models",
    "TrainConfig": "symloss.harness.train",
    "TrainResult": "symloss.harness.train",
    "train": "symloss.harness.train",
    "evaluate": "symloss.harness.train",
    "fgsm_accuracy": "symloss.harness.fgsm",
    "AttractionLog": "symloss.harness.attraction",
    "AttractionRecorder": "symloss.harness.attraction",
    "default_device": "symloss.harness.device",
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
