"""The benchmark's grouping accuracy is Loghub's GA, and it runs end to end on a small corpus."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cluster.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cluster", BENCH)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grouping_accuracy_definition(bench: ModuleType) -> None:
    truth = ["a", "a", "b", "b", "c"]
    assert bench.grouping_accuracy([1, 1, 2, 2, 3], truth) == 1.0
    assert bench.grouping_accuracy([1, 1, 1, 1, 3], truth) == pytest.approx(0.2)  # a+b merged: only c right
    assert bench.grouping_accuracy([1, 2, 3, 3, 4], truth) == pytest.approx(0.6)  # a split: b and c right


def test_benchmark_runs_on_a_small_corpus(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--n", "20000", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "edgeinvestigate:" in out
    assert "drain3 0.9.11" in out
    assert "speed ratio" in out
    assert "grouping acc." in out
    assert code in (0, 1)  # the targets are judged at full size, not here
