"""Archive benchmark: a window of a Logpush archive read from a local S3 server vs the same objects
read from disk, side by side (goal: S3 <= 1.5x disk).

    python benchmarks/bench_s3.py                       # 48 five-minute objects, a 2 h window of 24
    python benchmarks/bench_s3.py --records 40000 --repeat 5

The archive is generated once into ``bench-data/s3-archive-<records>/`` (``YYYYMMDD/<start>_<end>_
<hash>.log.gz``, records from ``logpush_gen``). The S3 server is moto's server mode in its own process
on 127.0.0.1 (``python -m moto.server``), so serving costs CPU there, not in the reader. Both reads
build all three frames with ``ei.load(..., since, until)``; the disk read is given exactly the objects
the S3 read selects. Figures are medians over ``--repeat`` runs, in alternating order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

BUCKET = "bench-logs"
PREFIX = "workers/"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BATCH = timedelta(minutes=5)
SINCE = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def ensure_archive(records: int, objects: int) -> Path:
    """``objects`` five-minute objects of ``records`` records each, from 12:00 UTC on."""
    import random

    from isal import igzip
    from logpush_gen import record

    root = ROOT / "bench-data" / f"s3-archive-{records}x{objects}"
    marker = root / ".complete"
    if marker.is_file():
        return root
    print(f"generating {objects} objects of {records:,} records into {root} (once) ...", flush=True)
    rng = random.Random(13)
    t0 = int(START.timestamp() * 1000)
    step = BATCH.total_seconds() * 1000 / records
    for k in range(objects):
        begin = START + BATCH * k
        lines = []
        for i in range(records):
            rec = record(rng, i)
            rec["EventTimestampMs"] = t0 + int(BATCH.total_seconds() * 1000) * k + int(step * i)
            lines.append(json.dumps(rec, separators=(",", ":")))
        data = igzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=2)
        end = begin + BATCH - timedelta(seconds=1)
        name = f"{begin:%Y%m%d}/{_stamp(begin)}_{_stamp(end)}_{hashlib.sha256(data).hexdigest()[:8]}.log.gz"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    marker.write_text("ok\n")
    return root


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def start_server() -> tuple[subprocess.Popen[str], str]:
    """moto's S3 server in its own process on 127.0.0.1, on a free port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
        if m:
            # keep draining the request log so the server never blocks on a full pipe
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("moto.server did not start (pip install 'moto[s3]' flask flask-cors)")


def upload(endpoint: str, root: Path) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(root.rglob("*.log.gz")):
        s3.put_object(Bucket=BUCKET, Key=PREFIX + path.relative_to(root).as_posix(), Body=path.read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000, help="records per five-minute object")
    ap.add_argument("--objects", type=int, default=48, help="objects in the archive (from 12:00 UTC)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    root = ensure_archive(args.records, args.objects)
    proc, endpoint = start_server()
    try:
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        upload(endpoint, root)
        import edgeinvestigate as ei
        from edgeinvestigate.sources.archive import plan_archive

        url = f"s3://{BUCKET}/{PREFIX}"
        plan = plan_archive(url, SINCE, UNTIL)
        files = [root / o.key[len(PREFIX) :] for o in plan.selected]
        size = plan.selected_bytes
        print(
            f"window {SINCE:%H:%M}-{UNTIL:%H:%M} UTC: {len(files)} of {args.objects} objects, "
            f"{size / 1e6:.1f} MB gzip; S3 server {endpoint} (own process)"
        )
        times: dict[str, list[float]] = {"disk": [], "s3": []}
        rows = 0
        for i in range(args.repeat):
            for method in ("disk", "s3") if i % 2 == 0 else ("s3", "disk"):
                t0 = time.perf_counter()
                ev = ei.load(files if method == "disk" else [url], since=SINCE, until=UNTIL)
                times[method].append(time.perf_counter() - t0)
                rows = len(ev.invocations)
                del ev
        disk, s3 = statistics.median(times["disk"]), statistics.median(times["s3"])
        print(f"{'':24}{'disk':>10}{'s3 (moto)':>12}")
        print(f"{'seconds (median)':24}{disk:>10.2f}{s3:>12.2f}")
        print(f"{'MB/s gzip':24}{size / 1e6 / disk:>10.1f}{size / 1e6 / s3:>12.1f}")
        print(f"{'invocations':24}{rows:>10,d}{rows:>12,d}")
        ratio = s3 / disk
        verdict = "ok" if ratio <= 1.5 else "OVER the 1.5x goal"
        print(f"ratio s3/disk: {ratio:.2f}x ({verdict})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
