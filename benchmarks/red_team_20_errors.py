"""Issue 20: tracebacks and wrong exit codes."""

from __future__ import annotations

from red_team_kit import Attacks

ATTACKS = Attacks()
attack = ATTACKS.add
