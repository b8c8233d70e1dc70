"""The confirmatory benchmark's guard (issue 23): it runs only the plan that was
pre-registered, with the rules' code that was registered."""

from __future__ import annotations

import pytest

from tests.scripts import load_script

bench = load_script("benchmarks/bench_lasting.py")


def test_the_committed_preregistration_matches_the_script_and_the_rules():
    bench.check_preregistration()  # raises SystemExit otherwise


@pytest.mark.parametrize("change, message", [
    (lambda text: text.replace('"model_steps": 36000', '"model_steps": 30000', 1),
     "does not match this script's"),
    (lambda text: text.replace('"rules_sha256": "', '"rules_sha256": "0', 1),
     "the rules' code differs"),
    (lambda text: text.replace("```json", "```", 1), "has no JSON plan block"),
])
def test_a_changed_plan_or_rule_is_one_line_and_exit_2(tmp_path, capsys, change, message):
    registered = tmp_path / "PREREGISTRATION-lasting.md"
    registered.write_text(change(bench.PREREGISTRATION.read_text()))
    with pytest.raises(SystemExit) as stop:
        bench.check_preregistration(registered)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and err.count("\n") == 1
