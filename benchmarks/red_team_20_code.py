"""Issue 20: code execution, data loss and writes outside the user's choice."""

from __future__ import annotations

from red_team_kit import Attacks

ATTACKS = Attacks()
attack = ATTACKS.add
