"""Load benchmark: ``ei.load`` vs DuckDB vs pandas on Logpush ``workers_trace_events``, side by side.

    python benchmarks/bench_load.py                      # 1,000,000 records (generated once into bench-data/)
    python benchmarks/bench_load.py --records 300000 --skip-pandas --repeat 3
    python benchmarks/bench_load.py --corpora usual-one unusual-one --repeat 1
    python benchmarks/bench_load.py --skip-pandas --baseline HEAD~2   # also time an older commit

Four corpora of the same size, each in one gzip file and in ten (``--corpora``):

- ``usual``: the records of ``logpush_gen.py`` (queue consumers and a fetch API, 1-5 lines each,
  3.6% object arguments, ~20% exceptions);
- ``unusual``: every shape the reference documents or allows (``tests/sources/logpush_shapes.py``):
  every EventType and Event variant, ``Event.Queue`` as a string or an object, objects and mixed
  arguments in ``Logs[].Message``, missing optional fields, both exception casings, truncation markers.

The one-file corpus is the ten files' records concatenated, so both layouts hold the same records.
Every method runs in a fresh process (so peak memory is its own), in interleaved order, on the same
gzip NDJSON files; the figures are medians over ``--repeat`` runs. Each method builds the same
canonical frames in pandas (conformed with :func:`edgeinvestigate.models.frames.conform`); the DuckDB
baseline reads with 2 threads (``read_json`` + ``unnest``). Peak RSS is sampled over the whole process
tree (worker processes included) and compared with the size of the resulting frames. The last table
puts the ratios side by side: one file vs many files, usual vs unusual shapes (target <= 1.2x).
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

from load_corpora import CORPORA, ensure_corpus  # noqa: E402

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
    # Event.Queue is a string or a {QueueName, BatchSize} object: read as JSON, picked apart below
    "Event": "STRUCT(Queue JSON, BatchSize INTEGER, RayID VARCHAR, "
    "Request STRUCT(URL VARCHAR, Method VARCHAR), Response STRUCT(Status INTEGER))",
    "EventTimestampMs": "BIGINT",
    "EventType": "VARCHAR",
    "Outcome": "VARCHAR",
    "ScriptName": "VARCHAR",
    "ScriptVersion": "STRUCT(ID VARCHAR)",
}
DUCK_INV = """
SELECT md5(concat(EventTimestampMs, ScriptName, WallTimeMs))[1:16] AS invocation_id,
       EventTimestampMs AS ts, ScriptName AS script, ScriptVersion.ID AS script_version,
       CASE EventType WHEN 'worker_rpc' THEN 'rpc' WHEN 'hibernatable_web_socket' THEN 'websocket'
                      ELSE EventType END AS trigger,
       CASE json_type(Event.Queue) WHEN 'OBJECT' THEN Event.Queue->>'QueueName'
                                   ELSE Event.Queue->>'$' END AS queue,
       coalesce(Event.BatchSize, TRY_CAST(Event.Queue->>'BatchSize' AS INTEGER)) AS batch_size,
       Outcome AS outcome,
       (Outcome <> 'ok' OR n_exceptions > 0) AS failed, CPUTimeMs AS cpu_ms, WallTimeMs AS wall_ms,
       n_logs, n_exceptions, false AS truncated, Event.Request.URL AS url, Event.Request.Method AS method,
       Event.Response.Status AS status, nullif(Entrypoint, '') AS entrypoint,
       nullif(DispatchNamespace, '') AS dispatch_namespace, nullif(Event.RayID, '') AS ray_id,
       'logpush' AS source, filename AS source_file
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
        return {"invocations": conform(con.sql(DUCK_INV.format(src=src)).to_arrow_table(), "invocations")}
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
        f"(SELECT *, md5(concat(EventTimestampMs, ScriptName, WallTimeMs))[1:16] "
        f"AS invocation_id "
        f"FROM {src}) AS inv"
    )
    inv = con.sql(DUCK_INV.format(src="t")).to_arrow_table()
    logs = con.sql(DUCK_LOGS).to_arrow_table()
    exc = con.sql(DUCK_EXC).to_arrow_table()
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


def _descendants_cpu() -> float:
    """CPU seconds of the running descendants of this process (and of the children they reaped)."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


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
        c0, d0 = os.times(), _descendants_cpu()
        t0 = time.perf_counter()
        out = fn(data, frames)
        seconds = time.perf_counter() - t0
        c1, d1 = os.times(), _descendants_cpu()
    # CPU of this process (all threads), of its finished child processes (the pool's workers) and of
    # the ones still running (the helper process of a split load)
    cpu = sum(getattr(c1, f) - getattr(c0, f) for f in ("user", "system", "children_user", "children_system"))
    cpu += d1 - d0
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


def _run_child(method: str, data: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, "--data", str(data)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        print(f"{method} on {data.name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        sys.exit(1)
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


def _plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(corpus, method)`` pairs in the order one round runs them."""
    plan = []
    for corpus in args.corpora:
        methods = ["ei_all", "duckdb_all"]
        if args.invocations:
            methods += ["ei_invocations", "duckdb_invocations"]
        if not args.skip_pandas and corpus == "usual-many":
            methods.append("pandas_all")
        if args.baseline:
            methods += [f"{m}@{args.baseline}" for m in methods if m.startswith("ei_")]
        plan += [(corpus, m) for m in methods]
    return plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--invocations", action="store_true", help="also time the invocations-only loads")
    ap.add_argument("--skip-pandas", action="store_true", help="skip pandas (run once, on usual-many)")
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

    corpora = {name: ensure_corpus(name, args.records) for name in args.corpora}
    for name, (_data, meta) in corpora.items():
        print(
            f"{name}: {meta['records']:,} records, {meta['files']} gzip files, "
            f"{meta['gzip_bytes'] / 1e6:.0f} MB gzip, {meta['ndjson_bytes'] / 1e6:.0f} MB NDJSON"
        )
    base_dir = _checkout(args.baseline) if args.baseline else None
    plan = _plan(args)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in plan}
    for r in range(args.repeat):
        for corpus, m in plan:
            if m.startswith("pandas") and r > 0:
                continue  # one run is enough to show the order of magnitude
            env = dict(os.environ)
            if "@" in m and base_dir is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(base_dir), env.get("PYTHONPATH", "")])
            res = _run_child(m.split("@")[0], corpora[corpus][0], env)
            results[(corpus, m)].append(res)
            print(f"  run {r + 1} {corpus} {m}: {res['seconds']:.2f} s ({res['cpu']:.2f} s CPU)", flush=True)
    _report(results, corpora, args)


def _report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    corpora: dict[str, tuple[Path, dict[str, int]]],
    args: argparse.Namespace,
) -> None:
    def med(key: tuple[str, str], field: str) -> float:
        return statistics.median(x[field] for x in results[key])

    def ref(m: str) -> str:
        return "duckdb_invocations" if m.split("@")[0] == "ei_invocations" else "duckdb_all"

    print()
    print(
        f"{'corpus':<13} {'method':<48} {'time s':>7} {'vs DuckDB':>10} {'CPU s':>7} {'vs DuckDB':>10} "
        f"{'rows':>28} {'frames MB':>10} {'peak RSS MB':>12} {'RSS/frames':>11}"
    )
    for corpus, m in results:
        key = (corpus, m)
        label = METHODS[m.split("@")[0]] + (f" @{m.split('@')[1]}" if "@" in m else "")
        t, c = med(key, "seconds"), med(key, "cpu")
        vs = vs_cpu = ""
        if not m.startswith("duckdb"):
            vs = f"{t / med((corpus, ref(m)), 'seconds'):.2f}x"
            vs_cpu = f"{c / med((corpus, ref(m)), 'cpu'):.2f}x"
        rows = "/".join(f"{v:,}" for v in results[key][0]["rows"].values())
        fb, peak = med(key, "frame_bytes"), med(key, "peak_rss")
        print(
            f"{corpus:<13} {label:<48} {t:>7.2f} {vs:>10} {c:>7.2f} {vs_cpu:>10} {rows:>28} "
            f"{fb / 1e6:>10.0f} {peak / 1e6:>12.0f} {peak / fb:>10.2f}x"
        )
    print()
    print(
        "ei.load() all three frames / DuckDB read_json + unnest, both into pandas "
        f"({args.records:,} records, median wall time; target <= 1.2x):"
    )
    shapes = [s for s in ("usual", "unusual") if any(c.startswith(s + "-") for c in corpora)]
    print(f"{'':<16} {'one file':>12} {'many files':>12}")
    for shape in shapes:
        cells = []
        for layout in ("one", "many"):
            corpus = f"{shape}-{layout}"
            if corpus in corpora:
                cells.append(
                    f"{med((corpus, 'ei_all'), 'seconds') / med((corpus, 'duckdb_all'), 'seconds'):.2f}x"
                )
            else:
                cells.append("-")
        print(f"{shape + ' shapes':<16} {cells[0]:>12} {cells[1]:>12}")
    print()
    print(
        "peak RSS is sampled over the whole process tree (this process RSS + workers USS); DuckDB keeps "
        "truncation markers as log lines (ei.load drops them, as the loader's contract says)"
    )


if __name__ == "__main__":
    main()
