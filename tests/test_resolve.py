"""One loss resolver (issue 22, item 4): catalog names, formulas and ``run:ID[:rank]`` through
:func:`symloss.resolve.resolve_loss`, whatever command or API asks; a run's loss from
:meth:`RunStore.loss`."""

from __future__ import annotations

import pytest

from symloss.catalog import loss as catalog_loss
from symloss.catalog import taylorglo
from symloss.formula import FormulaError
from symloss.loss import Loss
from symloss.resolve import resolve_loss, resolver_prefix

#: Two TaylorGLO members (order 3, 8 parameters): λ for h² - 2hy (MSE up to a constant,
#: the catalog's doctest) and for h - y·h, fitness 0.9 and 0.8.
BEST = [0.0, 0.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.0]
SECOND = [0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0]


@pytest.fixture
def stored(tmp_path):
    """A store with one TaylorGLO run: BEST, a duplicate of it, SECOND, one filtered."""
    from symloss.harness.search.runner import SearchConfig
    from symloss.harness.search.store import CandidateRecord, RunStore

    path = tmp_path / "runs.sqlite"
    with RunStore.open(path) as store:
        run_id = store.create_run("taylorglo", SearchConfig().to_dict(), run_id="r1")
        for idx, (status, fitness, params, key) in enumerate((
                ("ok", 0.9, BEST, "a"), ("ok", 0.9, BEST, "a"), ("ok", 0.8, SECOND, "b"),
                ("filtered", 0.0, [1.0] * 8, "c"))):
            store.add_candidate(run_id, CandidateRecord(0, idx, status, fitness, params,
                                                        canonical_key=key))
    return path, run_id


def test_a_catalog_name_and_a_formula_are_the_catalogs():
    for spec in ("baikal", "cross-entropy", "-y*log(h) + y/h"):
        assert resolve_loss(spec).expression == catalog_loss(spec).expression


def test_order_and_params_reach_the_catalog():
    bound = resolve_loss("taylorglo", order=3, params=BEST)
    assert bound.expression == taylorglo(3).bind(BEST).expression
    assert str(bound.expression) == "h**2 - 2*h*y"  # symloss.catalog.loss's doctest
    assert resolve_loss("taylorglo", order=2).is_family


def test_a_loss_is_itself():
    baikal = catalog_loss("baikal")
    assert resolve_loss(baikal) == baikal


def test_the_prefix_of_a_plug_in_spec():
    assert resolver_prefix("run:abc:2") == "run"
    assert resolver_prefix("  run:abc") == "run"
    assert resolver_prefix("-y*log(h)") is None
    assert resolver_prefix("3:x") is None  # not a name: the formula parser answers


def test_a_prefix_no_package_registers_is_a_formula_error():
    with pytest.raises(FormulaError):
        resolve_loss("nosuch:thing")


def test_run_specs_go_through_the_entry_point(stored):
    path, run_id = stored
    best = resolve_loss(f"run:{run_id}", store=path)
    assert isinstance(best, Loss) and best.name == f"run-{run_id}-1"
    assert best.expression == taylorglo(3).bind(BEST).expression
    assert dict(best.meta)["fitness"] == 0.9 and dict(best.meta)["rank"] == 1
    second = resolve_loss(f"run:{run_id}:2", store=str(path))  # the duplicate is one loss
    assert second.expression == taylorglo(3).bind(SECOND).expression


def test_the_default_store_is_the_environments(stored, monkeypatch):
    path, run_id = stored
    monkeypatch.setenv("SYMLOSS_STORE", str(path))
    assert resolve_loss(f"run:{run_id}").expression == taylorglo(3).bind(BEST).expression


def test_the_store_returns_a_runs_loss(stored):
    from symloss.harness.search.store import RunStore

    path, run_id = stored
    with RunStore.open(path, readonly=True) as store:
        assert store.loss(run_id) == resolve_loss(f"run:{run_id}:1", store=path)
        with pytest.raises(ValueError, match="has 2 distinct evaluated candidates, not 3"):
            store.loss(run_id, 3)
        with pytest.raises(ValueError, match="ranks start at 1, got 0"):
            store.loss(run_id, 0)


@pytest.mark.parametrize(("spec", "message"), [
    ("run:", "a stored loss is run:ID or run:ID:RANK, got 'run:'"),
    ("run:r1:best", "a stored loss is run:ID or run:ID:RANK"),
    ("run:r1:0", "ranks start at 1, got 0"),
    ("run:r1:99999", "run r1 has 2 distinct evaluated candidates, not 99999"),
    ("run:nosuch", "no run 'nosuch'"),
])
def test_a_bad_run_spec_is_one_line(stored, spec, message):
    path, _ = stored
    with pytest.raises(ValueError, match=message) as raised:
        resolve_loss(spec, store=path)
    assert "\n" not in str(raised.value)


def test_without_the_harness_a_run_spec_names_the_extra(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    with pytest.raises(ValueError, match=r"needs the 'harness' extra: pip install "
                                         r"'symloss\[harness\]'"):
        resolve_loss("run:abc")


def test_every_command_resolves_through_the_one_resolver(monkeypatch):
    """analyze/curve (symloss.cli) and train (harness.cli) call resolve_loss: a spec the
    core cannot read reaches the same hook from both (train once bypassed it)."""
    import symloss.resolve
    from symloss.cli import _load_loss
    from symloss.harness.cli import _build_loss

    seen = []

    def resolver(spec, *, order=3, params=None, store=None):
        seen.append((spec, order, params, store))
        return catalog_loss("baikal")

    monkeypatch.setattr(symloss.resolve, "resolve_loss", resolver)
    _load_loss("x:1", 3, None, "s.sqlite")
    _build_loss("x:2", 4, [1.0], "t.sqlite")
    assert seen == [("x:1", 3, None, "s.sqlite"), ("x:2", 4, [1.0], "t.sqlite")]
