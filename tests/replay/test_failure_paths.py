"""Replay failure paths a reviewer probed against the sandbox, each proven fixed: pushes that commit
and then time out (a cap on re-sends, no silent multiplication on resume), a non-boolean --where,
verify on a never-run plan, patches that return or raise garbage, unknown ids, `run --json` errors,
and a 5xx storm during the removal (bounded, logged, the first Ctrl-C stops it)."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from replay_messages import job, message_id, peeked
from replay_scenario import (
    ACCOUNT,
    assert_nothing_lost,
    build,
    build_without_leases,
    cli_env,
    client_for,
    run_cli,
    run_id_of,
    seen,
)

from edgeinvestigate.cli import main
from edgeinvestigate.errors import ConfigError, ReplayError, ReplayRefusedError
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.replay import Ledger, ReplayPlan, export_replay, plan_replay, replay_status, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq_frame import dlq_frame

pytestmark = [pytest.mark.timeout(240)]
ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]


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
            run_replay(sc.plan_path, client, rate=1000)
        assert sum(_copies_on_target(sb).values()) == 3 * n0

        # the target is healthy again; the operator checked it and asks for the re-send
        sb.set_faults("")
        said: list[str] = []
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=1000, resend_ambiguous=True, say=said.append)
        assert result.outcome == "completed", result.to_dict()
        assert any("--resend-ambiguous" in s for s in said), said
        stats = assert_nothing_lost(sb, sc)
        assert stats["on_target"] == 4 * n0 + (len(sc.selected) - n0)
        assert result.copies_sent == stats["on_target"]  # the ledger's count is the truth


@pytest.mark.e2e
@pytest.mark.faults
def test_a_storm_of_5xx_on_peek_is_bounded_logged_and_the_first_ctrl_c_stops(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=150, selected=lambda i: i < 100)
        sb.set_faults("error_rate=1.0,ops=peek")
        env = cli_env(sb)
        proc = run_cli(["replay", "run", str(sc.plan_path), "--yes", "--no-progress"], env)
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline:
            run_id = run_id or run_id_of(sc.ledger_path, proc.pid)
            if run_id is not None and seen(sc.ledger_path, run_id, "server_error"):
                break
            time.sleep(0.02)
        assert run_id is not None
        assert proc.poll() is None
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # once
        _, err = proc.communicate(timeout=20)
        text = err.decode()
        assert proc.returncode == 130, text
        assert "retrying peek" in text, text  # a line per retry wait, even with --no-progress
        with Ledger.open(sc.ledger_path, create=False) as led:
            counts = led.counts()
            assert counts["pushing"] == counts["ambiguous"] == 0, counts
            assert led.runs()[-1]["outcome"] == "interrupted"
        # the ledger is consistent: a resume without faults finishes and nothing is lost
        sb.set_faults("")
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=1000)
        assert result.outcome == "completed", result.to_dict()
        assert_nothing_lost(sb, sc)


# -- planning and verifying: no sandbox needed -------------------------------------------------------


def _frame(n: int = 6, job_type: str = "EMAIL_DELIVERY") -> pd.DataFrame:
    return dlq_frame([peeked(i, job(i, job_type)) for i in range(n)], "jobs-dlq")


def _plan(frame: pd.DataFrame, **kw: Any) -> ReplayPlan:
    return plan_replay(frame, "jobs-dlq", "jobs", allow_queues=["jobs"], **kw)


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI as a user runs it (cli.main turns errors into one line and an exit status)."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out + out.err


def _bundle(tmp_path: Path, frame: pd.DataFrame) -> Path:
    return Path(Evidence.empty().with_dlq(frame).save(tmp_path / "bundle"))


@pytest.mark.parametrize(
    ("where", "returned"),
    [("attempts", "a Series of dtype int"), ("1 + 1", " '2'"), ("job_type", "a Series of dtype")],
)
def test_a_where_that_is_not_a_condition_is_refused(where: str, returned: str) -> None:
    frame = _frame()
    with pytest.raises(ConfigError, match="is not a condition") as exc:
        _plan(frame, where=where)
    assert f"--where {where!r}" in exc.value.message
    assert returned in exc.value.message
    assert "attempts >= 3" in exc.value.hint  # how to write one
    # a real condition still selects by value, not by index label
    frame = frame.assign(attempts=[0, 5, 0, 5, 5, 0])
    chosen = _plan(frame, where="attempts >= 3")
    assert [m.message_id for m in chosen.messages] == [message_id(i) for i in (1, 3, 4)]


def test_unknown_ids_and_clusters_are_named_and_never_make_an_empty_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _frame().assign(cluster_id=["c-smtp", "c-null-url"] * 3)
    with pytest.raises(ConfigError, match="refusing to write an empty plan") as exc:
        _plan(frame, clusters=["c-smpt"])
    assert "unknown --cluster c-smpt (did you mean c-smtp?)" in exc.value.message
    typo = message_id(2)[:-1] + "x"
    with pytest.raises(ConfigError, match="refusing to write an empty plan") as exc:
        _plan(frame, ids=["nosuch", typo])
    assert f"unknown --id {typo} (did you mean {message_id(2)}" in exc.value.message
    assert "--id nosuch (no close match)" in exc.value.message
    # another selector matched: the plan is made, and says what was unknown
    mixed = _plan(frame, ids=[message_id(1), "nosuch"])
    assert [m.message_id for m in mixed.messages] == [message_id(1)]
    assert any("unknown --id nosuch" in w for w in mixed.warnings), mixed.warnings
    # the CLI: non-zero, the id named, no plan written
    out = tmp_path / "plan.json"
    code, text = _main(
        ["replay", "plan", str(_bundle(tmp_path, frame)), *ALLOW, "--id", "nosuch", "--out", str(out)], capsys
    )
    assert code != 0
    assert "unknown --id nosuch" in text
    assert not out.exists()


def test_patches_that_return_non_json_or_raise_are_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fn = tmp_path / "objpatch.py"
    fn.write_text(
        "def patch(message):\n"
        "    job_id = message['payload']['jobId']\n"
        "    if job_id == 'job-000001':\n"
        "        message['payload']['when'] = object()\n"
        "    if job_id == 'job-000002':\n"
        "        raise KeyError('templateId')\n"
        "    return message\n"
    )
    p = _plan(_frame(), patch=fn)
    assert len(p.messages) == 4
    why = {e.message_id: e.detail for e in p.excluded if e.reason == "patch_error"}
    assert "not JSON: Object of type object is not JSON serializable" in why[message_id(1)]
    assert "patch() raised KeyError: 'templateId'" in why[message_id(2)]
    review = p.summary()
    assert f"{message_id(2)}: {fn}: patch() raised KeyError: 'templateId'" in review
    assert "Object of type object" in review

    every = tmp_path / "every.py"
    every.write_text("def patch(message):\n    return object()\n")
    with pytest.raises(ReplayError, match="failed on every one of the 6 selected messages") as exc:
        _plan(_frame(), patch=every)
    assert "returned object" in exc.value.message
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(_bundle(tmp_path, _frame())), *ALLOW, "--patch", str(every)]
    code, text = _main([*args, "--out", str(out)], capsys)
    assert code != 0
    assert "failed on every one" in text
    assert not out.exists()


def test_verify_of_a_plan_that_never_ran_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _frame()
    bundle = _bundle(tmp_path, frame)
    path = _plan(frame).save(tmp_path / "plan.json")
    code, text = _main(["replay", "verify", str(path), str(bundle)], capsys)
    assert code == 1, text
    text = " ".join(text.split())
    assert "has not run: nothing to verify (6 messages planned, 0 replayed; no ledger at" in text
    assert "replay run PLAN" in text
