"""Take a found loss home: the module ``symloss export RUN_ID`` writes.

:func:`export_source` writes a standalone PyTorch module — it imports only
``torch`` — that computes the loss exactly as :func:`symloss.harness.losses.torch_loss`
does, from the same source: the torch-only core of :mod:`symloss.harness.losses`
(:class:`~symloss.harness.losses.PerClassLoss`, log space, torch's precision policy
and errors) copied verbatim, and the per-class term printed by
:mod:`symloss.harness.codegen` with the parameter values substituted.
``tests/test_search_export.py`` imports a written file in a fresh interpreter and
compares it with the harness's loss; ``tests/test_torch_exact.py`` runs PyTorch's own
``CrossEntropyLoss`` test samples through an exported cross-entropy.

**Data-safe by construction.** Everything that comes from outside — the formula,
its parameter values, the run id, the store path, the fitness, the analysis text —
enters the generated source only through :func:`repr` (the constants ``FORMULA``,
``PARAMETERS``, ``ORIGIN``, ``ANALYSIS``), never into a docstring or a comment; the
class name must be an identifier that is no keyword and no name the module uses
(:func:`check_class_name`); the text is :func:`compile`-d before it is written; and
:func:`write_module` refuses an existing file unless asked to replace it, and never
writes through a symbolic link.

The loss itself comes from the store (:meth:`RunStore.loss
<symloss.harness.search.store.RunStore.loss>`, what a ``run:ID[:rank]`` loss spec names:
:mod:`symloss.harness.search.resolver`).
"""

from __future__ import annotations

import ast
import inspect
import os
from collections.abc import Mapping
from pathlib import Path

from symloss.loss import Loss

#: The lines of symloss.harness.losses between which its torch-only core lies.
CORE_START = "# ---- The torch-only core"
CORE_END = "# ---- end of the torch-only core ----"


def export_source(loss: Loss, *, class_name: str = "FoundLoss",
                  origin: Mapping[str, object] | None = None, classes: int = 10) -> str:
    """The text of a standalone module computing ``loss`` (see the module docstring).

    ``origin``: where the loss came from (run, rank, fitness, store), kept in the
    module's ``ORIGIN``; default ``{"loss": loss.name}``.

    >>> from symloss.catalog import loss
    >>> text = export_source(loss("baikal"))
    >>> "import torch" in text and "class FoundLoss(PerClassLoss)" in text
    True
    >>> export_source(loss("baikal"), class_name="torch")
    Traceback (most recent call last):
    ...
    ValueError: --class-name 'torch' is a name the exported module uses; choose another...
    """
    from symloss.analysis import analyze
    from symloss.harness import losses
    from symloss.harness.codegen import generate
    from symloss.report import format_report

    if loss.is_family:
        raise ValueError(f"loss {loss.name!r} is a family; bind its parameters first")
    check_class_name(class_name)
    bound = Loss(loss.name, loss.expression)  # the parameter values substituted
    generated = generate(bound.expr, ())
    core = inspect.getsource(losses)
    core = core[core.index(CORE_START):core.index(CORE_END) + len(CORE_END)]
    parameters = {str(p): v for p, v in zip(loss.parameters, loss.values or (), strict=True)}
    analysis = format_report(analyze(loss, classes=classes)).splitlines()
    text = TEMPLATE.format(
        class_name=class_name, class_name_text=repr(class_name),
        formula=repr(str(bound.expression)),
        parameters=repr(parameters), origin=repr(dict(origin or {"loss": loss.name})),
        analysis="".join(f"    {line!r},\n" for line in analysis),
        constants=f"REDUCTIONS = {losses.REDUCTIONS!r}\nLOSS_SCALES = {losses.LOSS_SCALES!r}",
        core=core, term=generated.source.rstrip(),
        uses_complement=generated.uses_complement, by_target=generated.by_target,
        adds_at_target=generated.adds_at_target, exact_top=generated.exact_top)
    check_class_name(class_name, text)
    compile(text, "<exported loss>", "exec")  # a SyntaxError here is ours: nothing is written
    return text


def check_class_name(class_name: str, text: str = "") -> None:
    """Refuse a ``--class-name`` that is not an identifier, is a (soft) keyword, or is a
    name the exported module ``text`` uses (``torch``, ``super``, ``per_class_terms`` …:
    every name its source mentions, read with :mod:`ast`)."""
    import keyword

    if not (isinstance(class_name, str) and class_name.isidentifier()):
        raise ValueError(f"--class-name must be a Python identifier, got {class_name!r}")
    if keyword.iskeyword(class_name) or keyword.issoftkeyword(class_name):
        raise ValueError(f"--class-name {class_name!r} is a Python keyword; choose another "
                         "name, e.g. FoundLoss")
    if text and class_name in _module_names(text.replace(f"class {class_name}(",
                                                          "class _Exported(")):
        raise ValueError(f"--class-name {class_name!r} is a name the exported module uses; "
                         "choose another, e.g. FoundLoss")


def _module_names(text: str) -> set[str]:
    """Every name the source ``text`` binds or reads, builtins included."""
    names = {"__name__", "__doc__", "__file__", "__builtins__", "__spec__", "__loader__"}
    for node in ast.walk(ast.parse(text or "\n")):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def write_module(text: str, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``text`` to the ``.py`` file ``out``: a new file, or with ``force`` one that
    replaces a regular file (written beside it, then renamed over it); never through a
    symbolic link, never over a folder (:func:`symloss.paths.check_output_file`). Any
    problem is a one-line ``ValueError``."""
    target = check_destination(out, force=force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not force:
            _write_new(target, text)
            return target
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        _write_new(temporary, text)
        try:
            os.replace(temporary, target)  # renames over a link itself, never through it
        finally:
            temporary.unlink(missing_ok=True)
    except FileExistsError:
        raise ValueError(f"--out {target} exists; pass --force to replace it") from None
    except OSError as error:
        raise ValueError(f"cannot write --out {target}: {error.strerror or error}") from None
    return target


def check_destination(out: str | os.PathLike, *, force: bool = False) -> Path:
    """``out`` if :func:`write_module` may write there (what the CLI checks before it
    computes anything), else a one-line ``ValueError``."""
    from symloss.paths import check_output_file

    target = check_output_file("--out", out, overwrite=force)
    if target.suffix != ".py":
        raise ValueError(f"--out must name a .py file, got {str(out)!r}")
    return target


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (it must not exist; a link there is not followed) and write ``text``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8") as handle:
        handle.write(text)


TEMPLATE = '''"""A loss function found by symloss; this file needs only torch.

{class_name} computes the per-class loss term FORMULA (below), ℓ(y, h) for each
class k, with h = softmax(logits) and y the label value (one-hot, or smoothed);
a sample's loss is Σ_k w_k ℓ(y_k, h_k), reduced over the batch as
torch.nn.CrossEntropyLoss reduces it. PARAMETERS holds the parameter values that
FORMULA has substituted, ORIGIN where the loss came from, and ANALYSIS its
symbolic analysis (symloss analyze; docs/conventions.md in symloss).

It is computed from log h = log_softmax(logits), exact at any logit gap, float16
and bfloat16 in float32, with torch.nn.CrossEntropyLoss's arguments, errors and
autocast dtype (symloss.harness.losses, whose torch-only core is copied below).

Usage, as torch.nn.CrossEntropyLoss:

    criterion = {class_name}()  # weight, ignore_index, reduction, label_smoothing
    loss = criterion(logits, target)  # logits (N, C) or (N, C, d1, ...); target
                                      # class indices or probabilities
"""

from __future__ import annotations

import torch

FORMULA = {formula}
PARAMETERS = {parameters}
ORIGIN = {origin}
ANALYSIS = (
{analysis})

{constants}

{core}


{term}


class _Generated:
    """The per-class term in log space (symloss.harness.codegen.GeneratedTerm)."""

    term = staticmethod(term)
    off_target_term = staticmethod(off_target_term)
    on_target_term = staticmethod(on_target_term)
    target_difference = staticmethod(target_difference)
    uses_complement = {uses_complement}
    by_target = {by_target}
    adds_at_target = {adds_at_target}
    exact_top = {exact_top}


class {class_name}(PerClassLoss):
    """ℓ(y, h) = FORMULA, with torch.nn.CrossEntropyLoss's arguments."""

    formula = "ℓ(y, h) = " + FORMULA
    generated = _Generated


__all__ = [{class_name_text}, "FORMULA", "PARAMETERS", "ORIGIN", "ANALYSIS"]
'''
