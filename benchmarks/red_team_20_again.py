"""After issue 20: attacked again — other generated files, other stored fields, other flags,
two processes at once, Ctrl-C.

The rows that broke when written are this module's first ones; the rest held and
stay as guards: a report's Markdown escapes stored strings, two exports to one
``--out`` at once write one whole module, Ctrl-C ends every command in one line.
How each is judged: ``red_team_kit``.
"""

from __future__ import annotations

import os
import re
import signal
import time

from red_team_kit import (
    TINY,
    TRAIN,
    Attacks,
    Broke,
    Sandbox,
    clean_or_one_line,
    execute,
    expect,
    make_runs,
    one_line,
    one_run,
    shorten,
    survived,
)
from red_team_kit import mnist_folder as mnist

ATTACKS = Attacks()
attack = ATTACKS.add

AGAIN = "20: attacked again"

#: A run id (set through the API in a shared store) that prints as a second, fake run.
FAKE_LINE = "ok\n0000fake0000  taylorglo digits   finished    evaluations  999  best 0.9999"
#: Clears the screen, sets the terminal's title, returns to the line's start.
ESCAPES = "digits\x1b[2J\x1b]0;pwned\x07\rfake"


def outside_code_spans(markdown: str) -> str:
    """What a Markdown renderer reads as markup: the text less its code spans (a run of n
    backticks up to the next run of exactly n).

    >>> outside_code_spans("a `b` c `` d ` e `` f `g")
    'a  c  f `g'
    """
    kept, position = [], 0
    while (start := re.compile(r"`+").search(markdown, position)) is not None:
        fence = re.compile(rf"(?<!`){start.group()}(?!`)")
        end = fence.search(markdown, start.end())
        kept.append(markdown[position:start.start()] if end else markdown[position:start.end()])
        position = end.end() if end else start.end()
    return "".join(kept) + markdown[position:]


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` other than newline, as ``repr``s."""
    return sorted({repr(c) for c in text if (ord(c) < 32 and c != "\n") or c == "\x7f"})


@attack(AGAIN, "stored strings with control characters printed raw: a run id holding a "
               "newline and a fake listing line, a dataset holding terminal escapes "
               "(`runs`, `show`)",
        "`runs` prints one line per run, no control character reaches the terminal; "
        "`show`'s first line holds the whole id")
def terminal_escapes(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    make_runs(box, store, 1, 0, run_id=FAKE_LINE)
    execute(store, ("UPDATE runs SET config = json_set(config, '$.budget.dataset', ?)",
                    (ESCAPES,)))
    listing = box.cli("runs", "--store", str(store))
    survived(listing)
    lines = [line for line in listing.out.splitlines() if line.strip()]
    expect(not control_characters(listing.out),
           f"runs printed {', '.join(control_characters(listing.out))}")
    expect(len(lines) == 1, f"runs printed {len(lines)} lines for 1 run: {lines[-1][:60]!r}")
    shown = box.cli("show", FAKE_LINE, "--store", str(store))
    survived(shown)
    expect(not shown.out.splitlines()[1:2] or not shown.out.splitlines()[1].startswith(
        "0000fake0000"), "show printed the id's second line as a line of its own")
    return "runs: one line, escaped; show: the id on one line"


def _fifo(box: Sandbox, name: str):
    path = box.path(name)
    os.mkfifo(path)
    return path


@attack(AGAIN, "a named pipe as the store (`runs`, `show`, `export`, `analyze run:ID`: hung "
               "forever) and as an IDX file (said \"missing\")",
        "one line, exit 2, within 10 s each; the IDX pipe not called missing")
def named_pipes(box: Sandbox) -> str:
    store = str(_fifo(box, "runs.sqlite"))
    commands = {"runs": (["runs", "--store", store], None),
                "show": (["show", "abc", "--store", store], None),
                "export": (["export", "abc", "--store", store, "--out",
                            str(box.path("x.py"))], None),
                "analyze run:ID": (["analyze", "run:abc"], {"SYMLOSS_STORE": store})}
    for name, (argv, env) in commands.items():
        try:
            one_line(box.cli(*argv, env=env, timeout=10))
        except Broke as broke:
            raise Broke(f"{name}: {broke}") from None
    data = mnist(box)
    images = data / "mnist" / "train-images-idx3-ubyte"
    images.unlink()
    os.mkfifo(images)
    ran = box.cli("train", "--loss", "cross_entropy", "--dataset", "mnist", "--data-dir",
                  str(data), "--steps", "5", "--no-progress", timeout=10)
    line = one_line(ran)
    expect("missing" not in line, f"the IDX pipe: {line}")
    return shorten(f"5 × one line: {line}", 140)


@attack(AGAIN, "`search --final-seeds 1000000000` (the search paid, then a final evaluation of "
               "5 × 10^9 trainings began)",
        "one line naming final-seeds, exit 2, before any training; no store")
def final_seeds_without_limit(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    line = one_line(box.cli("search", "taylorglo", *TINY, "--final-seeds", "1000000000",
                            "--store", str(store), timeout=30), "final")
    expect(not store.exists(), "a store was created: the search started")
    return shorten(line)


@attack(AGAIN, "`search --device cuda:99` (no such device: exit 0, every candidate `failed`, "
               "where `train --device cuda:7` is refused)",
        "one line, exit 2, before any training; no store")
def search_on_a_missing_device(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    line = one_line(box.cli("search", "taylorglo", *TINY, "--device", "cuda:99", "--store",
                            str(store)), "cuda")
    expect(not store.exists(), "a store was created: the search started")
    return shorten(line)


@attack(AGAIN, "a tampered stored candidate — `params` of the wrong length, a GLO "
               "`expression` the parser refuses — blamed on the user (\"loss 'taylorglo3' "
               "takes 8 parameter values\", \"call … is not allowed\")",
        "export, analyze run:ID, train --loss run:ID: one line naming candidates.params / "
        "candidates.expression, exit 2")
def stored_candidate_blamed_on_user(box: Sandbox) -> str:
    store, run_id = one_run(box)
    seen = []
    for column, value in (("params", "[1, 2]"),
                          ("expression", "__import__('os').system('touch pwned')")):
        execute(store, ("UPDATE candidates SET params = ?", ("[1, 2]",)) if column == "params"
                else ("UPDATE candidates SET params = NULL, expression = ?", (value,)))
        for name, argv, env in (
                ("export", ["export", run_id, "--store", str(store), "--out",
                            str(box.path(f"{column}.py"))], None),
                ("analyze", ["analyze", f"run:{run_id}"], {"SYMLOSS_STORE": str(store)}),
                ("train", ["train", "--loss", f"run:{run_id}", "--store", str(store),
                           "--dataset", "digits", "--steps", "5", "--no-progress"], None)):
            try:
                seen.append(one_line(box.cli(*argv, env=env), f"candidates.{column}"))
            except Broke as broke:
                raise Broke(f"{column} {value!r}, {name}: {broke}") from None
    return shorten(f"{len(seen)} × one line: {seen[0]}", 140)


@attack(AGAIN, "`search --resume` of a finished run (its report folder stored) with a damaged "
               "`generations.best_fitness`: a \"report: …\" line before the error",
        "exactly one line, exit 2")
def damaged_resume_one_line(box: Sandbox) -> str:
    store, run_id = one_run(box)
    execute(store, ("UPDATE generations SET best_fitness = 'abc'", ()),
            ("UPDATE runs SET status = 'finished', report_dir = ?", (str(box.path("old")),)))
    return shorten(one_line(box.cli("search", "--resume", run_id, "--store", str(store),
                                    "--no-progress", "--json", "--out", str(box.path("r"))),
                            "best_fitness"))


@attack(AGAIN, "flags without effect, silently ignored: `search --gpus-per-task 1` without "
               "`--scheduler`, `train --attraction-samples 5` without `--attraction-log`",
        "one line naming both flags, exit 2 (as `--min-target-probability` without "
        "`--filter stable`)")
def flags_without_effect(box: Sandbox) -> str:
    lines = [one_line(box.cli("search", "taylorglo", *TINY, "--gpus-per-task", "1", "--store",
                              str(box.path("runs.sqlite"))), "gpus-per-task"),
             one_line(box.cli(*TRAIN, "--attraction-samples", "5"), "attraction")]
    return shorten(f"2 × one line: {lines[0]}")


@attack(AGAIN, "`export --rank -1` and `--rank 10^20` (\"a stored loss is run:ID or "
               "run:ID:RANK, got 'run:…:-1'\": a spec the user never typed), `analyze "
               "run:ID:99999` (a well-formed spec called malformed)",
        "one line, exit 2 each: naming --rank, or saying the run has fewer candidates")
def rank_messages(box: Sandbox) -> str:
    store, run_id = one_run(box)
    lines = [one_line(box.cli("export", run_id, "--store", str(store), f"--rank={rank}",
                              "--out", str(box.path("x.py"))), needle)
             for rank, needle in (("-1", "rank"), ("10" * 10, "distinct evaluated candidates"))]
    lines.append(one_line(box.cli("analyze", f"run:{run_id}:99999",
                                  env={"SYMLOSS_STORE": str(store)})))
    expect("run:ID:RANK, got" not in lines[-1], f"run:ID:99999: {lines[-1]}")
    for line in lines[:2]:
        expect("run:ID:RANK" not in line, f"--rank: {line}")
    return shorten(f"3 × one line: {lines[0]}")


# --- what held when written ---------------------------------------------------------------------


@attack(AGAIN, "Markdown and HTML in stored strings (a run id `<img onerror>*x*_[l](javascript:)`, "
               "a dataset `<script>`, a data folder with a backtick) rendered by `show --report`",
        "report.md shows them as text: no raw tag, the code span not broken")
def report_markup(box: Sandbox) -> str:
    run_id = "<img src=x onerror=alert(1)>*x*_[l](javascript:alert(2))"
    store, _ = one_run(box, run_id=run_id)
    execute(store, ("UPDATE runs SET config = json_set(json_set(config, '$.budget.dataset', ?),"
                    " '$.budget.data_dir', ?)", ("digits<script>alert(3)</script>",
                                                  "x` <img src=y onerror=alert(4)> `")))
    ran = box.cli("show", run_id, "--store", str(store), "--report", "--out", str(box.path("r")))
    clean_or_one_line(ran)
    if ran.code == 2:
        return "refused in one line"
    text = (box.path("r") / "report.md").read_text()
    outside = outside_code_spans(text)
    for raw in ("<img src=x", "<script>"):
        expect(raw not in outside, f"raw {raw!r} in report.md")
    return "report.md: the tags as text"


@attack(AGAIN, "two `export --out found.py` of one run at once", "one writes a whole module, "
               "the other is refused in one line")
def concurrent_exports(box: Sandbox) -> str:
    store, run_id = one_run(box)
    out = box.path("found.py")
    started = time.monotonic()
    processes = [box.start([*box.symloss, "export", run_id, "--store", str(store), "--out",
                            str(out), "--class-name", name]) for name in ("First", "Second")]
    ran = [box.finish(process, started) for process in processes]
    codes = sorted(r.code for r in ran)
    expect(codes == [0, 2], f"exit codes {codes}")
    one_line(next(r for r in ran if r.code == 2))
    source = out.read_text()
    compile(source, str(out), "exec")
    expect(source.count("\nclass First(") + source.count("\nclass Second(") == 1,
           "the module mixes both exports")
    return "one module written, the other refused"


CTRL_C = {"train": (["train", "--loss", "cross_entropy", "--dataset", "digits", "--steps",
                     "100000", "--no-progress"], 4.0),
          "analyze": (["analyze", "log(h)**16*log(1-h)**16*log(h+y)**16*log(2-h)**16"], 3.0),
          # a formula whose analysis outlasts the delay (a catalog curve can finish first)
          "curve": (["curve", "log(h)**16*log(1-h)**16*log(h+y)**16*log(2-h)**16", "--out",
                     "c.png", "--csv", "c.csv"], 1.8),
          "paper": (["paper", "--out", "paper", "--steps", "50"], 6.0)}


@attack(AGAIN, "Ctrl-C (process group) during `train`, `analyze`, `curve`, `paper`",
        "exit 130, one line `symloss: interrupted`, no half-written figure", slow=True)
def ctrl_c_everywhere(box: Sandbox) -> str:
    for name, (argv, delay) in CTRL_C.items():
        started = time.monotonic()
        process = box.start([*box.symloss, *argv])
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        ran = box.finish(process, started, timeout=30)
        try:
            survived(ran)
            expect(ran.code == 130 and ran.err.strip() == "symloss: interrupted",
                   f"exit {ran.code}: {ran.last()}")
        except Broke as broke:
            raise Broke(f"{name}: {broke}") from None
    expect(not box.path("c.png").exists(), "curve left c.png behind")
    return f"{len(CTRL_C)} × exit 130, one line"
