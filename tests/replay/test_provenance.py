"""Where a plan's messages come from: the hash of the bundle's DLQ frame file recorded at plan time,
and the run-time check that every message of the plan is a message of that DLQ."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from replay_scenario import ACCOUNT, bundle_of, client_for, job_frame, jobs_and_dlq, snapshot_file, tamper

from edgeinvestigate.errors import ReplayRefusedError
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.replay import ReplayPlan, plan_replay, run_replay
from edgeinvestigate.replay._provenance import check_provenance, dlq_file
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq import collect_dlq
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plan(bundle: Path, out: Path) -> Path:
    return plan_replay(bundle, "jobs-dlq", "jobs", allow_queues=["jobs"]).save(out)


def test_a_plan_records_the_hash_of_the_dlq_frame_file_not_of_the_manifest(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    plan = ReplayPlan.load(_plan(bundle, tmp_path / "plan.json"))
    assert plan.dlq_source == {
        "file": "dlq.parquet",
        "sha256": _sha(bundle / "dlq.parquet"),
        "queue": "jobs-dlq",
    }
    assert check_provenance(plan) == []
    # a derived frame added to the bundle later changes the manifest, not the DLQ frame: still fine
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["frames"]["clusters"] = "clusters.parquet"
    manifest["derived"] = {"clusters": {"at": "2026-11-28T04:00:00Z"}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "clusters.parquet").write_bytes(b"PAR1")
    assert check_provenance(plan) == []


def test_an_invented_message_id_is_refused(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    path = _plan(bundle, tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    invented = dict(doc["messages"][0], message_id="ffffffffffffffffffffffffffffffff")
    tamper(path, messages=[*doc["messages"], invented])
    plan = ReplayPlan.load(path)  # the hash was recomputed: the file itself looks fine
    with pytest.raises(ReplayRefusedError) as err:
        check_provenance(plan)
    assert err.value.exit_code == 3
    assert "1 of its 7 messages are not messages of the DLQ 'jobs-dlq' in its bundle" in err.value.message
    assert "ffffffffffffffffffffffffffffffff" in err.value.message
    assert "Nothing was sent" in err.value.message
    assert "replay plan" in err.value.hint


def test_another_bundle_or_a_moved_one(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    plan = ReplayPlan.load(_plan(bundle, tmp_path / "plan.json"))
    # the DLQ frame file swapped for another bundle's (same ids, other bodies)
    other = Path(Evidence.empty().with_dlq(job_frame(job_type="DATA_SYNC")).save(tmp_path / "other"))
    saved = (bundle / "dlq.parquet").read_bytes()
    shutil.copy(other / "dlq.parquet", bundle / "dlq.parquet")
    with pytest.raises(ReplayRefusedError, match=r"is not the one the plan was made from \(sha256 ") as err:
        check_provenance(plan)
    assert "--bundle DIR" in err.value.hint
    (bundle / "dlq.parquet").write_bytes(saved)
    # moved: refused without --bundle, fine with it
    moved = tmp_path / "archive" / "INC-1"
    moved.parent.mkdir()
    bundle.rename(moved)
    with pytest.raises(ReplayRefusedError, match="cannot be found") as err:
        check_provenance(plan)
    assert (
        err.value.hint
        == "if the bundle was moved, pass its new place: edgeinvestigate replay run PLAN --bundle DIR"
    )
    assert check_provenance(plan, moved) == []


def test_a_plan_of_an_older_release_runs_with_a_warning(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    path = _plan(bundle, tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    del doc["dlq_source"]  # what an older release wrote: the same plan without the field
    path.write_text(json.dumps(doc))
    tamper(path)
    old = ReplayPlan.load(path)
    assert old.dlq_source is None
    [warning] = check_provenance(old)
    assert warning.startswith(
        "the plan records no hash of its bundle's DLQ frame file (made by an older release"
    )
    assert f"its message ids were checked against {bundle / 'dlq.parquet'}" in warning
    # its ids are still checked when the bundle can be read
    invented = dict(doc["messages"][0], message_id="ffffffffffffffffffffffffffffffff")
    tamper(path, messages=[*doc["messages"], invented])
    with pytest.raises(ReplayRefusedError, match="1 of its 7 messages are not messages"):
        check_provenance(ReplayPlan.load(path))
    # a plan made from a frame in memory names no bundle: a warning that nothing was checked
    frame_plan = plan_replay(job_frame(), "jobs-dlq", "jobs", allow_queues=["jobs"])
    [warning] = check_provenance(frame_plan)
    assert "its bundle (none named) cannot be read: its message ids were not checked" in warning


def test_a_plan_from_a_dlq_snapshot_file_records_that_file(tmp_path: Path) -> None:
    snap = snapshot_file(tmp_path, n=10)
    frame = dlq_frame_from_file(snap, queue="jobs-dlq")  # as `replay plan FILE` reads it
    plan = plan_replay(frame, "jobs-dlq", "jobs", allow_queues=["jobs"], bundle=str(snap))
    assert dlq_file(snap) == snap
    assert plan.dlq_source == {"file": "messages.json", "sha256": _sha(snap), "queue": "jobs-dlq"}
    assert check_provenance(plan) == []
    doc = json.loads(snap.read_text())
    doc["messages"] = doc["messages"][1:]  # the file changed since
    snap.write_text(json.dumps(doc))
    with pytest.raises(ReplayRefusedError, match="is not the one the plan was made from"):
        check_provenance(plan)


def test_a_manifest_naming_a_path_outside_the_bundle_is_not_followed(tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, job_frame())
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["frames"]["dlq"] = "../elsewhere.parquet"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert dlq_file(bundle) == bundle / "dlq.parquet"


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_a_run_with_an_invented_message_sends_nothing(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        jobs_and_dlq(sb, 20)
        with client_for(sb) as client:
            frame = collect_dlq(client, "jobs-dlq", mode="peek").frame
        bundle = Path(Evidence.empty().with_dlq(frame).save(tmp_path / "bundle"))
        path = _plan(bundle, tmp_path / "plan.json")
        doc = json.loads(path.read_text())
        invented = dict(doc["messages"][0], message_id="ffffffffffffffffffffffffffffffff")
        tamper(path, messages=[*doc["messages"], invented])
        before = sb.state()["accounts"][ACCOUNT]["queues"]
        with client_for(sb) as client:
            with pytest.raises(ReplayRefusedError, match="are not messages of the DLQ 'jobs-dlq'"):
                run_replay(path, client, allow_queues=["jobs"])
            assert client.requests_sent == 0
        assert sb.state()["accounts"][ACCOUNT]["queues"] == before
        assert not (tmp_path / "plan.ledger.sqlite").exists()
