"""Plan building: selection, exclusions and why, rewriting, idempotency keys, batches, hashing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from replay_messages import T0_MS, dlq_messages, iso, job, message_id, peeked

from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay import ReplayPlan, plan_replay
from edgeinvestigate.replay._rewrite import MAX_BATCH_BYTES, body_size
from edgeinvestigate.sources.api.dlq_frame import dlq_frame

NOW = "2026-11-28T03:00:00.000Z"


def plan(frame: pd.DataFrame, **kw: object) -> ReplayPlan:
    kw.setdefault("allow_queues", ["jobs"])
    kw.setdefault("now", NOW)
    return plan_replay(frame, "jobs-dlq", "jobs", **kw)  # type: ignore[arg-type]


def test_rewritten_body_is_the_job_with_fresh_attempts_and_a_replay_block(dlq_frame: pd.DataFrame) -> None:
    p = plan(dlq_frame)
    assert len(p.messages) == 300
    assert not p.excluded
    for m in p.messages:
        i = int(m.message_id[:8], 16)
        original = job(i)
        body = m.body
        assert body["type"] == original["type"]
        assert body["payload"] == original["payload"]
        meta = body["metadata"]
        assert meta["attempts"] == 0
        assert meta["lastAttempt"] == NOW
        assert meta["originalTimestamp"] == original["metadata"]["originalTimestamp"]
        assert meta["replay"] == {"id": m.replay_id, "of": m.message_id, "plan": p.plan_id, "at": NOW}
        assert m.replay_id.startswith("rpl_")
        assert len(m.replay_id) == 36
        assert m.size == body_size(body)
    shapes = {m.shape for m in p.messages}
    assert shapes == {"raw", "wrapped", "wrapped-message"}  # both {original, error} shapes unwrapped


def test_idempotency_key_is_stable_per_message_and_selection(dlq_frame: pd.DataFrame) -> None:
    a = plan(dlq_frame, types=["EMAIL_DELIVERY"])
    b = plan(dlq_frame, types=["EMAIL_DELIVERY"], now="2026-11-28T04:00:00.000Z")
    c = plan(dlq_frame, types=["EMAIL_DELIVERY", "DATA_SYNC"])
    keys_a = {m.message_id: m.replay_id for m in a.messages}
    assert keys_a == {m.message_id: m.replay_id for m in b.messages}  # re-planned: same keys
    assert a.plan_id != b.plan_id
    assert all(keys_a[m.message_id] != m.replay_id for m in c.messages if m.message_id in keys_a)
    assert len(set(keys_a.values())) == len(keys_a)


def test_selection_by_type_id_time_where_and_cluster(dlq_frame: pd.DataFrame) -> None:
    p = plan(dlq_frame, types=["DATA_SYNC"])
    assert {m.job_type for m in p.messages} == {"DATA_SYNC"}
    assert len(p.messages) == 60
    assert p.not_selected == 240
    assert p.by_type == {"DATA_SYNC": 60}

    ids = [message_id(3), message_id(4), "ffffffffffffffffffffffffffffffff"]
    p = plan(dlq_frame, ids=ids)
    assert sorted(m.message_id for m in p.messages) == sorted(ids[:2])
    assert [(e.message_id, e.reason) for e in p.excluded] == [(ids[2], "not_found")]

    p = plan(dlq_frame, since=iso(T0_MS + 100_000), until=iso(T0_MS + 110_000))
    assert sorted(int(m.message_id[:8], 16) for m in p.messages) == list(range(100, 110))

    p = plan(dlq_frame, where="job_type == 'EMAIL_DELIVERY' and attempts >= 1")
    assert len(p.messages) == 60
    assert p.selection["where"]

    framed = dlq_frame.assign(cluster_id=["c-smtp" if i % 2 else "c-null-url" for i in range(len(dlq_frame))])
    p = plan(framed, clusters=["c-smtp"])
    assert len(p.messages) == 150
    assert p.by_cluster == {"c-smtp": 150}


def test_bad_where_names_the_expression_and_columns(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"--where 'no_such_column > 3' failed") as err:
        plan(dlq_frame, where="no_such_column > 3")
    assert "job_type" in err.value.hint


def test_cluster_selection_without_cluster_ids_is_a_clear_error(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="cluster_id"):
        plan(dlq_frame, clusters=["c1"])


def test_exclusions_say_why() -> None:
    replayed = job(3)
    replayed["metadata"]["replay"] = {"id": "rpl_x", "of": message_id(99), "plan": "p", "at": NOW}
    msgs = [
        peeked(0, job(0)),
        peeked(1, None, content_type="v8"),
        peeked(2, None, content_type="bytes"),
        peeked(3, replayed),
        peeked(4, "plain text job", content_type="text"),
        peeked(5, {"hello": "not a job"}),
        peeked(6, job(6, size=130_000)),
        {**peeked(7, job(7)), "body": "{not json"},
        peeked(0, job(0)),  # collected twice
    ]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert [m.message_id for m in p.messages] == [message_id(0)]
    reasons = {e.message_id: e.reason for e in p.excluded}
    assert reasons == {
        message_id(1): "unsupported_content_type",
        message_id(2): "unsupported_content_type",
        message_id(3): "already_replayed",
        message_id(4): "not_a_job",
        message_id(5): "not_a_job",
        message_id(6): "oversize",
        message_id(7): "decode_error",
        message_id(0): "duplicate",
    }
    text = p.summary()
    for reason in set(reasons.values()):
        assert reason in text
    assert "v8/bytes bodies cannot be pushed" in text


def test_batches_hold_at_most_100_messages_and_256_kb() -> None:
    msgs = [peeked(i, job(i, size=40_000 if i % 3 == 0 else 0)) for i in range(450)]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert sum(len(b.message_ids) for b in p.batches) == 450
    by_id = {m.message_id: m for m in p.messages}
    for b in p.batches:
        assert len(b.message_ids) <= 100
        assert sum(by_id[i].size + 100 for i in b.message_ids) == b.bytes <= MAX_BATCH_BYTES
        assert all(by_id[i].batch == b.index for i in b.message_ids)
    small = plan(dlq_frame([peeked(i, job(i)) for i in range(250)], "jobs-dlq"))
    assert [len(b.message_ids) for b in small.batches] == [100, 100, 50]
    est = small.estimates
    assert est.push_requests == 3
    assert est.removal_requests == 6
    assert est.duration_s == pytest.approx(max(250 / 100.0, 9 * 300 / 1200), abs=0.1)


def test_leases_make_removal_one_ack_per_batch() -> None:
    msgs = [peeked(i, job(i), lease_id=f"lease-{i}") for i in range(150)]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert p.estimates.removal_requests == 2
    assert p.messages[0].lease_id == "lease-0"


def test_target_allow_list_and_the_dlq_itself_are_enforced(dlq_frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ReplayRefusedError, match="into itself"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs-dlq", allow_queues=["jobs-dlq"])
    with pytest.raises(ReplayRefusedError, match=r"not in the allow-list.*allowed: none") as err:
        plan_replay(dlq_frame, "jobs-dlq", "jobs")
    assert "--allow-queue jobs" in err.value.hint
    other = dlq_frame.assign(queue=["jobs-dlq"] * 299 + ["emails-dlq"])
    with pytest.raises(ReplayRefusedError, match="dead-letter queue"):
        plan_replay(other, "jobs-dlq", "emails-dlq", allow_queues=["emails-dlq"])
    cfg = tmp_path / "edgeinvestigate.toml"
    cfg.write_text('[replay]\nallow_queues = ["jobs"]\n')
    assert plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg).allow_queues == ["jobs"]
    cfg.write_text("[replay]\nallow_queues = 'jobs'\n")
    with pytest.raises(ConfigError, match="must be a list"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg)


def test_unknown_source_queue_lists_what_the_bundle_has(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(Exception, match=r"no DLQ messages from 'emails-dlq' \(it has: jobs-dlq\)"):
        plan_replay(dlq_frame, "emails-dlq", "emails", allow_queues=["emails"])


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


def test_empty_selection_makes_an_empty_plan(dlq_frame: pd.DataFrame) -> None:
    p = plan(dlq_frame, types=["NO_SUCH_TYPE"])
    assert p.messages == []
    assert p.batches == []
    assert p.estimates.duration_s == 0
    assert p.not_selected == 300


def test_many_messages_plan_quickly() -> None:
    frame = dlq_frame(dlq_messages(5000), "jobs-dlq")
    p = plan(frame)
    assert len(p.batches) == 50
    assert p.estimates.requests == 150
