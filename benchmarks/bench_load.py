"""Load benchmark: ``ei.load`` vs DuckDB vs pandas on Logpush ``workers_trace_events``, side by side.

    python benchmarks/bench_load.py                      # 1,000,000 records (generated once into bench-data/)
    python benchmarks/bench_load.py --records 100000 --skip-pandas --repeat 1
    python benchmarks/bench_load.py --skip-pandas --baseline HEAD~2   # also time an older commit

Every method runs in a fresh process (so peak memory is its own), in interleaved order, on the same
gzip NDJSON files; the figures are medians over ``--repeat`` runs. Each method builds the same
canonical frames (conformed with :func:`edgeinvestigate.models.frames.conform`). Peak RSS is sampled over the
whole process tree (worker processes included) and compared with the size of the resulting frames.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

METHODS = {
    "ei_invocations": "ei.load(frames=('invocations',))",
    "ei_all": "ei.load() all three frames",
    "duckdb_invocations": "DuckDB read_json -> invocations",
    "duckdb_all": "DuckDB read_json + unnest -> all three",
    "pandas_all": "pandas read_json + json_normalize -> all three",
}


# --- the methods (run in a child process) ------------------------------------------------------


def run_ei(data: Path, frames: tuple[str, ...]) -> dict[str, Any]:
    import edgeinvestigate as ei

    ev = ei.load(data, frames=frames)
    return {n: ev.frame(n) for n in frames}


DUCK_COLUMNS = {
    "CPUTimeMs": "DOUBLE",
    "WallTimeMs": "DOUBLE",
    "DispatchNamespace": "VARCHAR",
    "Entrypoint": "VARCHAR",
    "Event": "STRUCT(Queue VARCHAR, BatchSize INTEGER, Request STRUCT(URL VARCHAR, Method VARCHAR), "
    "Response STRUCT(Status INTEGER))",
    "EventTimestampMs": "BIGINT",
    "EventType": "VARCHAR",
    "Outcome": "VARCHAR",
    "ScriptName": "VARCHAR",
    "ScriptVersion": "STRUCT(ID VARCHAR)",
}
DUCK_INV = """
SELECT md5(EventTimestampMs::VARCHAR || ScriptName || WallTimeMs::VARCHAR)[1:16] AS invocation_id,
       EventTimestampMs AS ts, ScriptName AS script, ScriptVersion.ID AS script_version,
       CASE EventType WHEN 'worker_rpc' THEN 'rpc' WHEN 'hibernatable_web_socket' THEN 'websocket'
                      ELSE EventType END AS trigger,
       Event.Queue AS queue, Event.BatchSize AS batch_size, Outcome AS outcome,
       (Outcome <> 'ok' OR n_exceptions > 0) AS failed, CPUTimeMs AS cpu_ms, WallTimeMs AS wall_ms,
       n_logs, n_exceptions, false AS truncated, Event.Request.URL AS url, Event.Request.Method AS method,
       Event.Response.Status AS status, nullif(Entrypoint, '') AS entrypoint,
       nullif(DispatchNamespace, '') AS dispatch_namespace, 'logpush' AS source, filename AS source_file
FROM {src}
"""
DUCK_LOGS = """
WITH l AS (SELECT invocation_id, unnest(Logs) AS l FROM t),
     m AS (SELECT invocation_id, l.Level AS level, l.TimestampMs AS ts, l.Message AS args,
                  json_extract_string(l.Message, '$[0]') AS m0 FROM l),
     j AS (SELECT *, CASE WHEN starts_with(m0, '{{') AND json_valid(m0) THEN m0::JSON
                          ELSE json_extract(args, '$[0]') END AS o FROM m)
SELECT invocation_id, ts, level, m0 AS message, args::VARCHAR AS args,
       coalesce(json_extract_string(o, '$.jobId'), json_extract_string(o, '$.job_id')) AS job_id,
       coalesce(json_extract_string(o, '$.type'), json_extract_string(o, '$.jobType')) AS job_type,
       TRY_CAST(coalesce(json_extract_string(o, '$.attempt'),
                         json_extract_string(o, '$.attempts')) AS INTEGER) AS attempt,
       coalesce(json_extract_string(o, '$.messageId'), json_extract_string(o, '$.message_id')) AS message_id
FROM j
"""
DUCK_EXC = """
WITH e AS (SELECT invocation_id, unnest(Exceptions) AS e FROM t)
SELECT invocation_id, e.TimestampMs AS ts, e.Name AS name, e.Message AS message, e.Stack AS stack
FROM e
"""


def _read_json(glob: str, columns: dict[str, str]) -> str:
    cols = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    return (
        f"read_json('{glob}', format='newline_delimited', compression='gzip', filename=true, "
        f"maximum_object_size=67108864, columns={{{cols}}})"
    )


def run_duckdb(data: Path, frames: tuple[str, ...]) -> dict[str, Any]:
    import duckdb

    from edgeinvestigate.models.frames import conform

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = true")
    glob = str(data / "**" / "*.gz")
    if frames == ("invocations",):
        cols = dict(DUCK_COLUMNS, Logs="JSON", Exceptions="JSON")
        src = (
            f"(SELECT *, json_array_length(Logs)::INTEGER AS n_logs, "
            f"json_array_length(Exceptions)::INTEGER AS n_exceptions FROM {_read_json(glob, cols)})"
        )
        return {"invocations": conform(con.sql(DUCK_INV.format(src=src)).fetch_arrow_table(), "invocations")}
    cols = dict(
        DUCK_COLUMNS,
        Logs="STRUCT(Level VARCHAR, Message JSON, TimestampMs BIGINT)[]",
        # DuckDB struct keys are case-insensitive: Name also reads name
        Exceptions="STRUCT(Name VARCHAR, Message VARCHAR, TimestampMs BIGINT, Stack VARCHAR)[]",
    )
    src = (
        f"(SELECT *, len(Logs)::INTEGER AS n_logs, len(Exceptions)::INTEGER AS n_exceptions "
        f"FROM {_read_json(glob, cols)})"
    )
    con.execute(
        f"CREATE TEMP TABLE t AS SELECT inv.*, Logs, Exceptions FROM "
        f"(SELECT *, md5(EventTimestampMs::VARCHAR || ScriptName || WallTimeMs::VARCHAR)[1:16] "
        f"AS invocation_id "
        f"FROM {src}) AS inv"
    )
    inv = con.sql(DUCK_INV.format(src="t")).fetch_arrow_table()
    logs = con.sql(DUCK_LOGS).fetch_arrow_table()
    exc = con.sql(DUCK_EXC).fetch_arrow_table()
    return {
        "invocations": conform(inv, "invocations"),
        "logs": conform(logs, "logs"),
        "exceptions": conform(exc, "exceptions"),
    }


def run_pandas(data: Path, frames: tuple[str, ...]) -> dict[str, Any]:
    import pandas as pd

    from edgeinvestigate.models.frames import conform

    inv_parts, log_parts, exc_parts = [], [], []
    for path in sorted(data.rglob("*.gz")):
        df = pd.read_json(path, lines=True, compression="gzip", dtype=False)
        records = df.to_dict("records")
        flat = pd.json_normalize(
            [{k: v for k, v in r.items() if k not in ("Logs", "Exceptions")} for r in records]
        )
        flat["n_logs"] = df["Logs"].str.len()
        flat["n_exceptions"] = df["Exceptions"].str.len()
        inv_parts.append(flat)
        logs = pd.json_normalize(records, record_path="Logs", meta=["EventTimestampMs", "ScriptName"])
        logs["args"] = logs["Message"].map(json.dumps)
        log_parts.append(logs)
        exc_parts.append(pd.json_normalize(records, record_path="Exceptions", meta=["EventTimestampMs"]))
    inv = pd.concat(inv_parts, ignore_index=True)
    inv = inv.rename(
        columns={
            "EventTimestampMs": "ts",
            "ScriptName": "script",
            "ScriptVersion.ID": "script_version",
            "EventType": "trigger",
            "Event.Queue": "queue",
            "Event.BatchSize": "batch_size",
            "Outcome": "outcome",
            "CPUTimeMs": "cpu_ms",
            "WallTimeMs": "wall_ms",
            "Event.Request.URL": "url",
            "Event.Request.Method": "method",
            "Event.Response.Status": "status",
        }
    )
    inv["ts"] = pd.to_datetime(inv["ts"], unit="ms", utc=True)
    logs = pd.concat(log_parts, ignore_index=True).rename(
        columns={"TimestampMs": "ts", "Level": "level", "Message": "message"}
    )
    logs["ts"] = pd.to_datetime(logs["ts"], unit="ms", utc=True)
    logs["message"] = logs["message"].map(lambda a: a[0] if a and isinstance(a[0], str) else json.dumps(a))
    exc = pd.concat(exc_parts, ignore_index=True).rename(
        columns={"TimestampMs": "ts", "Name": "name", "Message": "message"}
    )
    exc["ts"] = pd.to_datetime(exc["ts"], unit="ms", utc=True)
    return {
        "invocations": conform(inv[[c for c in inv.columns if "." not in c]], "invocations"),
        "logs": conform(logs.drop(columns=["EventTimestampMs", "ScriptName"]), "logs"),
        "exceptions": conform(exc.drop(columns=["EventTimestampMs"]), "exceptions"),
    }


class PeakRSS:
    """Samples the memory of this process tree: the RSS of this process every 20 ms plus the unique
    memory (USS) of every descendant every 200 ms, so pages a forked worker shares with this process
    are counted once. (USS reads /proc/PID/smaps_rollup, which holds the worker's memory-map lock:
    sampling it more often slows the worker down.)"""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children_uss(self) -> int:
        import psutil

        total = 0
        children: list[Any] = []
        with contextlib.suppress(psutil.Error):
            children = self._proc.children(recursive=True)
        for p in children:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().uss
        return total

    def _sample(self) -> int:
        return int(self._proc.memory_info().rss) + self._children

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            if tick % 10 == 0:
                self._children = self._children_uss()
            self.peak = max(self.peak, self._sample())
            tick += 1
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRSS:
        self.base = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def child(method: str, data: Path) -> None:
    # import everything first: imports are not what is measured
    import duckdb  # noqa: F401
    import pandas as pd  # noqa: F401
    import pyarrow  # noqa: F401

    import edgeinvestigate
    import edgeinvestigate.evidence.bundle

    frames: tuple[str, ...] = (
        ("invocations",)
        if method.endswith("invocations")
        else (
            "invocations",
            "logs",
            "exceptions",
        )
    )
    fn = {"ei": run_ei, "duckdb": run_duckdb, "pandas": run_pandas}[method.split("_")[0]]
    with PeakRSS() as rss:
        c0 = os.times()
        t0 = time.perf_counter()
        out = fn(data, frames)
        seconds = time.perf_counter() - t0
        c1 = os.times()
    # CPU of this process (all threads) and of its finished child processes (the workers)
    cpu = sum(getattr(c1, f) - getattr(c0, f) for f in ("user", "system", "children_user", "children_system"))
    frame_bytes = int(sum(df.memory_usage(deep=True).sum() for df in out.values()))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "peak_rss": rss.peak,
                "base_rss": rss.base,
                "frame_bytes": frame_bytes,
                "rows": {k: len(v) for k, v in out.items()},
                "module": edgeinvestigate.__file__,
            }
        )
    )


# --- orchestration -------------------------------------------------------------------------------


def ensure_data(records: int, files: int) -> Path:
    from logpush_gen import generate

    data = ROOT / "bench-data" / f"logpush-{records}"
    marker = ROOT / "bench-data" / f"logpush-{records}.json"
    if marker.is_file():
        return data
    print(f"generating {records:,} Logpush records into {data} (once) ...", flush=True)
    t0 = time.perf_counter()
    paths = generate(data, records, files=files)
    size = sum(p.stat().st_size for p in paths)
    marker.write_text(json.dumps({"records": records, "files": len(paths), "gzip_bytes": size}))
    print(
        f"  done in {time.perf_counter() - t0:.0f} s: {len(paths)} files, {size / 1e6:.0f} MB gzip",
        flush=True,
    )
    return data


def _checkout(ref: str) -> Path:
    """The ``edgeinvestigate`` package of commit ``ref``, extracted once (the work tree is untouched)."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dest = ROOT / "bench-data" / f"baseline-{sha[:12]}"
    if not (dest / "edgeinvestigate").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "edgeinvestigate"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument(
        "--baseline",
        metavar="GITREF",
        help="also time ei.load of the package at this commit (e.g. HEAD~2), interleaved in the same run",
    )
    ap.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data)
        return

    data = ensure_data(args.records, args.files)
    marker = ROOT / "bench-data" / f"logpush-{args.records}.json"
    meta = json.loads(marker.read_text())
    if "ndjson_bytes" not in meta:
        from isal import igzip

        meta["ndjson_bytes"] = sum(len(igzip.decompress(p.read_bytes())) for p in data.rglob("*.gz"))
        marker.write_text(json.dumps(meta))
    print(
        f"data: {meta['records']:,} records, {meta['files']} gzip files, "
        f"{meta['gzip_bytes'] / 1e6:.0f} MB gzip, "
        f"{meta['ndjson_bytes'] / 1e6:.0f} MB NDJSON"
    )
    methods = [m for m in METHODS if not (args.skip_pandas and m.startswith("pandas"))]
    labels = dict(METHODS)
    ref = {"ei_invocations": "duckdb_invocations", "ei_all": "duckdb_all", "pandas_all": "duckdb_all"}
    base_dir = None
    if args.baseline:
        base_dir = _checkout(args.baseline)
        for m in [m for m in methods if m.startswith("ei_")]:
            b = f"{m}@{args.baseline}"
            methods.insert(methods.index(m), b)
            labels[b] = f"{METHODS[m]} @{args.baseline}"
            ref[b] = ref[m]
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for r in range(args.repeat):
        for m in methods:
            if m.startswith("pandas") and r > 0:
                continue  # one run is enough to show the order of magnitude
            env = dict(os.environ)
            if "@" in m and base_dir is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(base_dir), env.get("PYTHONPATH", "")])
            proc = subprocess.run(
                [sys.executable, __file__, "--child", m.split("@")[0], "--data", str(data)],
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )
            if proc.returncode != 0:
                print(f"{m} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                sys.exit(1)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            results[m].append(res)
            print(f"  run {r + 1} {m}: {res['seconds']:.2f} s ({res['cpu']:.2f} s CPU)", flush=True)

    def med(m: str, key: str) -> float:
        return statistics.median(x[key] for x in results[m])

    print()
    print(
        f"{'method':<50} {'time s':>8} {'vs DuckDB':>10} {'CPU s':>7} {'vs DuckDB':>10} {'rows':>30} "
        f"{'frames MB':>10} {'peak RSS MB':>12} {'RSS/frames':>11} {'growth MB':>10}"
    )
    for m in methods:
        t = med(m, "seconds")
        vs = f"{t / med(ref[m], 'seconds'):.2f}x" if m in ref and ref[m] in results else ""
        c = med(m, "cpu")
        vs_cpu = f"{c / med(ref[m], 'cpu'):.2f}x" if m in ref and ref[m] in results else ""
        rows = results[m][0]["rows"]
        rows_s = "/".join(f"{v:,}" for v in rows.values())
        fb = med(m, "frame_bytes")
        peak = med(m, "peak_rss")
        growth = med(m, "peak_rss") - med(m, "base_rss")
        print(
            f"{labels[m]:<50} {t:>8.2f} {vs:>10} {c:>7.2f} {vs_cpu:>10} {rows_s:>30} {fb / 1e6:>10.0f} "
            f"{peak / 1e6:>12.0f} "
            f"{peak / fb:>10.2f}x {growth / 1e6:>10.0f}"
        )
    print()
    print("targets: ei invocations <= 1.1x DuckDB, ei all three <= 1.2x DuckDB, peak RSS <= 2x frames")
    print(
        "peak RSS is sampled over the whole process tree (this process RSS + workers USS); growth = peak "
        "minus the RSS of the measuring process before the load (pandas, pyarrow and duckdb imported)"
    )


if __name__ == "__main__":
    main()
