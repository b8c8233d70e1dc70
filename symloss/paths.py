"""Where symloss may write: one check for every output path a user names.

Every command that writes (``curve --out/--csv``, ``train --out``, ``paper --out``,
``search --store/--out``, ``runs --store``, ``show --report``, ``export --out``)
asks here *before* it computes anything, so a path that cannot be written is one
line and exit 2 (:class:`OutputPathError`, a ``ValueError``), never a traceback
after minutes of training. What is refused, naming the flag and the path:

* a name component longer than the file system allows (``NAME_MAX``, usually
  255 bytes) — the OS would say ``File name too long`` only at the write;
* a path below an existing *file* (``report.md/x``);
* a folder that exists but cannot be written;
* for a file target: an existing directory; an existing file unless the caller
  allows overwriting (``overwrite=True``, the commands' ``--force``); and a
  symbolic link, which is never followed (a link to ``~/.bashrc`` named as
  ``--out`` must not replace what it points to);
* for a folder target: an existing file or a link.

Nothing is created by the checks.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> check_output_file("--out", folder / "loss.py")  # a new file in a writable folder
PosixPath('...loss.py')
>>> (folder / "loss.py").write_text("x = 1\\n")
6
>>> check_output_file("--out", folder / "loss.py")
Traceback (most recent call last):
...
symloss.paths.OutputPathError: --out ...loss.py exists; pass --force to replace it
>>> check_output_file("--out", folder / "loss.py" / "deeper.py")
Traceback (most recent call last):
...
symloss.paths.OutputPathError: --out ...deeper.py cannot be made: ...loss.py is a file
>>> check_output_folder("--out", folder / ("x" * 300))
Traceback (most recent call last):
...
symloss.paths.OutputPathError: --out ...: the name 'xxxxxxxxxxxx'... is 300 bytes, longer ...
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputPathError", "check_output_file", "check_output_folder", "path_problem"]

#: Used where ``os.pathconf`` cannot tell (it is the limit of every common Linux/macOS FS).
DEFAULT_NAME_MAX = 255


class OutputPathError(ValueError):
    """An output path that cannot (or must not) be written; its message is one line."""


def check_output_file(flag: str, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a new file may be written there, else
    :class:`OutputPathError` naming ``flag`` (see the module docstring).

    A special file that exists (``/dev/null``, a pipe) is accepted as it is: writing
    to it replaces nothing.
    """
    target = Path(path)
    problem = path_problem(target)
    if problem:
        raise OutputPathError(f"{flag} {target}{problem}")
    if target.is_symlink():
        raise OutputPathError(f"{flag} {target} is a symbolic link; symloss does not write "
                              "through links: name the real file")
    if target.is_dir():
        raise OutputPathError(f"{flag} {target} is a folder; give a file name")
    if target.is_file() and not overwrite:
        raise OutputPathError(f"{flag} {target} exists; pass --force to replace it")
    return target


def check_output_folder(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is (or can be made) a writable folder,
    else :class:`OutputPathError` naming ``flag``."""
    target = Path(path)
    problem = path_problem(target)
    if problem:
        raise OutputPathError(f"{flag} {target}{problem}")
    if target.is_symlink() and not target.is_dir():
        raise OutputPathError(f"{flag} {target} is a symbolic link to something that is not "
                              "a folder")
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{flag} {target} is a file, not a folder; pass a folder")
    if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {target} is not writable")
    return target


def path_problem(path: Path) -> str:
    """What makes ``path`` impossible to create, as the rest of a sentence that starts with
    the path (``""`` when nothing does): a name too long, a file where a folder must be,
    or a nearest existing folder that cannot be written.

    >>> path_problem(Path("/"))
    ''
    """
    limit = _name_max(path)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            return (f": the name {part[:12]!r}... is {size} bytes, longer than the {limit} "
                    "this file system allows")
    for ancestor in path.parents:
        if _is(ancestor, os.path.lexists):
            if not _is(ancestor, os.path.isdir):
                return f" cannot be made: {ancestor} is a file"
            if not _is(path, os.path.lexists) and not os.access(ancestor, os.W_OK | os.X_OK):
                return f" cannot be made: {ancestor} is not writable"
            return ""
    return ""


def _name_max(path: Path) -> int:
    """The longest name the file system of ``path``'s nearest existing folder allows."""
    for folder in path.parents:
        if _is(folder, os.path.isdir):
            try:
                return int(os.pathconf(folder, "PC_NAME_MAX"))
            except (OSError, ValueError):
                break
    return DEFAULT_NAME_MAX


def _is(path: Path, test) -> bool:
    """``test(path)`` (an ``os.path`` predicate), ``False`` where the OS cannot even look."""
    try:
        return bool(test(path))
    except (OSError, ValueError):
        return False
