"""Issue 20, item 5: every number a flag scales is bounded before anything is allocated,
and a scheduler address is checked before a Dask client exists.

Each attack is the red team's: ``search --workers 100000`` (started processes without
limit), ``--population``/``--chunk`` of a billion (pycma's MemoryError after 21 s),
``train --seeds 1000000000`` and ``--threads 100000`` (MemoryError), ``train --lr 1e308``
(exit 1), ``--scheduler bogus://x`` (a 20 s hang, then an "Exception ignored" traceback),
and a loopback port that is not Dask (the client tried to allocate 3 EiB). The library
answers a ``ValueError`` naming the parameter and the accepted range; the CLI, one line.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from symloss.harness.device import available_cores, check_threads, torch_threads
from symloss.harness.search.executors import (
    DaskExecutor,
    check_chunk,
    check_scheduler,
    check_workers,
    make_executor,
)
from symloss.harness.search.strategies import (
    MAX_POPULATION,
    GLOSettings,
    TaylorGLOSettings,
    TaylorGLOStrategy,
    _cma,
)
from tests.test_harness_cli import run

BILLION = 10**9


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMLOSS_CACHE", str(tmp_path_factory.getbasetemp() / "symloss-cache"))


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and "Traceback" not in captured.err, captured
    return lines[0]


# --- the library: the parameter by name and its range -------------------------------------------

def test_workers_beyond_the_machine_are_refused_and_no_process_starts():
    cores = available_cores()
    with pytest.raises(ValueError, match=rf"^workers must be a whole number from 1 to {cores} "):
        make_executor(workers=100_000)
    assert multiprocessing.active_children() == []
    assert check_workers(cores) == cores


@pytest.mark.parametrize(("check", "name"), [(check_chunk, "chunk"),
                                             (lambda v: TaylorGLOSettings(population=v),
                                              "population"),
                                             (lambda v: GLOSettings(population=v), "population"),
                                             (lambda v: GLOSettings(cma_population=v),
                                              "cma_population")])
def test_a_billion_of_anything_a_generation_holds_is_refused_at_once(check, name):
    started = time.monotonic()
    with pytest.raises(ValueError, match=rf"^{name} must be a whole number from \d to "
                                         rf"{MAX_POPULATION}, got {BILLION}$"):
        check(BILLION)
    assert time.monotonic() - started < 1


def test_a_pycma_population_option_of_a_billion_is_refused_before_pycma_allocates():
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"^pycma option 'popsize' must be a whole number"):
        _cma(np.zeros(8), 1.2, 20, np.random.default_rng(0), {"popsize": BILLION})
    assert time.monotonic() - started < 1  # pycma itself took 21 s to run out of memory


def test_threads_beyond_the_machine_are_refused_and_torch_is_left_alone():
    import torch

    before = torch.get_num_threads()
    with pytest.raises(ValueError, match=r"^threads must be a whole number from 1 to \d+ \(the "
                                         r"cores this process may run on\), got 100000$"), \
            torch_threads(100_000):
        pass
    assert torch.get_num_threads() == before
    assert check_threads(1) == 1


def test_local_search_threads_are_checked_when_the_executor_is_made():
    from symloss.harness.search.evaluate import Budget

    with pytest.raises(ValueError, match="threads must be a whole number"):
        make_executor(budget=Budget(threads=100_000))


def test_small_cma_populations_print_no_injection_warning():
    """pycma mirrors samples below a population of 6 and warned "orphanated injected
    solution" on stderr in ordinary searches (TaylorGLO-2, population 4, seed 1: once in
    20 generations)."""
    strategy = TaylorGLOStrategy.create(TaylorGLOSettings(order=2, population=4,
                                                          filter="none"), 1)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            candidates = strategy.ask()
            strategy.tell(candidates, [0.1 if rng.random() < 0.5 else 0.0 for _ in candidates])
    assert [w for w in caught if "injected" in str(w.message)] == []


# --- scheduler addresses --------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "message"), [
    ("bogus://x", "unknown scheme 'bogus'; Dask knows inproc, tcp, tls"),
    ("tcp://localhost", "needs a port"),
    ("tcp://127.0.0.1:0", "a port from 1 to 65535"),
    ("tcp://:8786", "needs a host"),
    ("", "must be SCHEME://HOST:PORT"),
    ("tls://127.0.0.1:8786", "holds no TLS certificates"),
])
def test_a_malformed_scheduler_address_is_one_line_before_any_client(address, message):
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        check_scheduler(address)
    assert time.monotonic() - started < 2


def test_a_bogus_scheduler_leaves_no_hang_and_no_traceback_at_exit():
    """The client Dask half-built for ``bogus://x`` hung 20 s at exit, then printed an
    "Exception ignored" traceback; now no client is built at all."""
    code = ("from symloss.harness.search.executors import DaskExecutor\n"
            "try:\n    DaskExecutor('bogus://x')\nexcept ValueError as error:\n"
            "    print(error)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert time.monotonic() - started < 15
    assert done.returncode == 0 and "unknown scheme 'bogus'" in done.stdout
    assert done.stderr == ""


class _Peer:
    """A loopback TCP server that is not Dask: it greets with ``greeting`` (or says nothing)."""

    def __init__(self, greeting: bytes | None):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.greeting = greeting
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(30)
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        with connection:
            if self.greeting is not None:
                connection.sendall(self.greeting)
            time.sleep(3)

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize(("greeting", "message"), [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "does not speak Dask's protocol"),  # 3 EiB as a size
    (b"SSH-2.0-OpenSSH_9.6\r\n", "does not speak Dask's protocol"),
    (None, "it sent nothing within 1 s"),  # an HTTP server waits for a request
])
def test_a_loopback_port_that_is_not_dask_is_refused_within_seconds(greeting, message):
    peer = _Peer(greeting)
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match=rf"no Dask scheduler at {peer.address}: .*{message}"):
            DaskExecutor(peer.address, timeout=1.0)
        assert time.monotonic() - started < 5
    finally:
        peer.close()


def test_a_closed_port_is_one_line():
    from symloss.harness.search.executors import SchedulerLost

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(SchedulerLost, match=r"cannot reach the Dask scheduler at .*: "
                                                r"Connection refused"):
        check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1.0)


# --- train: the flags a user types ----------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["--seeds", str(BILLION)], f"--seeds must be a whole number from 1 to 10000, got {BILLION}"),
    (["--threads", "100000"], "--threads must be a whole number from 1 to "),
    (["--threads", "0"], "--threads must be a whole number from 1 to "),
    (["--lr", "1e308"], "--lr must be a number in (0, 3.4e+38] (the largest float32"),
    (["--attraction-log", "--attraction-samples", "-1"], "--attraction-samples must be a whole "
                                                         "number >= 1, got -1"),
])
def test_train_flags_beyond_their_range_are_one_line_before_anything_is_built(capsys, argv,
                                                                             message):
    started = time.monotonic()
    assert run(["train", "--loss", "cross_entropy", "--steps", "2", *argv]) == 2
    assert message in _one_line(capsys)
    assert time.monotonic() - started < 5  # no dataset, no model, no seed list


def test_a_huge_learning_rate_float32_holds_trains_and_says_it_diverged(capsys):
    """The decision for ``--lr``: above float32's largest value torch cannot even take the
    step size (refused, exit 2, above); below it the training runs and its blow-up is
    reported as what it is, ``diverged`` (exit 0: the tool worked, the loss did not)."""
    assert run(["train", "--loss", "cross_entropy", "--steps", "5", "--lr", "1e30",
                "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "diverged" and "non-finite training loss" in report["errors"][0]
