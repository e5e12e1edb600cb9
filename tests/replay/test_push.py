"""Pushing batches: pushes that commit and then time out stop after the cap, and resume only when asked."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from replay_scenario import ACCOUNT, assert_nothing_lost, build, cli_env, client_for, run_cli

from edgeinvestigate.errors import ReplayRefusedError
from edgeinvestigate.replay import export_replay, replay_status, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.timeout(240)]


def _copies_on_target(sb: Any) -> Counter[str]:
    return Counter(m["body"]["metadata"]["replay"]["of"] for m in sb.queue_state(ACCOUNT, "jobs")["messages"])


@pytest.mark.e2e
@pytest.mark.faults
def test_pushes_that_commit_then_time_out_stop_after_the_cap_and_resume_only_when_asked(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=200)  # 120 selected: batch 0 of 100, batch 1 of 20
        sb.set_faults("commit_timeout=1.0,commit_mode=drop,ops=batch+push")
        env = cli_env(sb)
        args = ["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--json"]
        proc = run_cli([*args, "--max-ambiguous-pushes", "3"], env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err.decode()
        doc = json.loads(out)  # --json: the error is a JSON object on stdout
        assert doc["outcome"] == "error", doc
        assert doc["error"]["type"] == "ReplayError", doc
        message = doc["error"]["message"]
        first_batch = [m.message_id for m in sc.plan.messages if m.batch == 0]
        n0 = len(first_batch)
        assert f"up to {3 * n0} copies of these {n0} messages" in message, message
        assert "same idempotency keys" in message, message
        assert "backlog" in message, message
        assert "--resend-ambiguous" in doc["error"]["hint"]
        # the sandbox applied every attempt: exactly 3 copies of each message of the first batch
        copies = _copies_on_target(sb)
        assert copies == Counter(dict.fromkeys(first_batch, 3)), copies
        # nothing is lost: every original is still in the DLQ
        dlq = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert sc.selected <= dlq
        st = replay_status(sc.plan_path)
        assert st.copies_sent == 3 * n0
        assert st.possible_duplicates == n0
        assert f"copies sent {3 * n0}" in st.render()
        assert st.capped is not None
        assert "--resend-ambiguous" in st.capped
        exported = json.loads(export_replay(sc.plan_path, "json"))
        assert exported["ledger"]["totals"]["copies_sent"] == 3 * n0

        # resuming without the flag sends nothing more
        with client_for(sb) as client, pytest.raises(ReplayRefusedError, match=f"up to {3 * n0} times"):
            run_replay(sc.plan_path, client, rate=400)
        assert sum(_copies_on_target(sb).values()) == 3 * n0

        # the target is healthy again; the operator checked it and asks for the re-send
        sb.set_faults("")
        said: list[str] = []
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400, resend_ambiguous=True, say=said.append)
        assert result.outcome == "completed", result.to_dict()
        assert any("--resend-ambiguous" in s for s in said), said
        stats = assert_nothing_lost(sb, sc)
        assert stats["on_target"] == 4 * n0 + (len(sc.selected) - n0)
        assert result.copies_sent == stats["on_target"]  # the ledger's count is the truth
