"""Issue 20's red team: hangs and exhaustion.

Whatever a flag can scale — worker processes, seeds, threads, chunks — is capped
by the machine or refused in one line; a ``--scheduler`` that is not a Dask
scheduler (a loopback port that speaks another protocol, an address with an
unknown scheme) is refused in one line within seconds, without a traceback on
the way out; a short formula is decided or left *undecided* within the
analysis's time budget. How each is judged: ``red_team_kit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from red_team_kit import (
    TINY,
    TRAIN,
    Attacks,
    Broke,
    Sandbox,
    clean_or_one_line,
    expect,
    one_line,
    refused_or_undecided,
    shorten,
)

ATTACKS = Attacks()
attack = ATTACKS.add

LIMITS = "20: hangs and exhaustion"


def group_size(group: int) -> int:
    """Live processes in process group ``group`` (from ``/proc``)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            count += fields[0] != "Z" and int(fields[2]) == group
    return count


@attack(LIMITS, "`search --workers 100000` (started worker processes without limit, "
                "trained nothing)",
        "capped by the machine or one line, exit 2; never more than cores + 4 processes")
def workers_without_limit(box: Sandbox) -> str:
    limit = (os.cpu_count() or 1) + 4
    started = time.monotonic()
    process = box.start([*box.symloss, "search", "taylorglo", *TINY, "--workers", "100000",
                         "--store", str(box.path("runs.sqlite"))])
    peak = 0
    try:
        while process.poll() is None and time.monotonic() - started < box.timeout:
            peak = max(peak, group_size(process.pid))
            if peak > limit:  # stopped before it takes the machine
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        ran = box.finish(process, started)
    expect(peak <= limit, f"{peak} processes running (more than {limit}) and counting")
    return f"{clean_or_one_line(ran)}; at most {peak} processes"


class NotDask:
    """A loopback TCP server that answers every connection in HTTP (what a Dask client
    reads as a frame length of exabytes)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), connection:
                connection.settimeout(5)
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 8)

    def close(self) -> None:
        self.server.close()


@contextlib.contextmanager
def not_dask() -> Iterator[NotDask]:
    server = NotDask()
    try:
        yield server
    finally:
        server.close()


def _scheduler(box: Sandbox, address: str, seconds: float) -> str:
    ran = box.cli("search", "taylorglo", *TINY, "--scheduler", address, "--store",
                  str(box.path("runs.sqlite")))
    line = one_line(ran)
    expect(ran.seconds <= seconds, f"took {ran.seconds:.0f} s (more than {seconds:g})")
    return f"{shorten(line, 90)} ({ran.seconds:.1f} s)"


@attack(LIMITS, "`search --scheduler` a loopback port that is not Dask (tried to allocate "
                "3.07 EiB: traceback)",
        "one line, exit 2, within 15 s and the memory cap")
def scheduler_not_dask(box: Sandbox) -> str:
    with not_dask() as server:
        return _scheduler(box, server.address, 15)


@attack(LIMITS, "`search --scheduler bogus://x` (one line, then a 20 s hang and an "
                "`Exception ignored` traceback)",
        "one line, exit 2, within 10 s")
def scheduler_bogus_scheme(box: Sandbox) -> str:
    return _scheduler(box, "bogus://x", 10)


@attack(LIMITS, "`train --seeds 1000000000` (MemoryError)",
        "one line naming --seeds, exit 2, within the memory cap")
def train_seeds(box: Sandbox) -> str:
    return shorten(one_line(box.cli(*TRAIN, "--seeds", "1000000000"), "seeds"))


SCALED = ([*TRAIN, "--threads", "100000"],
          ["search", "taylorglo", *TINY, "--threads", "100000"],
          ["search", "taylorglo", *TINY, "--workers", "2", "--chunk", "1000000000"])


@attack(LIMITS, "`train --threads 100000` (MemoryError), `search --threads 100000`, "
                "`search --workers 2 --chunk 1000000000`",
        "capped by the machine (the command does its work) or one line, exit 2, each")
def scaled_flags(box: Sandbox) -> str:
    seen = []
    for argv in SCALED:
        store = ["--store", str(box.path(f"s{len(seen)}.sqlite"))] if argv[0] == "search" else []
        try:
            seen.append(clean_or_one_line(box.cli(*argv, *store, timeout=120)))
        except Broke as broke:
            raise Broke(f"{' '.join(argv[-2:])}: {broke}") from None
    return shorten("; ".join(seen), 150)


SLOW_FORMULAS = ("log(h)**16*log(1-h)**16*log(h+y)**16*log(2-h)**16",)


@attack(LIMITS, f'`analyze "{SLOW_FORMULAS[0]}"` (under 60 characters: 11–26 s)',
        "decided, undecided with reasons, or refused, within 15 s (the 10 s budget and "
        "start-up)")
def slow_short_formula(box: Sandbox) -> str:
    seen = []
    for formula in SLOW_FORMULAS:
        ran = box.cli("analyze", formula, "--json")
        outcome = refused_or_undecided(ran)
        expect(ran.seconds <= 15, f"{formula}: {ran.seconds:.0f} s")
        seen.append(f"{outcome} ({ran.seconds:.1f} s)")
    return shorten("; ".join(seen), 140)
