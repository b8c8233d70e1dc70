"""Issue 24: a search's counts add up, for TaylorGLO and for GLO.

Every stored candidate is exactly one of ok/filtered/diverged/failed; a cached copy is
counted as the status it copied; trained + cached + filtered = candidates, per
generation and in all — and the generation lines on stderr and ``search --json`` say
the same numbers as the store.
"""

from __future__ import annotations

import json
import re

import pytest

from symloss.cli import main
from symloss.harness.search.store import STATUSES, RunStore

TINY = ["--dataset", "digits", "--steps", "4", "--batch-size", "64", "--no-progress"]
LINE = re.compile(r"gen +(\d+): .*\| trained (\d+) cached (\d+) filtered (\d+) diverged (\d+) "
                  r"failed (\d+) \|")


@pytest.mark.parametrize("algorithm, flags", [
    ("taylorglo", ["--generations", "2", "--population", "8"]),
    # a small GP population repeats trees: cached copies
    ("glo", ["--generations", "2", "--cma-generations", "1", "--population", "12"]),
])
def test_the_counts_add_up(tmp_path, capsys, algorithm, flags):
    store = tmp_path / "runs.sqlite"
    code = main(["search", algorithm, *TINY, *flags, "--store", str(store), "--json",
                 "--out", str(tmp_path / "report")])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    with RunStore.open(store, readonly=True) as opened:
        records = opened.candidates(payload["run_id"])
        counts = opened.counts(payload["run_id"])
    assert all(r.status in STATUSES for r in records)
    assert sum(counts.values()) == len(records)  # each candidate exactly one status
    by_slot = {(r.generation, r.idx): r for r in records}
    cached = [r for r in records if r.worker == "cache"]
    for copy in cached:  # counted as what it copied
        source = by_slot.get(tuple(copy.metrics["cached_from"]))
        if source is not None:
            assert (copy.status, copy.fitness) == (source.status, source.fitness)
    filtered = [r for r in records if r.status == "filtered"]
    trained = [r for r in records if r.status != "filtered" and r.worker != "cache"]
    assert not any(r.worker == "cache" for r in filtered)
    assert len(trained) + len(cached) + len(filtered) == len(records)

    assert payload["counts"] == counts
    assert payload["evaluations"] == len(trained)

    lines = [LINE.search(line) for line in err.splitlines() if line.startswith("gen ")]
    assert lines and all(lines), err
    generations = {int(m[1]): [int(v) for v in m.groups()[1:]] for m in lines}
    for generation, (paid, copies, skipped, diverged, failed) in generations.items():
        mine = [r for r in records if r.generation == generation]
        assert paid + copies + skipped == len(mine)
        assert copies == sum(r.worker == "cache" for r in mine)
        assert skipped == sum(r.status == "filtered" for r in mine)
        assert diverged == sum(r.status == "diverged" for r in mine)
        assert failed == sum(r.status == "failed" for r in mine)
    assert sum(g[0] for g in generations.values()) == len(trained)
    assert sum(g[1] for g in generations.values()) == len(cached)
    assert sum(g[2] for g in generations.values()) == len(filtered)
    if algorithm == "glo":
        assert cached, "a GP population of 12 repeats trees: some results are copies"
