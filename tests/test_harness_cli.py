"""``symloss train`` through :func:`symloss.harness.cli.register`, in process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from symloss.harness.cli import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="symloss")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE", str(tmp_path_factory.getbasetemp() / "symloss-cache"))


def test_compare_over_seeds_prints_one_json_object(capsys):
    code = run(["train", "--loss", "baikal", "--compare", "cross_entropy", "--dataset", "mnist1d",
                "--seeds", "3", "--steps", "60", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["model"] == "cnn1d"
    accuracy = report["test_accuracy"]
    assert len(accuracy["per_seed"]) == 3 and 0.1 < accuracy["mean"] <= 1.0
    assert accuracy["std"] >= 0.0
    compare = report["compare"]
    assert compare["loss"] == "cross_entropy" and len(compare["test_accuracy"]["per_seed"]) == 3
    assert 0.0 <= compare["p_value"] <= 1.0


def test_family_params_fgsm_and_out_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = run(["train", "--loss", "taylorglo", "--params", "0,0,0,-1", "0", "2", "0", "0",
                "--dataset", "digits", "--epochs", "1", "--batch-size", "200",
                "--fgsm", "0,0.1", "--attraction-log", "--attraction-samples", "20",
                "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "taylorglo3" in text and "fgsm 0.1" in text
    stored = json.loads((out / "result.json").read_text())
    assert stored["runs"][0]["attraction"]["epoch"][:1] == [0]
    assert set(stored["fgsm_accuracy"]) == {"0.0", "0.1"}
    assert (out / "attraction-taylorglo3-seed0.png").exists()
    assert (out / "attraction-taylorglo3-seed0.csv").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--loss", "hinge"], "unknown name 'hinge'"),
    (["--loss", "log(h"], "symloss: error: "),
    (["--loss", "taylorglo"], "give their values with --params"),
    (["--loss", "baikal", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--loss", "baikal", "--dataset", "mnist", "--data-dir", "/nonexistent"],
     "expected /nonexistent/mnist/train-images-idx3-ubyte[.gz] (IDX format)"),
    (["--loss", "baikal", "--model", "vgg"], "unknown model 'vgg'"),
    (["--loss", "baikal", "--fgsm", "0,big"], "--fgsm must be numbers"),
    (["--loss", "baikal", "--seeds", "0"], "--seeds must be a whole number from 1 to 10000"),
    (["--loss", "baikal", "--lr", "nan"], "--lr must be a number in (0, 3.4e+38]"),
    (["--loss", "baikal", "--lr", "-1"], "(the largest float32: the parameters' type), got -1.0"),
    (["--loss", "baikal", "--batch-size", "0"], "batch_size must be a positive number, got 0"),
    (["--loss", "baikal", "--steps", "0"], "steps must be a positive number, got 0"),
    (["--loss", "baikal", "--steps", "-5"], "steps must be a positive number, got -5"),
    (["--loss", "baikal", "--fgsm", "nan"], "--fgsm strengths must be finite and >= 0"),
    (["--loss", "baikal", "--label-smoothing", "nan"], "label_smoothing must be a non-negative"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert run(["train", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symloss: error: ") and message in lines[0]


def test_importing_the_cli_does_not_import_torch():
    code = ("import sys, symloss.harness.cli, harness; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_harness_never_imports_proofs_nor_reproduce():
    """The arrow points one way: symloss ← harness ← reproduce → proofs."""
    code = ("import sys, pkgutil, importlib, symloss.harness\n"
            "for info in pkgutil.walk_packages(symloss.harness.__path__, 'symloss.harness.'):\n"
            "    importlib.import_module(info.name)\n"
            "sys.exit(1 if {'symloss.proofs', 'symloss.reproduce'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
