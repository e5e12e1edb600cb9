"""Evidence bundles: save/open round trip, manifest, overwrite refusal, with_dlq, merge."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.errors import BundleError
from edgeinvestigate.models.frames import conform, empty_frame

FRAMES = ("invocations", "logs", "exceptions", "dlq")


def _dlq_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "message_id": ["9f1c2d3e4b5a69788", "0a1b2c3d4e5f60718"],
            "enqueued_at": pd.to_datetime(["2026-11-27T14:04:59Z", "2026-11-27T14:06:10Z"]),
            "attempts": [4, 4],
            "content_type": ["json", "json"],
            "job_type": ["EMAIL_DELIVERY", "EMAIL_DELIVERY"],
            "job_id": ["job_01HZX3", "job_01HZX4"],
            "payload": ['{"to":"a@example.org"}', '{"to":"b@example.org"}'],
            "envelope": ["raw", "raw"],
            "queue": ["email-dlq", "email-dlq"],
        }
    )


def test_save_open_round_trip(tmp_path, data_dir):
    ev = ei.load(data_dir, since="2026-11-27T14:00Z", until="2026-11-27T16:00Z").with_dlq(_dlq_rows())
    dest = ev.save(tmp_path / "INC-123")
    assert sorted(p.name for p in dest.iterdir()) == [
        "dlq.parquet",
        "exceptions.parquet",
        "invocations.parquet",
        "logs.parquet",
        "manifest.json",
    ]
    ev2 = ei.Evidence.open(dest)
    stored = ev.in_storage_order()  # a bundle keeps invocations, logs and exceptions sorted by ts
    for name in FRAMES:
        pd.testing.assert_frame_equal(stored.frame(name), ev2.frame(name))
    assert ev2.equals(stored)
    assert not ev2.equals(ev)  # the sample files are not in time order across files
    assert ev2.report.to_dict() == ev.report.to_dict()
    assert len(ev2.dlq) == 2
    assert ev2.dlq["queue"].dtype == "category"


def test_manifest_contents(tmp_path, data_dir):
    src = data_dir / "logpush/20261127/batch-2.log"
    ev = ei.load(src, since="2026-11-27T14:00Z")
    ev.save(tmp_path / "b")
    m = json.loads((tmp_path / "b/manifest.json").read_text())
    assert m["format"] == "edgeinvestigate-evidence/1"
    assert m["version"] == ei.__version__
    assert m["window"] == {"since": "2026-11-27T14:00:00+00:00", "until": None}
    [s] = m["sources"]
    assert s["source"] == "logpush"
    assert s["size"] == src.stat().st_size
    assert s["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert m["rows"] == {"invocations": 3, "logs": 0, "exceptions": 0, "dlq": 0}
    assert m["report"]["files"][0]["records"] == 3


def test_save_refuses_to_overwrite(tmp_path, data_dir):
    ev = ei.load(data_dir / "tail/tail.ndjson")
    ev.save(tmp_path / "b")
    with pytest.raises(BundleError, match="refusing to overwrite"):
        ev.save(tmp_path / "b")
    ev2 = ei.load(data_dir / "tail/tail-4space.json")
    ev2.save(tmp_path / "b", overwrite=True)
    assert ei.Evidence.open(tmp_path / "b").report.files[0].path.endswith("tail-4space.json")
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary leftovers


def test_open_rejects_non_bundles(tmp_path):
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        ei.Evidence.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        ei.Evidence.open(tmp_path)


def test_open_detects_changed_frames(tmp_path, data_dir):
    ev = ei.load(data_dir / "tail/tail.ndjson")
    ev.save(tmp_path / "b")
    m = json.loads((tmp_path / "b/manifest.json").read_text())
    m["rows"]["invocations"] = 99
    (tmp_path / "b/manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="has 11 rows but the manifest says 99"):
        ei.Evidence.open(tmp_path / "b")


def test_merge_deduplicates(data_dir):
    a = ei.load(data_dir / "tail/tail.ndjson")
    b = ei.load(data_dir / "logpush")
    both = ei.Evidence.merge([a, b, a], dedupe=False)
    assert len(both.invocations) == len(a.invocations) + len(b.invocations)
    assert len(both.logs) == len(a.logs) + len(b.logs)
    assert both.invocations["source"].dtype == "category"
    assert set(both.invocations["source"].astype(str)) == {"tail", "logpush"}
    assert len(both.report.files) == 1 + 3 + 1
    d = ei.Evidence.merge([a.with_dlq(_dlq_rows()), b.with_dlq(_dlq_rows())], dedupe=False)
    assert len(d.dlq) == 2


def test_empty_frames_have_the_schema():
    ev = ei.Evidence.empty()
    for name in FRAMES:
        pd.testing.assert_frame_equal(ev.frame(name), empty_frame(name))
    assert repr(ev).startswith("<Evidence invocations=0")
    pd.testing.assert_frame_equal(conform(ev.dlq, "dlq"), ev.dlq)


def test_loader_worker_imports_no_pandas() -> None:
    """The worker side of loading (the forkserver preload on Python 3.12+) imports no pandas."""
    code = "import sys, edgeinvestigate.sources.files._worker; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
