"""Crashes mid-search (issue 7): SIGKILL a running ``symloss search`` at 10 moments, resume.

The reduced form of ``benchmarks/kill_loop.py``: kills during training, inside
an open store transaction (``SYMLOSS_TEST_SLOW_WRITE``) and at generation
boundaries; after each one ``PRAGMA integrity_check`` is ok, each candidate is
stored once and equals the uninterrupted run's; at the end the candidate
table, generation summaries and optimizer state equal an uninterrupted run
with the same seed. About a minute on 2 cores (each start imports torch).
"""

from __future__ import annotations

import pytest

from tests.scripts import load_script


def _kill_loop_module():
    return load_script("benchmarks/kill_loop.py")


@pytest.mark.slow
def test_ten_kills_lose_nothing(tmp_path):
    loop = _kill_loop_module()
    # 40 generations leave room for all ten kills even when a loaded machine lets each
    # attempt progress further before its moment comes.
    search = loop.Search(generations=40, population=3, steps=5, seed=1)
    summary = loop.kill_loop(tmp_path, kills=10, seed=0, search=search)
    assert summary["kills"] == 10
    assert all(summary["by_kind"][kind] >= 3 for kind in loop.KINDS)
    assert summary["candidates"] == 40 * 3
    assert summary["identical_to_uninterrupted"]
    assert summary["final_status"] == "finished"
