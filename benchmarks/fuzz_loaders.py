"""Fuzz every file loader at benchmark size, and measure peak memory on hostile files (issue 14).

    python benchmarks/fuzz_loaders.py                     # 10,000 cases per loader, then the hostile files
    python benchmarks/fuzz_loaders.py --cases 2000 --loaders tail dlq --jobs 2
    python benchmarks/fuzz_loaders.py --cases 0           # only the hostile files

Cases come from ``tests/sources/fuzz_records.py`` (the strategies of the ``make test`` run): real records
(tests/data, shaped like the reference) mutated with wrong types, JSON nested 1,000-100,000 deep, numbers
past 64 bits and past a float, invalid UTF-8, NULs, strings past the record cap, junk lines, files cut at
any byte and gzip streams cut short, in every framing of each format. Each case is loaded leniently
(``ei.load``, or ``read_dlq_file`` for DLQ files) and strictly, and checked: no exception but a
``ParseError`` naming the file escapes, and every record before the cut is loaded or reported as skipped.
An exception is any case that breaks that contract (the first few are printed); the run exits 1 if
there is one.

The hostile files (``--hostile``, on by default) are loaded each in a fresh process, whose peak RSS is
read from ``getrusage``: a 200 MB Logpush line and a 1 MB gzip bomb (1 GiB of zeros, no newline), as
Logpush and as a wrangler tail capture, and a 1 MB bomb that starts like a one-line JSON array (such a line
may be 16 times the record cap) as TraceItems; the target is far under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "sources"))


def fuzz(loader: str, n: int, seed: int) -> dict[str, Any]:
    """Run ``n`` cases of ``loader``; the counts, and the first failures."""
    from fuzz_records import cases, check_case
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    counts = {"cases": 0, "records": 0, "loaded": 0, "skipped": 0, "refused": 0, "exceptions": 0}
    failures: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{loader}-"))

    @hseed(seed)
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def run(data: Any) -> None:
        case = data.draw(cases(loader))
        counts["cases"] += 1
        try:
            out = check_case(case, tmp / ("f.json.gz" if case.gzip else "f.json"))
        except Exception:  # every escape is what this counts
            counts["exceptions"] += 1
            if len(failures) < 5:
                failures.append(
                    f"{case.framing} cut={case.cut} gzip={case.gzip} cap={case.cap} "
                    f"{case.mutations}\n{traceback.format_exc(limit=-3)}"
                )
            return
        counts["records"] += out.records
        counts["loaded"] += out.loaded
        counts["skipped"] += out.skipped
        counts["refused"] += out.refused

    t0 = time.perf_counter()
    run()
    return {"loader": loader, **counts, "seconds": round(time.perf_counter() - t0, 1), "failures": failures}


# --- hostile files: peak memory ------------------------------------------------------------------

_CHILD = """
import json, resource, sys
import edgeinvestigate as ei
ev = ei.load((sys.argv[1], sys.argv[2]))
issues = [(i.line, i.kind, i.message[:90]) for _, i in ev.report.issues() if i.severity == "error"]
print(json.dumps({"invocations": len(ev.invocations), "issues": issues,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _hostile_files(folder: Path) -> dict[str, Path]:
    good = json.dumps(
        {
            "EventTimestampMs": 1795788300000,
            "EventType": "queue",
            "Outcome": "ok",
            "ScriptName": "email-consumer",
            "Event": {"Queue": "email-jobs", "BatchSize": 1},
            "Logs": [],
            "Exceptions": [],
        },
        separators=(",", ":"),
    )
    line = folder / "line-200mb.log"
    head, tail = good.split('"Logs":[]')
    with line.open("w") as fh:  # written in pieces: this process never holds the line (its peak RSS
        fh.write(good + "\n")  # would be inherited by the measured child)
        fh.write(head + '"Logs":[{"Level":"log","Message":["')
        for _ in range(200):
            fh.write("x" * 1_000_000)
        fh.write('"],"TimestampMs":1795788300001}]' + tail + "\n")
        fh.write(good + "\n")
    bomb = folder / "bomb-1mb.log.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    bomb.write_bytes(b"".join([*(c.compress(chunk) for _ in range(1024)), c.flush()]))
    array = folder / "array-bomb-1mb.json.gz"  # a one-line JSON array that never ends: 16x the cap at most
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    array.write_bytes(b"".join([c.compress(b"["), *(c.compress(chunk) for _ in range(1024)), c.flush()]))
    return {
        "200 MB line": line,
        "1 MB gzip bomb (1 GiB of zeros)": bomb,
        "1 MB gzip bomb ('[' + 1 GiB)": array,
    }


def hostile() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        files = _hostile_files(Path(tmp))
        for what, path in files.items():
            for source in ("logpush", "tail") if "'['" not in what else ("traceitems",):
                env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
                res = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(path), source], capture_output=True, text=True, env=env
                )
                if res.returncode:
                    rows.append({"file": what, "source": source, "error": res.stderr[-2000:]})
                    continue
                got = json.loads(res.stdout)
                rows.append(
                    {"file": what, "size_mb": round(path.stat().st_size / 1e6, 1), "source": source, **got}
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="cases per loader (default 10,000)")
    ap.add_argument(
        "--loaders", nargs="+", default=["logpush", "tail", "traceitems", "workers_logs_export", "dlq"]
    )
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jobs", type=int, default=1, help="loaders fuzzed at once (processes)")
    ap.add_argument("--no-hostile", dest="hostile", action="store_false", help="skip the peak-memory files")
    args = ap.parse_args()

    results = []
    if args.cases:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(fuzz, loader, args.cases, args.seed) for loader in args.loaders]
            for fut in futures:
                r = fut.result()
                results.append(r)
                n, secs, bad = r["cases"], r["seconds"], r["exceptions"]
                print(f"  {r['loader']}: {n:,} cases in {secs} s, {bad} exceptions", flush=True)
        print()
        print(
            f"{'loader':<22}{'cases':>8}{'records':>10}{'loaded':>9}{'skipped':>9}{'refused':>9}{'exceptions':>12}"
        )
        for r in results:
            print(
                f"{r['loader']:<22}{r['cases']:>8,}{r['records']:>10,}{r['loaded']:>9,}{r['skipped']:>9,}"
                f"{r['refused']:>9,}{r['exceptions']:>12,}"
            )
        print("(records: records and junk lines in the files before any cut; loaded + skipped = records,")
        print(" one report entry per skipped record; refused: DLQ files with no message at all, refused with")
        print(" a ParseError naming them)")
        for r in results:
            for f in r["failures"]:
                print(f"\nFAILURE {r['loader']}: {f}")
    if args.hostile:
        print("\nhostile files (each loaded in a fresh process; peak RSS from getrusage):")
        for row in hostile():
            if "error" in row:
                print(f"  {row['file']} as {row['source']}: FAILED\n{row['error']}")
                results.append({"exceptions": 1})
                continue
            print(
                f"  {row['file']} ({row['size_mb']} MB on disk) as {row['source']}: peak RSS "
                f"{row['peak_rss_mb']:.0f} MB, {row['invocations']} invocations, skipped: {row['issues']}"
            )
    sys.exit(1 if any(r["exceptions"] for r in results) else 0)


if __name__ == "__main__":
    main()
