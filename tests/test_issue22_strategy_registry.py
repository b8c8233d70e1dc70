"""The strategy registry is lazy (issue 22): its names cost no pycma, its classes load on use.

``symloss search``'s ``--algorithm`` choices can then read
:func:`symloss.harness.search.strategies.algorithm_names` on every ``symloss`` start
without importing pycma (about 1.2 s) or any strategy module.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from symloss.harness.search import strategies


def test_the_names_import_no_strategy_nor_pycma():
    code = (
        "import sys\n"
        "import symloss.harness.search.strategies as registry\n"
        "assert registry.algorithm_names() == ('taylorglo', 'glo')\n"
        "assert 'glo' in registry.STRATEGIES and len(registry.STRATEGIES) == 2\n"
        "loaded = sorted(name for name in sys.modules if name == 'cma'\n"
        "                or name.startswith(('cma.', 'torch', 'deap'))\n"
        "                or name.startswith('symloss.harness.search.strategies.'))\n"
        "print(loaded)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr


def test_each_registered_class_is_the_strategy_of_its_name():
    for name, place in strategies.PLACES.items():
        module, _, attribute = place.partition(":")
        cls = strategies.strategy_class(name)
        assert (cls.__module__, cls.__name__) == (module, attribute)
        assert issubclass(cls, strategies.Strategy) and cls.algorithm == name
        assert strategies.STRATEGIES[name] is cls
    assert dict(strategies.STRATEGIES) == {name: strategies.strategy_class(name)
                                           for name in strategies.algorithm_names()}


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        strategies.STRATEGIES["random"] = object  # type: ignore[index]
    with pytest.raises(TypeError):
        strategies.PLACES["random"] = "module:Class"  # type: ignore[index]
    assert "random" not in strategies.STRATEGIES


def test_every_public_name_still_imports_from_the_package():
    from symloss.harness.search.strategies import cma, glo, protocol, taylorglo

    for name in strategies.__all__:
        assert getattr(strategies, name) is not None
    assert strategies.GLOStrategy is glo.GLOStrategy
    assert strategies.TaylorGLOSettings is taylorglo.TaylorGLOSettings
    assert strategies.Candidate is protocol.Candidate
    assert strategies._cma is cma.make_cma
    assert set(strategies.__all__) <= set(dir(strategies))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        strategies.nothing  # noqa: B018
