"""Issue 20's red team: code execution, data loss and writes outside the user's choice.

``symloss export`` writes a Python module: every value from outside (the store
path, ``$SYMLOSS_STORE``, a run id from a shared store, ``--class-name``) must
enter it as data, so the module imports without running anything and its loss
works, or the export is refused in one line. The run lock must hold by any
path to the store (a symlink, a hard link, a relative or ``..`` path), stored
``runs.report_dir`` must not choose where a report is written, ``export --out``
must not overwrite a file, and a kill during the final evaluation must not
lose the trainings it finished. How each is judged: ``red_team_kit``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from red_team_kit import (
    TINY,
    Attacks,
    Broke,
    Sandbox,
    candidates,
    clean_or_one_line,
    each_once,
    execute,
    expect,
    one_line,
    one_run,
    read_store,
    sha256,
    shorten,
    snapshot,
    strict_json,
    survived,
    wait_for,
)

ATTACKS = Attacks()
attack = ATTACKS.add

CODE = "20: code execution"
WRITES = "20: data loss and writes outside the user's choice"

#: Closes a docstring, creates ``pwned`` (in the importer's folder), opens another docstring;
#: no whitespace or colon, so it is also a run id that a ``run:ID`` spec accepts.
BREAKOUT = '""";open("pwned","w");"""'

#: Imports an exported module by path and calls its class on a batch: prints the loss.
USE_MODULE = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
criterion = getattr(module, sys.argv[2])()
print(float(criterion(torch.zeros(3, 10), torch.tensor([1, 4, 7]))))
"""


def exported_works(box: Sandbox, module: Path, class_name: str = "FoundLoss") -> str:
    """The module imports (in the sandbox, where ``pwned`` would appear) without running
    anything, and its loss gives a finite number."""
    ran = box.python(USE_MODULE, str(module), class_name)
    expect(not box.path("pwned").exists(), f"importing {module.name} ran code: `pwned` exists")
    survived(ran)
    expect(ran.code == 0, f"{module.name} does not import or run: {ran.last()}")
    value = float(ran.out.split()[-1])
    expect(math.isfinite(value), f"{module.name}'s loss is {value}")
    return f"imports, loss {value:.3g}"


def export_or_refuse(box: Sandbox, *args: str, out: Path, class_name: str = "FoundLoss",
                     env: dict[str, str] | None = None) -> str:
    """``export``: refused in one line (nothing written), or a module that works."""
    ran = box.cli("export", *args, "--out", str(out), "--class-name", class_name, env=env)
    line = clean_or_one_line(ran)
    if ran.code == 2:
        expect(not out.exists(), f"refused, yet {out.name} was written")
        return f"refused ({shorten(line.removeprefix('symloss: error: '), 60)})"
    return exported_works(box, out, class_name)


def _evil_store(box: Sandbox, folder_name: str) -> tuple[Path, str]:
    folder = box.path(folder_name)
    folder.mkdir()
    return one_run(box, store=folder / "runs.sqlite")


@attack(CODE, f"`export` with `{BREAKOUT}` in `--store`, then in `$SYMLOSS_STORE` "
              "(docstring closed, code ran on import)",
        "the module imports without running anything and works, or one line, exit 2")
def export_store_breakout(box: Sandbox) -> str:
    store, run_id = _evil_store(box, "s" + BREAKOUT)
    flag = export_or_refuse(box, run_id, "--store", str(store), out=box.path("flag.py"))
    env = export_or_refuse(box, run_id, out=box.path("env.py"),
                           env={"SYMLOSS_STORE": str(store)})
    return f"--store: {flag}; $SYMLOSS_STORE: {env}; no marker"


@attack(CODE, f"`export` of a run whose id (a shared store's, set through the API) is "
              f"`r{BREAKOUT}`",
        "the module imports without running anything and works, or one line, exit 2")
def export_run_id_breakout(box: Sandbox) -> str:
    store, run_id = one_run(box, run_id="r" + BREAKOUT)
    return export_or_refuse(box, run_id, "--store", str(store), out=box.path("found.py"))


@attack(CODE, "`export` with `\\N` in the store path (the module was a SyntaxError)",
        "the module imports and works, or one line, exit 2")
def export_backslash_n(box: Sandbox) -> str:
    store, run_id = _evil_store(box, "b\\N")
    return export_or_refuse(box, run_id, "--store", str(store), out=box.path("found.py"))


CLASS_NAMES = ("class", "None", "torch", "super", "float", "per_class_term",
               "_ClampPassGradient")


@attack(CODE, f"`export --class-name` {', '.join(CLASS_NAMES)} (keywords and names the "
              "module uses: exit 0, then it failed to import or run)",
        "one line naming --class-name, exit 2, or a module that imports and works")
def export_class_names(box: Sandbox) -> str:
    store, run_id = one_run(box)
    seen = []
    for name in CLASS_NAMES:
        try:
            seen.append(f"{name}: " + export_or_refuse(box, run_id, "--store", str(store),
                                                      out=box.path(f"m_{name}.py"),
                                                      class_name=name))
        except Broke as broke:
            raise Broke(f"--class-name {name}: {broke}") from None
    return shorten("; ".join(seen), 160)


# --- the run lock, by any path to the store -----------------------------------------------------


@contextlib.contextmanager
def live_search(box: Sandbox, store: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A search that trains for minutes (slow store writes), from its first stored candidate
    on; then Ctrl-C: it must end as interrupted (exit 130), its rows intact, each once."""
    process = box.start([*box.symloss, "search", "taylorglo", *TINY, "--generations", "40",
                         "--steps", "60", "--store", str(store)],
                        env={"SYMLOSS_TEST_SLOW_WRITE": "0.3"})
    try:
        wait_for(lambda: len(candidates(store)) >= 1, process, 120, "a stored candidate")
        ((run_id,),) = read_store(store, "SELECT run_id FROM runs")
        yield process, run_id
    except BaseException:
        process.kill()
        box.finish(process, time.monotonic(), timeout=30)
        raise
    process.send_signal(signal.SIGINT)
    ran = box.finish(process, time.monotonic(), timeout=60)
    expect(ran.code == 130, f"the live search, interrupted, exited {ran.code}: {ran.last()}")
    rows = candidates(store)
    each_once(rows, len(rows))
    expect(read_store(store, "PRAGMA integrity_check") == [("ok",)], "integrity after all")


def other_paths(box: Sandbox, store: Path) -> dict[str, str]:
    """Other names of ``store``: a symlink, a hard link, relative, through ``..``."""
    box.path("link.sqlite").symlink_to(store)
    os.link(store, box.path("hard.sqlite"))
    box.path("sub").mkdir()
    return {"symlink": str(box.path("link.sqlite")), "hard link": str(box.path("hard.sqlite")),
            "relative": store.name, "..": f"sub/../{store.name}"}


@attack(WRITES, "`runs --delete` through a symlink to the store while the run trains "
                "(204 paid candidates deleted, the search died)",
        "one line, exit 2; nothing deleted; the live search goes on, then ends cleanly",
        slow=True)
def delete_through_symlink(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    with live_search(box, store) as (process, run_id):
        link = box.path("link.sqlite")
        link.symlink_to(store)
        before = len(candidates(store))
        line = one_line(box.cli("runs", "--delete", run_id, "--store", str(link)))
        expect(process.poll() is None, f"the live search ended (exit {process.returncode})")
        expect(len(candidates(store)) >= before, "candidates were deleted")
    return shorten(f"{line}; the search went on, interrupted cleanly")


@attack(WRITES, "`search --resume` of a training run through a symlink, a hard link, a "
                "relative and a `..` path (trained twice: UNIQUE-constraint traceback)",
        "each one line, exit 2; the live run stays `running`, each candidate once",
        slow=True)
def resume_through_other_paths(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    with live_search(box, store) as (process, run_id):
        for kind, path in other_paths(box, store).items():
            ran = box.cli("search", "--resume", run_id, "--store", path, "--no-progress",
                          "--json", "--out", str(box.path("r")), timeout=60)
            try:
                one_line(ran)
            except Broke as broke:
                raise Broke(f"through a {kind}: {broke}") from None
            expect(process.poll() is None, f"after the {kind} resume the live search ended")
            ((status,),) = read_store(store, "SELECT status FROM runs")
            expect(status == "running", f"after the {kind} resume the run is {status!r}")
    return "4 × one line (symlink, hard link, relative, ..); the live run intact"


def _victim(box: Sandbox) -> Path:
    """A folder that stands for a system folder, holding the user's own report.md."""
    folder = box.path("victim")
    folder.mkdir()
    (folder / "report.md").write_text("the user's own report\n")
    return folder


@attack(WRITES, "tampered `runs.report_dir` (a folder of the user's), then `search --resume` "
                "(wrote report.md, summary.json and figures there)",
        "nothing written into the stored folder")
def resume_stored_report_dir(box: Sandbox) -> str:
    store, run_id = one_run(box, 2, 1)
    victim = _victim(box)
    execute(store, ("UPDATE runs SET report_dir = ?", (str(victim),)))
    before = snapshot(victim)
    ran = box.cli("search", "--resume", run_id, "--store", str(store), "--no-progress",
                  "--json", timeout=120)
    outcome = clean_or_one_line(ran)
    expect(snapshot(victim) == before, f"files written into the stored folder: "
                                       f"{sorted(set(snapshot(victim)) ^ set(before))}")
    return f"{outcome}; the stored folder untouched"


@attack(WRITES, "tampered `runs.report_dir`, then `show RUN --report` (overwrote the user's "
                "report.md)",
        "nothing written into the stored folder")
def show_stored_report_dir(box: Sandbox) -> str:
    store, run_id = one_run(box)
    victim = _victim(box)
    execute(store, ("UPDATE runs SET report_dir = ?", (str(victim),)))
    before = snapshot(victim)
    outcome = clean_or_one_line(box.cli("show", run_id, "--report", "--store", str(store)))
    expect(snapshot(victim) == before, "the user's report.md was overwritten")
    return f"{outcome}; the stored folder untouched"


@attack(WRITES, "`export --out` an existing .py file, and a symlink to a non-.py file "
                "(both overwritten)",
        "one line, exit 2 each; both files untouched")
def export_overwrites(box: Sandbox) -> str:
    store, run_id = one_run(box)
    mine = box.path("mine.py")
    mine.write_text("print('my own code')\n")
    notes = box.path("notes.txt")
    notes.write_text("my notes\n")
    box.path("link.py").symlink_to(notes)
    sums = {path: sha256(path) for path in (mine, notes)}
    lines = []
    for out in (mine, box.path("link.py")):
        lines.append(one_line(box.cli("export", run_id, "--store", str(store), "--out",
                                      str(out))))
        expect(all(sha256(path) == digest for path, digest in sums.items()),
               f"--out {out.name}: a file was overwritten")
    return shorten(f"2 × one line: {lines[1]}")


def _final_rows(store: Path) -> dict[str, list[tuple]]:
    """Every row of the store's tables about the final evaluation."""
    tables = [name for (name,) in read_store(
        store, "SELECT name FROM sqlite_master WHERE type = 'table'") if "final" in name]
    return {table: read_store(store, f"SELECT * FROM {table}") for table in tables}


@attack(WRITES, "SIGKILL during the final evaluation, then `--resume` (every final training "
                "lost: one row written at the end; the resume retrained them all)",
        "the finished trainings stored before the kill, kept as they were by the resume, "
        "which completes the evaluation", slow=True)
def kill_during_final(box: Sandbox) -> str:
    store = box.path("runs.sqlite")
    argv = [*box.symloss, "search", "taylorglo", *TINY, "--final-seeds", "4", "--baselines",
            "cross_entropy,poly1,focal", "--final-steps", "300", "--store", str(store),
            "--out", str(box.path("r"))]
    started = time.monotonic()
    process = box.start(argv)
    try:
        wait_for(lambda: any(_final_rows(store).values()), process, 150,
                 "final training stored")
        process.kill()
    finally:
        box.finish(process, started, timeout=30)
    partial = _final_rows(store)
    expect(not partial.get("finals"), "the first thing stored was the whole final "
                                      "evaluation, at its end: nothing before")
    ((run_id,),) = read_store(store, "SELECT run_id FROM runs")
    payload = strict_json(box.cli("search", "--resume", run_id, "--store", str(store),
                                  "--no-progress", "--json", timeout=180))
    expect(payload.get("final"), "the resume gave no final evaluation")
    after = _final_rows(store)
    kept = [row for table, rows in partial.items() for row in rows
            if row not in after.get(table, [])]
    expect(not kept, f"{len(kept)} stored final trainings were redone or dropped")
    count = sum(map(len, partial.values()))
    return f"killed with {count} final rows stored; the resume kept them and finished"
