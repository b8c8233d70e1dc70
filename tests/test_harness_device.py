"""Thread choice on a shared machine (symloss.harness.device.free_cores)."""

from __future__ import annotations

import itertools

from symloss.harness.device import available_cores, free_cores


def test_free_cores_takes_the_median_reading_less_this_thread(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("symloss.harness.device.available_cores", lambda: 8)
    readings = itertools.cycle([3, 40, 3, 2, 3])  # one spike: the median ignores it
    assert free_cores(samples=5, interval=0, runnable=lambda: next(readings)) == 6
    assert free_cores(samples=1, interval=0, runnable=lambda: 1) == 8
    assert free_cores(samples=3, interval=0, runnable=lambda: 100) == 1  # never below one


def test_free_cores_never_exceeds_this_process_s_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("symloss.harness.device.available_cores", lambda: 4)  # an affinity mask
    assert free_cores(samples=1, interval=0, runnable=lambda: 2) == 4


def test_without_proc_every_core_is_used():
    assert free_cores(samples=3, interval=0, runnable=lambda: None) == available_cores()
