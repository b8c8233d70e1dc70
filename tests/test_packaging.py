"""Packaging: dependency bounds that the code needs and no more (issue 13)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement(name: str) -> Requirement:
    every = PROJECT["dependencies"] + [r for extra in PROJECT["optional-dependencies"].values()
                                       for r in extra]
    return next(Requirement(r) for r in every if Requirement(r).name == name)


@pytest.mark.parametrize(("name", "needed", "refused"), [
    ("torch", ["2.4.0", "2.13.0", "2.14.0", "2.20.1"], ["2.3.1"]),  # is_autocast_enabled(type)
    ("sympy", ["1.14.0", "1.15.1", "1.20"], ["1.13.3"]),  # 1.13: the binary view's flat minima
    ("numpy", ["2.0.0", "2.4.0"], ["1.26.4"]),
])
def test_bounds_admit_what_works_and_refuse_what_does_not(name, needed, refused):
    specifier = _requirement(name).specifier
    assert all(specifier.contains(v) for v in needed), (name, specifier)
    assert not any(specifier.contains(v) for v in refused), (name, specifier)


def test_no_dependency_is_pinned_to_one_minor_version():
    """A cap like ``<1.15`` would replace a user's newer sympy; only major versions are capped."""
    for text in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["harness"]:
        for spec in Requirement(text).specifier:
            if spec.operator == "<":  # a major version (or a 0.x series, whose minors break)
                assert "." not in spec.version or spec.version.startswith("0."), text


def test_the_code_uses_what_the_torch_bound_promises():
    import torch

    assert callable(torch.compiler.is_compiling)
    # the newest API the harness relies on (2.4: the device-type argument)
    assert torch.is_autocast_enabled("cpu") is False
    assert "is_autocast_enabled(input.device.type)" in (ROOT / "harness" / "losses.py").read_text()


def test_every_package_folder_is_installed_under_symloss():
    """A new subpackage must be listed, or the wheel leaves it out (package-dir renames)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    folders = {folder: name for name, folder in mapping.items()}
    found = set()
    for folder, name in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found == set(tool["packages"])
    assert all(name == "symloss" or name.startswith("symloss.") for name in found)
