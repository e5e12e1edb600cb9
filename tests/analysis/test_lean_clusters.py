"""Clustering the lean logs (:mod:`edgeinvestigate.analysis.clustering._lean`: only the lines clustering
needs, read in batches whose error texts are taken and whose texts are then dropped) gives the same
clusters, rows and DLQ joins as the full logs, on every simulator scenario collected through the
spool, for every choice of levels, with small batches, and when the versions come from log lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from edgeinvestigate.analysis.clustering import Clusters, _compute, _lean, cluster
from edgeinvestigate.analysis.clustering._lean import CONTEXT, cluster_lean, lean_evidence
from edgeinvestigate.errors import LoadError
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


def _spooled(tmp: Path, name: str, *, simulated: bool = True) -> Evidence:
    if simulated:
        simulate(name, tmp / "sim", seed=5, invocations=1200, formats=("logpush", "dlq"))
    got = spool_load([tmp / "sim" / LAYOUT["logpush"]], tmp / "spool", max_record_bytes=8 << 20)
    assert got is not None
    ev: Evidence = got.evidence
    dlq = tmp / "sim" / LAYOUT["dlq"]
    return ev.with_dlq(dlq_frame_from_file(dlq)) if dlq.is_file() else ev


@pytest.mark.parametrize("name", SCENARIOS)
def test_lean_logs_cluster_as_the_full_logs(name: str, tmp_path: Path) -> None:
    ev = _spooled(tmp_path, name)
    found = lean_evidence(ev)
    _check(ev)
    # invocations without an error row are left out
    assert found is not None
    assert len(found[0].invocations) < len(ev.invocations)


def _check(ev: Evidence, **kw: Any) -> tuple[pd.DataFrame, Clusters]:
    """Cluster ``ev`` from the lean logs and from the full ones: the same; returns the lean logs and
    the clusters."""
    found = lean_evidence(ev, **kw)
    assert found is not None
    pool = pa.default_memory_pool().backend_name
    got = cluster_lean(ev, **kw)
    assert pa.default_memory_pool().backend_name == pool  # the system pool was for the clustering only
    full = ev.logs  # read whole (the spooled evidence is left as it was by the lean reads)
    _left_out(found[0].logs, full)
    # the exceptions' stacks and names are read once per distinct value, the same values
    lean_exc = found[0].exceptions
    for c in ("name", "stack"):
        assert isinstance(lean_exc[c].dtype, pd.CategoricalDtype), c
        assert _objects(lean_exc[c]) == _objects(ev.exceptions[c]), c
    # the jobs: one row per invocation that needs them (those with exceptions or job-less error
    # lines; at most every invocation, and the lines without an invocation id)
    jobs = found[2]
    assert jobs.column_names == ["invocation_id", "job_type", "job_id"]
    # the invocations: the first row of each one with an error row (and of those without an id)
    inv, lean_inv = ev.invocations, found[0].invocations
    firsts = inv[~inv["invocation_id"].duplicated()].set_index("invocation_id", drop=False)
    ids = lean_inv["invocation_id"].dropna()
    for c in CONTEXT:
        want = _objects(firsts.loc[ids.to_numpy(), c])
        assert _objects(lean_inv.loc[ids.index, c]) == want, c
    assert 0 < jobs.num_rows <= ev.invocations["invocation_id"].nunique() + 1
    want = cluster(ev, stored=False, **kw)
    assert len(want.table) > 1
    _same(got, want)
    return found[0].logs, got


def _objects(s: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in s.astype(object)]


def _left_out(lean: pd.DataFrame, full: pd.DataFrame) -> None:
    """The lean logs are lines of the full logs, in order, and leave out lines and texts."""
    at = lean.index.to_numpy()
    assert len(lean) < len(full), "no line was left out: the test would compare nothing"
    assert (np.diff(at) > 0).all()
    same = full.iloc[at]
    for c in ("invocation_id", "ts", "level", "job_id", "job_type"):
        assert same[c].astype(object).tolist() == lean[c].astype(object).tolist(), c
    kept = lean["message"].notna().to_numpy()
    assert not kept.all(), "every kept line has its text: the test would compare nothing"
    assert same["message"].to_numpy()[kept].tolist() == lean["message"].to_numpy()[kept].tolist()


def test_small_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines read in many batches (error texts taken batch by batch) cluster the same, also when the
    grouping kernel runs after the rest (as for millions of error rows), not beside it."""
    monkeypatch.setattr(_lean, "BATCH_ROWS", 37)
    monkeypatch.setattr(_compute, "OVERLAP_ROWS", 0)
    ev = _spooled(tmp_path, "default")
    n = len(lean_evidence(ev)[0].logs)  # type: ignore[index]
    assert n > 10 * 37
    _check(ev)


@pytest.mark.parametrize("levels", [("error",), ("error", "warn", "log", "info")])
def test_other_levels(levels: tuple[str, ...], tmp_path: Path) -> None:
    _check(_spooled(tmp_path, "default"), levels=levels)


def test_evidence_in_memory_is_left_as_it_is(tmp_path: Path) -> None:
    ev = _spooled(tmp_path, "default")
    in_memory = ev.copy_with(logs=ev.logs)
    assert lean_evidence(in_memory) is None
    _same(cluster_lean(in_memory), cluster(in_memory, stored=False))


def test_versions_named_by_info_lines(tmp_path: Path) -> None:
    """Invocations without a ``ScriptVersion`` take the version their log lines name; the lean logs
    keep those lines (and their text) although clustering reads no other text of them."""
    simulate("bad-deploy", tmp_path / "sim", seed=5, invocations=1200, formats=("logpush", "dlq"))
    for path in (tmp_path / "sim" / LAYOUT["logpush"]).rglob("*.gz"):
        records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        for i, rec in enumerate(records):
            tag = (rec.pop("ScriptVersion", None) or {}).get("Tag") or "v0"
            if i % 2 and rec.get("Logs"):  # half name their version in an info line, as the first line
                t = rec["Logs"][0]["TimestampMs"]
                line = json.dumps({"event": "boot", "deploy": tag})
                rec["Logs"].insert(0, {"Level": "info", "Message": [line], "TimestampMs": t})
        path.write_bytes(gzip.compress(b"\n".join(json.dumps(r).encode() for r in records)))
    ev = _spooled(tmp_path, "bad-deploy", simulated=False)
    logs, got = _check(ev)
    assert logs["message"].str.contains('"deploy"').sum() > 10, "the version lines lost their text"
    assert got.assign["script_version"].notna().sum() > 10, "no version came from a log line"
    assert ev.invocations["script_version"].isna().all()


def test_too_little_memory_for_the_pick_says_which_setting_to_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = _spooled(tmp_path, "default")
    logs = ev.__dict__["_frame_logs"].path
    # the variable wins over the pick's own limit: too little, and the error says what to raise
    monkeypatch.setenv("EDGEINVESTIGATE_DUCKDB_MEMORY", "1MB")
    with pytest.raises(LoadError, match="ran out of DuckDB's memory") as caught:
        cluster_lean(ev)
    assert str(logs) in str(caught.value)
    assert "EDGEINVESTIGATE_DUCKDB_MEMORY" in caught.value.hint
    # enough, and the same clusters as ever
    monkeypatch.setenv("EDGEINVESTIGATE_DUCKDB_MEMORY", "256MB")
    _check(ev)
