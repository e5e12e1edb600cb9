"""The SQL engine of the analysis (``analysis/sql``): its findings equal the pandas reference's on every
simulator scenario, from frames in memory and from a saved bundle's Parquet files read in place."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis._columns import utc_series
from edgeinvestigate.analysis.clustering._stored import store_clusters
from edgeinvestigate.analysis.rca import ERROR_ROW_COLUMNS
from edgeinvestigate.analysis.rca._sql_inputs import register_inputs
from edgeinvestigate.analysis.sql import FRAME_NAMES, connect, frame_specs, query_text
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence._frames import StoredFrame
from edgeinvestigate.evidence.bundle import Evidence, load
from edgeinvestigate.evidence.queue_metrics import with_metrics_file
from edgeinvestigate.simulator import list_scenarios, simulate
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

from .conftest import T0, invocation, job_log, make_evidence


def _same(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (floats to 1e-9 relative: quantiles may differ in the last bit)."""
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-9)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def assert_same_findings(ev: Evidence, **kw: Any) -> ei.Findings:
    clusters = ei.cluster(ev)
    ref = ei.analyze(ev, clusters, engine="pandas", **kw)
    got = ei.analyze(ev, clusters, engine="sql", **kw)
    diffs = _same(ref.model_dump(mode="json"), got.model_dump(mode="json"))
    assert diffs == [], "\n".join(diffs[:20])
    return got


def _scenario(
    name: str, out: Path, seed: int, fmt: str = "traceitems", *, analytics: bool = False, **kw: Any
) -> Evidence:
    formats = (fmt, "dlq", "analytics") if analytics else (fmt, "dlq")
    simulate(name, out, seed=seed, formats=formats, **kw)
    src = out / "traceitems" / "traceitems.jsonl" if fmt == "traceitems" else out / "logpush"
    ev = load([src], strict=True).with_dlq(dlq_frame_from_file(out / "dlq" / "messages.json"))
    return with_metrics_file(ev, out / "analytics" / "analytics.json") if analytics else ev


#: every shipped scenario but the 1M-invocation benchmark corpus (covered at 30k below)
SCENARIOS = sorted(set(list_scenarios()) - {"logpush-benchmark"})


def test_every_shipped_scenario_is_compared() -> None:
    assert {"default", "bad-deploy", "consumer-stall", "silent-dead-letters"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sql_findings_equal_the_pandas_reference_on_every_scenario(scenario: str, tmp_path: Path) -> None:
    """Every shipped scenario, with its queue and Worker analytics (the queue findings and the
    backlog's detection time ride on the same parts)."""
    f = assert_same_findings(_scenario(scenario, tmp_path, 5, analytics=True))
    assert f.hypotheses  # every scenario is an incident
    assert f.queue_health  # with the analytics' queue summary


@pytest.mark.parametrize(("scenario", "seed"), [("default", 7), ("default", 11), ("cpu-limits", 3)])
def test_sql_findings_equal_the_pandas_reference_on_other_seeds(
    scenario: str, seed: int, tmp_path: Path
) -> None:
    assert_same_findings(_scenario(scenario, tmp_path, seed))


def test_sql_findings_equal_the_pandas_reference_on_a_peek_bundle(tmp_path: Path) -> None:
    """A peek saw the head of the DLQ only: the coverage note and the "of the first 100 only" marks."""
    ev = _scenario("default", tmp_path, 7)
    head = ev.dlq.sort_values("enqueued_at", kind="stable").head(100).reset_index(drop=True)
    peek = ev.with_dlq(head)
    record = {
        "queue": "jobs-dlq",
        "mode": "peek",
        "messages": 100,
        "backlog_count": len(ev.dlq),
        "complete": False,
    }
    peek = dataclasses.replace(peek, manifest={**peek.manifest, "dlq_collections": [record]})
    f = assert_same_findings(peek)
    assert f.dlq_coverage is not None


def test_sql_findings_equal_the_pandas_reference_on_logpush_at_a_larger_scale(tmp_path: Path) -> None:
    ev = _scenario("default", tmp_path, 2, fmt="logpush", invocations=30_000)
    assert len(ev.invocations) > 20_000
    f = assert_same_findings(ev)
    assert f.retry_storms or f.hypotheses


def test_sql_findings_with_given_deploys_limits_and_buckets(tmp_path: Path) -> None:
    ev = _scenario("default", tmp_path, 7)
    assert_same_findings(
        ev,
        deployments=["v9@2026-11-27T14:30:00.5Z", ("v10", "2026-11-27T15:10Z")],
        cpu_limit_ms=20.0,
        wall_limit_ms=500.0,
        bucket_seconds=300,
        tenant_fields=("tenantId", "customerId"),
    )


def test_sql_findings_on_versions_from_log_lines(tmp_path: Path) -> None:
    from .test_deploys import lab_like

    assert_same_findings(lab_like(tmp_path, producer=True))
    (tmp_path / "v").mkdir()
    assert_same_findings(lab_like(tmp_path / "v", "version"), deployments=["v42@2026-11-27T14:20Z"])


def test_sql_findings_on_hand_made_and_empty_evidence(small_evidence: Evidence) -> None:
    assert_same_findings(small_evidence)
    assert_same_findings(Evidence.empty())
    inv = [
        invocation(i, T0 + pd.Timedelta(minutes=i), outcome="exceededCpu" if i > 8 else "ok")
        for i in range(12)
    ]
    logs = [
        job_log(f"inv-{i}", T0 + pd.Timedelta(minutes=i), "error", "job_failed", f"j{i}") for i in range(12)
    ]
    assert_same_findings(make_evidence(invocations=inv, logs=logs))
    assert_same_findings(make_evidence(logs=logs))  # logs without invocations
    # odd rows: a duplicated invocation id (one copy hit a limit), lines without a time or an invocation,
    # an invocation without outcome, CPU or wall time
    odd_inv = [*inv, {**invocation(3, T0, outcome="exceededMemory"), "invocation_id": "inv-2"}]
    odd_inv.append({"invocation_id": "inv-x", "ts": T0 + pd.Timedelta(minutes=3), "script": "jobs-consumer"})
    odd_logs = [*logs, {**logs[0], "ts": None}, {**logs[1], "invocation_id": None, "level": "warn"}]
    assert_same_findings(make_evidence(invocations=odd_inv, logs=odd_logs), wall_limit_ms=100.0)


def _saved_with_clusters(tmp_path: Path, scenario: str = "dependency-outage") -> Path:
    """A bundle saved as ``collect`` saves it: in storage order, with its clusters stored."""
    ev = _scenario(scenario, tmp_path / "sim", 5, analytics=True).in_storage_order()
    return store_clusters(ev, ei.cluster(ev)).save(tmp_path / "bundle")


def _in_pandas(ev: Evidence) -> set[str]:
    """The frames of an opened bundle that were read into pandas."""
    return {n for n in FRAME_NAMES if not isinstance(ev.__dict__[f"_frame_{n}"], StoredFrame)}


def test_sql_reads_a_saved_bundle_in_place(tmp_path: Path) -> None:
    """On a bundle with stored clusters the SQL engine reads the frames' Parquet files: none of the
    telemetry frames is read into pandas, and the findings are the pandas reference's."""
    saved = _saved_with_clusters(tmp_path)
    opened = Evidence.open(saved)
    clusters = ei.cluster(opened)
    assert clusters.origin == "stored"
    specs = frame_specs(opened)
    assert all(specs[n] == saved / f"{n}.parquet" for n in ("invocations", "logs", "exceptions"))
    got = ei.analyze(opened, clusters, engine="sql").model_dump(mode="json")
    assert not _in_pandas(opened) & {"invocations", "logs", "exceptions"}
    ref_ev = Evidence.open(saved)
    ref = ei.analyze(ref_ev, ei.cluster(ref_ev), engine="pandas").model_dump(mode="json")
    assert _same(ref, got) == []


def test_sql_reads_a_bundle_whose_files_lack_newer_columns(tmp_path: Path) -> None:
    """A bundle of an older release lacks columns added since (request and ray ids): Evidence.open
    conforms the frames, and the SQL engine reads the files with those columns as typed nulls."""
    saved = _saved_with_clusters(tmp_path, "default")
    path = saved / "invocations.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["request_id", "ray_id", "url", "method", "batch_size"]), path)
    opened = Evidence.open(saved)
    with connect() as sql:
        sql.frames(frame_specs(opened))
        row = sql.con.execute(
            "SELECT count(*), count(request_id), count(batch_size) FROM invocations"
        ).fetchone()
    assert row == (len(table), 0, 0)
    got = ei.analyze(opened, ei.cluster(opened), engine="sql").model_dump(mode="json")
    ref_ev = Evidence.open(saved)
    ref = ei.analyze(ref_ev, ei.cluster(ref_ev), engine="pandas").model_dump(mode="json")
    assert _same(ref, got) == []


def test_engine_settings_and_frames(tmp_path: Path) -> None:
    ev = _scenario("default", tmp_path / "sim", 7)
    saved = ev.save(tmp_path / "bundle")
    with connect(threads=2, memory_limit="256MB") as sql:
        settings = dict(
            sql.con.execute(
                "SELECT name, value FROM duckdb_settings() "
                "WHERE name IN ('threads', 'memory_limit', 'enable_progress_bar', 'temp_directory')"
            ).fetchall()
        )
        assert settings["threads"] == "2"
        assert settings["enable_progress_bar"] == "false"
        assert Path(settings["temp_directory"]).is_dir()
        temp = Path(settings["temp_directory"])
        sql.frames({name: saved / f"{name}.parquet" for name in FRAME_NAMES})
        rows = sql.one("frame_rows")
        assert rows == {name: len(ev.frame(name)) for name in FRAME_NAMES}
        # pos is the row's place in its frame, ts_ms its time in epoch milliseconds
        first = sql.con.execute("SELECT pos, ts_ms FROM logs ORDER BY pos LIMIT 1").fetchone()
        assert first is not None
        assert first[0] == 0
        assert pd.Timestamp(first[1], unit="ms", tz="UTC") == ev.logs["ts"].iloc[0]
    assert not temp.exists()  # the spill folder goes with the engine


def test_queries_are_plain_sql_files() -> None:
    text = query_text("timeline")
    assert text.lstrip().startswith("--")
    assert "FROM inv" in text
    with pytest.raises(FileNotFoundError):
        query_text("no_such_query")


def test_unknown_engine_is_refused(small_evidence: Evidence) -> None:
    with pytest.raises(ConfigError, match="engine"):
        ei.analyze(small_evidence, engine="spark")  # type: ignore[arg-type]


def test_memory_limit_and_threads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, small_evidence: Evidence
) -> None:
    """The same settings as ``ev.sql()``'s connections (EDGEINVESTIGATE_DUCKDB_MEMORY / _THREADS)."""
    monkeypatch.setenv("EDGEINVESTIGATE_DUCKDB_MEMORY", "48MB")
    monkeypatch.setenv("EDGEINVESTIGATE_DUCKDB_THREADS", "1")
    with connect() as sql:
        limit = sql.con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    assert limit is not None
    assert limit[0].endswith("MiB")
    assert float(limit[0].split()[0]) < 50
    assert int(limit[1]) == 1
    assert_same_findings(small_evidence)  # the analysis runs within it


def test_every_query_binds_to_the_documented_frame_layout() -> None:
    """Each ``analysis/sql/*.sql`` reads only the documented frame columns (plus ``pos``/``ts_ms``)
    and the derived relations: it plans against empty frames. Every query is used by the analysis."""
    import re
    from importlib import resources

    from edgeinvestigate.analysis.rca._sql_inputs import register_errors

    names = sorted(
        p.name[:-4]
        for p in resources.files("edgeinvestigate.analysis.sql").iterdir()
        if p.name.endswith(".sql")
    )
    code = "".join(
        p.read_text() for p in Path(ei.__file__).parent.joinpath("analysis", "rca").glob("_sql*.py")
    )
    unused = [n for n in names if f'"{n}"' not in code]
    assert unused == []
    params = {
        "bucket_ms": 60_000, "key_re": "x", "cpu_near": 1.0, "wall_near": 1.0, "t0": 0.0, "t1": 1.0,
        "at": 0.0, "w": 1.0, "version": "v", "script": "s", "any_script": True, "named": True,
        "unnamed": "u", "until": 1.0,
    }  # fmt: skip
    with connect() as sql:
        sql.frames({})
        register_errors(sql, ei.cluster(Evidence.empty()).assign)
        sql.register("log_versions", pd.DataFrame({"invocation_id": pd.Series([], dtype=object),
                                                   "version": pd.Series([], dtype=object)}))  # fmt: skip
        sql.register("limit_hit_ids", pd.DataFrame({"invocation_id": pd.Series([], dtype=object)}))
        for name in ("log_jobs", "inv", "deliveries"):
            sql.materialize(name, name)
        for name in names:
            text = query_text(name)
            used = {p: params[p] for p in re.findall(r"\$(\w+)", text)}
            sql.con.execute("EXPLAIN " + text, used or None)


def test_keep_only_lets_go_of_all_but_the_tables_named(tmp_path: Path) -> None:
    ev = _scenario("default", tmp_path / "sim", 7)
    errors = None  # noqa: F841 (a Python variable of a relation's name is never read: replacement scans are off)
    rows = ei.cluster(ev).error_rows(ERROR_ROW_COLUMNS, dlq=False)
    rows["ts"] = utc_series(rows["ts"])
    with connect(threads=2) as sql:
        sql.frames(frame_specs(ev))  # in memory: registered Arrow tables
        sql.register("extra", pd.DataFrame({"a": [1, 2]}))
        assert register_inputs(sql, rows) > 0  # errors, versions, and the temp tables inv, deliveries
        n = sql.count("deliveries")
        assert n > 0
        sql.keep_only("deliveries")
        # what is kept still answers; the rest is gone, and its memory with it
        assert sql.count("deliveries") == n
        for gone in ("extra", "errors", "inv", "log_jobs", "invocations"):
            with pytest.raises(duckdb.CatalogException, match=gone):
                sql.con.execute(f"SELECT count(*) FROM {gone}").fetchall()
        assert sql._keep == []
