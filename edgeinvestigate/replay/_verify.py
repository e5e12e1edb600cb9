"""``replay verify``: after a later collection, what became of the replayed jobs.

Three answers per replayed job, from a second evidence bundle:

- **back in the DLQ**: a DLQ message whose ``metadata.replay.of`` (or ``.id``) is one of this plan's
  messages: the replay failed again (loop detection; such messages are excluded from new plans);
- **succeeded**: a structured log line after the plan was made, for the job id or carrying the
  replay id, that is not an error;
- **not seen yet**: neither (the consumer has not run it yet, or logs were sampled or not collected).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeinvestigate.replay._plan import ReplayPlan
from edgeinvestigate.replay._rewrite import decode_body, unwrap

__all__ = ["VerifyReport", "verify_replay"]

_FAIL_WORDS = re.compile(r"\b(fail|failed|failure|error|exception|retry|retrying|dead.?letter)\b", re.I)
_OK_WORDS = re.compile(r"\b(done|completed?|succeeded|success|processed|ok|acked|finished|delivered)\b", re.I)


@dataclass
class VerifyReport:
    plan_id: str
    total: int
    back_in_dlq: list[dict[str, Any]] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    not_seen: list[str] = field(default_factory=list)
    originals_still_in_dlq: list[str] = field(default_factory=list)
    #: what limits the answers (a partial view of the DLQ...)
    warnings: list[str] = field(default_factory=list)
    #: messages of the plan that its ledger shows as never pushed (not verified)
    not_replayed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts()
        return d

    def counts(self) -> dict[str, int]:
        return {
            "replayed": self.total,
            "back_in_dlq": len({b["of"] for b in self.back_in_dlq}),
            "succeeded": len(self.succeeded),
            "failing_in_logs": len(self.failing),
            "not_seen": len(self.not_seen),
            "originals_still_in_dlq": len(self.originals_still_in_dlq),
            "not_replayed": len(self.not_replayed),
        }

    def render(self) -> str:
        c = self.counts()
        lines = [
            f"replay {self.plan_id}: {c['replayed']} jobs replayed",
            f"  back in the DLQ (failed again): {c['back_in_dlq']}",
            f"  seen succeeding in logs:        {c['succeeded']}",
            f"  seen failing in logs:           {c['failing_in_logs']}",
            f"  not seen yet:                   {c['not_seen']}",
        ]
        if self.not_replayed:
            lines.append(
                f"  not replayed (never pushed):    {c['not_replayed']} (the plan did not finish: "
                "edgeinvestigate replay status PLAN)"
            )
        if self.originals_still_in_dlq:
            lines.append(
                f"  originals still in the DLQ:     {c['originals_still_in_dlq']} (run the plan again)"
            )
        lines += [f"  WARNING: {w}" for w in self.warnings]
        for b in self.back_in_dlq[:10]:
            lines.append(
                f"  loop: {b['of']} came back as {b['message_id']} ({b.get('error') or 'no error text'})"
            )
        return "\n".join(lines)


def _frames(ev: Any) -> tuple[Any, Any]:
    if isinstance(ev, str | Path):
        from edgeinvestigate.evidence.bundle import Evidence

        ev = Evidence.open(ev)
    return getattr(ev, "dlq", None), getattr(ev, "logs", None)


def _replay_block(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    raw = row.get("body_raw")
    if raw is None or (isinstance(raw, float)):
        return None
    body, err = decode_body(
        str(raw), row.get("content_type") if isinstance(row.get("content_type"), str) else None
    )
    if err:
        return None
    job, _ = unwrap(body)
    if job is None:
        return None
    meta = job.get("metadata")
    block = meta.get("replay") if isinstance(meta, dict) else None
    return block if isinstance(block, dict) else None


def _pushed(
    plan: ReplayPlan, plan_path: str | Path | ReplayPlan, ledger_path: str | Path | None
) -> set[str] | None:
    """The message ids the plan's ledger shows as (possibly) pushed; None when there is no ledger to
    ask (a plan object without ``ledger_path``). Raises when the plan has not pushed anything."""
    from edgeinvestigate.errors import ReplayError
    from edgeinvestigate.replay._ledger import Ledger, default_ledger_path

    if ledger_path is None:
        if isinstance(plan_path, ReplayPlan):
            return None
        ledger_path = default_ledger_path(plan_path)
    lpath = Path(ledger_path)
    never = (
        f"plan {plan.plan_id} has not run: nothing to verify ({len(plan.messages)} messages planned, "
        "0 replayed"
    )
    hint = "run it first: edgeinvestigate replay run PLAN (or point --ledger at its ledger)"
    if not lpath.exists():
        raise ReplayError(f"{never}; no ledger at {lpath})", hint=hint)
    with Ledger.open(lpath, create=False) as led:
        states = led.states()
    pushed = {mid for mid, st in states.items() if st in ("pushed", "settled", "ambiguous", "pushing")}
    if not pushed:
        raise ReplayError(f"{never}; its ledger {lpath} shows no push)", hint=hint)
    return pushed


def verify_replay(
    plan_path: str | Path | ReplayPlan, ev2: Any, *, ledger_path: str | Path | None = None
) -> VerifyReport:
    """Compare a plan (its file, or the plan already loaded) with a later bundle (an Evidence or a
    bundle directory).

    Only the messages the plan's ledger (next to the plan file, or ``ledger_path``) shows as pushed
    are verified; the others are listed as ``not_replayed``. A plan that has not pushed anything is
    refused (``ReplayError``). A plan object without ``ledger_path`` is verified as a whole.
    """
    import pandas as pd

    plan = plan_path if isinstance(plan_path, ReplayPlan) else ReplayPlan.load(plan_path)
    pushed = _pushed(plan, plan_path, ledger_path)
    if pushed is not None:
        never = [m.message_id for m in plan.messages if m.message_id not in pushed]
        plan = plan.model_copy(update={"messages": [m for m in plan.messages if m.message_id in pushed]})
    if isinstance(ev2, str | Path):
        from edgeinvestigate.evidence.bundle import Evidence

        ev2 = Evidence.open(ev2)
    dlq, logs = _frames(ev2)
    report = VerifyReport(plan_id=plan.plan_id, total=len(plan.messages))
    if pushed is not None:
        report.not_replayed = never
    ours = {m.message_id for m in plan.messages}
    by_replay_id = {m.replay_id: m.message_id for m in plan.messages}
    back: set[str] = set()
    if isinstance(dlq, pd.DataFrame) and len(dlq):
        for row in dlq.to_dict("records"):
            mid = str(row.get("message_id"))
            if mid in ours and row.get("queue") in (None, plan.source_queue):
                report.originals_still_in_dlq.append(mid)
                continue
            block = _replay_block(row)
            if not block:
                continue
            of = block.get("of") if block.get("of") in ours else by_replay_id.get(str(block.get("id")))
            if of is None:
                continue
            back.add(str(of))
            err = row.get("error")
            report.back_in_dlq.append(
                {
                    "of": str(of),
                    "message_id": mid,
                    "replay_id": block.get("id"),
                    "error": None if err is None or (isinstance(err, float)) else str(err),
                }
            )

    ok: set[str] = set()
    bad: set[str] = set()
    if isinstance(logs, pd.DataFrame) and len(logs):
        since = pd.Timestamp(plan.created_at)
        frame = logs[pd.to_datetime(logs["ts"].astype(object), utc=True) >= since]
        by_job: dict[str, list[str]] = {}
        for m in plan.messages:
            if m.job_id:
                by_job.setdefault(str(m.job_id), []).append(m.message_id)
        for row in frame.to_dict("records"):
            text = " ".join(str(row.get(k) or "") for k in ("message", "args"))
            targets: list[str] = []
            job_id = row.get("job_id")
            if isinstance(job_id, str) and job_id in by_job:
                targets += by_job[job_id]
            if "rpl_" in text:
                targets += [
                    by_replay_id[r] for r in re.findall(r"rpl_[0-9a-f]{32}", text) if r in by_replay_id
                ]
            if not targets:
                continue
            failed = str(row.get("level") or "") in ("error", "warn") or _is_failure(row.get("args"), text)
            (bad if failed else ok).update(targets)
    for m in plan.messages:
        mid = m.message_id
        if mid in back:
            continue
        if mid in ok:
            report.succeeded.append(mid)
        elif mid in bad:
            report.failing.append(mid)
        else:
            report.not_seen.append(mid)
    report.warnings.extend(_partial_view(ev2, dlq, plan.source_queue, len(report.not_seen)))
    return report


def _partial_view(ev: Any, dlq: Any, queue: str, not_seen: int) -> list[str]:
    """A warning when the later bundle saw only part of the DLQ (a peek reads at most 100 from the head)."""
    from edgeinvestigate.replay._selection import dlq_coverage

    frame = dlq if dlq is not None else ev
    cov = dlq_coverage(ev, frame, queue)
    if cov is None or cov["complete"]:
        return []
    total = cov["backlog_count"]
    of_total = f"{cov['messages']} of the {total}" if total is not None else f"only {cov['messages']} of the"
    return [
        f"the bundle saw {of_total} messages of the DLQ {queue!r} (collected by {cov['mode']}, which "
        "reads at most 100 from the head): a replayed job that failed again may be in the part it did not "
        f"see, so 'back in the DLQ' may be too low and 'not seen yet' ({not_seen}) may include jobs that "
        f"failed again. For a complete view: edgeinvestigate collect --dlq {queue} --dlq-mode snapshot "
        "--out BUNDLE2, then verify against that bundle"
    ]


def _is_failure(args: Any, text: str) -> bool:
    obj: Any = None
    if isinstance(args, str):
        try:
            obj = json.loads(args)
        except ValueError:
            obj = None
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        if isinstance(item, dict):
            if item.get("error"):
                return True
            event = str(item.get("event") or "")
            if event:
                return bool(_FAIL_WORDS.search(event)) and not _OK_WORDS.search(event)
    return bool(_FAIL_WORDS.search(text)) and not _OK_WORDS.search(text)
