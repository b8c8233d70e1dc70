"""Taking a found loss home: ``symloss export`` and ``run:ID[:rank]`` wherever a loss goes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import torch

from symloss.catalog import loss
from symloss.cli import EXIT_USAGE, main
from symloss.harness.losses import torch_loss
from symloss.harness.search.export import export_source
from symloss.harness.search.resolver import stored_loss

TINY = ["--dataset", "digits", "--generations", "2", "--population", "6", "--steps", "4",
        "--batch-size", "64", "--no-progress"]

#: The exported module against the harness's loss, float64: the same operations in order.
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    store = folder / "runs.sqlite"
    code = main(["search", "taylorglo", *TINY, "--store", str(store), "--json", "--out",
                 str(folder / "report")])
    assert code == 0
    with __import__("sqlite3").connect(store) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone()
    connection.close()
    return store, run_id


def _compare_in_a_fresh_interpreter(module_file, class_name, reference, tmp_path, extra=""):
    """Import the written file with nothing but torch and compare with ``reference``;
    ``extra``: more lines run after (with ``module`` imported), in the test's folder."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for options in ({}, {"reduction": "sum", "label_smoothing": 0.1},
                    {"reduction": "none", "ignore_index": 2},
                    {"weight": [0.5, 1.0, 1.5, 2.0, 0.7, 1.1, 0.9, 1.3, 1.0, 0.8]}):
        logits = torch.randn(6, 10, 3, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 10, (6, 3), generator=generator)
        weight = options.get("weight")
        ours = torch_loss(reference, **{**options, "weight": None if weight is None else
                                        torch.tensor(weight, dtype=torch.float64)})
        cases.append({"options": options, "logits": logits.tolist(), "target": target.tolist(),
                      "expected": ours(logits, target).tolist()})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    code = (
        "import json, sys, importlib.util, torch\n"
        f"spec = importlib.util.spec_from_file_location('found', {str(module_file)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in "
        "('symloss', 'harness', 'sympy')], 'imports beyond torch'\n"
        f"for case in json.load(open({str(tmp_path / 'cases.json')!r})):\n"
        "    options = dict(case['options'])\n"
        "    if 'weight' in options:\n"
        "        options['weight'] = torch.tensor(options['weight'], dtype=torch.float64)\n"
        f"    criterion = module.{class_name}(**options)\n"
        "    value = criterion(torch.tensor(case['logits'], dtype=torch.float64),\n"
        "                      torch.tensor(case['target']))\n"
        "    expected = torch.tensor(case['expected'], dtype=torch.float64)\n"
        f"    assert torch.allclose(value, expected, rtol={TOLERANCE}, atol={TOLERANCE}), "
        "(case['options'], (value - expected).abs().max().item())\n"
        f"{extra}"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_export_writes_a_module_that_imports_torch_alone_and_matches(stored_run, tmp_path,
                                                                    capsys):
    store, run_id = stored_run
    out = tmp_path / "found_loss.py"
    code = main(["export", run_id, "--store", str(store), "--out", str(out), "--class-name",
                 "MyLoss"])
    assert code == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: MyLoss")
    text = out.read_text()
    reference = stored_loss(f"run:{run_id}", store)
    assert f"ℓ(y, h) = {reference.expression}" in text and "null epoch" in text
    _compare_in_a_fresh_interpreter(out, "MyLoss", reference, tmp_path)


def test_a_catalog_loss_exports_too_and_matches(tmp_path):
    out = tmp_path / "baikal_loss.py"
    out.write_text(export_source(loss("baikal")))
    _compare_in_a_fresh_interpreter(out, "FoundLoss", loss("baikal"), tmp_path)


def test_run_specs_work_wherever_a_loss_goes(stored_run, tmp_path, capsys):
    store, run_id = stored_run
    best, second = stored_loss(f"run:{run_id}", store), stored_loss(f"run:{run_id}:2", store)
    assert best.meta[-3:][0] == ("run", run_id) and dict(best.meta)["rank"] == 1
    assert dict(best.meta)["fitness"] >= dict(second.meta)["fitness"]
    assert main(["analyze", f"run:{run_id}", "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == str(best.expression)
    assert main(["curve", f"run:{run_id}:2", "--store", str(store), "--out",
                 str(tmp_path / "c.png")]) == 0
    capsys.readouterr()
    assert main(["train", "--loss", f"run:{run_id}", "--store", str(store), "--dataset",
                 "digits", "--steps", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["formula"] == str(best.expression)


@pytest.mark.parametrize(("argv", "message"), [
    (["analyze", "run:nosuchrun"], "no run 'nosuchrun'"),
    (["analyze", "run:{run}:999"], "distinct evaluated candidates, not 999"),
    (["export", "{run}", "--out", "x.txt"], "--out must name a .py file"),
    (["export", "{run}", "--out", "x.py", "--class-name", "not valid"],
     "--class-name must be a Python identifier"),
])
def test_export_and_run_spec_errors_are_one_line(stored_run, argv, message, capsys, tmp_path,
                                                 monkeypatch):
    store, run_id = stored_run
    monkeypatch.chdir(tmp_path)
    code = main([part.replace("{run}", run_id) for part in argv] + ["--store", str(store)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "x.py").exists()


#: Text that would run code (or break the file) if it reached the source unescaped: it
#: closes a docstring, calls open(), and holds a \N escape (a SyntaxError in a literal).
ATTACK = '""";open("MARK","w");"""\\N'


def _tampered_copy(store, run_id, folder):
    """A copy of ``store`` in ``folder`` whose run is renamed ``run_id + ATTACK``."""
    folder.mkdir()
    copy = folder / "runs.sqlite"
    with sqlite3.connect(store) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("PRAGMA foreign_keys = OFF")
        tables = [row[0] for row in target.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if "run_id" in [c[1] for c in target.execute(f"PRAGMA table_info({table})")]:
                target.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?",
                               (run_id + ATTACK, run_id))
    source.close()
    target.close()
    return copy, run_id + ATTACK


def test_a_hostile_store_path_and_run_id_stay_data(stored_run, tmp_path, capsys):
    """issue 20: a \"\"\" or \\N in --store or in a stored run id reaches the module only
    through repr: it imports, computes the loss, runs nothing, and keeps them verbatim."""
    store, run_id = stored_run
    copy, hostile_id = _tampered_copy(store, run_id, tmp_path / f"store{ATTACK}")
    out = tmp_path / "found.py"
    assert main(["export", hostile_id, "--store", str(copy), "--out", str(out)]) == 0
    capsys.readouterr()
    reference = stored_loss(f"run:{hostile_id}", copy)
    check = (f"assert module.ORIGIN['store'] == {str(copy)!r}, module.ORIGIN\n"
             f"assert module.ORIGIN['run'] == {hostile_id!r}\n"
             "import os\n"
             "assert not os.path.exists('MARK'), 'the module ran code'\n")
    _compare_in_a_fresh_interpreter(out, "FoundLoss", reference, tmp_path, extra=check)
    assert not (tmp_path / "MARK").exists()


@pytest.mark.parametrize("name", ["class", "None", "match", "_", "torch", "super",
                                  "per_class_terms", "PerClassLoss", "FORMULA", "term",
                                  "isinstance", "annotations"])
def test_class_names_that_break_the_module_are_refused(stored_run, name, tmp_path, capsys):
    store, run_id = stored_run
    out = tmp_path / "x.py"
    code = main(["export", run_id, "--store", str(store), "--out", str(out), "--class-name",
                 name])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1, err
    assert repr(name) in err and not out.exists()


def test_out_is_never_overwritten_unasked_nor_written_through_a_link(stored_run, tmp_path,
                                                                     capsys):
    store, run_id = stored_run
    existing = tmp_path / "mine.py"
    existing.write_text("precious = True\n")
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.py"
    link.symlink_to(victim)
    for out, force in ((existing, False), (link, False), (link, True),
                       (tmp_path / "mine.py" / "below.py", False)):
        argv = ["export", run_id, "--store", str(store), "--out", str(out)]
        code = main(argv + ["--force"] * force)
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1, (out, err)
    assert existing.read_text() == "precious = True\n" and victim.read_text() == "precious\n"
    assert link.is_symlink()
    assert main(["export", run_id, "--store", str(store), "--out", str(existing),
                 "--force"]) == 0
    assert "class FoundLoss(PerClassLoss)" in existing.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.py", "mine.py", "notes.txt"]
