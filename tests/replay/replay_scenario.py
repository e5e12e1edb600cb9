"""A DLQ incident in a real sandbox: 2,000 dead-lettered jobs, a selection of 1,200 to replay, and the
checks that prove nothing was lost (read from the sandbox's own state); and the small helpers the
test files share (a DLQ loaded into the sandbox, the CLI, a snapshot file, small plans)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from replay_messages import JOB_TYPES, T0_MS, iso, job, message_id, peeked

from edgeinvestigate.cli import main
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import ReplayError
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.replay import Ledger, ReplayPlan, plan_replay
from edgeinvestigate.sources.api.dlq import collect_dlq, dlq_frame

ACCOUNT = "0123456789abcdef0123456789abcdef"
SELECTED_TYPES = JOB_TYPES[:3]  # 3 of the 5 job types: 1,200 of 2,000


@dataclass
class Scenario:
    plan_path: Path
    plan: ReplayPlan
    selected: set[str]
    unselected: set[str]
    attempts_before: dict[str, int]
    review: str = ""  # the plan's review text as `replay plan` shows it

    @property
    def ledger_path(self) -> Path:
        return self.plan_path.with_name(self.plan_path.stem + ".ledger.sqlite")


def body_of(i: int) -> Any:
    j = job(i)
    if i % 10 == 1:
        return {"original": j, "error": "SMTP 550 mailbox unavailable"}
    if i % 10 == 2:
        return {
            "original": {"id": message_id(i), "timestamp": iso(T0_MS), "body": j, "attempts": 4},
            "error": "TypeError: Cannot read properties of undefined (reading 'url')",
        }
    return j


def client_for(sb: Any, *, timeout: float = 10.0) -> CloudflareClient:
    return CloudflareClient(ACCOUNT, sb.token, api_url=sb.url, timeout=timeout)


def build(sb: Any, tmp_path: Path, *, n: int = 2000, rate: float = 400.0) -> Scenario:
    """Queues, a DLQ of ``n`` jobs collected in snapshot mode (leases held), and a saved plan."""
    sb.create_queue(
        ACCOUNT,
        "jobs",
        consumer={
            "type": "worker",
            "script_name": "jobs-consumer",
            "dead_letter_queue": "jobs-dlq",
            "max_retries": 3,
        },
    )
    sb.create_queue(
        ACCOUNT,
        "jobs-dlq",
        consumer={"type": "http_pull", "max_retries": 50, "visibility_timeout_ms": 3_600_000},
    )
    sb.create_queue(ACCOUNT, "emails", consumer={"type": "worker", "script_name": "emails-consumer"})
    for start in range(0, n, 500):
        chunk = range(start, min(n, start + 500))
        sb.load_messages(
            ACCOUNT,
            "jobs-dlq",
            [
                {
                    "id": message_id(i),
                    "body": body_of(i),
                    "content_type": "json",
                    "timestamp_ms": T0_MS + i * 1000,
                    "attempts": 0,
                }
                for i in chunk
            ],
        )
    with client_for(sb) as client:
        collected = collect_dlq(
            client, "jobs-dlq", mode="snapshot", release=False, visibility_timeout_ms=3_600_000
        )
    assert len(collected.frame) == n, collected.warnings
    plan = plan_replay(
        collected.frame, "jobs-dlq", "jobs", types=list(SELECTED_TYPES), allow_queues=["jobs"], rate=rate
    )
    path = plan.save(tmp_path / "plan.json")
    selected = {m.message_id for m in plan.messages}
    everyone = {message_id(i) for i in range(n)}
    assert len(selected) == n * 3 // 5
    dlq = sb.queue_state(ACCOUNT, "jobs-dlq")
    attempts = {m["id"]: m["attempts"] for m in dlq["messages"]}
    return Scenario(path, ReplayPlan.load(path), selected, everyone - selected, attempts)


def build_without_leases(
    sb: Any, tmp_path: Path, *, n: int, selected: Callable[[int], bool], rate: float = 400.0
) -> Scenario:
    """Queues, a DLQ of ``n`` jobs collected by a snapshot that *released* its leases (the frame holds
    no lease id, so replay removes originals by peek + purge), and a plan replaying the messages at the
    positions where ``selected(i)`` holds (position 0 is the head of the DLQ)."""
    sb.create_queue(ACCOUNT, "jobs", consumer={"type": "worker", "script_name": "jobs-consumer"})
    sb.create_queue(
        ACCOUNT,
        "jobs-dlq",
        consumer={"type": "http_pull", "max_retries": 50, "visibility_timeout_ms": 60_000},
    )
    sb.load_messages(
        ACCOUNT,
        "jobs-dlq",
        [
            {
                "id": message_id(i),
                "body": body_of(i),
                "content_type": "json",
                "timestamp_ms": T0_MS + i * 1000,
            }
            for i in range(n)
        ],
    )
    with client_for(sb) as client:
        collected = collect_dlq(client, "jobs-dlq", mode="snapshot")  # leases released
    frame = collected.frame
    assert len(frame) == n, collected.warnings
    assert frame["lease_id"].isna().all()  # nothing to ack: peek + purge is the only way
    ids = [message_id(i) for i in range(n) if selected(i)]
    plan = plan_replay(frame, "jobs-dlq", "jobs", ids=ids, allow_queues=["jobs"], rate=rate)
    path = plan.save(tmp_path / "plan.json")
    assert {m.message_id for m in plan.messages} == set(ids)
    assert all(m.lease_id is None for m in plan.messages)
    dlq = sb.queue_state(ACCOUNT, "jobs-dlq")
    attempts = {m["id"]: m["attempts"] for m in dlq["messages"]}
    assert len(attempts) == n  # the snapshot released every lease: all still in the DLQ
    everyone = {message_id(i) for i in range(n)}
    return Scenario(path, ReplayPlan.load(path), set(ids), everyone - set(ids), attempts, plan.summary())


def replay_ids_on(queue: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for m in queue["messages"]:
        body = m["body"]
        replay = body["metadata"]["replay"]
        out.append((replay["of"], replay["id"], body))
    return out


def assert_nothing_lost(
    sb: Any, sc: Scenario, *, budget: int = 1200, window: float = 300.0
) -> dict[str, int]:
    """The guarantees, checked from the sandbox's own state (and the ledger for duplicates)."""
    state = sb.state()["accounts"][ACCOUNT]["queues"]
    dlq, target = state["jobs-dlq"], state["jobs"]
    in_dlq = {m["id"]: m for m in dlq["messages"]}
    on_target = replay_ids_on(target)
    copies = Counter(of for of, _, _ in on_target)
    by_of: dict[str, list[dict[str, Any]]] = {}
    for of, _, body in on_target:
        by_of.setdefault(of, []).append(body)

    # every selected message is on the target at least once, and gone from the DLQ
    missing = sc.selected - set(copies)
    assert not missing, f"{len(missing)} selected messages are not on the target queue: {sorted(missing)[:5]}"
    left = sc.selected & set(in_dlq)
    assert not left, f"{len(left)} replayed messages are still in the DLQ: {sorted(left)[:5]}"
    # nothing else was replayed; every unselected message is still in the DLQ, attempts unchanged
    assert set(copies) <= sc.selected
    gone = sc.unselected - set(in_dlq)
    assert not gone, f"{len(gone)} unselected messages vanished from the DLQ"
    changed = {i for i in sc.unselected if in_dlq[i]["attempts"] != sc.attempts_before[i]}
    assert not changed, f"attempts changed for {len(changed)} unselected messages"
    # each body is exactly the planned one; duplicates are byte-identical twins flagged in the ledger
    planned = {m.message_id: m.body for m in sc.plan.messages}
    for of, bodies in by_of.items():
        assert all(b == planned[of] for b in bodies), of
    dups = {of for of, n in copies.items() if n > 1}
    with Ledger.open(sc.ledger_path, create=False) as led:
        rows = {r["message_id"]: r for r in led.rows()}
        flagged = {mid for mid, r in rows.items() if r["possible_duplicate"]}
        assert dups <= flagged, f"unflagged duplicates: {sorted(dups - flagged)[:5]}"
        assert all(r["state"] == "settled" for r in rows.values())
        # the API budget: never more than `budget` requests in any sliding window
        times = sorted(led.request_times(0))
        worst = max((sum(1 for t in times[i:] if t < t0 + window) for i, t0 in enumerate(times)), default=0)
        assert worst <= budget, f"{worst} requests in one {window} s window > {budget}"
        over = [e for e in led.events() if e["kind"] == "rate_limited" and "over " in str(e["detail"])]
        assert not over, f"the sandbox's own rate limit was hit: {over[:2]}"
    return {
        "duplicates": len(dups),
        "flagged": len(flagged),
        "on_target": len(on_target),
        "worst_window": worst,
    }


def dump(sc: Scenario) -> str:
    with Ledger.open(sc.ledger_path, create=False) as led:
        return json.dumps(
            {"counts": led.counts(), "events": led.event_counts(), "runs": led.runs()}, default=str
        )


def settled(sc_ledger: Path) -> int:
    try:
        with Ledger.open(sc_ledger, create=False) as led:
            return led.counts()["settled"]
    except ReplayError:
        return 0  # no ledger yet


def when_settled(path: Path, n: int, action: object, timeout: float = 120.0) -> threading.Thread:
    """Run ``action()`` in a thread once ``n`` messages are settled."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if settled(path) >= n:
                action()  # type: ignore[operator]
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def cli_env(sb: object) -> dict[str, str]:
    env = dict(os.environ)
    env["CLOUDFLARE_API_TOKEN"] = sb.token  # type: ignore[attr-defined]
    env["CLOUDFLARE_ACCOUNT_ID"] = ACCOUNT
    env["CLOUDFLARE_API_BASE_URL"] = sb.url  # type: ignore[attr-defined]
    return env


def run_cli(args: list[str], env: dict[str, str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgeinvestigate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def run_id_of(ledger: Path, pid: int) -> int | None:
    try:
        with Ledger.open(ledger, create=False) as led:
            return next((int(r["run_id"]) for r in led.runs() if r["pid"] == pid), None)
    except ReplayError:
        return None


def seen(ledger: Path, run_id: int, kind: str) -> bool:
    with Ledger.open(ledger, create=False) as led:
        return any(e["run_id"] == run_id and e["kind"] == kind for e in led.events())


# -- shared by the test files: a DLQ in the sandbox, the CLI, small plans ------------------------------


def jobs_and_dlq(sb: Any, n: int) -> None:
    """`jobs` (whose DLQ is `jobs-dlq`) and `jobs-dlq` holding ``n`` jobs, pulled over HTTP."""
    sb.create_queue(
        ACCOUNT,
        "jobs",
        consumer={"type": "worker", "script_name": "jobs-consumer", "dead_letter_queue": "jobs-dlq"},
    )
    sb.create_queue(
        ACCOUNT,
        "jobs-dlq",
        consumer={"type": "http_pull", "max_retries": 50, "visibility_timeout_ms": 3_600_000},
    )
    sb.load_messages(
        ACCOUNT,
        "jobs-dlq",
        [
            {
                "id": message_id(i),
                "body": body_of(i),
                "content_type": "json",
                "timestamp_ms": T0_MS + i * 1000,
            }
            for i in range(n)
        ],
    )


def cli_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one edgeinvestigate command to its end in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def snapshot_file(tmp_path: Path, n: int = 60) -> Path:
    """A DLQ snapshot file of ``n`` jobs and one v8 body."""
    msgs = [peeked(i, body_of(i)) for i in range(n)]
    msgs.append(peeked(n, None, content_type="v8"))
    path = tmp_path / "messages.json"
    path.write_text(json.dumps({"queue": "jobs-dlq", "messages": msgs}))
    return path


def job_frame(n: int = 6, job_type: str = "EMAIL_DELIVERY") -> pd.DataFrame:
    return dlq_frame([peeked(i, job(i, job_type)) for i in range(n)], "jobs-dlq")


def plan_jobs(frame: pd.DataFrame, **kw: Any) -> ReplayPlan:
    return plan_replay(frame, "jobs-dlq", "jobs", allow_queues=["jobs"], **kw)


def cli_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI as a user runs it (cli.main turns errors into one line and an exit status)."""
    with pytest.raises(SystemExit) as stop:
        main(args)
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out + out.err


def tamper(path: Path, **changes: Any) -> None:
    """Edit a plan file as an attacker would: change fields, then recompute its (unkeyed) hash."""
    from edgeinvestigate.replay._rewrite import canonical_bytes, sha256_hex

    doc = json.loads(path.read_text())
    doc.pop("content_hash")
    doc.update(changes)
    doc["content_hash"] = sha256_hex(canonical_bytes(doc))
    path.write_text(json.dumps(doc))


def bundle_of(tmp_path: Path, frame: pd.DataFrame) -> Path:
    return Path(Evidence.empty().with_dlq(frame).save(tmp_path / "bundle"))
