"""Issue 20's red team: tracebacks and wrong exit codes.

Every user error is one line and exit code 2: an output or store path whose
parent is a file or whose name is longer than the filesystem allows, a store
value of the wrong type (named with its table and column), images of a shape
the model cannot take (checked before training). A command that can do its
work with a damaged value it does not need may do it (exit 0). How each is
judged: ``red_team_kit``.
"""

from __future__ import annotations

import numpy as np
from red_team_kit import (
    TINY,
    TRAIN,
    Attacks,
    Broke,
    Sandbox,
    clean_or_one_line,
    execute,
    one_line,
    one_run,
    read_store,
    shorten,
    strict_json,
    train_on,
)
from red_team_kit import mnist_folder as mnist

ATTACKS = Attacks()
attack = ATTACKS.add

ERRORS = "20: tracebacks and wrong exit codes"


def output_commands(box: Sandbox, bad: str, run_id: str, store: str) -> dict[str, list[str]]:
    """Each command that writes or opens a path, given the bad path ``bad`` (a folder name
    that cannot be one)."""
    return {"export --out": ["export", run_id, "--store", store, "--out", f"{bad}/x.py"],
            "train --out": [*TRAIN, "--out", f"{bad}/x"],
            "paper --out": ["paper", "--out", f"{bad}/x", "--steps", "5"],
            "search --store": ["search", "taylorglo", *TINY, "--store", f"{bad}/x.sqlite"],
            "runs --store": ["runs", "--store", f"{bad}/x.sqlite"],
            "curve --out": ["curve", "baikal", "--out", f"{bad}/x.png"],
            "show --store": ["show", run_id, "--store", f"{bad}/x.sqlite"]}


def _each_one_line(box: Sandbox, bad: str) -> str:
    store, run_id = one_run(box)
    commands = output_commands(box, bad, run_id, str(store))
    for name, argv in commands.items():
        try:
            one_line(box.cli(*argv, timeout=60))
        except Broke as broke:
            raise Broke(f"{name}: {broke}") from None
    return f"{len(commands)} × one line ({', '.join(commands)})"


@attack(ERRORS, "a path whose parent is a file: `export --out`, `train --out`, `paper --out`, "
                "`search --store`, `runs --store`, `curve --out`, `show --store` (tracebacks)",
        "one line, exit 2 each")
def parent_is_a_file(box: Sandbox) -> str:
    box.path("a-file").write_text("a file, not a folder\n")
    return shorten(_each_one_line(box, str(box.path("a-file"))), 160)


@attack(ERRORS, "a path with a 300-byte component, in the same 7 commands (tracebacks)",
        "one line, exit 2 each")
def name_too_long(box: Sandbox) -> str:
    return shorten(_each_one_line(box, str(box.path("a" * 300))), 160)


def damaged_commands(run_id: str, store: str, out: str) -> dict[str, tuple[list[str], dict]]:
    """What a user runs on a stored run (``analyze run:ID`` reads ``$SYMLOSS_STORE``)."""
    at = ["--store", store]
    return {"show": (["show", run_id, *at], {}), "show --json": (["show", run_id, *at,
                                                                 "--json"], {}),
            "show --report": (["show", run_id, *at, "--report", "--out", f"{out}/report"], {}),
            "export": (["export", run_id, *at, "--out", f"{out}/found.py"], {}),
            "analyze run:ID": (["analyze", f"run:{run_id}"], {"SYMLOSS_STORE": store}),
            "runs": (["runs", *at], {}), "runs --json": (["runs", *at, "--json"], {}),
            "search --resume": (["search", "--resume", run_id, *at, "--no-progress", "--json",
                                 "--out", f"{out}/resumed"], {})}


def judge_damage(box: Sandbox, run_id: str, column: str, out: str) -> int:
    """Every command: its work done (exit 0, JSON valid), or one line naming ``column``;
    what they write goes under ``out``."""
    commands = damaged_commands(run_id, str(box.path("runs.sqlite")), str(box.path(out)))
    for name, (argv, env) in commands.items():
        ran = box.cli(*argv, env=env, timeout=120)
        try:
            if ran.code == 0 and "--json" in argv:
                strict_json(ran)
            else:
                clean_or_one_line(ran, column)
        except Broke as broke:
            raise Broke(f"{name}: {broke}") from None
    return len(commands)


@attack(ERRORS, "tampered `candidates.fitness` (text, then a blob): show, show --json, "
                "show --report, export, analyze run:ID, runs, search --resume (tracebacks)",
        "each does its work (exit 0, valid JSON) or one line naming candidates.fitness, exit 2")
def damaged_fitness(box: Sandbox) -> str:
    store, run_id = one_run(box, 2, 1)
    count = 0
    for value in ("0.9 or so", b"\x00\x01"):
        execute(store, ("UPDATE candidates SET fitness = ? WHERE idx = 1", (value,)))
        try:
            count += judge_damage(box, run_id, "fitness", f"out{count}")
        except Broke as broke:
            raise Broke(f"fitness {value!r}: {broke}") from None
    return f"{count} commands, none crashed"


def _finished_with_final(box: Sandbox) -> str:
    payload = strict_json(box.cli("search", "taylorglo", *TINY, "--final-seeds", "1",
                                  "--baselines", "cross_entropy", "--store",
                                  str(box.path("runs.sqlite")), "--out", str(box.path("r")),
                                  timeout=120))
    return payload["run_id"]


@attack(ERRORS, "tampered `runs.created` (text) and `finals.result` (`{\"test_accuracy\": 3}`, "
                "not JSON) of a finished run: the same commands (tracebacks)",
        "each does its work (exit 0, valid JSON) or one line naming the column, exit 2",
        slow=True)
def damaged_run_and_finals(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    run_id = _finished_with_final(box)
    ((created,),) = read_store(store, "SELECT created FROM runs")
    count = 0
    for table, column, value, named in (("runs", "created", "yesterday", "created"),
                                        ("finals", "result", '{"test_accuracy": 3}', "final"),
                                        ("finals", "result", "not json", "final")):
        execute(store, (f"UPDATE {table} SET {column} = ?", (value,)))
        try:
            count += judge_damage(box, run_id, named, f"out{count}")
        except Broke as broke:
            raise Broke(f"{table}.{column} {value!r}: {broke}") from None
        execute(store, ("UPDATE runs SET created = ?", (created,)))
    return f"{count} commands, none crashed"


def _shape_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)

    def images(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    return {"2×2 images": (images(60, 2, 2), images(20, 2, 2)),
            "test 27×29, train 28×28": (images(60, 28, 28), images(20, 27, 29)),
            "a zero dimension": (images(60, 0, 28), images(20, 0, 28))}


@attack(ERRORS, "IDX images the model cannot take: 2×2, test 27×29 against train 28×28, a "
                "zero dimension (torch RuntimeErrors)",
        "one line, exit 2 each, before any training")
def idx_shapes(box: Sandbox) -> str:
    lines = []
    for number, (case, (train, test)) in enumerate(_shape_cases().items()):
        data = mnist(box, train, test, name=f"data{number}")
        try:
            lines.append(one_line(train_on(box, "mnist", data)))
        except Broke as broke:
            raise Broke(f"{case}: {broke}") from None
    return shorten(f"{len(lines)} × one line: {lines[1]}", 150)


@attack(ERRORS, "`train --dataset digits --model glo_mnist_cnn` (a 53-line traceback)",
        "one line, exit 2")
def model_for_another_dataset(box: Sandbox) -> str:
    return shorten(one_line(box.cli(*TRAIN, "--model", "glo_mnist_cnn")))
