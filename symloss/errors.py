"""Errors that name a setting the way whoever set it spells it.

A library check refuses a value by the setting's name as the Python API takes it
(``steps``, ``final_seeds``); the command line shows the same error with its flags
(``--steps``, ``--final-seeds``): :class:`SettingError` carries both, so no library
message names a flag and no command re-words a library check.

>>> error = SettingError(lambda name: f"{name('final_seeds')} must be >= 0, got -1")
>>> str(error), error.for_flags()
('final_seeds must be >= 0, got -1', '--final-seeds must be >= 0, got -1')
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SettingError", "flag"]


def flag(name: str) -> str:
    """The command line's flag for a setting: ``final_seeds`` → ``--final-seeds``."""
    return "--" + name.replace("_", "-")


class SettingError(ValueError):
    """A setting's value refused. ``render(name)`` writes the message with ``name(setting)``
    wherever a setting is named: ``str()`` uses the settings' own names, :meth:`for_flags`
    the command line's."""

    def __init__(self, render: Callable[[Callable[[str], str]], str]):
        self.render = render
        super().__init__(render(str))

    def for_flags(self) -> str:
        """The message as the command line shows it."""
        return self.render(flag)
