"""Issue 20: hangs and exhaustion."""

from __future__ import annotations

from red_team_kit import Attacks

ATTACKS = Attacks()
attack = ATTACKS.add
