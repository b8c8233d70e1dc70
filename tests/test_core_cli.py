"""The ``symloss`` command line, run in-process (symloss.cli.main) and once in a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from symloss.cli import EXIT_USAGE, main, parse_floats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors exit through SystemExit
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(argv: list[str], capsys) -> dict:
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    return json.loads(out)


def test_analyze_baikal_json(capsys):
    payload = _json(["analyze", "baikal", "--json"], capsys)
    for key in ("loss", "gamma", "gamma_target", "gamma_nontarget"):
        assert isinstance(payload[key], str), key
    assert payload["gamma"] == "1/h + y/h**2"  # ICLR eq. 9
    assert set(payload["null_epoch"]) >= {"gamma_target", "gamma_nontarget", "trainable"}
    assert payload["null_epoch"]["gamma_target"] == 110  # n + n², ICLR eq. 27 at n = 10
    assert payload["null_epoch"]["gamma_nontarget"] == 10
    assert payload["null_epoch"]["trainable"] is True
    assert payload["zero_error"]["limit"] == "-inf"  # ICLR Theorem 1
    assert payload["zero_error"]["attractor"] is False
    assert payload["paper_invariant"] == {"trainable": True}
    assert payload["binary_minimum"] == pytest.approx(2**-0.5, abs=1e-6)  # GLO §V-A ≈ 0.71


def test_analyze_inf_string_by_hand(capsys):
    # By hand: ℓ = y·log(1 − h), γ = y/(1 − h); γ_T(1 − ε) = 1/ε, γ_N = 0, so Δ = 1/ε → +∞.
    payload = _json(["analyze", "y*log(1 - h)", "--json"], capsys)
    assert payload["zero_error"]["limit"] == "inf"


def test_analyze_taylorglo_family_json(capsys):
    payload = _json(["analyze", "taylorglo", "--json"], capsys)
    assert "lambda_5" in payload["trainability_condition"]
    assert "lambda_5" in payload["paper_condition"]
    assert payload["null_epoch"]["trainable"] is None
    assert "label_smoothing_map" not in payload
    smoothed = _json(["analyze", "taylorglo", "--json", "--smoothing", "0.1"], capsys)
    assert smoothed["label_smoothing_map"]["lambda_6"] == "9*lambda_6/10"  # (1 − α)λ6


def test_analyze_params_bind(capsys):
    payload = _json(["analyze", "taylorglo", "--params", "0,0,0,-1,0,2,0,0", "--json"], capsys)
    assert payload["gamma"] == "-2*h + 2*y"  # MSE (docs/conventions.md §1)
    assert "trainability_condition" not in payload
    assert payload["null_epoch"]["trainable"] is True


def test_analyze_latex(capsys):
    payload = _json(["analyze", "baikal", "--json", "--latex"], capsys)
    assert payload["latex"]["loss"] == r"- \log{\left(h \right)} + \frac{y}{h}"
    code, out, _ = _run(["analyze", "baikal", "--latex"], capsys)
    assert code == 0 and "LaTeX" in out and r"\frac{y}{h}" in out


def test_analyze_text_report(capsys):
    code, out, err = _run(["analyze", "cross_entropy", "--classes", "3"], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[0].startswith("cross_entropy") and "n = 3" in out


def test_curve_writes_png_and_csv(tmp_path, capsys):
    png, table = tmp_path / "tmp.png", tmp_path / "tmp.csv"
    code, out, err = _run(["curve", "cross_entropy", "baikal", "--out", str(png),
                           "--csv", str(table)], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == PNG_MAGIC
    with table.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["loss", "epsilon", "delta", "attraction"]
    assert {row[0] for row in rows[1:]} == {"cross_entropy", "baikal"}
    assert f"wrote {png}" in out


def test_curve_learning_rate_on_the_sum_scale_is_the_papers_times_n(tmp_path, capsys):
    """docs/conventions.md §1: --lr 0.01 on the sum scale is the papers' η = 0.1 at n = 10."""
    tables = {}
    for scale, lr in (("sum", "0.01"), ("paper", "0.1")):
        table = tmp_path / f"{scale}.csv"
        code, _, err = _run(["curve", "baikal", "--lr", lr, "--loss-scale", scale, "--out",
                             str(tmp_path / f"{scale}.png"), "--csv", str(table)], capsys)
        assert code == 0, err
        with table.open() as handle:
            tables[scale] = [float(row["attraction"]) for row in csv.DictReader(handle)]
    assert tables["sum"] == pytest.approx(tables["paper"], rel=1e-12, abs=1e-15)


def test_curve_of_two_formulas_names_them_by_text(tmp_path, capsys):
    table = tmp_path / "t.csv"
    code, _, err = _run(["curve", "--out", str(tmp_path / "c.png"), "--csv", str(table),
                         "--", "-log(h)", "(h - y)**2"], capsys)
    assert code == 0, err
    with table.open() as handle:
        assert {row["loss"] for row in csv.DictReader(handle)} == {"-log(h)", "(h - y)**2"}


USER_ERRORS = [
    ["analyze", "h +* y"],                                         # bad formula
    ["analyze", "__import__('os').system('true')"],                # rejected formula
    ["analyze", "hinge"],                                          # unknown name
    ["analyze", "y**2"],                                           # no h
    ["analyze", "taylorglo", "--params", "1,2,x"],                 # bad --params
    ["analyze", "taylorglo", "--params", "1,2"],                   # wrong count
    ["analyze", "mse", "--params", "1"],                           # not a family
    ["analyze", "mse", "--classes", "1"],                          # bad --classes
    ["analyze", "mse", "--classes", "abc"],                        # not an integer
    ["analyze", "mse", "--smoothing", "1.5"],                      # bad --smoothing
    ["curve", "taylorglo", "--out", "never.png"],                  # family without --params
    ["curve", "mse", "--classes", "1", "--out", "never.png"],
    ["curve", "mse"],                                              # --out missing
    ["curve", "mse", "--lr", "nan", "--out", "never.png"],         # bad --lr
    ["curve", "mse", "--lr", "-1", "--out", "never.png"],
    ["curve", "mse", "--loss-scale", "mean", "--out", "never.png"],  # unknown scale
    ["frobnicate"],                                                # unknown command
    [],                                                            # no command
]


@pytest.mark.parametrize("argv", USER_ERRORS, ids=[" ".join(a) or "<none>" for a in USER_ERRORS])
def test_user_errors_exit_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(argv, capsys)
    assert code == EXIT_USAGE and out == ""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symloss") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_curve_with_zero_classes_is_a_user_error(capsys, tmp_path):
    code, _, err = _run(["curve", "mse", "--classes", "0", "--out", str(tmp_path / "x.png")],
                        capsys)
    assert code == EXIT_USAGE and "Traceback" not in err


def test_positive_infinite_zero_error_limit_is_an_attractor(capsys):
    payload = _json(["analyze", "y*log(1 - h)", "--json"], capsys)
    assert payload["zero_error"]["attractor"] is True


def test_analyze_loss_undefined_at_a_label_does_not_crash(capsys):
    code, _, err = _run(["analyze", "h - log(y)"], capsys)
    assert code in (0, EXIT_USAGE) and "Traceback" not in err


def test_analyze_loss_with_a_cusp_succeeds(capsys):
    code, _, err = _run(["analyze", "sqrt(Abs(h - 1/3))"], capsys)
    assert code == 0, err


def test_parse_floats():
    assert parse_floats("0, -1,2.5") == [0.0, -1.0, 2.5]
    assert parse_floats("1e-3,") == [0.001]


def test_analyze_does_not_import_torch():
    program = ("import sys, io, contextlib; import symloss.cli\n"
               "with contextlib.redirect_stdout(io.StringIO()):\n"
               "    code = symloss.cli.main(['analyze', 'mse', '--json'])\n"
               "assert code == 0, code\n"
               "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_version_and_python_dash_m(capsys):
    import symloss

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"symloss {symloss.__version__}"
    result = subprocess.run([sys.executable, "-m", "symloss", "analyze", "baikal", "--json"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gamma"] == "1/h + y/h**2"


@pytest.mark.parametrize(("spec", "suggestion"), [("baikl", "baikal"), ("cross_entropi",
                                                  "cross_entropy"), ("pol1", "poly1")])
def test_a_misspelt_catalog_name_gets_a_suggestion(spec, suggestion, capsys):
    code, out, err = _run(["analyze", spec], capsys)
    assert code == EXIT_USAGE and out == ""
    assert f"did you mean {suggestion!r}?" in err and len(err.strip().splitlines()) == 1


def test_hyphenated_catalog_names_are_the_catalog_losses(capsys):
    code, out, _ = _run(["analyze", "cross-entropy", "--json"], capsys)
    assert code == 0 and json.loads(out)["loss"] == "-y*log(h)"


def test_a_command_whose_extra_is_missing_names_it_in_one_line(capsys, monkeypatch):
    """A core-only install (no torch): one line naming the extra, exit code 2."""
    import symloss.cli

    def needs_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(symloss.cli, "_command_analyze", needs_torch)
    code, out, err = _run(["analyze", "mse"], capsys)
    assert code == EXIT_USAGE and out == ""
    assert err.strip() == ("symloss: error: analyze needs the 'harness' extra (module 'torch' is "
                           "not installed): pip install 'symloss[harness]'")


def test_one_spelling_for_label_smoothing_and_params_either_way(capsys):
    """--label-smoothing (alias --smoothing) and --params comma- or space-separated, as in
    ``symloss train``."""
    outputs = []
    for argv in (["--params", "0,0,0,-1,0,2,0,0", "--smoothing", "0.1"],
                 ["--params", "0", "0", "0", "-1", "0", "2", "0", "0", "--label-smoothing",
                  "0.1"]):
        code, out, err = _run(["analyze", "taylorglo", *argv, "--json"], capsys)
        assert code == 0, err
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1] and outputs[0]["smoothing"] == 0.1


def test_every_option_of_every_command_has_help():
    """``--help`` explains each flag and positional of every subcommand (issue 13)."""
    import argparse

    from symloss.cli import build_parser

    missing, seen = [], 0

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        nonlocal seen
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                seen += 1
                if not action.help or action.help == argparse.SUPPRESS:
                    missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "symloss")
    assert seen > 80  # every command's parser was reached (the harness's ones too)
    assert missing == []
