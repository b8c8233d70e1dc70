"""One search pipeline, for the command line and the Python API alike.

:func:`run_search` is the sequence both ``symloss search`` and
:func:`symloss.harness.search.api.search_losses` run: open the run store, take the
run's lock (:mod:`symloss.harness.search.lock`: a second process cannot continue or
delete a running run), make the executor, run the search
(:func:`symloss.harness.search.runner.search`, progress on stderr through
:class:`~symloss.harness.search.progress.Reporter`), the final evaluation (each training
stored as it returns; a resume reuses them), mark the run finished and write its
report. Callers parse and print; nothing here reads ``argparse`` or prints a result.

Each call is a *session* of its run, stored with how it was made — versions, machine,
device, threads, executor, chunking, batching, the configuration with its defaults
filled, start and end (:mod:`symloss.harness.search.sessions`): a new run's first session
and its ``name`` are written in the same transaction as the run itself. A run is
addressed by its id or its name (:meth:`~symloss.harness.search.store.RunStore.resolve`).

Where things go is decided here once: the store (:func:`default_store`:
``$SYMLOSS_STORE`` or ``./symloss-runs.sqlite``) and the report folder
(:func:`report_folder`: the caller's folder, else ``runs/RUN_ID`` beside the store —
never a folder read from the store: a changed store must not choose where symloss
writes).

An interrupted search (Ctrl-C; SIGTERM with ``stop_on_sigterm``) leaves the run marked
``interrupted`` and prints the caller's ``resume_hint`` on stderr; a lost Dask scheduler is
a :class:`~symloss.harness.search.executors.SchedulerLost` whose message ends with it. A
report that cannot be written is one line saying every result is stored.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STORE", "SearchOutcome", "default_report_folder", "default_store",
           "new_run_id", "report_folder", "run_search", "store_file", "write_report_safely"]

#: The run store's file name when neither ``--store``/``store=`` nor ``$SYMLOSS_STORE`` says.
DEFAULT_STORE = "symloss-runs.sqlite"


def default_store() -> str:
    """``$SYMLOSS_STORE``, else :data:`DEFAULT_STORE` (in the working folder)."""
    return os.environ.get("SYMLOSS_STORE", DEFAULT_STORE)


def store_file(store: str | os.PathLike | None) -> Path:
    """The run store's path: ``store``, else :func:`default_store` (checked as a path)."""
    from symloss.harness.search.store import store_path

    return store_path(store or default_store())


def new_run_id() -> str:
    """A fresh run id: 12 hexadecimal digits."""
    return uuid.uuid4().hex[:12]


def default_report_folder(store: Path, run_id: str) -> Path:
    """``runs/RUN_ID`` beside the store (a run id that is not a plain name is not a path).

    >>> default_report_folder(Path("data/runs.sqlite"), "3f2a"), \\
    ...     default_report_folder(Path("runs.sqlite"), "../x")
    (PosixPath('data/runs/3f2a'), PosixPath('runs/run'))
    """
    name = run_id if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id) else "run"
    return store.parent / "runs" / name


def report_folder(out: str | os.PathLike | None, store: Path, run_id: str,
                  flag: str = "--out") -> Path:
    """Where a run's report goes: ``out`` (the user's ``flag``, checked), else
    ``runs/RUN_ID`` beside the store — never a folder read from the store."""
    from symloss.paths import check_output_folder

    if out is not None:
        return check_output_folder(flag, out)
    return check_output_folder("the report folder", default_report_folder(store, run_id))


def write_report_safely(store, run_id: str, out: Path, final: dict[str, Any] | None,
                        update_store: bool = True) -> Path:
    """Write the report; a failure is one line that says the results are safe in the store."""
    from symloss.harness.search.final import write_report

    try:
        return write_report(store, run_id, out, final, update_store=update_store)
    except OSError as error:
        raise ValueError(f"the report could not be written to {out}: {error}; every result is "
                         f"stored: rebuild it with symloss show {run_id} --report "
                         f"--store {store.path} --out DIR") from None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a search as Ctrl-C does: the run is marked interrupted, resumable
    (in the main thread; elsewhere signals cannot be handled and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished :func:`run_search` left in its store: the best records (best first),
    the status counts, the trainings paid, the report and the final evaluation."""

    run_id: str
    store: Path
    top: tuple  # CandidateRecord, best first
    counts: dict[str, int]
    evaluations: int
    report: Path
    final: dict[str, Any] | None
    #: What the run paid (:func:`~symloss.harness.search.fidelity.compute_paid`).
    compute: dict[str, Any] | None = None


def _call_again(run_id: str, store: Path) -> str:
    """The Python API's resume hint: the same call continues the run."""
    return (f"interrupted: run {run_id} resumes with the same call and run_id={run_id!r}, "
            f"store={str(store)!r}")


def run_search(config, *, store: str | os.PathLike | None = None, run_id: str | None = None,
               resume: bool | None = None, report_dir: str | os.PathLike | None = None,
               report_flag: str = "report_dir", executor=None, workers: int | None = None,
               scheduler: str | None = None, resources: dict[str, float] | None = None,
               chunk: int | None = None, evaluate=None, final_score=None, batched: bool = True,
               progress: bool = True, announce: Callable[[str], None] | None = None,
               resume_hint: Callable[[str, Path], str] = _call_again,
               stop_on_sigterm: bool = False, top: int = 5,
               name: str | None = None) -> SearchOutcome:
    """Search (or resume) run ``run_id`` of ``config``, evaluate its best, write its report.

    ``store``: the run store (:func:`store_file`); ``run_id``: default a new one (a stored
    run's id or name continues it); ``name``: the run's name, unique in the store (a
    name another run holds is refused before anything is paid);
    ``resume``: ``None`` decides under the run's lock (a stored run continues);
    ``report_dir``: the report folder (:func:`report_folder`; ``report_flag`` names it in
    errors). ``executor``: one of yours (not closed here), else one made from
    ``workers``/``scheduler``/``resources``/``chunk``
    (:func:`~symloss.harness.search.executors.make_executor`; its workers are warmed for
    the built-in trainer). ``evaluate``: the candidate evaluator (default the built-in
    trainer), ``final_score``: the final evaluation's scorer (default its trainer),
    ``announce``: where the final evaluation says what it starts, ``resume_hint(run_id,
    store) -> str``: the line an interrupted search prints. ``top``: the best distinct
    records returned.
    """
    from symloss.harness.search.fidelity import compute_paid
    from symloss.harness.search.lock import run_lock
    from symloss.harness.search.runner import best_candidates
    from symloss.harness.search.sessions import executor_facts, session_facts
    from symloss.harness.search.store import RunStore

    if evaluate is None and executor is None and scheduler is None:
        from symloss.harness.device import resolve_device

        resolve_device(config.budget.device)  # a missing device fails every candidate: refuse

    path = store_file(store)
    signals = terminate_as_interrupt() if stop_on_sigterm else contextlib.nullcontext()
    with RunStore.open(path) as opened:
        run_id = _which_run(opened, run_id, resume) or new_run_id()
        if name is not None:
            opened.check_name_free(name, run_id)
        out = report_folder(report_dir, path, run_id, report_flag)
        hint = resume_hint(run_id, path)
        where = executor_facts(executor, workers=workers, scheduler=scheduler, chunk=chunk,
                               batched=batched, evaluate=evaluate is not None)
        with run_lock(opened.path, run_id), signals:
            if resume is None:  # decided under the lock: no other process creates it meanwhile
                resume = opened.has_run(run_id)
            facts = session_facts(config, kind="resumed" if resume else "created",
                                  executor=where, scheduler=scheduler)
            with _session(opened, run_id, resume, facts, name):
                _search(config, opened, run_id, resume=resume, out=out, hint=hint,
                        executor=executor, executor_options={
                            "workers": workers, "scheduler": scheduler,
                            "resources": resources, "chunk": chunk,
                            "budget": config.budget if evaluate is None else None},
                        evaluate=evaluate, batched=batched, progress=progress)
                best = best_candidates(opened, run_id, top)
                final = _final(opened, run_id, config, final_score, announce, hint)
                report = _finish(opened, run_id, out, final, report_flag)
        record = opened.run(run_id)
        return SearchOutcome(run_id, path, tuple(best), opened.counts(run_id),
                             record.evaluations, report, final,
                             compute_paid(opened, run_id, config))


def _finish(store, run_id: str, out: Path, final, report_flag: str) -> Path:
    """The run marked finished and its report written (where it goes said after)."""
    store.set_status(run_id, "finished")
    earlier = store.run(run_id).report_dir
    report = write_report_safely(store, run_id, out, final)
    # said once the report is written: a damaged store is its one line, alone
    _say_where_the_report_goes(earlier, out, report_flag)
    return report


def _which_run(store, run_id: str | None, resume: bool | None) -> str | None:
    """The id of the run to search: ``run_id`` as given for a new run (``resume`` False;
    refused if it is another run's name), else the stored run it names by id or name
    (``resume`` True: a :class:`StoreError` if none; ``None``: a new run if none)."""
    from symloss.harness.search.store import StoreError

    if run_id is None or store.has_run(run_id):
        return run_id
    named = store.names().get(run_id)
    if named is None:
        return store.resolve(run_id) if resume else run_id  # resume: "no run ..." in one line
    if resume is False:
        raise StoreError(f"{run_id!r} is the name of run {named} in {store.path}; choose "
                         "another run id")
    return named


@contextlib.contextmanager
def _session(store, run_id: str, resume: bool, facts: dict[str, Any],
             name: str | None) -> Iterator[None]:
    """This call as a session of the run: stored as it starts (a new run's with the run
    itself, with its ``name``), its end and status as it ends; a resume refused before it
    did anything leaves no session."""
    from symloss.harness.search.runner import ConfigMismatch, ResumeRefused
    from symloss.harness.search.sessions import end_session, start_session, write_session

    if resume:
        number = start_session(store, run_id, facts)
        if name is not None:
            store.set_name(run_id, name)
        creating = contextlib.nullcontext()
    else:
        number = 1

        def write(db, new_id: str) -> None:
            if name is not None:
                store.claim_name(db, new_id, name)
            write_session(db, new_id, facts)

        creating = store.creating(write)
    try:
        with creating:
            yield
    except (ConfigMismatch, ResumeRefused):
        end_session(store, run_id, number, None)
        raise
    except BaseException as error:
        end_session(store, run_id, number, "interrupted" if isinstance(error, KeyboardInterrupt)
                    else f"failed: {type(error).__name__}")
        raise
    end_session(store, run_id, number, "finished")


def _search(config, store, run_id: str, *, resume: bool, out: Path, hint: str, executor,
            executor_options: dict[str, Any], evaluate, batched: bool, progress: bool) -> None:
    """The search itself, progress on stderr; the executor made here is closed here."""
    from symloss.harness.search.executors import SchedulerLost, make_executor
    from symloss.harness.search.progress import Reporter
    from symloss.harness.search.runner import search

    runner = executor or make_executor(**executor_options)
    reporter = Reporter(config, quiet=not progress, stream=sys.stderr)
    try:
        search(config, store=store, executor=runner, run_id=run_id, resume=resume,
               on_result=reporter, on_generation=reporter.generation, batched=batched,
               report_dir=str(out), evaluate=evaluate)
    except SchedulerLost as error:
        raise SchedulerLost(f"{error}; {hint}") from None
    except KeyboardInterrupt:
        reporter.close()
        print(hint, file=sys.stderr)
        raise
    finally:
        reporter.close()
        if executor is None:
            runner.close()


def _final(store, run_id: str, config, final_score, announce, hint: str):
    """The final evaluation, paid once: each training is stored as it returns, a resume
    reuses them; an interrupt prints ``hint``."""
    from symloss.harness.search.final import stored_final

    try:
        return stored_final(store, run_id, config, final_score, announce=announce)
    except KeyboardInterrupt:
        print(hint, file=sys.stderr)
        raise


def _say_where_the_report_goes(stored: str | None, out: Path, flag: str) -> None:
    """A run reported elsewhere before (a resume without ``flag``) is told where its report
    goes now (the stored folder, quoted, is not written without the caller naming it)."""
    if stored is not None and Path(stored) != out:
        print(f"report: {out} (the run's earlier folder {stored!r} is written again only "
              f"with {flag} naming it)", file=sys.stderr)
