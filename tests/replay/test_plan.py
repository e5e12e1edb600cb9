"""The plan file: its content hash refuses tampering, and the review text `replay plan` shows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from replay_scenario import snapshot_file

from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay import ReplayPlan, plan_replay

NOW = "2026-11-28T03:00:00.000Z"


def plan(frame: pd.DataFrame, **kw: object) -> ReplayPlan:
    kw.setdefault("allow_queues", ["jobs"])
    kw.setdefault("now", NOW)
    return plan_replay(frame, "jobs-dlq", "jobs", **kw)  # type: ignore[arg-type]


def test_plan_file_round_trips_and_refuses_tampering(dlq_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = plan(dlq_frame, types=["EMAIL_DELIVERY"])
    path = p.save(tmp_path / "plan.json")
    loaded = ReplayPlan.load(path)
    assert loaded.content_hash == p.content_hash == loaded.compute_hash()
    assert loaded.messages == p.messages
    with pytest.raises(ConfigError, match="exists already"):
        p.save(path)

    doc = json.loads(path.read_text())
    doc["messages"][0]["body"]["payload"]["to"] = "attacker@example.com"
    path.write_text(json.dumps(doc))
    with pytest.raises(ReplayRefusedError, match="was changed after it was made"):
        ReplayPlan.load(path)
    path.write_text("{broken")
    with pytest.raises(ReplayRefusedError, match="not valid JSON"):
        ReplayPlan.load(path)


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_plan_command_shows_the_review_and_writes_the_plan(tmp_path: Path) -> None:
    snap = snapshot_file(tmp_path)
    patch = tmp_path / "fix.json"
    patch.write_text(json.dumps({"payload": {"template": "welcome-v2"}}))
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    args += ["--type", "EMAIL_DELIVERY", "--type", "DATA_SYNC", "--patch", str(patch), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "24 messages from 'jobs-dlq' to 'jobs' in 1 batches" in text
    assert "EMAIL_DELIVERY" in text
    assert "DATA_SYNC" in text
    assert "sample payloads" in text
    assert 'payload.template: "welcome" -> "welcome-v2"' in text
    assert "not selected (stay in the DLQ): 37" in text  # 36 other jobs + the v8 body
    plan = ReplayPlan.load(out)
    assert len(plan.messages) == 24
    assert plan.bundle == str(snap.resolve())
    # all messages, to see exclusions: the v8 body is listed with its reason
    res = CliRunner().invoke(cli, [*args[:9], "--out", str(tmp_path / "all.json")])
    assert "unsupported_content_type" in res.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0
    assert "exists already" in again.output


TOKEN = "Zq3vT9xLm2Pw8RkY4nB6cD1fG5hJ7sA0eU-_qWtX"  # 40 characters, mixed: a Cloudflare API token's shape


def test_the_review_masks_credentials_and_the_plan_file_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replay_messages import job, peeked

    from edgeinvestigate.sources.api.dlq import dlq_frame

    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "env-token-value-1234")
    secrets = {
        "headers": {"Authorization": "Bearer abcdefgh12345678"},
        "callback": "https://hooks.example.com/x?token=s3cr3tvalue",
        "cfToken": TOKEN,
        "note": "retry with env-token-value-1234",
    }
    msgs = [
        peeked(i, job(i, "WEBHOOK_PROCESSING") | {"payload": {"jobId": f"j{i}", **secrets}}) for i in range(3)
    ]
    patch = tmp_path / "fix.json"
    patch.write_text(json.dumps({"payload": {"auth": "Basic dXNlcjpwYXNzd29yZA=="}}))
    p = plan(dlq_frame(msgs, "jobs-dlq"), patch=str(patch))
    text = p.summary()
    for secret in ("abcdefgh12345678", "s3cr3tvalue", TOKEN, "env-token-value-1234", "dXNlcjpwYXNzd29yZA=="):
        assert secret not in text, secret
    assert "Bearer [redacted]" in text or 'Authorization": "[redacted]' in text
    assert "[secret]" in text  # the environment's token
    assert "payload.auth: (absent) -> " in text  # the diff is shown, its value masked
    assert "jobId" in text  # the rest of the payload is still there to review
    # the file keeps the exact bodies: they are what is pushed
    path = p.save(tmp_path / "plan.json")
    body = ReplayPlan.load(path).messages[0].body["payload"]
    assert body["headers"] == {"Authorization": "Bearer abcdefgh12345678"}
    assert body["cfToken"] == TOKEN
    assert body["auth"] == "Basic dXNlcjpwYXNzd29yZA=="
    # and everything `replay plan` prints goes through the same masking
    snap = tmp_path / "messages.json"
    snap.write_text(json.dumps({"queue": "jobs-dlq", "messages": msgs}))
    args = ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    res = CliRunner().invoke(cli, [*args, "--patch", str(patch), "--out", str(tmp_path / "cli.json")])
    assert res.exit_code == 0, res.output
    for secret in ("abcdefgh12345678", "s3cr3tvalue", TOKEN, "env-token-value-1234", "dXNlcjpwYXNzd29yZA=="):
        assert secret not in res.output, secret
    assert "sample payloads" in res.output


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_the_review_lists_each_cluster_triage_and_what_the_patch_changes(tmp_path: Path) -> None:
    import edgeinvestigate as ei

    ev = ei.sample_bundle()
    bundle = ev.save(tmp_path / "INC-1")
    clusters = ei.cluster(ev)
    kinds = dict(
        zip(clusters.table["cluster_id"].astype(str), clusters.table["kind"].astype(str), strict=True)
    )
    emails = clusters.dlq[clusters.dlq["job_type"] == "EMAIL_DELIVERY"]
    per_cluster = emails["cluster_id"].astype(str).value_counts()
    fixed = str(per_cluster.index[0])  # the template crash of the bad deploy: the patch fixes that one only
    assert kinds[fixed] == "permanent"
    untouched = {c: int(n) for c, n in per_cluster.items() if c != fixed and kinds.get(c) == "permanent"}
    assert untouched  # the sample holds EMAIL_DELIVERY jobs of other permanent clusters (bad JSON, ...)
    job_ids = sorted(
        json.loads(p)["jobId"] for p in emails.loc[emails["cluster_id"].astype(str) == fixed, "payload"]
    )
    patch = tmp_path / "fix.py"
    patch.write_text(
        f"FIX = set({job_ids!r})\n\n"
        "def patch(message):\n"
        "    if message['payload'].get('jobId') in FIX:\n"
        "        message['payload']['data']['displayName'] = message['payload']['data']['name']\n"
        "    return message\n"
    )
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(bundle), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    res = CliRunner().invoke(
        cli, [*args, "--type", "EMAIL_DELIVERY", "--patch", str(patch), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    review = res.output.split("by cluster (messages, triage, what the patch changes):")[1].split(
        "by job type:"
    )[0]
    lines = {line.split()[0]: line.split()[1:] for line in review.strip().splitlines()}
    assert lines[fixed] == [str(per_cluster[fixed]), "permanent", "patch", "changes", "all"]
    for cid, n in untouched.items():
        assert lines[cid] == [str(n), "permanent", "unchanged", "by", "the", "patch"]
    n_left = sum(untouched.values())
    assert f"WARNING: the patch leaves {n_left} messages of permanent clusters as they were:" in text
    assert all(f"{cid} ({n} messages)" in text for cid, n in untouched.items())
    assert "leave those clusters out (--cluster, --where), or extend the patch to them" in text
    plan = ReplayPlan.load(out)
    assert plan.cluster_kinds[fixed] == "permanent"
    assert any(
        w.startswith(f"the patch leaves {n_left} messages") for w in plan.warnings
    )  # shown by `run` too
    # a patch that changes every selected message: no warning
    everyone = tmp_path / "all.json"
    everyone.write_text(json.dumps({"payload": {"data": {"displayName": "Customer"}}}))
    res = CliRunner().invoke(
        cli, [*args, "--type", "EMAIL_DELIVERY", "--patch", str(everyone), "--out", str(tmp_path / "p2.json")]
    )
    assert res.exit_code == 0, res.output
    assert "the patch leaves" not in res.output
