"""Issue 20: honesty and noise."""

from __future__ import annotations

from red_team_kit import Attacks

ATTACKS = Attacks()
attack = ATTACKS.add
