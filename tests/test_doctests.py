"""Doctests of the packages installed under ``symloss.`` from other folders (harness/,
proofs/, reproduce/), run under their installed names: collected by path, pytest would
import a second copy of each module as ``harness.…``."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("symloss.harness", "symloss.proofs", "symloss.reproduce")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [info.name for info in pkgutil.walk_packages(path, package + ".")
                  if not info.name.endswith("__main__")]
    return names


MODULES = _modules()


def test_every_folder_is_found():
    assert {"symloss.harness.search.runner", "symloss.harness.batched.loop",
            "symloss.proofs._framework", "symloss.reproduce.paper"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name} (output above)"


def test_no_module_imports_the_folders_by_their_old_names():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(from|import) (harness|proofs|reproduce)\b", re.MULTILINE)
    offenders = [str(p.relative_to(root)) for folder in ("symloss", "harness", "proofs",
                                                         "reproduce", "tests", "benchmarks",
                                                         "examples")
                 for p in (root / folder).rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
