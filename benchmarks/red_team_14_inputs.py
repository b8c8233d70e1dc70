"""Issue 14's red team, its inputs: code execution and writes, unbounded algebra, unbounded files.

Attacks 1–18 of ``benchmarks/red_team.py`` (how they are judged: ``red_team_kit``).
The damaged inputs are built here: a pickled ``__reduce__`` gadget written into a
store's ``generations.state``, CIFAR-10 batches whose numpy ``_reconstruct``
announces 4 GB, an IDX gzip bomb of concatenated gzip members, a corrupt deflate
stream, IDX labels 2^31 − 1 and 100,000, another application's SQLite file.
"""

from __future__ import annotations

import gzip
import pickle
import sqlite3
import time
from pathlib import Path

import numpy as np
from red_team_kit import (
    GB,
    MB,
    TINY,
    Attacks,
    Gadget,
    Sandbox,
    candidates,
    each_once,
    execute,
    expect,
    idx_bytes,
    make_runs,
    mnist_folder,
    one_line,
    refused_or_undecided,
    shorten,
    snapshot,
    strict_json,
    survived,
    train_on,
)

ATTACKS = Attacks()
attack = ATTACKS.add

CODE = "code execution and writes"
ALGEBRA = "unbounded algebra"
FILES = "unbounded files"


class Call:
    """Pickles as ``function(*arguments)`` (a batch written by hand)."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


class Reduced:
    """Pickles as the given ``__reduce__`` tuple (an array's own, with its shape replaced)."""

    def __init__(self, reduced: tuple):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def cifar_folder(box: Sandbox, first_batch: object) -> Path:
    """A CIFAR-10 folder of good tiny batches whose ``data_batch_1`` is ``first_batch``."""
    folder = box.path("data") / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(12, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in np.arange(12) % 10]}
        payload = first_batch if name == "data_batch_1" else batch
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
    return box.path("data")


def gzip_bomb(path: Path, gigabytes: int) -> None:
    """A valid IDX header and its data, then ``gigabytes`` GB of zeros in concatenated gzip
    members (each member 64 MB of zeros, compressed once): a few MB on disk."""
    zeros = gzip.compress(bytes(64 * MB), compresslevel=9)
    header = gzip.compress(idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8)))
    with path.open("wb") as handle:
        handle.write(header)
        for _ in range(gigabytes * 16):
            handle.write(zeros)

def foreign_database(path: Path) -> None:
    """Another application's SQLite file (DELETE journal, one table)."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
        connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    connection.close()


@attack(CODE, "pickled `__reduce__` gadget (os.system) in `generations.state`, then `--resume`",
        "gadget never runs; the run resumes by replay, each candidate once, as uninterrupted")
def pickled_state_gadget(box: Sandbox) -> str:
    store, whole = box.path("runs.sqlite"), box.path("whole.sqlite")
    (run_id,) = make_runs(box, store, 2, 1)
    make_runs(box, whole, 2, 0)
    marker = box.path("pwned")
    execute(store, ("UPDATE generations SET state = ? WHERE run_id = ?",
                    (pickle.dumps(Gadget(f"touch {marker}"), protocol=2), run_id)))
    ran = box.cli("search", "taylorglo", "--resume", run_id, "--store", str(store),
                  "--out", str(box.path("report")), "--no-progress", "--json")
    expect(not marker.exists(), "the stored pickle ran: the marker file exists")
    strict_json(ran)
    rows = candidates(store)
    each_once(rows, 8)
    expect(rows == candidates(whole), "resumed candidates differ from an uninterrupted run's")
    return "no marker; exit 0; 8 candidates, each once, equal to the uninterrupted run"


@attack(CODE, "`runs` / `show` / `search` with `--store` another application's SQLite file",
        "one line, exit 2; the file's bytes unchanged, nothing created beside it")
def foreign_store(box: Sandbox) -> str:
    path = box.path("app.db")
    foreign_database(path)
    before = snapshot(box.folder)
    lines = []
    for command in (["runs"], ["show", "abc"], ["search", "taylorglo", *TINY]):
        lines.append(one_line(box.cli(*command, "--store", str(path)),
                              "not a symloss run store"))
        expect(snapshot(box.folder) == before, f"{command[0]}: files written or created")
    return f"3 × one line, bytes unchanged: {shorten(lines[0], 70)}"


@attack(CODE, "`runs` / `show` on a symloss store in DELETE (then WAL) journal mode",
        "exit 0; the store's bytes unchanged, no -wal/-shm/journal created")
def readonly_store(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    (run_id,) = make_runs(box, store, 1, -1)
    for journal in ("DELETE", "WAL"):
        execute(store, (f"PRAGMA journal_mode={journal}", ()))
        before = snapshot(box.folder)
        for command in (["runs"], ["show", run_id, "--json"]):
            ran = box.cli(*command, "--store", str(store))
            survived(ran)
            expect(ran.code == 0, f"{journal} {command[0]}: exit {ran.code}: {ran.last()}")
            expect(snapshot(box.folder) == before,
                   f"{journal} {command[0]}: files written or created")
    return "DELETE and WAL: runs and show exit 0, files byte for byte"


@attack(CODE, "`--store :memory:` and `SYMLOSS_STORE=:memory:` (runs, show, search)",
        "one line, exit 2 at once (no spinning WAL loop); nothing created")
def memory_store(box: Sandbox) -> str:
    empty = box.path("cwd")
    empty.mkdir()
    lines = []
    for command, env in ((["runs", "--store", ":memory:"], None),
                         (["search", "taylorglo", *TINY, "--store", ":memory:"], None),
                         (["runs"], {"SYMLOSS_STORE": ":memory:"}),
                         (["show", "abc"], {"SYMLOSS_STORE": ":memory:"})):
        ran = box.cli(*command, env=env, cwd=empty, timeout=30)
        lines.append(one_line(ran, "run store must be a file path"))
        expect(not list(empty.iterdir()), f"{command[0]}: created {list(empty.iterdir())}")
    return f"4 × one line: {shorten(lines[0], 80)}"


def _formula_attack(formula: str, name: str, expectation: str) -> None:
    """Register ``analyze FORMULA --json``: refused, or answered with every undecided step's
    reason, within the limits."""

    def run(box: Sandbox) -> str:
        started = time.monotonic()
        outcome = refused_or_undecided(box.cli("analyze", formula, "--json"))
        return shorten(f"{outcome} ({time.monotonic() - started:.1f} s)")

    attack(ALGEBRA, f'`analyze "{formula}"` ({name})', expectation)(run)


_formula_attack("((h+y+1)**16+h)**4", "an unguarded expand",
                "refused in one line or undecided with a reason, not a hang")
_formula_attack("exp(h)*(((((h**16)**16)**16)**16)**16)", "nested powers",
                "refused in one line or undecided with a reason, not a hang")
_formula_attack("((h**16)**16)**16", "~23 GB allocation",
                "refused or undecided within the 3 GB cap, not killed")


@attack(ALGEBRA, "`analyze taylorglo --order 30` (hang) and `--order 100000` (out of memory)",
        "one line, exit 2, naming the allowed orders")
def taylorglo_order(box: Sandbox) -> str:
    lines = [one_line(box.cli("analyze", "taylorglo", "--order", order), "order")
             for order in ("30", "100000")]
    return shorten(f"2 × one line: {lines[1]}")


@attack(ALGEBRA, '`analyze "h**12"` and `analyze taylorglo --order 12` (IndexError)',
        "valid JSON, exit 0; any undecided step with its reason", slow=True)
def monomial_names(box: Sandbox) -> str:
    payload = strict_json(box.cli("analyze", "h**12", "--json"))
    expect(payload["decomposition"]["c" + "h" * 11] == -12, "h**12: wrong decomposition")
    started = time.monotonic()
    outcome = refused_or_undecided(box.cli("analyze", "taylorglo", "--order", "12", "--json"))
    return shorten(f"h**12 decomposed (c{'h' * 11} = -12); order 12 {outcome} "
                   f"({time.monotonic() - started:.0f} s)")


@attack(ALGEBRA, '`analyze "Min(Max(1,h),2)-sqrt(h)"` (sympy TypeError)',
        "exit 0, JSON; zero-error limit −∞ (γ_N(ε/9) → ∞)")
def min_max_sqrt(box: Sandbox) -> str:
    payload = strict_json(box.cli("analyze", "Min(Max(1,h),2)-sqrt(h)", "--json"))
    limit = payload["zero_error"]["limit"]
    expect(limit == "-inf", f"zero-error limit {limit!r}")
    return f'exit 0; zero-error limit "{limit}"'


@attack(ALGEBRA, "`analyze baikal --smoothing 1e-320` (OverflowError)", "one line, exit 2")
def tiny_smoothing(box: Sandbox) -> str:
    return shorten(one_line(box.cli("analyze", "baikal", "--smoothing", "1e-320"), "smoothing"))


@attack(ALGEBRA, '`analyze "Max(0, 0.9-h)*y"` (7 s, undecided)',
        "zero error neutral (Δ ≡ 0 on (0, 0.1)), in seconds")
def hinge_neutral(box: Sandbox) -> str:
    ran = box.cli("analyze", "Max(0, 0.9-h)*y", "--json")
    zero = strict_json(ran)["zero_error"]
    expect(zero["neutral"] is True and zero["attractor"] is None, f"zero error {zero}")
    expect(ran.seconds < 5, f"took {ran.seconds:.1f} s")
    return f"neutral, attractor null, limit {zero['limit']} ({ran.seconds:.1f} s)"


@attack(FILES, "CIFAR-10 batch: a 175-byte `_reconstruct` of 4 GB, a lying array state, "
               "memo-referenced rows (3.7 GB copied), an os.system global",
        "one line, exit 2 each; nothing allocated past the cap, no marker")
def cifar_allocation(box: Sandbox) -> str:
    reconstruct = numpy_reconstruct()
    array = np.zeros((2, 3072), dtype=np.uint8)
    reduced = list(array.__reduce__())
    state = list(reduced[2])
    state[1] = (10**6, 3072)  # the shape lies about the bytes that follow
    reduced[2] = tuple(state)
    marker = box.path("pwned")
    batches = {
        "huge _reconstruct": {b"data": Call(reconstruct, np.ndarray, (4 * GB,), b"b"),
                              b"labels": [0]},
        "lying state": {b"data": Reduced(tuple(reduced)), b"labels": [0, 1]},
        "memo rows": {b"data": [np.zeros(3072 * 600, dtype=np.uint8)] * 2000,
                      b"labels": [0] * 2000},
        "os.system": {b"data": Gadget(f"touch {marker}"), b"labels": [0]},
    }
    seen = []
    for label, batch in batches.items():
        data = cifar_folder(box, batch)
        size = (data / "cifar-10-batches-py" / "data_batch_1").stat().st_size
        line = one_line(train_on(box, "cifar10", data), "data_batch_1")
        expect(not marker.exists(), f"{label}: the marker file exists")
        seen.append(f"{label} ({size:,} B)")
        _remove(data)
    return shorten(f"4 × one line ({', '.join(seen)}): {line}", 160)


def _remove(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


@attack(FILES, "CIFAR-10 labels `[10**30]` and a dict", "one line, exit 2 each")
def cifar_labels(box: Sandbox) -> str:
    lines = []
    for labels in ([10**30], {b"a": 1}):
        data = cifar_folder(box, {b"data": np.zeros((1, 3072), np.uint8), b"labels": labels})
        lines.append(one_line(train_on(box, "cifar10", data), "labels"))
        _remove(data)
    return shorten(f"2 × one line: {lines[0]}", 140)


@attack(FILES, "IDX gzip bomb: 4 GB of zeros after a valid header, 4 MB on disk",
        "one line, exit 2; read only as far as the header says, within the cap")
def idx_gzip_bomb(box: Sandbox) -> str:
    data = mnist_folder(box)
    images = data / "mnist" / "train-images-idx3-ubyte"
    images.unlink()
    bomb = images.with_name(images.name + ".gz")
    gzip_bomb(bomb, 4)
    line = one_line(train_on(box, "mnist", data), "found more")
    return shorten(f"{bomb.stat().st_size / MB:.1f} MB bomb: {line}", 140)


@attack(FILES, "IDX corrupt deflate stream (zlib.error)", "one line, exit 2")
def idx_corrupt_deflate(box: Sandbox) -> str:
    data = mnist_folder(box)
    labels = data / "mnist" / "train-labels-idx1-ubyte"
    good = gzip.compress(labels.read_bytes())
    labels.unlink()
    labels.with_name(labels.name + ".gz").write_bytes(
        good[:12] + bytes(b ^ 0x5A for b in good[12:-8]) + good[-8:])
    return shorten(one_line(train_on(box, "mnist", data), "cannot read IDX file"), 140)


def _idx_label(box: Sandbox, label: int) -> str:
    data = mnist_folder(box)
    labels = (np.arange(60) % 10).astype(">i4")
    labels[7] = label
    (data / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return shorten(one_line(train_on(box, "mnist", data), f"found {label}"), 140)


@attack(FILES, "IDX label 2^31 − 1 (an 8.8 TB one-hot)", "one line, exit 2, within the cap")
def idx_label_huge(box: Sandbox) -> str:
    return _idx_label(box, 2**31 - 1)


@attack(FILES, "IDX label 100,000 (a 100,000-class model)", "one line, exit 2; nothing trained")
def idx_label_many(box: Sandbox) -> str:
    return _idx_label(box, 100_000)
