"""Pipeline benchmark: Logpush files -> findings (+ the HTML incident report) vs DuckDB, side by side.

    python benchmarks/bench_pipeline.py                               # 1,000,000 events, with the report
    python benchmarks/bench_pipeline.py --events 10000000 --no-report # a busy day: findings only
    python benchmarks/bench_pipeline.py --events 20000                # a quick run
    python benchmarks/bench_pipeline.py --events 40000 --base-events 20000 --no-report  # the repeated corpus

The corpus is Logpush ``workers_trace_events`` (gzip NDJSON, the simulator's ``logpush-benchmark``
incident: a bad deploy and a dependency outage), made once into ``bench-data/pipeline-N/``. Up to
1,000,000 events it is simulated at that size; above, the 1,000,000-event corpus is repeated with
every copy shifted by the corpus's window (times, and job ids so the copies are other jobs), which
keeps the simulator's memory out of the way (~1.4 GB gzip for 10,000,000 events).

Every step runs as its own process, one after the other, with the wall time and the peak memory of
its process tree (RSS of the process + unique memory of its worker processes, sampled with psutil):

* ``baseline``: DuckDB (2 threads, a 2 GB memory limit, spilling) reads the same files and writes the
  three frames as Parquet (``COPY (SELECT ...) TO``): the yardstick;
* ``investigate``: ``edgeinvestigate investigate --logpush DIR --out DIR`` (what a user runs: load,
  cluster and store, the bundle, the findings and the incident report; ``--no-report``: the findings);
* with ``--breakdown``, the same as separate commands: ``collect`` then ``report`` (or ``analyze``);
* with ``--engines``: ``ei.analyze`` on the bundle with the SQL engine and with the pandas reference
  (open, cluster and analyze timed apart), to show what the aggregates' engine changes.

The pipeline's ratio is investigate / baseline; goals: 1,000,000 events with the
report <= 15x and <= 2 GB peak; 10,000,000 events without it <= 10x and <= 4 GB. No unit test has
timing thresholds: this script prints, it does not assert.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

BASE_EVENTS = 1_000_000
#: DuckDB's memory limit in the baseline (it spills past it)
BASELINE_MEMORY = os.environ.get("BENCH_BASELINE_MEMORY", "2GB")
SCENARIO = "logpush-benchmark"


# --- the corpus ------------------------------------------------------------------------------------


def _simulate(events: int, out: Path) -> None:
    import edgeinvestigate as ei

    ei.simulate(SCENARIO, out, seed=1, invocations=events, formats=("logpush",))
    (out / "ground_truth.json").unlink(missing_ok=True)  # 400 MB at 1,000,000 events; not read here


_TS = re.compile(rb'"(EventTimestampMs|TimestampMs)":(\d+)')


def _shift_file(src: Path, dst: Path, copy: int, shift_ms: int) -> None:
    """One Logpush file with every time moved by ``copy * shift_ms`` and other job ids."""
    from isal import igzip

    offset = copy * shift_ms

    def moved(m: re.Match[bytes]) -> bytes:
        return b'"%s":%d' % (m.group(1), int(m.group(2)) + offset)

    data = igzip.decompress(src.read_bytes())
    data = _TS.sub(moved, data).replace(b'\\"job_', b'\\"job%d_' % copy)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(igzip.compress(data, compresslevel=1))


def ensure_corpus(events: int, base_events: int = BASE_EVENTS) -> Path:
    """The corpus of ``events`` events (made once; above ``base_events``, copies of that corpus);
    returns its ``logpush`` folder."""
    root = (
        ROOT
        / "bench-data"
        / (f"pipeline-{events}" if events <= base_events else f"pipeline-{events}-of-{base_events}")
    )
    marker = root / "corpus.json"
    if marker.is_file():
        return root / "logpush"
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    if events <= base_events:
        print(f"simulating {events:,} events into {root} ...", flush=True)
        _simulate(events, root)
    else:
        base = ensure_corpus(base_events, base_events)
        files = sorted(base.rglob("*.gz"))
        copies = max(1, round(events / base_events))
        window_ms = 2 * 3600 * 1000  # the scenario's window (duration_minutes = 120)
        print(f"writing {copies} shifted copies of {base} into {root} ...", flush=True)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:
            jobs = [
                pool.submit(
                    _shift_file, f, root / "logpush" / f"copy{k:03d}" / f.parent.name / f.name, k, window_ms
                )
                for k in range(copies)
                for f in files
            ]
            for j in jobs:
                j.result()
    size = sum(p.stat().st_size for p in (root / "logpush").rglob("*.gz"))
    marker.write_text(json.dumps({"events": events, "gz_bytes": size, "seconds": time.perf_counter() - t0}))
    return root / "logpush"


# --- measuring a step ------------------------------------------------------------------------------


class TreePeak:
    """Peak memory of a process tree: the root's RSS every 50 ms plus its descendants' unique memory
    (USS) every 250 ms (pages a forked worker shares with its parent are counted once)."""

    def __init__(self, pid: int, cap: int = 0) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.cap = cap  # kill the tree past this many bytes (0: never), so a shared machine survives
        self.capped = False
        self.peak = 0
        self._children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        tick = 0
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                if tick % 5 == 0:
                    total = 0
                    for p in self.proc.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_full_info().uss
                    self._children = total
                self.peak = max(self.peak, int(self.proc.memory_info().rss) + self._children)
                if self.cap and self.peak > self.cap and not self.capped:
                    self.capped = True
                    for p in [*self.proc.children(recursive=True), self.proc]:
                        with contextlib.suppress(psutil.Error):
                            p.kill()
            tick += 1
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


#: kill a step whose process tree grows past this (bytes; --rss-cap-gb)
RSS_CAP = [0]


def run_step(name: str, argv: list[str], *, stdout: Any = subprocess.DEVNULL) -> dict[str, Any]:
    """Run one step as a process; its wall time, CPU time (children) and peak memory."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    print(f"  {name}: {' '.join(argv[1:])[:150]}", flush=True)
    c0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
    peak = TreePeak(proc.pid, RSS_CAP[0])
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    c1 = os.times()
    result = {
        "step": name,
        "seconds": seconds,
        "cpu": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system),
        "peak_rss": peak.stop(),
        "rc": proc.returncode,
        "stdout": out.decode(errors="replace") if out else "",
    }
    print(f"    {seconds:.1f} s, peak {result['peak_rss'] / 1e9:.2f} GB", flush=True)
    if peak.capped:
        result["failed"] = (
            f"stopped at {peak.peak / 1e9:.1f} GB of memory after {seconds:.0f} s "
            f"(--rss-cap-gb {RSS_CAP[0] / 1e9:.0f})"
        )
        print(f"  {name}: {result['failed']}", flush=True)
        return result
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise SystemExit(f"step {name} failed with exit status {proc.returncode}")
    return result


# --- the baseline (child process) ------------------------------------------------------------------


def child_baseline(corpus: Path, out: Path) -> None:
    """DuckDB, 2 threads: read the Logpush files and write the three frames as Parquet."""
    import duckdb
    from bench_load import DUCK_COLUMNS, DUCK_EXC, DUCK_INV, DUCK_LOGS, _read_json

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    # memory-bounded like the analysis: the records table spills instead of growing with the corpus
    con.execute(f"SET memory_limit = '{BASELINE_MEMORY}'")
    con.execute(f"SET temp_directory = '{out / 'tmp'}'")
    cols = dict(
        DUCK_COLUMNS,
        Logs="STRUCT(Level VARCHAR, Message JSON, TimestampMs BIGINT)[]",
        Exceptions="STRUCT(Name VARCHAR, Message VARCHAR, TimestampMs BIGINT, Stack VARCHAR)[]",
    )
    glob = str(corpus / "**" / "*.gz")
    src = (
        f"(SELECT *, len(Logs)::INTEGER AS n_logs, len(Exceptions)::INTEGER AS n_exceptions "
        f"FROM {_read_json(glob, cols)})"
    )
    con.execute(
        "CREATE TEMP TABLE t AS SELECT inv.*, Logs, Exceptions FROM "
        "(SELECT *, md5(EventTimestampMs::VARCHAR || ScriptName || WallTimeMs::VARCHAR)[1:16] "
        f"AS invocation_id FROM {src}) AS inv"
    )
    for name, sql in (
        ("invocations", DUCK_INV.format(src="t")),
        ("logs", DUCK_LOGS),
        ("exceptions", DUCK_EXC),
    ):
        con.execute(f"COPY ({sql}) TO '{out / (name + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    shutil.rmtree(out / "tmp", ignore_errors=True)


def child_engines(bundle: Path, engine: str) -> None:
    """``ei.analyze`` on a saved bundle with one engine: open, cluster and analyze timed apart."""
    import resource

    import edgeinvestigate as ei
    from edgeinvestigate.evidence.bundle import Evidence

    t0 = time.perf_counter()
    ev = Evidence.open(bundle)
    t1 = time.perf_counter()
    clusters = ei.cluster(ev)
    t2 = time.perf_counter()
    findings = ei.analyze(ev, clusters, engine=engine)  # type: ignore[arg-type]
    t3 = time.perf_counter()
    top = findings.top
    print(
        json.dumps(
            {
                "open": t1 - t0,
                "cluster": t2 - t1,
                "analyze": t3 - t2,
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "top": top.title if top else None,
            }
        )
    )


# --- orchestration ---------------------------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeinvestigate", *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=BASE_EVENTS, help="events (invocations) in the corpus")
    ap.add_argument(
        "--base-events", type=int, default=BASE_EVENTS,
        help="a larger corpus repeats the simulated corpus of this many events, shifted in time",
    )  # fmt: skip
    ap.add_argument("--no-report", action="store_true", help="stop at the findings (analyze), no report")
    ap.add_argument(
        "--engines", action=argparse.BooleanOptionalAction, default=None,
        help="also time ei.analyze with the SQL and the pandas engine (default: up to 1,000,000 events)",
    )  # fmt: skip
    ap.add_argument(
        "--breakdown", action="store_true",
        help="also run collect and report (or analyze) as separate commands, to see where the time goes",
    )  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the bundle and the report in bench-data/")
    ap.add_argument(
        "--rss-cap-gb", type=float, default=10.0,
        help="stop a step whose process tree uses more memory than this (GB; 0: never)",
    )  # fmt: skip
    ap.add_argument("--child-baseline", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--child-engines", nargs=2, metavar=("BUNDLE", "ENGINE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_baseline:
        child_baseline(Path(args.child_baseline[0]), Path(args.child_baseline[1]))
        return
    if args.child_engines:
        child_engines(Path(args.child_engines[0]), args.child_engines[1])
        return

    RSS_CAP[0] = int(args.rss_cap_gb * 1e9)
    corpus = ensure_corpus(args.events, args.base_events)
    meta = json.loads((corpus.parent / "corpus.json").read_text())
    work = ROOT / "bench-data" / f"pipeline-run-{args.events}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bundle, report = work / "bundle", work / "report"
    print(
        f"corpus: {args.events:,} events, {meta['gz_bytes'] / 1e6:,.0f} MB gzip in "
        f"{len(list(corpus.rglob('*.gz')))} files; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    base = run_step("baseline", [sys.executable, str(Path(__file__).resolve()), "--child-baseline",
                                 str(corpus), str(work / "duckdb")])  # fmt: skip
    # what a user runs: one command from the files to the findings (and the report)
    inv = ["investigate", "--logpush", str(corpus), "--out", str(work / "investigation")]
    pipeline = [run_step("investigate", _cli(*inv, *(["--no-report"] if args.no_report else [])))]
    breakdown: list[dict[str, Any]] = []
    if args.breakdown and "failed" not in pipeline[-1]:
        breakdown.append(
            run_step("  collect", _cli("collect", "--logpush", str(corpus), "--out", str(bundle)))
        )
        if "failed" in breakdown[-1]:
            pass
        elif args.no_report:
            out = str(work / "f.json")
            breakdown.append(
                run_step("  analyze", _cli("analyze", str(bundle), "--format", "json", "--out", out))
            )
        else:
            breakdown.append(run_step("  report", _cli("report", str(bundle), "--out", str(report))))
    if "failed" in base:
        print(f"the baseline did not finish ({base['failed']}): the ratios below are against a floor")
    engines: dict[str, dict[str, Any]] = {}
    if "failed" not in pipeline[-1] and (
        args.engines if args.engines is not None else args.events <= args.base_events
    ):
        child = [sys.executable, str(Path(__file__).resolve()), "--child-engines"]
        for engine in ("sql", "pandas"):
            res = run_step(
                f"ei.analyze engine={engine}",
                [*child, str(work / "investigation" / "bundle"), engine],
                stdout=subprocess.PIPE,
            )
            engines[engine] = {**res, **json.loads(res["stdout"].strip().splitlines()[-1])}
    _print(args, base, pipeline, breakdown, engines, work)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def _print(
    args: argparse.Namespace,
    base: dict[str, Any],
    pipeline: list[dict[str, Any]],
    breakdown: list[dict[str, Any]],
    engines: dict[str, dict[str, Any]],
    work: Path,
) -> None:
    print()
    print(f"{'step':<36} {'wall s':>8} {'CPU s':>8} {'peak RSS GB':>12} {'x baseline':>11}")
    for s in [base, *pipeline, *breakdown]:
        print(
            f"{s['step']:<36} {s['seconds']:>8.1f} {s['cpu']:>8.1f} {s['peak_rss'] / 1e9:>12.2f} "
            f"{s['seconds'] / base['seconds']:>10.1f}x"
        )
    total = sum(s["seconds"] for s in pipeline)
    peak = max(s["peak_rss"] for s in pipeline)
    ratio = total / base["seconds"]
    what = "findings" if args.no_report else "findings + HTML report"
    print(
        f"{'pipeline (' + what + ')':<36} {total:>8.1f} {sum(s['cpu'] for s in pipeline):>8.1f} "
        f"{peak / 1e9:>12.2f} {ratio:>10.1f}x"
    )
    goal_x, goal_gb = (10.0, 4.0) if args.no_report else (15.0, 2.0)
    failed = [f"{s['step']} {s['failed']}" for s in pipeline if "failed" in s]
    if failed:
        print(f"goal NOT met: {'; '.join(failed)} (the times above are up to that point)")
    print(
        f"goal: <= {goal_x:.0f}x the baseline ({'met' if ratio <= goal_x else 'NOT met'}: {ratio:.1f}x), "
        f"peak RSS <= {goal_gb:.0f} GB ({'met' if peak / 1e9 <= goal_gb else 'NOT met'}: {peak / 1e9:.2f} GB)"
    )
    if engines:
        print()
        print(
            f"{'ei.analyze on the bundle':<26} {'open s':>8} {'cluster s':>10} {'analyze s':>10} "
            f"{'peak GB':>8}"
        )
        for engine, res in engines.items():
            print(
                f"  engine={engine:<17} {res['open']:>8.1f} {res['cluster']:>10.1f} {res['analyze']:>10.1f} "
                f"{res['peak_rss'] / 1e9:>8.2f}   top finding: {res['top']}"
            )
        if "pandas" in engines and "sql" in engines:
            print(
                f"  the aggregates: SQL {engines['sql']['analyze']:.1f} s vs pandas "
                f"{engines['pandas']['analyze']:.1f} s "
                f"({engines['pandas']['analyze'] / engines['sql']['analyze']:.1f}x faster)"
            )
    del work


if __name__ == "__main__":
    main()
