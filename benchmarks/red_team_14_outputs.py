"""Issue 14's red team, its outputs: honest output, work lost or paid twice, and what held before.

Attacks 19–41 of ``benchmarks/red_team.py`` (how they are judged: ``red_team_kit``):
the analysis's answers, searches signalled, killed and resumed, tampered
``runs.config`` rows, bad flags and output paths, the parser's no-eval design.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from red_team_kit import (
    TINY,
    Attacks,
    Ran,
    Sandbox,
    candidates,
    each_once,
    execute,
    expect,
    interrupt,
    make_runs,
    one_line,
    read_store,
    shorten,
    snapshot,
    strict_json,
    survived,
    wait_for,
)

ATTACKS = Attacks()
attack = ATTACKS.add

HONEST = "honest output"
PAID = "work lost or paid twice"
HELD = "held before issue 14"


@attack(HONEST, '`analyze "h*y*(log(2)+log(3)-log(6))"` and `"h*y*(tanh(1)-(exp(2)-1)/'
                '(exp(2)+1))"` (identically zero)',
        "trainable false, Δ = 0, zero error neutral")
def identically_zero(box: Sandbox) -> str:
    for formula in ("h*y*(log(2)+log(3)-log(6))", "h*y*(tanh(1)-(exp(2)-1)/(exp(2)+1))"):
        payload = strict_json(box.cli("analyze", formula, "--json"))
        expect(payload["trainable"] is False, f"{formula}: trainable {payload['trainable']}")
        expect(payload["null_epoch"]["delta"] == 0, f"Δ = {payload['null_epoch']['delta']}")
        zero = payload["zero_error"]
        expect(zero["neutral"] is True and zero["attractor"] is None, f"zero error {zero}")
    return "both: trainable false, Δ = 0, neutral, attractor null"


@attack(HONEST, '`analyze "sqrt(h-2)"` (complex γ)', "no verdict: trainable null, reason given")
def complex_gamma(box: Sandbox) -> str:
    payload = strict_json(box.cli("analyze", "sqrt(h-2)", "--json"))
    expect(payload["trainable"] is None, f"trainable {payload['trainable']}")
    expect(payload["paper_invariant"]["trainable"] is None, "the paper's verdict is decided")
    expect(payload["zero_error"]["attractor"] is None, "zero error decided")
    reason = payload["null_epoch"].get("reason", "")
    expect("complex" in reason, f"reason {reason!r}")
    return shorten(f"trainable null; {reason}")


@attack(HONEST, '`analyze "exp(exp(exp(exp(h))))" --json` ("limit": -Infinity)',
        "valid JSON; the finite limit as a string")
def huge_finite_limit(box: Sandbox) -> str:
    limit = strict_json(box.cli("analyze", "exp(exp(exp(exp(h))))", "--json"))[
        "zero_error"]["limit"]
    expect(isinstance(limit, str) and "inf" not in limit, f"limit {limit!r}")
    return f'valid JSON, limit "{limit}"'


@attack(HONEST, "`analyze taylorglo --params nan,…` and `1e400,…` (NaN/Infinity in JSON)",
        "one line, exit 2 each")
def non_finite_params(box: Sandbox) -> str:
    lines = [one_line(box.cli("analyze", "taylorglo", "--json", "--params",
                              f"{value},0,0,0,0,0,0,0"), "finite") for value in ("nan", "1e400")]
    return shorten(f"2 × one line: {lines[0]}")


def _binary(box: Sandbox, formula: str) -> dict:
    return strict_json(box.cli("analyze", formula, "--json"))["binary"]


@attack(HONEST, '`analyze "(h-y)**4"`: binary minimum (said interior at p = 0.9999)',
        "the minimum at p = 1, at the boundary")
def binary_quartic(box: Sandbox) -> str:
    binary = _binary(box, "(h-y)**4")
    expect(binary["minima"] == [[1.0, 1.0]] and binary["interior"] is False, f"{binary}")
    return f"minima {binary['minima']}, interior false"


@attack(HONEST, '`analyze "h**3 - 2*h**2 + h"` (+ 0.3·h, − 7·h): binary ties and shifts',
        "minima at both ends, the same under shifts")
def binary_ties(box: Sandbox) -> str:
    base = _binary(box, "h**3 - 2*h**2 + h")
    expect(base["minima"] == [[0.0, 0.0], [1.0, 1.0]], f"minima {base['minima']}")
    for shift in ("0.3", "-7"):
        shifted = _binary(box, f"h**3 - 2*h**2 + h + ({shift})*h")
        expect(shifted["minima"] == base["minima"] and
               shifted["minimum_at"] == base["minimum_at"], f"shift {shift}: {shifted}")
    return f"minima {base['minima']} unshifted and under both shifts"


@attack(HONEST, '`analyze "(h-y)**6"`: zero error at order 5 (search stopped at 3)',
        "attractor true, leading order 5")
def leading_order_five(box: Sandbox) -> str:
    zero = strict_json(box.cli("analyze", "(h-y)**6", "--json"))["zero_error"]
    expect(zero["attractor"] is True and zero["leading_order"] == 5, f"zero error {zero}")
    return "attractor true, leading order 5"


@attack(HONEST, '`analyze "h"`: Δ ≡ 0 (said undecided, "decided at order ε^3")',
        "zero error neutral, no order claimed")
def delta_identically_zero(box: Sandbox) -> str:
    zero = strict_json(box.cli("analyze", "h", "--json"))["zero_error"]
    expect(zero["neutral"] is True and zero["attractor"] is None, f"zero error {zero}")
    ran = box.cli("analyze", "h")
    survived(ran)
    line = next((ln for ln in ran.out.splitlines() if ln.startswith("zero error")), "")
    expect("order" not in line, f"text: {line!r}")
    return shorten(f"neutral; {line}")


@attack(HONEST, '`analyze "y*(1-h)**2.5"`: non-integer order (ε^1.5 said ε^2)',
        "leading order 1.5, printed ε^1.5")
def fractional_order(box: Sandbox) -> str:
    zero = strict_json(box.cli("analyze", "y*(1-h)**2.5", "--json"))["zero_error"]
    expect(zero["leading_order"] == 1.5, f"leading order {zero['leading_order']}")
    ran = box.cli("analyze", "y*(1-h)**2.5")
    survived(ran)
    expect("order ε^1.5" in ran.out and "ε^2" not in ran.out, "text does not say order ε^1.5")
    return "leading order 1.5; text says order ε^1.5"


@attack(HONEST, '`analyze "(1-y)*Abs(h-0.1) - 0.5*y*h"`: a kink at the null epoch',
        "undecided, the subgradient range of Δ given")
def kink_null_epoch(box: Sandbox) -> str:
    payload = strict_json(box.cli("analyze", "(1-y)*Abs(h-0.1) - 0.5*y*h", "--classes", "10",
                                  "--json"))
    null = payload["null_epoch"]
    expect(payload["trainable"] is None, f"trainable {payload['trainable']}")
    expect(null.get("delta_range") == [-0.5, 1.5], f"Δ range {null.get('delta_range')}")
    expect("subgradient" in null.get("reason", ""), f"reason {null.get('reason')!r}")
    return f"trainable null, Δ ∈ {null['delta_range']}"


@attack(HONEST, '`analyze "-y*log(h+0.01)"`: a leading minus (needed `--`)',
        "exit 0, analysed")
def leading_minus(box: Sandbox) -> str:
    ran = box.cli("analyze", "-y*log(h+0.01)")
    survived(ran)
    expect(ran.code == 0, f"exit {ran.code}: {ran.last()}")
    expect("target grows: trainable" in ran.out, "no null-epoch verdict")
    return "exit 0: target grows: trainable"


GLO_TREES = """
import numpy as np
from symloss.gp import crossover, from_prefix, is_real, mutate, random_tree
try:
    from_prefix(["add", "h", "log", -1])
    print("log(-1) accepted")
except ValueError as error:
    print("log(-1) refused:", error)
rng = np.random.default_rng(0)
rates = {"integer": 0.5, "same_arity": 0.3, "to_leaf": 0.1, "to_subtree": 0.1}
trees = [random_tree(rng) for _ in range(300)]
made = trees + [mutate(t, rng, rates) for t in trees]
made += [c for a, b in zip(trees, trees[1:]) for c in crossover(a, b, rng)]
print("complex trees", sum(not is_real(t) for t in made), "of", len(made))
"""


@attack(HONEST, "GLO trees with complex constants (`log(-1)`), `analyze \"h + I*pi\"`",
        "refused at construction; draws, mutations, crossovers all real; one line")
def glo_complex_constants(box: Sandbox) -> str:
    ran = box.python(GLO_TREES)
    survived(ran)
    expect(ran.code == 0, f"exit {ran.code}: {ran.last()}")
    expect("log(-1) refused" in ran.out, f"{ran.out.strip()}")
    count = ran.out.strip().splitlines()[-1]
    expect(count.startswith("complex trees 0 "), count)
    one_line(box.cli("analyze", "h + I*pi"))
    return f"log(-1) refused; {count}; h + I*pi one line"


@attack(PAID, "`search --order 12 --final-seeds 2` (finals lost in a report crash)",
        "finals stored, report written, run finished; `show --report` rebuilds it", slow=True)
def order_12_finals(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    # --filter exact: four order-12 candidates must leave a best loss to evaluate (the
    # default lasting filter may refuse all four, and then there is no final to lose)
    payload = strict_json(box.cli("search", "taylorglo", "--order", "12", "--final-seeds", "2",
                                  "--filter", "exact", *TINY, "--store", str(store), "--out",
                                  str(box.path("r")), timeout=120))
    expect((box.path("r") / "report.md").is_file(), "no report.md")
    ((status,),) = read_store(store, "SELECT status FROM runs") or [(None,)]
    expect(status == "finished", f"run status {status}")
    finals = read_store(store, "SELECT result FROM finals")
    expect(finals, "no final stored")
    per_seed = json.loads(finals[0][0])["test_accuracy"]["per_seed"]
    expect(len(per_seed) == 2, f"{len(per_seed)} final seeds stored")
    ran = box.cli("show", payload["run_id"], "--store", str(store), "--report", "--out",
                  str(box.path("rebuilt")))
    survived(ran)
    expect(ran.code == 0 and (box.path("rebuilt") / "report.md").is_file(), "not rebuilt")
    return "exit 0; 2 final seeds stored; finished; report rebuilt by show --report"


@attack(PAID, "`search --out` onto an existing file (crashed after the whole search)",
        "one line, exit 2 before any training; the file untouched, no store")
def out_onto_file(box: Sandbox) -> str:
    report = box.path("report.md")
    report.write_text("keep me")
    before = snapshot(box.folder)
    ran = box.cli("search", "taylorglo", *TINY, "--store", str(box.path("runs.sqlite")),
                  "--out", str(report))
    line = one_line(ran, "is a file")
    expect(snapshot(box.folder) == before, "files written or created")
    return shorten(f"{line} ({ran.seconds:.1f} s)")


@attack(PAID, "two concurrent `--resume` of one run",
        "the second refused in one line; run not marked interrupted; each candidate once",
        slow=True)
def concurrent_resume(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    (run_id,) = make_runs(box, store, 5, 1)
    resume = [*box.symloss, "search", "taylorglo", "--resume", run_id, "--store", str(store),
              "--no-progress", "--json", "--out", str(box.path("r"))]
    started = time.monotonic()
    first = box.start(resume, env={"SYMLOSS_TEST_SLOW_WRITE": "0.5"})
    try:
        from symloss.harness.search.lock import holder_alive  # the lock lives in the store file

        wait_for(lambda: holder_alive(store, run_id) is True, first, 60, "run lock")
        line = one_line(box.run(resume), "running in another process")
        expect(first.poll() is None, "the first resume ended before the second was refused")
        ((status,),) = read_store(store, "SELECT status FROM runs")
        expect(status == "running", f"the refused resume left the run {status!r}")
    finally:
        winner = box.finish(first, started, timeout=180)
    strict_json(winner)
    each_once(candidates(store), 20)
    return shorten(f"{line}; winner exit 0, 20 candidates, each once", 150)


FLAGS = [
    ("search", "--sigma0", "nan"), ("search", "--batch-size", "0"), ("search", "--lr", "nan"),
    ("search", "--steps", "0"), ("search", "--steps", "-5"), ("search", "--objective",
                                                               "fgsm:nan"),
    ("train", "--batch-size", "0"), ("train", "--lr", "nan"), ("train", "--steps", "-5"),
    ("train", "--fgsm", "nan"), ("curve", "--lr", "nan"), ("curve", "--lr", "-1"),
]


@attack(PAID, "flags `--sigma0 nan`, `--batch-size 0`, `--lr nan`, `--steps 0/-5`, "
              "`--fgsm nan` (search, train), `curve --lr nan/-1`",
        "one line, exit 2 each, before anything is paid or written")
def bad_flags(box: Sandbox) -> str:
    for command, flag, value in FLAGS:
        folder = box.path(f"{command}{flag}{value}")
        folder.mkdir()
        base = {"search": ["search", "taylorglo", *TINY, "--store", str(folder / "s.sqlite")],
                "train": ["train", "--loss", "baikal", "--dataset", "digits", "--no-progress",
                          "--out", str(folder / "out"),
                          *([] if flag == "--steps" else ["--steps", "5"])],
                "curve": ["curve", "baikal", "--out", str(folder / "c.png")]}[command]
        line = one_line(box.cli(*base, flag, value, cwd=folder))
        named = flag.lstrip("-")
        expect(named in line or named.replace("-", "_") in line,
               f"{command} {flag} {value}: the line does not name the flag: {line}")
        expect(not list(folder.iterdir()), f"{command} {flag} {value}: files written")
    return f"{len(FLAGS)} × one line naming the flag, nothing written"


def _interrupted(ran: Ran, store: Path) -> None:
    survived(ran)
    lines = ran.err.strip().splitlines()
    expect(ran.code == 130, f"exit {ran.code}: {ran.last()}")
    expect(lines and lines[-1] == "symloss: interrupted", f"last line {ran.last()!r}")
    expect(len(lines) >= 2 and lines[-2].startswith("resume with: symloss search --resume "),
           f"no resume command before the last line: {lines[-2:]!r}")
    expect(all(line.startswith("gen ") for line in lines[:-2]),
           f"{len(lines)} lines on stderr: {(lines or [''])[0][:80]}")
    ((status,),) = read_store(store, "SELECT status FROM runs")
    expect(status == "interrupted", f"run status {status!r}")


@attack(PAID, "SIGTERM during a search (left the run `running` forever)",
        "exit 130, `symloss: interrupted`, run `interrupted` (resumable)", slow=True)
def sigterm(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    ran = interrupt(box, [*box.symloss, "search", "taylorglo", *TINY, "--generations", "40",
                           "--steps", "60", "--store", str(store)], store, signal.SIGTERM,
                     stored=1)
    _interrupted(ran, store)
    return "exit 130, one line, run interrupted"


@attack(PAID, "Ctrl-C (process group) during `search --workers 2` (47 lines of tracebacks)",
        "exit 130, only progress and `symloss: interrupted`", slow=True)
def ctrl_c_workers(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    ran = interrupt(box, [*box.symloss, "search", "taylorglo", *TINY, "--generations", "40",
                           "--steps", "100", "--workers", "2", "--store", str(store)],
                     store, signal.SIGINT, stored=5, group=True)
    _interrupted(ran, store)
    return f"exit 130, {len(ran.err.strip().splitlines())} lines, run interrupted"


@attack(PAID, '`search --resume ""` (started a new paid run)', "one line, exit 2; no store")
def resume_empty(box: Sandbox) -> str:
    ran = box.cli("search", "taylorglo", *TINY, "--resume", "", "--store",
                  str(box.path("runs.sqlite")))
    line = one_line(ran, "--resume")
    expect(not list(box.folder.iterdir()), f"created {list(box.folder.iterdir())}")
    return shorten(line)


@attack(PAID, "tampered `runs.config` rows (`[1,2]`, `null`, `{}`) beside a good one",
        "runs lists all 4, 3 damaged; show one line each; store unchanged")
def tampered_config(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    ids = make_runs(box, store, 1, -4)
    execute(store, *(("UPDATE runs SET config = ? WHERE run_id = ?", (text, run_id))
                     for run_id, text in zip(ids[1:], ["[1,2]", "null", "{}"], strict=True)))
    before = snapshot(box.folder)
    rows = strict_json(box.cli("runs", "--store", str(store), "--json"))
    damaged = {row["run_id"] for row in rows if row.get("damage")}
    expect({row["run_id"] for row in rows} == set(ids), f"{len(rows)} runs listed of 4")
    expect(damaged == set(ids[1:]), f"damaged {sorted(damaged)}")
    text = box.cli("runs", "--store", str(store))
    survived(text)
    expect(text.code == 0 and text.out.count("damaged") == 3, "text listing")
    for run_id in ids[1:]:
        one_line(box.cli("show", run_id, "--store", str(store)), "is damaged")
    expect(snapshot(box.folder) == before, "the store was written")
    return "4 runs listed, 3 damaged; show: 3 × one line; store unchanged"


@attack(PAID, "`curve --out` a directory, `--out /dev/full`, a failing `--csv` "
              "(half-written PNG)",
        "one line, exit 2 each; no PNG left behind")
def curve_outputs(box: Sandbox) -> str:
    folder = box.path("a-folder")
    folder.mkdir()
    png = box.path("curve.png")
    lines = []
    for out, csv in ((str(folder), None), ("/dev/full", None), (str(png), str(folder)),
                     (str(png), "/dev/full")):
        ran = box.cli("curve", "baikal", "--out", out, *(["--csv", csv] if csv else []))
        lines.append(one_line(ran))
        expect(not png.exists(), f"--csv {csv}: a PNG was left behind")
    expect(not list(folder.iterdir()), "files written into the folder")
    return shorten(f"4 × one line, no PNG: {lines[2]}", 140)


EXPLOITS = [
    "__import__('os').system('touch {marker}')",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "exec(\"import os; os.system('touch {marker}')\")",
    "h.__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "open('{marker}', 'w')",
    "y*log(h) if __import__('os').system('touch {marker}') else h",
    "Symbol('x')",
]


@attack(HELD, "the parser's no-eval design: eval/exec/import/dunder formulas (analyze, "
              "curve, train --loss)",
        "one line, exit 2 each; no marker")
def parser_no_eval(box: Sandbox) -> str:
    marker = box.path("pwned")
    for exploit in EXPLOITS:
        one_line(box.cli("analyze", exploit.format(marker=marker)))
    formula = EXPLOITS[0].format(marker=marker)
    one_line(box.cli("curve", formula, "--out", str(box.path("c.png"))))
    one_line(box.cli("train", "--loss", formula, "--dataset", "digits", "--steps", "5"))
    expect(not marker.exists(), "the marker file exists: a formula ran")
    return f"{len(EXPLOITS) + 2} × one line, no marker"


@attack(HELD, "SIGKILL, then SIGINT, of a running search, each followed by `--resume`",
        "integrity ok; each candidate once; equal to an uninterrupted run", slow=True)
def kill_and_resume(box: Sandbox) -> str:
    store, whole = box.path("runs.sqlite"), box.path("whole.sqlite")
    search = [*box.symloss, "search", "taylorglo", "--dataset", "digits", "--steps", "5",
              "--population", "4", "--generations", "3", "--filter", "none", "--seed", "1",
              "--no-progress", "--json"]
    strict_json(box.run([*search, "--store", str(whole)], timeout=120))
    slow = {"SYMLOSS_TEST_SLOW_WRITE": "0.3"}
    killed = interrupt(box, [*search, "--store", str(store)], store, signal.SIGKILL,
                        stored=2, env=slow)
    expect(killed.code == -signal.SIGKILL, f"exit {killed.code}")
    after_kill = len(candidates(store))
    expect(read_store(store, "PRAGMA integrity_check") == [("ok",)], "integrity after SIGKILL")
    ((run_id,),) = read_store(store, "SELECT run_id FROM runs")
    resume = [*search, "--store", str(store), "--resume", run_id]
    _interrupted(interrupt(box, resume, store, signal.SIGINT, stored=after_kill + 3,
                            env=slow), store)
    after_interrupt = len(candidates(store))
    strict_json(box.run(resume, timeout=120))
    rows = candidates(store)
    each_once(rows, 12)
    expect(rows == candidates(whole), "candidates differ from the uninterrupted run's")
    expect(read_store(store, "PRAGMA integrity_check") == [("ok",)], "integrity at the end")
    return (f"killed at {after_kill}, interrupted at {after_interrupt}, resumed: 12 "
            "candidates, each once, equal to uninterrupted")
