"""Clustering the lean logs (:mod:`edgeinvestigate.analysis.clustering._lean`: the text of the lines
clustering never reads left out) gives the same clusters, rows and DLQ joins as the full logs, on
every simulator scenario collected through the spool, for every choice of levels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from edgeinvestigate.analysis.clustering import Clusters, cluster
from edgeinvestigate.analysis.clustering._lean import lean_evidence
from edgeinvestigate.evidence._spool import spool_load
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.simulator import simulate
from edgeinvestigate.simulator._simulate import LAYOUT
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

SCENARIOS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "edgeinvestigate/simulator/scenarios").glob("*.toml")
)


def _same(got: Clusters, want: Clusters) -> None:
    for part in ("table", "assign", "dlq"):
        pd.testing.assert_frame_equal(getattr(got, part), getattr(want, part), check_exact=True, obj=part)
    assert got.key_template == want.key_template
    assert got.key == want.key


def _spooled(tmp: Path, name: str) -> Evidence:
    simulate(name, tmp / "sim", seed=5, invocations=1200, formats=("logpush", "dlq"))
    got = spool_load([tmp / "sim" / LAYOUT["logpush"]], tmp / "spool", max_record_bytes=8 << 20)
    assert got is not None
    ev: Evidence = got.evidence
    dlq = tmp / "sim" / LAYOUT["dlq"]
    return ev.with_dlq(dlq_frame_from_file(dlq)) if dlq.is_file() else ev


@pytest.mark.parametrize("name", SCENARIOS)
def test_lean_logs_cluster_as_the_full_logs(name: str, tmp_path: Path) -> None:
    ev = _spooled(tmp_path, name)
    lean = lean_evidence(ev)
    assert lean is not ev
    full = ev.logs  # read whole (the spooled evidence is left as it was by lean_evidence)
    dropped = lean.logs["message"].isna() & full["message"].notna()
    assert dropped.any(), "nothing was left out: the test would compare nothing"
    want = cluster(ev, stored=False)
    assert len(want.table) > 1
    _same(cluster(lean, stored=False), want)


@pytest.mark.parametrize("levels", [("error",), ("error", "warn", "log", "info")])
def test_other_levels(levels: tuple[str, ...], tmp_path: Path) -> None:
    ev = _spooled(tmp_path, "default")
    _same(
        cluster(lean_evidence(ev, levels), levels=levels, stored=False),
        cluster(ev, levels=levels, stored=False),
    )


def test_evidence_in_memory_is_left_as_it_is(tmp_path: Path) -> None:
    ev = _spooled(tmp_path, "default")
    in_memory = ev.copy_with(logs=ev.logs)
    assert lean_evidence(in_memory) is in_memory
