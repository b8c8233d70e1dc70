"""The README's commands still parse (issue 13): every ``symloss`` line in its code
blocks and inline code is accepted by the real parser, every script it names exists
(and its flags are the script's), every ``make`` target is in the Makefile."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _code_lines(inline: bool = True) -> list[str]:
    """Lines of fenced code blocks (a ``$ `` prompt removed), and inline code spans."""
    lines, fenced = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            lines.append(line.removeprefix("$ ").strip())
        elif inline:
            lines += [span.strip() for span in re.findall(r"`([^`]+)`", line)]
    return lines


def _command(line: str, program: str) -> list[str] | None:
    """The argv of a concrete ``program`` line (no synopsis ``[...]``/``a|b``), else None."""
    if not line.startswith(program + " "):
        return None
    line = re.split(r"\s+#\s", line)[0].split(";")[0].strip()
    if any(mark in line for mark in ("[", "|", "...", "…")):
        return None  # a usage synopsis, not a command
    return shlex.split(line)[1:]


SYMLOSS = [argv for line in _code_lines(inline=False)
           if (argv := _command(line, "symloss")) is not None]
#: Inline mentions (`symloss curve --lr`) need not be whole commands: their subcommand
#: and flags must exist.
MENTIONS = [argv for span in _code_lines() if span not in _code_lines(inline=False)
            and (argv := _command(span, "symloss")) is not None]
PYTHON = [argv for line in _code_lines() if (argv := _command(line, "python")) is not None]


def test_the_readme_shows_commands():
    assert len(SYMLOSS) >= 8 and len(MENTIONS) >= 4 and len(PYTHON) >= 4


def _subcommands():
    from symloss.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("argv", MENTIONS, ids=[" ".join(a)[:60] for a in MENTIONS])
def test_each_inline_mention_names_a_real_command_and_flags(argv):
    commands = _subcommands()
    assert argv[0] in commands, f"no command {argv[0]!r}"
    known = set(commands[argv[0]]._option_string_actions)
    assert {a.split("=")[0] for a in argv[1:] if a.startswith("--")} <= known, argv


@pytest.mark.parametrize("argv", SYMLOSS, ids=[" ".join(a)[:60] for a in SYMLOSS])
def test_each_symloss_command_parses(argv):
    from symloss.cli import build_parser

    args = build_parser().parse_args(argv)  # a wrong flag or value exits 2: a failure
    assert callable(args.handler)


@pytest.mark.parametrize("argv", PYTHON, ids=[" ".join(a)[:60] for a in PYTHON])
def test_each_python_command_names_something_that_exists(argv):
    if argv[0] == "-m":
        import importlib.util

        assert importlib.util.find_spec(argv[1]) is not None, f"no module {argv[1]}"
        return
    script = ROOT / argv[0]
    assert script.exists(), f"the README runs {argv[0]}, which is not in the repository"
    text = script.read_text()
    for flag in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        assert f'"{flag}"' in text, f"{argv[0]} has no option {flag}"


def test_each_make_target_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.MULTILINE))
    used = {line.split()[1] for line in _code_lines() if re.match(r"make \w", line)}
    assert used and used <= targets, used - targets


def _generator():
    from tests.scripts import load_script

    return load_script("benchmarks/readme.py")


def test_the_generated_blocks_are_current(capsys):
    """Every README block generated from a command or a committed report is up to date."""
    assert _generator().main(["--check"]) == 0, capsys.readouterr().err
    assert int(capsys.readouterr().out.split()[0]) >= 8


def test_a_stale_block_is_caught_and_rewritten(tmp_path, capsys):
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text()
    readme.write_text(original.replace("γ_T(1/n) = 110", "γ_T(1/n) = 111", 1))
    generator = _generator()
    assert generator.main(["--check", "--readme", str(readme)]) == 1
    assert "stale: command symloss analyze baikal" in capsys.readouterr().err
    assert generator.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == original
    with pytest.raises(ValueError, match="unknown generated source 'plot'"):
        generator.render("plot fig.png")
    readme.write_text("<!-- generated: table no/such.md \"## x\" -->\n<!-- end generated -->\n")
    capsys.readouterr()
    assert generator.main(["--check", "--readme", str(readme)]) == 2
    assert capsys.readouterr().err.startswith("readme: error: [Errno 2]")
    assert generator.main(["--readme", str(tmp_path / "missing.md")]) == 2
