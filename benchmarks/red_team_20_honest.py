"""Issue 20's red team: honesty and noise.

What the tool prints and writes says what is true, in its own words: JSON is
strict (no bare ``Infinity``), a message names real paths (no ``{self.path}``
left unformatted), bad data is blamed on the data (not on the loss, as a
"diverged" training), a library's message (numpy's, pycma's) does not reach the
user raw, the same constant is judged the same wherever it appears, a
dependency's warnings stay off stderr, and a flag value no training survives is
an answer, not exit 1. How each is judged: ``red_team_kit``.
"""

from __future__ import annotations

import json

import numpy as np
from red_team_kit import (
    TINY,
    TRAIN,
    Attacks,
    Broke,
    Sandbox,
    clean_or_one_line,
    execute,
    expect,
    one_line,
    one_run,
    shorten,
    strict_json,
    survived,
    train_on,
)
from red_team_kit import mnist_folder as mnist

ATTACKS = Attacks()
attack = ATTACKS.add

HONEST = "20: honesty and noise"


def strict_file(path) -> None:
    """The file is JSON without bare NaN/Infinity."""

    def bare(name: str):
        raise Broke(f"bare {name} in {path.name}")

    json.loads(path.read_text(), parse_constant=bare)


@attack(HONEST, "stored ±inf fitness (candidates and generations): `runs --json`, "
                "`show --json`, `show --report`'s summary.json (bare `Infinity`)",
        "strict JSON each (or one line naming the damaged value, exit 2)")
def infinite_fitness(box: Sandbox) -> str:
    store, run_id = one_run(box, 2, 1)
    seen = []
    for sign in (1, -1):
        value = sign * float("inf")
        execute(store, ("UPDATE candidates SET fitness = ? WHERE idx = 0", (value,)),
                ("UPDATE generations SET best_fitness = ?", (value,)))
        out = box.path(f"report{sign}")
        for argv in (["runs", "--json"], ["show", run_id, "--json"],
                     ["show", run_id, "--report", "--out", str(out)]):
            ran = box.cli(*argv, "--store", str(store))
            try:
                if ran.code == 0 and "--json" in argv:
                    strict_json(ran)
                elif clean_or_one_line(ran) == "exit 0":
                    strict_file(out / "summary.json")
            except Broke as broke:
                raise Broke(f"{value} {argv[0]} {argv[-1]}: {broke}") from None
            seen.append("exit 0" if ran.code == 0 else "one line")
    return ", ".join(seen)


@attack(HONEST, "a damaged candidate row (metrics not JSON): the message said `{self.path}`",
        "one line, exit 2, naming the store's real path")
def unformatted_message(box: Sandbox) -> str:
    store, run_id = one_run(box)
    execute(store, ("UPDATE candidates SET metrics = 'not json'", ()))
    line = one_line(box.cli("show", run_id, "--store", str(store)))
    expect("{" not in line and store.name in line, f"the line: {line}")
    return shorten(line)


def _non_finite_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    nan = rng.random((60, 28, 28)).astype(">f4")
    nan[3, 4, 5] = np.nan
    inf = rng.random((60, 28, 28)).astype(">f8")
    inf[0, 0, 0] = np.inf
    return {"NaN (float32)": nan, "inf (float64)": inf}


@attack(HONEST, "NaN and inf pixels in float IDX images (accepted; the run was blamed on the "
                "loss: `diverged`)",
        "one line, exit 2, naming the images file")
def non_finite_pixels(box: Sandbox) -> str:
    lines = []
    for number, (case, train) in enumerate(_non_finite_images().items()):
        test = np.random.default_rng(1).random((20, 28, 28)).astype(train.dtype)
        data = mnist(box, train, test, name=f"data{number}")
        try:
            lines.append(one_line(train_on(box, "mnist", data), "train-images"))
        except Broke as broke:
            raise Broke(f"{case}: {broke}") from None
    return shorten(f"2 × one line: {lines[0]}", 140)


RAW = ("zero-size array", "negative dimensions", "pycma refused", "MemoryError")


@attack(HONEST, "raw numpy/pycma messages: IDX with zero training images (\"zero-size array to "
                "reduction…\"), `--attraction-samples -1` (\"negative dimensions are not "
                "allowed\"), `search --population 1000000000` (\"pycma refused the options {}: "
                "MemoryError\" after 21 s)",
        "one line each naming the file or flag, in the tool's words, within 10 s")
def raw_library_messages(box: Sandbox) -> str:
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    data = mnist(box, empty, np.zeros((20, 28, 28), dtype=np.uint8))
    cases = {"train-images": ["train", "--loss", "cross_entropy", "--dataset", "mnist",
                              "--data-dir", str(data), "--steps", "5", "--no-progress"],
             "attraction": [*TRAIN, "--attraction-log", "--attraction-samples", "-1"],
             "population": ["search", "taylorglo", *TINY, "--population", "1000000000",
                              "--store", str(box.path("runs.sqlite"))]}
    lines = []
    for needle, argv in cases.items():
        ran = box.cli(*argv)
        try:
            line = one_line(ran, needle)
            expect(not any(raw in line for raw in RAW), f"a raw message: {line}")
            expect(ran.seconds <= 10, f"took {ran.seconds:.0f} s")
        except Broke as broke:
            raise Broke(f"{needle}: {broke}") from None
        lines.append(line)
    return shorten(f"3 × one line: {lines[-1]}", 150)


@attack(HONEST, '`analyze "h**1e-400"` (a constant loss) beside `analyze "1e-400*h"` (refused)',
        "the same constant, the same answer: both one line, exit 2")
def underflowing_exponent(box: Sandbox) -> str:
    lines = [one_line(box.cli("analyze", formula), "1e-400") for formula in ("h**1e-400",
                                                                           "1e-400*h")]
    return shorten(f"both refused: {lines[0]}")


@attack(HONEST, "pycma's `InjectionWarning` on stderr in ordinary searches (TaylorGLO of "
                "population 5 over 30 generations, GLO with its CMA-ES phase)",
        "stderr holds only progress lines")
def dependency_warnings(box: Sandbox) -> str:
    searches = (["taylorglo", "--population", "5", "--generations", "30", "--filter", "none"],
                ["glo", "--population", "8", "--generations", "2", "--cma-generations", "4"])
    for number, argv in enumerate(searches):
        ran = box.cli("search", argv[0], *TINY, *argv[1:], "--store",
                      str(box.path(f"s{number}.sqlite")), "--out", str(box.path(f"r{number}")),
                      timeout=120)
        strict_json(ran)
        noise = [line for line in ran.err.splitlines() if line.strip() and
                 not line.startswith("gen ")]
        expect(not noise, f"{argv[0]}: {shorten(noise[0] if noise else '')}")
    return "2 searches, only progress lines on stderr"


@attack(HONEST, "`train --lr 1e308` (exit 1)",
        "one line naming --lr, exit 2, or the training reported (exit 0)")
def huge_learning_rate(box: Sandbox) -> str:
    ran = box.cli(*TRAIN, "--lr", "1e308")
    survived(ran)
    return shorten(clean_or_one_line(ran, "lr"))
