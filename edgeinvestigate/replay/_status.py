"""``replay status``, ``replay cancel`` and ``replay export``: reading a ledger from anywhere.

The ledger is SQLite in WAL mode, so another terminal can read it while a run writes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.replay._ledger import Ledger, default_ledger_path
from edgeinvestigate.replay._plan import ReplayPlan, who

__all__ = ["ReplayStatus", "cancel_replay", "export_replay", "replay_status"]

#: a run on another host whose heartbeat is older than this is taken as not running any more (a run
#: beats at least every 10 s); on this host the run's pid is checked instead
STALE_AFTER_S = 120.0
#: the speed is measured over the pushes of the current run in this many seconds
RATE_WINDOW_S = 300.0


@dataclass
class ReplayStatus:
    """Where a replay stands: counts per state, speed, errors, ETA."""

    plan_id: str
    source_queue: str
    target_queue: str
    ledger: str
    total: int
    counts: dict[str, int]
    possible_duplicates: int
    still_in_dlq: int
    #: push requests that may have put a copy of a message on the target (all runs): >= messages pushed
    copies_sent: int
    ambiguous_batches: int
    rate_limited: int
    server_errors: int
    rate_msgs_per_s: float
    eta_s: float | None
    running: bool
    completed: bool
    cancel_requested: bool
    runs: list[dict[str, Any]] = field(default_factory=list)
    last_errors: list[dict[str, Any]] = field(default_factory=list)
    #: completed | running | crashed | stopped | blocked | not started
    state: str = ""
    #: why the plan cannot finish without the operator (None when it can)
    blocked: str | None = None
    #: the velocity limit of the current (or last) run
    rate_limit_msgs_per_s: float | None = None
    last_heartbeat_at: float | None = None
    plan_path: str = ""
    #: batches a run stopped re-sending after unanswered pushes (None when there is none)
    capped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        state = self._state_text()
        if self.cancel_requested and not self.completed:
            state += " (cancel requested)"
        c = self.counts
        lines = [
            f"replay {self.plan_id}: {self.source_queue!r} -> {self.target_queue!r}: {state}",
            f"  settled {c.get('settled', 0)}/{self.total}  pushed {c.get('pushed', 0)}  "
            f"ambiguous {c.get('ambiguous', 0)}  pushing {c.get('pushing', 0)}  "
            f"planned {c.get('planned', 0)}",
            f"  possible duplicates {self.possible_duplicates}  copies sent {self.copies_sent} "
            f"(push attempts that may be on {self.target_queue!r})  "
            f"pushed, removal from the DLQ not confirmed {self.still_in_dlq}",
            f"  ambiguous batches {self.ambiguous_batches}  429s {self.rate_limited}  "
            f"5xx/timeouts {self.server_errors}",
        ]
        if self.running:
            limit = f", limit {self.rate_limit_msgs_per_s:g}" if self.rate_limit_msgs_per_s else ""
            speed = f"{self.rate_msgs_per_s:.1f} msg/s" if self.rate_msgs_per_s else "not measured yet"
            lines.append(
                f"  rate {speed} (this run{limit})"
                + (f"  ETA {self.eta_s:.0f}s" if self.eta_s is not None else "")
            )
        if self.blocked:
            lines.append(f"  blocked: {self.blocked}")
        if self.capped:
            lines.append(f"  stopped re-sending: {self.capped}")
        for run in self.runs[-3:]:
            lines.append(
                f"  run {run['run_id']}: {run['user']}@{run['host']} pid {run['pid']} "
                f"started {_iso(run['started_at'])}"
                f" -> {run.get('outcome') or ('running' if self.running else 'no end recorded (crashed?)')}"
            )
        for err in self.last_errors[:3]:
            lines.append(f"  {_iso(err['ts'])} {err['kind']}: {str(err.get('detail') or '')[:160]}")
        return "\n".join(lines)

    def _state_text(self) -> str:
        resume = (
            f"resume with `edgeinvestigate replay run {self.plan_path or 'PLAN'} --allow-queue "
            f"{self.target_queue}` (or with {self.target_queue!r} in EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES)"
        )
        hb = self.last_heartbeat_at
        ago = f"last heartbeat {_iso(hb)}, {time.time() - hb:.0f}s ago" if hb else "no heartbeat"
        if self.state == "crashed":
            return f"not running (crashed? {ago}); {resume}"
        if self.state == "stopped":
            outcome = (self.runs[-1].get("outcome") if self.runs else None) or "stopped"
            return f"not running (the last run was {outcome}); {resume}"
        if self.state == "blocked":
            return "not running (incomplete: blocked, see below)"
        return self.state or ("completed" if self.completed else "running" if self.running else "not running")


def _pid_alive(run: dict[str, Any]) -> bool | None:
    """Whether the process of ``run`` still lives: None when it ran on another host (cannot tell)."""
    if run.get("host") != socket.gethostname() or not run.get("pid"):
        return None
    pid = int(run["pid"])
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        # a reused pid belongs to a process started after the run
        return bool(proc.create_time() <= float(run.get("started_at") or 0) + 1.0)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return None


def _measured_rate(pushes: list[tuple[float, int]], now: float) -> float | None:
    """Messages per second of one run from ``(sent at, n)`` of its confirmed batches, oldest first.

    The pacer sends batch ``k`` no earlier than ``t1 + (n1 + ... + n(k-1)) / rate``, so the messages
    *before* the last batch over the time up to it never read above the limit (one batch over the
    first second is not a rate); the messages of all batches over the time up to now is lower when
    the run stalls (429s, back-off), and the smaller of the two is reported."""
    if len(pushes) < 2:
        return None
    t1, tk = pushes[0][0], pushes[-1][0]
    if tk <= t1:
        return None
    paced = sum(n for _, n in pushes[:-1]) / (tk - t1)
    overall = sum(n for _, n in pushes) / (now - t1) if now > t1 else paced
    return min(paced, overall)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(plan_path: str | Path, ledger_path: str | Path | None) -> tuple[ReplayPlan, Ledger]:
    plan = ReplayPlan.load(plan_path)
    lpath = Path(ledger_path) if ledger_path else default_ledger_path(plan_path)
    return plan, Ledger.open(lpath, create=False)


def replay_status(plan_path: str | Path, *, ledger_path: str | Path | None = None) -> ReplayStatus:
    """The state of a replay from its ledger (works while a run is going on)."""
    plan, ledger = _open(plan_path, ledger_path)
    try:
        counts = ledger.counts()
        totals = ledger.totals()
        events = ledger.event_counts()
        now = time.time()
        runs = ledger.runs()
        completed = ledger.get_meta("completed_at") is not None
        last = runs[-1] if runs else None
        running = False
        crashed = False
        for r in runs:
            if r["ended_at"] is not None:
                continue
            alive = _pid_alive(r)
            if alive is None:
                alive = now - float(r["heartbeat_at"] or 0) < STALE_AFTER_S
            running = running or alive
            crashed = crashed or not alive
        remaining = totals["messages"] - counts["settled"]
        run_rate = float(last["rate"]) if last and last.get("rate") else None
        events_log = ledger.events()  # read once: the rate and the blocked reason both use it
        rate = None
        if last is not None:
            since = max(float(last["started_at"] or 0), now - RATE_WINDOW_S)
            sent_at: dict[Any, float] = {}
            pushes: list[tuple[float, int]] = []
            for e in events_log:
                if e["run_id"] != last["run_id"] or float(e["ts"]) < since:
                    continue
                if e["kind"] == "push_sent":
                    sent_at[e["batch"]] = float(e["ts"])  # the last attempt is the one confirmed
                elif e["kind"] == "push_confirmed":
                    pushes.append((sent_at.get(e["batch"], float(e["ts"])), int(e["n"] or 0)))
            end = now if running else (float(last["heartbeat_at"] or now))
            rate = _measured_rate(pushes, end)
        blocked: str | None = None
        eta: float | None = None
        if completed or not remaining:
            state, eta = "completed" if completed else "not running", 0.0
        elif running:
            state = "running"
            to_push = remaining - counts["pushed"]
            pace = rate or run_rate or plan.rate
            eta = (to_push if to_push > 0 else 0) / pace if pace else None
        elif crashed:
            state = "crashed"
        elif last is not None and last.get("outcome") == "incomplete":
            state = "blocked"
            detail = next(
                (str(e["detail"]) for e in reversed(events_log) if e["kind"] == "removal_blocked"), ""
            )
            blocked = (
                f"{totals['still_in_dlq'] or counts['pushed']} messages are pushed but the removal of their "
                "originals from the DLQ is not confirmed"
                + (f" ({detail})" if detail else "")
                + "; this plan cannot finish on its own: see the note of `replay run` and "
                "runbooks/replay-failed-jobs.md (exit status 4), then run it again"
            )
        elif last is not None:
            state = "stopped"
        else:
            state = "not started"
        return ReplayStatus(
            plan_id=plan.plan_id,
            source_queue=plan.source_queue,
            target_queue=plan.target_queue,
            ledger=str(ledger.path),
            total=totals["messages"],
            counts=counts,
            possible_duplicates=totals["possible_duplicates"],
            still_in_dlq=totals["still_in_dlq"],
            copies_sent=totals["push_attempts"],
            ambiguous_batches=events.get("push_ambiguous", 0),
            rate_limited=events.get("rate_limited", 0),
            server_errors=events.get("push_ambiguous", 0) + events.get("server_error", 0),
            rate_msgs_per_s=round(rate or 0.0, 2),
            eta_s=None if eta is None else round(eta, 1),
            running=running,
            completed=completed,
            cancel_requested=ledger.cancel_requested(),
            runs=runs,
            last_errors=ledger.last_errors(),
            state=state,
            blocked=blocked,
            rate_limit_msgs_per_s=run_rate,
            last_heartbeat_at=float(last["heartbeat_at"]) if last and last["heartbeat_at"] else None,
            plan_path=str(plan_path),
            capped=_capped_text(ledger, plan.target_queue),
        )
    finally:
        ledger.close()


def _capped_text(ledger: Ledger, target: str) -> str | None:
    capped = ledger.capped_batches()
    if not capped:
        return None
    ids = [i for b in capped.values() for i in b]
    return (
        f"{len(ids)} messages (batch {', '.join(map(str, capped))}) got no answer to their last pushes; up "
        f"to {ledger.copies(ids)} copies of them may be on {target!r} (same idempotency keys): check that "
        "queue's backlog and its consumer's dedupe, then `replay run PLAN --resend-ambiguous`"
    )


def cancel_replay(plan_path: str | Path, *, ledger_path: str | Path | None = None) -> ReplayStatus:
    """Ask a running replay to stop after its in-flight batch (a flag in the ledger, polled by the run).

    Returns the status as it was when the flag was set (``running`` says whether a run was going on).
    """
    before = replay_status(plan_path, ledger_path=ledger_path)
    _, ledger = _open(plan_path, ledger_path)
    try:
        u = who()
        ledger.request_cancel(f"{u['user']}@{u['host']}")
        ledger.event(None, "cancel_requested", detail=f"{u['user']}@{u['host']}")
    finally:
        ledger.close()
    before.cancel_requested = True
    return before


EXPORT_COLUMNS = (
    "plan_id",
    "plan_hash",
    "source_queue",
    "target_queue",
    "message_id",
    "replay_id",
    "job_type",
    "job_id",
    "cluster_id",
    "batch",
    "state",
    "possible_duplicate",
    "ambiguous_reason",
    "push_attempts",
    "pushed_at",
    "settled_at",
    "removal",
    "still_in_dlq",
    "last_error",
)


def export_replay(plan_path: str | Path, fmt: str = "json", *, ledger_path: str | Path | None = None) -> str:
    """The plan and ledger as postmortem evidence: who ran it, when, which plan, per-message outcome.

    ``json`` holds the plan header, every run (user, host, pid, times, outcome), every event and
    one row per message; ``csv`` holds one row per message (plan id and hash on every row).
    """
    if fmt not in ("json", "csv"):
        raise ConfigError(f"unknown export format {fmt!r}", hint="use --format csv or --format json")
    plan, ledger = _open(plan_path, ledger_path)
    try:
        by_id = {m.message_id: m for m in plan.messages}
        rows = []
        for r in ledger.rows():
            m = by_id.get(r["message_id"])
            rows.append(
                {
                    "plan_id": plan.plan_id,
                    "plan_hash": plan.content_hash,
                    "source_queue": plan.source_queue,
                    "target_queue": plan.target_queue,
                    "message_id": r["message_id"],
                    "replay_id": r["replay_id"],
                    "job_type": m.job_type if m else None,
                    "job_id": m.job_id if m else None,
                    "cluster_id": m.cluster_id if m else None,
                    "batch": r["batch"],
                    "state": r["state"],
                    "possible_duplicate": bool(r["possible_duplicate"]),
                    "ambiguous_reason": r["ambiguous_reason"],
                    "push_attempts": r["push_attempts"],
                    "pushed_at": _iso(r["pushed_at"]) if r["pushed_at"] else None,
                    "settled_at": _iso(r["settled_at"]) if r["settled_at"] else None,
                    "removal": r["removal"],
                    "still_in_dlq": bool(r["still_in_dlq"]),
                    "last_error": r["last_error"],
                }
            )
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return buf.getvalue()
        totals = ledger.totals()
        runs = ledger.runs()
        for run in runs:
            for key in ("started_at", "heartbeat_at", "ended_at"):
                run[key] = _iso(run[key]) if run[key] else None
        events = ledger.events()
        for ev in events:
            ev["ts"] = _iso(ev["ts"])
        doc = {
            "format": "edgeinvestigate.replay-export/1",
            "plan": {
                "plan_id": plan.plan_id,
                "content_hash": plan.content_hash,
                "path": str(Path(plan_path).resolve()),
                "created_at": plan.created_at,
                "created_by": plan.created_by,
                "bundle": plan.bundle,
                "source_queue": plan.source_queue,
                "target_queue": plan.target_queue,
                "selection": plan.selection,
                "excluded": [e.model_dump() for e in plan.excluded],
                "estimates": plan.estimates.model_dump(),
            },
            "ledger": {
                "path": str(ledger.path),
                "meta": ledger.meta(),
                "counts": ledger.counts(),
                # copies_sent: push requests that may have put a copy on the target (>= messages pushed)
                "totals": {**totals, "copies_sent": totals["push_attempts"]},
            },
            "runs": runs,
            "events": events,
            "messages": rows,
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    finally:
        ledger.close()
