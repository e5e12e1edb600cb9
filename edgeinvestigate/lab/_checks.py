"""What a lab run must show, checked from the runtime's own telemetry and the collected DLQ.

Each check reads the files the run wrote (the TraceItem JSONL through ``edgeinvestigate.load``,
the evidence bundles, the replay plan and verification) and compares them with what the lab sent
(``summary.json``: every job id and its expected end). Nothing here trusts the lab's own progress
gauge: the checks re-read the evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from edgeinvestigate.lab._scenario import BAD, LabResult

__all__ = ["Check", "check_result", "job_events"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def job_events(logs: pd.DataFrame) -> pd.DataFrame:
    """The lab Workers' structured lines of a ``logs`` frame: one row per ``{"event": ...}`` object."""
    rows: list[dict[str, Any]] = []
    for ts, level, args in zip(logs["ts"], logs["level"], logs["args"], strict=True):
        if not isinstance(args, str):
            continue
        try:
            values = json.loads(args)
        except ValueError:
            continue
        for value in values if isinstance(values, list) else [values]:
            obj = value
            if isinstance(value, str) and value.startswith("{"):
                try:
                    obj = json.loads(value)
                except ValueError:
                    continue
            if isinstance(obj, dict) and "event" in obj:
                rows.append({"ts": ts, "level": level, **obj})
    return pd.DataFrame(rows)


def _dlq_jobs(dlq: pd.DataFrame) -> dict[str, str]:
    """job id -> envelope of each DLQ message (job ids read from the bodies)."""
    out: dict[str, str] = {}
    for job_id, envelope in zip(dlq["job_id"], dlq["envelope"], strict=True):
        if isinstance(job_id, str):
            out[job_id] = str(envelope)
    return out


def check_result(result: LabResult) -> list[Check]:
    """Every check of a run (a failed run reports why it did not get that far)."""
    from edgeinvestigate.evidence.bundle import Evidence, load

    s = result.summary
    checks: list[Check] = []

    def add(name: str, fn: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, detail = fn()
        except Exception as exc:  # a check that cannot run is a failed check, with the reason
            ok, detail = False, f"could not check: {type(exc).__name__}: {exc}"
        checks.append(Check(name, ok, detail))

    if not s.get("ok"):
        failed = [k for k, v in (s.get("steps") or {}).items() if "seconds" in v][-1:] or ["start"]
        error = s.get("error") or "see the log of the run"
        checks.append(Check("run", False, f"the run stopped during step {failed[0]!r}: {error}"))
        return checks

    jobs = s["jobs"]
    expected_dlq = set(jobs["expected_in_dlq"])
    trace = Path(result.out_dir) / "traceitems" / "traceitems.jsonl"
    ev = load([trace])
    events = job_events(ev.logs)
    bundle = Evidence.open(Path(result.out_dir) / "bundle")

    def loaders() -> tuple[bool, str]:
        inv = ev.invocations
        q = inv[inv["trigger"] == "queue"]
        crashed = q[(q["outcome"] == "ok") & (q["n_exceptions"] > 0)]
        ok = (
            bool(inv["script"].isna().all())
            and bool((inv["cpu_ms"].fillna(0) == 0).all())
            and len(crashed) > 0
            and bool(crashed["failed"].all())
        )
        return ok, (
            f"{len(inv)} invocations, script null in all, cpu/wall 0; {len(crashed)} queue invocations "
            "with outcome ok + exceptions, all marked failed"
        )

    def nothing_lost() -> tuple[bool, str]:
        sent = set(s["jobs"]["all"])
        ended_ok = (
            set(events.loc[events["event"] == "job_succeeded", "jobId"].dropna()) if len(events) else set()
        )
        in_dlq = set(_dlq_jobs(bundle.dlq))
        lost = sorted(sent - ended_ok - in_dlq)
        wrong_dlq = sorted(in_dlq ^ expected_dlq)
        ok = not lost and not wrong_dlq
        return ok, (
            f"{len(sent)} jobs sent: {len(ended_ok & sent)} succeeded, {len(in_dlq)} in the DLQ, "
            f"lost {lost[:5] or 'none'}, unexpected DLQ difference {wrong_dlq[:5] or 'none'}"
        )

    def envelopes() -> tuple[bool, str]:
        in_dlq = _dlq_jobs(bundle.dlq)
        want = s["jobs"]["expected_envelope"]
        bad = {j: (in_dlq.get(j), e) for j, e in want.items() if in_dlq.get(j) != e}
        counts = pd.Series(list(in_dlq.values())).value_counts().to_dict()
        return not bad, f"DLQ envelopes {counts}; mismatches {dict(list(bad.items())[:5]) or 'none'}"

    def top_finding() -> tuple[bool, str]:
        top = s["steps"]["analyze"]["top"]
        if top.get("analysis_error"):
            return False, f"the analysis failed: {top['analysis_error']}"
        clusters = top.get("clusters") or []
        ok = (
            top.get("kind") == "bad_deploy"
            and (top.get("deploy") or {}).get("version") == BAD.version
            and top.get("job_types") == ["EMAIL_DELIVERY"]
            and bool(clusters)
            and all("Cannot read properties of undefined" in c["template"] for c in clusters)
        )
        return (
            ok,
            f"top finding: [{top.get('kind')}] {top.get('title')} "
            f"(clusters {[c['template'] for c in clusters]})",
        )

    checks_run = [
        ("loaders read real workerd TraceItems", loaders),
        ("nothing lost", nothing_lost),
        ("DLQ envelopes", envelopes),
        ("bad deploy is the top finding", top_finding),
    ]
    for name, fn in checks_run:
        add(name, fn)

    if "report" in s["steps"]:

        def report() -> tuple[bool, str]:
            rec = s["steps"]["report"]
            html = Path(rec["report"])
            text = html.read_text(encoding="utf-8") if html.is_file() else ""
            ok = bool(rec.get("ok")) and "EMAIL_DELIVERY" in text
            return ok, f"{html} ({len(text)} bytes, {rec.get('figures')} figures, error: {rec.get('error')})"

        add("incident report written", report)

    if "report_after_replay" in s["steps"]:

        def report_after() -> tuple[bool, str]:
            rec = s["steps"]["report_after_replay"]
            html = Path(rec["report"])
            text = html.read_text(encoding="utf-8") if html.is_file() else ""
            plan_id = s["steps"]["replay"]["plan"]["plan_id"]
            ok = bool(rec.get("ok")) and plan_id in text and "completed" in text
            return ok, f"{html} (shows replay {plan_id} completed: {ok}; error: {rec.get('error')})"

        add("report after the replay", report_after)

    if "replay" in s["steps"]:
        replayed = set(s["steps"]["replay"]["replayed_jobs"])
        bad_deploy = {j for j in expected_dlq if j.startswith("incident-")}

        def replay_scope() -> tuple[bool, str]:
            return (
                replayed == bad_deploy,
                f"{len(replayed)} jobs replayed, {len(bad_deploy)} bad-deploy jobs in the DLQ",
            )

        def replay_succeeded() -> tuple[bool, str]:
            ok_ev = events[
                (events["event"] == "job_succeeded") & events.get("replayId", pd.Series(dtype=object)).notna()
            ]
            seen = set(ok_ev["jobId"]) & replayed
            return seen == replayed, f"{len(seen)} of {len(replayed)} replayed jobs succeeded in the runtime"

        def no_loops() -> tuple[bool, str]:
            verify = s["steps"]["verify"]["verify"]
            after = Evidence.open(Path(result.out_dir) / "bundle-after-replay")
            left = set(_dlq_jobs(after.dlq))
            back = verify["counts"]["back_in_dlq"]
            ok = back == 0 and not (left & replayed) and left == expected_dlq - replayed
            return ok, f"back in the DLQ: {back}; DLQ after replay holds {len(left)} (the jobs not replayed)"

        for name, fn in [
            ("replay selected the bad-deploy cluster", replay_scope),
            ("replayed jobs succeeded (TraceItems)", replay_succeeded),
            ("loop detection: none back in the DLQ", no_loops),
        ]:
            add(name, fn)
    return checks
