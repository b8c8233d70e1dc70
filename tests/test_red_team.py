"""The red team (``benchmarks/red_team*.py``) and the stress script (``benchmarks/stress_tests.py``)
judge as a user would, and report honestly.

The attacks themselves run in ``python benchmarks/red_team.py`` (minutes, many of them
against a moving target); here, fast and deterministic: every attack numbered once in
its module's order, issue 20's breaks each a row, the judges calling a traceback, a
second stderr line, a wrong exit code, bare ``Infinity`` or an undecided step without
its reason a break, one real attack end to end, and the stress script's parts.
"""

from __future__ import annotations

import doctest
import os
import sys
import time

import pytest

from tests.scripts import load_script

red_team = load_script("benchmarks/red_team.py")
stress = load_script("benchmarks/stress_tests.py")
kit = sys.modules["red_team_kit"]  # imported by red_team.py from its folder


def ran(code: int | None = 0, out: str = "", err: str = "", timed_out: bool = False):
    return kit.Ran(["symloss"], code, out, err, 1.0, timed_out)


def test_every_attack_is_numbered_once_in_the_order_of_its_module():
    numbers = [item.number for item in red_team.ATTACKS]
    assert numbers == list(range(1, len(red_team.ATTACKS) + 1))
    names = [item.run for module in red_team.MODULES for item in module.ATTACKS]
    assert [item.run for item in red_team.ATTACKS] == names
    assert all(item.name and item.expectation and item.group for item in red_team.ATTACKS)
    # issue 14's 41 keep their numbers; issue 20's 28 breaks follow, then the next round
    assert len(red_team.red_team_14_inputs.ATTACKS) + len(
        red_team.red_team_14_outputs.ATTACKS) == 41
    issue_20 = [item for item in red_team.ATTACKS if item.group.startswith("20:")
                and item.group != red_team.red_team_20_again.AGAIN]
    assert len(issue_20) >= 28
    assert red_team.red_team_20_again.ATTACKS, "the round after issue 20"


def test_only_takes_numbers_and_ranges_and_refuses_others():
    assert red_team.wanted_numbers("3, 7,42-44", 50) == {3, 7, 42, 43, 44}
    with pytest.raises(ValueError, match=r"no attack \[51\]; there are 50"):
        red_team.wanted_numbers("49-51", 50)
    with pytest.raises(SystemExit) as exit_info:
        red_team.main(["--only", "x"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("process", "problem"), [
    (ran(1, err="Traceback (most recent call last):\n  ...\nValueError: x\n"), "traceback"),
    (ran(-9), "killed by signal 9"),
    (ran(None, timed_out=True), "still running"),
    (ran(1, err="MemoryError\n"), "memory cap"),
])
def test_a_crash_hang_or_memory_error_is_a_break(process, problem):
    with pytest.raises(kit.Broke, match=problem):
        kit.survived(process)


def test_a_user_error_is_one_line_starting_with_symloss_and_exit_2():
    line = "symloss: error: --seeds must be from 1 to 64, got 1000000000"
    assert kit.one_line(ran(2, err=line + "\n"), "seeds") == line
    for process, problem in ((ran(1, err=line), "exit 1"),
                             (ran(2, err="report: r\n" + line), "2 lines"),
                             (ran(2, err="error: x"), "1 lines"),
                             (ran(2, err=line), "does not say 'threads'")):
        with pytest.raises(kit.Broke, match=problem):
            kit.one_line(process, "threads" if "say" in problem else "seeds")
    assert kit.clean_or_one_line(ran(0, out="done")) == "exit 0"


def test_json_must_be_strict_and_every_undecided_step_give_its_reason():
    assert kit.strict_json(ran(0, out='{"fitness": 0.5}')) == {"fitness": 0.5}
    with pytest.raises(kit.Broke, match="bare Infinity"):
        kit.strict_json(ran(0, out='{"fitness": Infinity}'))
    answered = '{"undecided": {"zero_error": "took longer than 5 s"}}'
    assert "took longer" in kit.refused_or_undecided(ran(0, out=answered))
    with pytest.raises(kit.Broke, match="without reason"):
        kit.refused_or_undecided(ran(0, out='{"undecided": {"zero_error": ""}}'))


def test_what_a_terminal_and_a_markdown_renderer_would_see():
    again = red_team.red_team_20_again
    assert again.control_characters("ok\n\x1b[2J\r") == ["'\\r'", "'\\x1b'"]
    assert again.control_characters("plain\ntext") == []
    assert "<img" not in again.outside_code_spans("`` x` <img> ` `` and `<b>`")
    assert "<img" in again.outside_code_spans("a <img> `b`")


def test_a_process_group_is_counted_from_proc():
    limits = red_team.red_team_20_limits
    assert limits.group_size(os.getpgrp()) >= 1
    assert limits.group_size(2**31 - 2) == 0


def test_one_attack_end_to_end_in_its_capped_sandbox():
    # issue 14's row 22: analyze taylorglo --params nan,… must be one line, exit 2
    (item,) = [a for a in red_team.ATTACKS if a.run.__name__ == "non_finite_params"]
    result = red_team.run_attack(item, memory=3 * kit.GB, timeout=60)
    assert result.held is True, result.outcome


@pytest.mark.parametrize("module", ["red_team", "red_team_20_again", "stress_tests"])
def test_the_scripts_doctests(module):
    loaded = {"red_team": red_team, "stress_tests": stress}.get(module) or sys.modules[module]
    result = doctest.testmod(loaded, optionflags=doctest.ELLIPSIS)
    assert result.attempted and result.failed == 0


def test_the_stress_script_finds_the_tests_that_start_processes():
    names = {path.name for path in stress.process_test_files()}
    assert {"test_cluster.py", "test_search_dask.py", "test_reliability_kill.py",
            "test_reliability_store.py", "test_trust_runs.py"} <= names
    assert "test_core_binary.py" not in names


def test_the_stress_table_shows_every_failure_and_timeout():
    failed = stress.Round(2, seconds=3.0, load=2.5, code=1)
    stress.parse_junit(
        '<testsuite><testcase classname="tests.test_a" name="test_x"/>'
        '<testcase classname="tests.test_a" name="test_s"><skipped/></testcase>'
        '<testcase classname="tests.test_b" name="test_y"><error message="boom"/></testcase>'
        '</testsuite>', failed)
    hung = stress.Round(3, timed_out=True, code=-9)
    passed = stress.Round(1, files={"test_a.py": [1, 1], "test_b.py": [1, 1]}, code=0)
    text = stress.table([passed, failed, hung])
    assert "| test_b.py | 1/1 | **0/1** | 0/0 |" in text
    assert "**timed out**" in text
    assert failed.failures == ["round 2: test_b.py::test_y: boom"]
    assert (passed.failed, failed.failed, hung.failed) == (False, True, True)


def test_busy_processes_spin_while_the_block_runs_and_stop_after():
    with stress.busy_processes(2) as processes:
        time.sleep(0.2)
        assert all(process.poll() is None for process in processes)
    assert all(process.poll() is not None for process in processes)
