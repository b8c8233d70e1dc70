"""benchmarks/results_file.py: a benchmark rewrites its own RESULTS.md section and no other."""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
results_file = load_script("benchmarks/results_file.py")


def test_sections_are_replaced_in_place_and_others_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    results_file.write_section("cpu", "CPU", "first cpu", path)
    results_file.write_section("cluster", "Cluster", "cluster figures", path)
    results_file.write_section("cpu", "CPU", "second cpu\nwith $1 and \\1 in it", path)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert text.count("## CPU") == 1 and text.count("## Cluster") == 1
    assert text.index("## CPU") < text.index("## Cluster")  # a section keeps its place
    assert results_file.read_section("cpu", path) == "second cpu\nwith $1 and \\1 in it"
    assert results_file.read_section("cluster", path) == "cluster figures"
    assert results_file.read_section("gpu", path) is None


def test_every_benchmark_writes_through_it():
    """run.py once rewrote RESULTS.md whole, dropping the other scripts' sections."""
    for script in ("run.py", "bench_cluster.py", "bench_glo_cnn.py", "bench_contention.py"):
        text = (ROOT / "benchmarks" / script).read_text()
        assert "write_section(" in text and "write_text(" not in text, script
