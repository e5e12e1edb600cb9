"""The pipeline benchmark's larger corpus: copies of the simulated one, shifted in time, with other job ids,
that load as new invocations (no timing here: the benchmark prints, it does not assert)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import edgeinvestigate as ei

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pipeline.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pipeline", BENCH)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_pipeline", mod)
    spec.loader.exec_module(mod)
    return mod


def test_shifted_copies_are_new_invocations_later_in_time(bench: ModuleType, tmp_path: Path) -> None:
    ei.simulate("default", tmp_path / "sim", seed=3, invocations=300, formats=("logpush",))
    files = sorted((tmp_path / "sim" / "logpush").rglob("*.gz"))
    hour = 3600 * 1000
    for f in files:
        bench._shift_file(f, tmp_path / "copy" / f.name, 1, 2 * hour)
    base = ei.load([tmp_path / "sim" / "logpush"])
    both = ei.load([tmp_path / "sim" / "logpush", tmp_path / "copy"])
    assert len(both.invocations) == 2 * len(base.invocations)  # not deduplicated away
    shift = both.invocations["ts"].max() - base.invocations["ts"].max()
    assert shift.total_seconds() == 2 * 3600
    jobs = both.logs["job_id"].dropna().astype(str)
    assert jobs.str.startswith("job1_").any()
    assert set(jobs[jobs.str.startswith("job1_")].str.slice(5)) <= set(
        jobs[~jobs.str.startswith("job1_")].str.slice(4)
    )
