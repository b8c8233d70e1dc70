"""The house's floors, enforced (docs/architecture.md): imports point one way.

symloss (the core) ← harness (torch) ← search runtime ← the commands. The core imports no
torch and nothing from the floors above it, not even inside a function; no library module
imports a command module (the Python API and the command line share the library, not each
other). Read from the source (every ``import``, wherever it stands) and checked at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Installed names of the repository's folders (pyproject's package-dir).
FOLDERS = {"symloss": "symloss", "harness": "symloss.harness", "proofs": "symloss.proofs",
           "reproduce": "symloss.reproduce"}

#: The command modules: they parse and print; nothing below them imports them.
COMMANDS = ("symloss.cli", "symloss.__main__", "symloss.harness.cli",
            "symloss.harness.search.commands")


def module_name(path: Path) -> str:
    """``harness/search/store.py`` → ``symloss.harness.search.store`` (the installed name)."""
    relative = path.relative_to(ROOT)
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:-1]]
    if relative.stem != "__init__":
        parts.append(relative.stem)
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).rsplit(".", 0 if path.stem == "__init__" else 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def assert_exits_cleanly(code: str) -> None:
    """Run ``code`` in a fresh interpreter: it exits 0, or its message says what it found."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_module_names_follow_the_installed_layout():
    assert module_name(ROOT / "harness" / "search" / "store.py") == "symloss.harness.search.store"
    assert module_name(ROOT / "symloss" / "__init__.py") == "symloss"
    assert "symloss.harness.search.runner" in imported(ROOT / "harness" / "search" / "api.py")
    # what the command test looks for is seen where it stands (inside a function)
    assert "symloss.harness.search.commands" in imported(ROOT / "harness" / "cli.py")


@pytest.mark.parametrize("path", files("symloss"), ids=lambda p: p.name)
def test_the_core_imports_no_torch_and_nothing_above_it(path):
    above = ("torch", "symloss.harness", "symloss.proofs", "symloss.reproduce")
    assert sorted(name for name in imported(path) if within(name, above)) == []


@pytest.mark.parametrize("path", [p for p in files("harness") + files("symloss")
                                  if not within(module_name(p), COMMANDS)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_library_module_imports_a_command(path):
    assert sorted(name for name in imported(path) if within(name, COMMANDS)) == []


def test_importing_the_whole_core_loads_no_torch_and_no_harness():
    core = [module_name(path) for path in files("symloss") if path.stem != "__main__"]
    assert_exits_cleanly(f"import importlib, sys\n"
                         f"for name in {core!r}:\n"
                         f"    importlib.import_module(name)\n"
                         f"loaded = [m for m in sys.modules if m.split('.')[0] == 'torch'\n"
                         f"          or m.startswith(('symloss.harness', 'symloss.proofs'))]\n"
                         f"sys.exit(', '.join(loaded[:5]) or 0)")


def test_the_python_api_loads_no_command_module():
    code = ("import sys, symloss.harness.search.api as api, symloss.harness.search.pipeline\n"
            "loaded = [m for m in sys.modules if m.startswith('symloss.harness.search.commands')\n"
            "          or m in ('symloss.cli', 'symloss.harness.cli')]\n"
            "sys.exit(', '.join(loaded) or 0)")
    assert_exits_cleanly(code)
