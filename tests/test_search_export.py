"""Taking a found loss home: ``symloss export`` and ``run:ID[:rank]`` wherever a loss goes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from symloss.catalog import loss
from symloss.cli import EXIT_USAGE, main
from symloss.harness.losses import torch_loss
from symloss.harness.search.export import export_source, run_loss

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


def _compare_in_a_fresh_interpreter(module_file, class_name, reference, tmp_path):
    """Import the written file with nothing but torch and compare with ``reference``."""
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
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
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
    reference = run_loss(f"run:{run_id}", store)
    assert f"ℓ(y, h) = {reference.expression}" in text and "null epoch" in text
    _compare_in_a_fresh_interpreter(out, "MyLoss", reference, tmp_path)


def test_a_catalog_loss_exports_too_and_matches(tmp_path):
    out = tmp_path / "baikal_loss.py"
    out.write_text(export_source(loss("baikal")))
    _compare_in_a_fresh_interpreter(out, "FoundLoss", loss("baikal"), tmp_path)


def test_run_specs_work_wherever_a_loss_goes(stored_run, tmp_path, capsys):
    store, run_id = stored_run
    best, second = run_loss(f"run:{run_id}", store), run_loss(f"run:{run_id}:2", store)
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
