"""Making a replay plan: the selection (see :mod:`._selection`), each chosen message rewritten into
the body that will be pushed or excluded with the reason, the batches, the estimate of the run, and
the warnings for the reviewer. The result is a :class:`~._plan.ReplayPlan`; nothing is sent.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import ConfigError, ReplayError
from edgeinvestigate.models.credentials import mask_credentials
from edgeinvestigate.replay._patch import Patch, check_json, diff, load_patch
from edgeinvestigate.replay._plan import (
    DEFAULT_MAX_REQUESTS_PER_5MIN,
    DEFAULT_RATE,
    PEEK_WINDOW,
    RUNBOOK,
    Batch,
    Estimates,
    Excluded,
    PlanMessage,
    ReplayPlan,
    estimate_duration,
    permanent_unpatched,
    who,
)
from edgeinvestigate.replay._provenance import dlq_source
from edgeinvestigate.replay._registry import PriorReplays
from edgeinvestigate.replay._rewrite import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_OVERHEAD_BYTES,
    body_size,
    canonical_json,
    decode_body,
    idempotency_key,
    js_iso,
    replay_block,
    rewrite,
    sha256_hex,
    unwrap,
)
from edgeinvestigate.replay._selection import (
    Selection,
    dlq_coverage,
    dlq_frame_of,
    dlq_names,
    of_queue,
    select,
)
from edgeinvestigate.replay._targets import check_rate, check_target, runtime_allow_list

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cut_batches", "min_requests", "plan_replay"]


def plan_replay(
    ev: Any,
    from_queue: str,
    to_queue: str,
    *,
    clusters: Sequence[str] = (),
    types: Sequence[str] = (),
    since: Any = None,
    until: Any = None,
    ids: Sequence[str] = (),
    where: str | None = None,
    patch: str | Path | Patch | None = None,
    allow_queues: Sequence[str] = (),
    config: str | Path | None = None,
    rate: float = DEFAULT_RATE,
    max_requests_per_5min: int = DEFAULT_MAX_REQUESTS_PER_5MIN,
    bundle: str | None = None,
    now: str | None = None,
    near: str | Path | None = None,
) -> ReplayPlan:
    """Select, rewrite and batch the DLQ messages to replay; nothing is sent.

    ``ev`` is an :class:`~edgeinvestigate.evidence.bundle.Evidence`, a bundle directory, or a ``dlq``
    frame. The target must be in ``allow_queues`` or the ``[replay] allow_queues`` of ``config``;
    the DLQ itself is always refused (:class:`~edgeinvestigate.errors.ReplayRefusedError`).

    Messages that the ledger of an earlier plan shows as pushed AND removed from the DLQ are excluded
    as ``already_replayed``; those it pushed without confirming the removal of their originals (an
    exit-4 run) stay in the plan under the earlier plan's idempotency keys, so the second copy can be
    dropped by a consumer that dedupes, and ``replay run`` flags them as possible duplicates. The
    ledgers looked at are those registered in ``bundle`` by ``replay run`` and those next to ``near``
    (the path the plan will be saved to). When the bundle saw only part
    of the DLQ (a peek), the plan says so in its ``warnings``.
    """
    from edgeinvestigate._time import parse_time

    check_rate(rate, max_requests_per_5min)
    allow = runtime_allow_list(allow_queues, config)
    ev, bundle = _open(ev, bundle)
    frame = dlq_frame_of(ev)
    check_target(from_queue, to_queue, allow, dlq_names=dlq_names(frame) - {from_queue})
    frame = of_queue(frame, from_queue)

    t_since = parse_time(since, name="--since")
    t_until = parse_time(until, name="--until")
    patch_obj = load_patch(patch) if isinstance(patch, str | Path) else patch
    selection: dict[str, Any] = {
        "clusters": sorted(set(clusters)),
        "types": sorted(set(types)),
        "since": js_iso(t_since),
        "until": js_iso(t_until),
        "ids": sorted(set(ids)),
        "where": where,
        "patch": patch_obj.describe() if patch_obj else None,
    }
    digest = sha256_hex(canonical_json({"source": from_queue, "target": to_queue, "selection": selection}))
    sel = select(
        ev, frame, from_queue, clusters=clusters, types=types, since=t_since, until=t_until, ids=ids,
        where=where, bundle=bundle, near=near,
    )  # fmt: skip
    created_at = now or _now_iso()
    plan_id = sha256_hex(
        canonical_json({"selection": digest, "at": created_at, "ids": sorted(sel.chosen["message_id"])})
    )[:20]
    writer = _Rewriter(sel.prior, patch_obj, digest, plan_id, created_at)
    messages, excluded = writer.rewrite_all(sel)
    _refuse_all_excluded(from_queue, len(sel.chosen), messages, excluded)
    batches = cut_batches(messages)
    plan = ReplayPlan(
        plan_id=plan_id,
        created_at=created_at,
        created_by=who(),
        bundle=bundle,
        source_queue=from_queue,
        target_queue=to_queue,
        allow_queues=sorted(set(allow)),
        selection=selection,
        rate=float(rate),
        max_requests_per_5min=int(max_requests_per_5min),
        messages=messages,
        batches=batches,
        excluded=excluded,
        by_cluster=dict(Counter(m.cluster_id or "(none)" for m in messages)),
        by_type=dict(Counter(m.job_type or "(none)" for m in messages)),
        not_selected=sel.not_selected,
        estimates=_estimates(messages, batches, rate, max_requests_per_5min),
        dlq_source=dlq_source(bundle, from_queue, (m.message_id for m in messages)),
        cluster_kinds={
            c: k for c, k in sel.cluster_kinds.items() if any(m.cluster_id == c for m in messages)
        },
    )
    plan._cluster_note = sel.cluster_note
    _warn(plan, ev, sel)
    return plan


def _refuse_all_excluded(
    queue: str, chosen: int, messages: list[PlanMessage], excluded: list[Excluded]
) -> None:
    """A plan of no message is never written: it could only block the corrected command."""
    if messages:
        return
    reasons = Counter(e.reason for e in excluded)
    each = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    raise ConfigError(
        f"all {chosen} selected DLQ messages of {queue!r} are excluded ({each}); refusing to write an empty "
        "plan",
        hint="see the reasons in runbooks/replay-failed-jobs.md (section 2, Review): already_replayed "
        "messages were replayed by an earlier plan (edgeinvestigate replay status EARLIER_PLAN); change "
        "the selectors, or fix the patch",
    )


def _open(ev: Any, bundle: str | None) -> tuple[Any, str | None]:
    """Open a bundle directory; and the bundle a plan is made from (where earlier replays register)."""
    if isinstance(ev, str | Path) and Path(ev).is_dir():
        from edgeinvestigate.evidence.bundle import Evidence

        if bundle is None:
            bundle = str(Path(ev).resolve())
        ev = Evidence.open(ev)
    if bundle is None and isinstance(ev, str | Path):
        bundle = str(ev)
    elif bundle is None:
        manifest = getattr(ev, "manifest", None)
        if isinstance(manifest, dict) and manifest.get("path"):
            bundle = str(manifest["path"])
    if bundle and Path(bundle).exists():
        bundle = str(Path(bundle).resolve())  # `replay run` may start in another directory
    return ev, bundle


def _now_iso() -> str:
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass
class _Rewriter:
    """Turns each chosen DLQ row into the :class:`PlanMessage` to push, or an :class:`Excluded` saying
    why it is not replayed."""

    prior: PriorReplays
    patch: Patch | None
    #: the digest of the source, target and selection: the idempotency keys derive from it
    digest: str
    plan_id: str
    created_at: str
    #: messages the patch was applied to
    patch_tried: int = 0

    def rewrite_all(self, sel: Selection) -> tuple[list[PlanMessage], list[Excluded]]:
        """Every chosen message, in order; refuses a patch that failed on every message it was tried on."""
        import pandas as pd

        removed = self.prior.removed
        not_removed = self.prior.not_removed
        clusters_by_id = sel.clusters_by_index()
        messages: list[PlanMessage] = []
        excluded = list(sel.excluded)
        for idx, row in zip(sel.chosen.index, _records(sel.chosen), strict=True):
            cluster_id = clusters_by_id.get(idx)
            cluster_id = None if cluster_id is None or pd.isna(cluster_id) else str(cluster_id)
            out = self.message(row, cluster_id, removed, not_removed)
            if isinstance(out, PlanMessage):
                messages.append(out)
            else:
                excluded.append(out)
        failed = [e for e in excluded if e.reason == "patch_error"]
        if self.patch_tried and len(failed) == self.patch_tried:
            assert self.patch is not None
            raise ReplayError(
                f"the patch {self.patch.path} failed on every one of the {self.patch_tried} selected "
                f"messages; no plan written. First: {failed[0].message_id}: "
                + mask_credentials(failed[0].detail),
                hint="fix the patch (run it on one message first) or drop --patch",
            )
        return messages, excluded

    def message(
        self,
        row: Mapping[Any, Any],
        cluster_id: str | None,
        removed: Mapping[str, Any],
        not_removed: Mapping[str, Any],
    ) -> PlanMessage | Excluded:
        mid = str(row["message_id"])
        ctype = _val(row, "content_type")
        job_type = _val(row, "job_type")
        common = {"message_id": mid, "job_type": job_type, "cluster_id": cluster_id}
        if mid in removed:
            return Excluded(**common, reason="already_replayed", detail=self.prior.describe(mid))
        if ctype in ("v8", "bytes"):
            return Excluded(**common, reason="unsupported_content_type", detail=f"content type {ctype}")
        found = _job(row, ctype)
        if isinstance(found, str):
            return Excluded(**common, reason="decode_error", detail=found)
        job, shape = found
        if job is None:
            return Excluded(**common, reason="not_a_job", detail=f"envelope {shape}")
        meta = job.get("metadata")
        if isinstance(meta, dict) and meta.get("replay"):
            of = meta["replay"].get("of") if isinstance(meta["replay"], dict) else None
            return Excluded(
                **common, reason="already_replayed", detail=f"replay of {of}" if of else "has metadata.replay"
            )
        changes: list[dict[str, Any]] = []
        if self.patch is not None:
            self.patch_tried += 1
            try:
                new_job = self.patch.apply(job)
                check_json(new_job, "the patch")  # a patch given as an object is checked here too
            except ReplayError as exc:
                return Excluded(**common, reason="patch_error", detail=exc.message)
            changes = diff(job, new_job)
            job = new_job
        # pushed by an earlier plan but its original not confirmed removed: replay it again (it may still
        # be in the DLQ) under the SAME idempotency key, so a consumer that dedupes drops the second copy
        earlier = not_removed.get(mid)
        replay_id = earlier.replay_id if earlier and earlier.replay_id else idempotency_key(mid, self.digest)
        new_body = rewrite(
            job,
            replay=replay_block(replay_id=replay_id, of=mid, plan=self.plan_id, at=self.created_at),
            original_timestamp=js_iso(_val(row, "original_timestamp")) or js_iso(_val(row, "enqueued_at")),
        )
        size = body_size(new_body)
        if size + MESSAGE_OVERHEAD_BYTES > MAX_MESSAGE_BYTES:
            return Excluded(
                **common,
                reason="oversize",
                detail=f"{size} bytes + {MESSAGE_OVERHEAD_BYTES} metadata > {MAX_MESSAGE_BYTES}",
            )
        return PlanMessage(
            message_id=mid,
            replay_id=replay_id,
            batch=-1,
            job_type=str(new_body.get("type")) if new_body.get("type") is not None else job_type,
            job_id=_val(row, "job_id"),
            cluster_id=cluster_id,
            enqueued_at=js_iso(_val(row, "enqueued_at")),
            lease_id=_val(row, "lease_id"),
            shape=shape,
            size=size,
            patched=bool(changes),
            changes=changes,
            body=new_body,
        )


def _job(row: Mapping[Any, Any], ctype: str | None) -> tuple[dict[str, Any] | None, str] | str:
    """The job in a DLQ row and how it was stored (``(None, shape)``: not a job), or why the body
    could not be decoded: from the raw body when the snapshot has it, else from the frame's columns."""
    raw = _val(row, "body_raw")
    if raw is not None:
        body, err = decode_body(str(raw), ctype)
        if err:
            return err
        return unwrap(body)
    job = _job_from_columns(row)
    if job is None and _val(row, "decode_error"):
        return str(row["decode_error"])
    return job, str(_val(row, "envelope") or "raw")


def _estimates(
    messages: list[PlanMessage], batches: list[Batch], rate: float, max_requests_per_5min: int
) -> Estimates:
    leased: dict[int, bool] = {}
    for m in messages:
        leased[m.batch] = leased.get(m.batch, True) and m.lease_id is not None
    # with leases a batch is removed by one ack; without, by a peek and a purge
    n_removal = sum(1 if leased.get(b.index) else 2 for b in batches)
    push_requests = len(batches)
    requests = push_requests + n_removal
    duration = estimate_duration(len(messages), requests, rate, max_requests_per_5min)
    return Estimates(
        messages=len(messages),
        batches=len(batches),
        push_requests=push_requests,
        removal_requests=n_removal,
        requests=requests,
        bytes=sum(m.size for m in messages),
        rate=float(rate),
        max_requests_per_5min=int(max_requests_per_5min),
        duration_s=round(duration, 1),
    )


def _warn(plan: ReplayPlan, ev: Any, sel: Selection) -> None:
    """What the reviewer must know: unknown selectors, a partial view of the DLQ, messages of earlier
    plans, originals a peek will not reach."""
    queue = plan.source_queue
    if sel.unknown:
        plan.warnings.append(sel.unknown_warning)
    plan.dlq_coverage = dlq_coverage(ev, sel.frame, queue)
    cov = plan.dlq_coverage
    if cov is not None and not cov["complete"]:
        seen = cov["messages"]
        total = cov["backlog_count"]
        of_total = f"{seen} of the {total}" if total is not None else f"only {seen} of the"
        plan.warnings.append(
            f"the bundle saw {of_total} messages of the DLQ {queue!r} (collected by "
            f"{cov['mode']}, which reads at most {PEEK_WINDOW} from the head), so this plan covers only "
            f"those {seen}; the rest of the DLQ is neither selected nor counted in 'not selected'. For a "
            f"plan over the whole DLQ: edgeinvestigate collect --dlq {queue} --dlq-mode snapshot "
            "--dlq-keep-leases --out BUNDLE, and plan from that bundle"
        )
    plan.warnings.extend(_earlier_plans(sel.prior, {m.message_id for m in plan.messages}))
    unpatched = permanent_unpatched(
        plan.messages, plan.cluster_kinds, patch=bool(plan.selection.get("patch"))
    )
    if unpatched:
        plan.warnings.append(unpatched)
    if plan.dlq_source is None and plan.bundle:
        plan._review_warnings.append(
            f"the messages could not all be found in the DLQ frame file of {plan.bundle}: the plan records "
            "no hash of it, so `replay run` cannot check them against the bundle (it warns)"
        )
    hidden = _behind_the_peek(sel.frame, plan.messages)
    if hidden:
        plan._review_warnings.append(
            f"{hidden} selected messages have no lease id and lie behind {PEEK_WINDOW} or more messages "
            "that this plan does not replay (in the bundle's order, oldest first). Without a lease "
            f"`replay run` removes an original by peek + purge, and a peek sees only the first "
            f"{PEEK_WINDOW} messages of the DLQ: expect those originals to stay in the DLQ (pushed, "
            "exit status 4). To remove them by ack, collect with `edgeinvestigate collect --dlq "
            f"{queue} --dlq-mode snapshot --dlq-keep-leases` and plan from that bundle ({RUNBOOK})."
        )


def _earlier_plans(prior: PriorReplays, planned_ids: set[str]) -> list[str]:
    """Warnings about the selected messages that earlier plans replayed, pushed, or hold unsent."""
    warnings: list[str] = []
    removed = prior.removed
    if removed:
        per_plan = ", ".join(f"{n} by plan {pid} ({led})" for pid, led, n in prior.by_plan(removed))
        warnings.append(
            f"{len(removed)} selected messages were already replayed by earlier plans ({per_plan}) "
            "and removed from the DLQ; they are excluded as already_replayed (replaying them again "
            "would send each job twice)"
        )
    again = {mid: p for mid, p in prior.not_removed.items() if mid in planned_ids}
    if again:
        per_plan = ", ".join(f"{n} by plan {pid} ({led})" for pid, led, n in prior.by_plan(again))
        warnings.append(
            f"{len(again)} selected messages were pushed by earlier plans ({per_plan}) but the removal of "
            "their originals from the DLQ is not confirmed; this plan pushes them again under the SAME "
            "idempotency keys (metadata.replay.id), so a consumer that dedupes drops the second copy, and "
            "then removes the originals. If the earlier plan can still remove them, prefer resuming it "
            "(edgeinvestigate replay run EARLIER_PLAN)"
        )
    overlap = {mid: p for mid, p in prior.unconfirmed.items() if mid in planned_ids}
    if overlap:
        per_plan = ", ".join(f"{n} in plan {pid} ({led})" for pid, led, n in prior.by_plan(overlap))
        warnings.append(
            f"{len(overlap)} messages of this plan are also in earlier plans that have not confirmed "
            f"pushing them yet ({per_plan}); they stay in this plan (at-least-once), but if both plans "
            "run, those jobs are sent twice: finish the earlier plan first (edgeinvestigate replay run "
            "EARLIER_PLAN) and plan again, or never run the earlier plan again"
        )
    return warnings


def _val(row: Mapping[Any, Any], key: str) -> Any:
    v = row.get(key)
    if v is None or (isinstance(v, float) and v != v):  # None or NaN
        return None
    return v


def _job_from_columns(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """Rebuild the job from the frame's columns when the raw body is not in the snapshot."""
    job_type = _val(row, "job_type")
    payload = _val(row, "payload")
    if job_type is None or payload is None:
        return None
    try:
        payload_obj = json.loads(payload)
    except ValueError:
        return None
    meta: dict[str, Any] = {}
    if _val(row, "meta_attempts") is not None:
        meta["attempts"] = int(row["meta_attempts"])
    if js_iso(_val(row, "original_timestamp")):
        meta["originalTimestamp"] = js_iso(row["original_timestamp"])
    if js_iso(_val(row, "last_attempt")):
        meta["lastAttempt"] = js_iso(row["last_attempt"])
    return {"type": str(job_type), "payload": payload_obj, "metadata": meta}


_ROW_COLUMNS = (
    "message_id",
    "content_type",
    "job_type",
    "job_id",
    "payload",
    "meta_attempts",
    "original_timestamp",
    "last_attempt",
    "enqueued_at",
    "envelope",
    "body_raw",
    "decode_error",
    "lease_id",
)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts (via Arrow: much faster than ``to_dict`` on Arrow-backed columns)."""
    import pandas as pd
    import pyarrow as pa

    cols = [c for c in _ROW_COLUMNS if c in frame.columns]
    sub = frame[cols].copy()
    for c in cols:
        if isinstance(sub[c].dtype, pd.CategoricalDtype):
            sub[c] = sub[c].astype(object)
    rows: list[dict[str, Any]] = pa.Table.from_pandas(sub, preserve_index=False).to_pylist()
    return rows


def _behind_the_peek(frame: pd.DataFrame, messages: Sequence[PlanMessage]) -> int:
    """How many lease-less replayed messages have ``PEEK_WINDOW`` or more not-replayed messages in
    front of them in the DLQ (the bundle's order by enqueue time): a peek cannot reach them even after
    every replayed message in front of them is removed."""
    unleased = {m.message_id for m in messages if not m.lease_id}
    if len(frame) <= PEEK_WINDOW or not unleased:
        return 0
    replayed = {m.message_id for m in messages}
    order = frame
    if "enqueued_at" in frame.columns:
        order = frame.assign(_order=frame["enqueued_at"].astype(object)).sort_values(
            "_order", kind="stable", na_position="last"
        )
    others = hidden = 0
    for mid in order["message_id"].astype(str):
        if mid not in replayed:
            others += 1
        elif others >= PEEK_WINDOW and mid in unleased:
            hidden += 1
    return hidden


def cut_batches(messages: list[PlanMessage]) -> list[Batch]:
    """Greedy batches of at most 100 messages and 256 KB (bodies plus per-message overhead)."""
    batches: list[Batch] = []
    ids: list[str] = []
    size = 0
    for m in messages:
        cost = m.size + MESSAGE_OVERHEAD_BYTES
        if ids and (len(ids) >= MAX_BATCH_MESSAGES or size + cost > MAX_BATCH_BYTES):
            batches.append(Batch(index=len(batches), message_ids=ids, bytes=size))
            ids, size = [], 0
        m.batch = len(batches)
        ids.append(m.message_id)
        size += cost
    if ids:
        batches.append(Batch(index=len(batches), message_ids=ids, bytes=size))
    return batches


def min_requests(n_messages: int) -> int:
    """The fewest push requests ``n_messages`` can take (100 per batch)."""
    return math.ceil(n_messages / MAX_BATCH_MESSAGES)
