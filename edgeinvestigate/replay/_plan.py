"""The replay plan: which DLQ messages go back, rewritten how, in which batches; a reviewed file.

A :class:`ReplayPlan` is made by :func:`~edgeinvestigate.replay.plan_replay` (see :mod:`._planner`)
and written as JSON with a content hash; the runner refuses a file whose hash no longer matches, so
what was reviewed is what is sent. :meth:`ReplayPlan.summary` is the text shown for review.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from edgeinvestigate.errors import ConfigError, ReplayError, ReplayRefusedError
from edgeinvestigate.models.credentials import CredentialMasker
from edgeinvestigate.replay._rewrite import canonical_bytes, canonical_json, sha256_hex

__all__ = [
    "DEFAULT_MAX_REQUESTS_PER_5MIN",
    "DEFAULT_RATE",
    "PLAN_FORMAT",
    "Batch",
    "Estimates",
    "Excluded",
    "PlanMessage",
    "ReplayPlan",
    "estimate_duration",
    "who",
]

PLAN_FORMAT = "edgeinvestigate.replay-plan/1"
DEFAULT_RATE = 100.0
DEFAULT_MAX_REQUESTS_PER_5MIN = 1200
RUNBOOK = "see runbooks/replay-failed-jobs.md"
#: how many messages of the DLQ's head one peek shows (the runner removes lease-less originals by peek)
PEEK_WINDOW = 100

#: why a selected message is not replayed
REASONS: dict[str, str] = {
    "already_replayed": "already replayed: the body carries metadata.replay (a replay that failed again), "
    "or the ledger of an earlier plan shows it pushed",
    "unsupported_content_type": "v8/bytes bodies cannot be pushed over the REST API",
    "decode_error": "the body could not be decoded",
    "not_a_job": "the body is not a QueueMessage {type, payload, metadata} nor an {original, error} envelope",
    "patch_error": "the patch failed on this message",
    "oversize": "the rewritten body is larger than the 128 KB message limit",
    "duplicate": "the same message id appears twice in the bundle (kept the first)",
    "not_found": "an --id that is not in the DLQ of the bundle",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class PlanMessage(_Model):
    """One message to replay: the original id, its idempotency key and the exact body to push."""

    message_id: str
    replay_id: str
    batch: int
    job_type: str | None = None
    job_id: str | None = None
    cluster_id: str | None = None
    enqueued_at: str | None = None
    lease_id: str | None = None
    shape: str = "raw"
    size: int
    patched: bool = False
    changes: list[dict[str, Any]] = []
    body: dict[str, Any]


class Excluded(_Model):
    message_id: str
    reason: str
    detail: str = ""
    job_type: str | None = None
    cluster_id: str | None = None


class Batch(_Model):
    index: int
    message_ids: list[str]
    bytes: int


class Estimates(_Model):
    messages: int
    batches: int
    push_requests: int
    removal_requests: int
    requests: int
    bytes: int
    rate: float
    max_requests_per_5min: int
    duration_s: float


class ReplayPlan(_Model):
    """A reviewed replay: the JSON file ``replay plan`` writes and ``replay run`` executes."""

    format: Literal["edgeinvestigate.replay-plan/1"] = "edgeinvestigate.replay-plan/1"
    plan_id: str
    created_at: str
    created_by: dict[str, str]
    bundle: str | None = None
    source_queue: str
    target_queue: str
    allow_queues: list[str]
    selection: dict[str, Any]
    rate: float
    max_requests_per_5min: int
    messages: list[PlanMessage]
    batches: list[Batch]
    excluded: list[Excluded]
    by_cluster: dict[str, int]
    by_type: dict[str, int]
    not_selected: int
    estimates: Estimates
    #: what the reviewer must know (a partial view of the DLQ, messages replayed by earlier plans...)
    warnings: list[str] = []
    #: how much of the DLQ the bundle saw: {queue, mode, messages, backlog_count, complete}
    dlq_coverage: dict[str, Any] | None = None
    #: the bundle's DLQ frame file the messages come from: {file, sha256, queue} (see ._provenance)
    dlq_source: dict[str, str] | None = None
    #: the triage of each cluster of the plan: transient / permanent / unknown
    cluster_kinds: dict[str, str] = {}
    content_hash: str = ""
    #: warnings for the review, known only when the plan is made from the bundle (not in the file)
    _review_warnings: list[str] = PrivateAttr(default_factory=list)
    #: why the messages carry no cluster id (shown under "by cluster" when none has one)
    _cluster_note: str = PrivateAttr(default="")

    # -- hashing and files -------------------------------------------------------------------------
    def _data(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"content_hash"})
        # fields added later are left out while empty, so older plan files keep their hash
        for key in _OPTIONAL_FIELDS:
            if not data.get(key):
                data.pop(key, None)
        return data

    def compute_hash(self) -> str:
        return sha256_hex(canonical_bytes(self._data()))

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the plan as JSON with its content hash; refuses to overwrite unless asked."""
        import msgspec

        p = Path(path)
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists already", hint="choose another --out, or delete the old plan")
        data = self._data()
        self.content_hash = sha256_hex(canonical_bytes(data))
        data["content_hash"] = self.content_hash
        tmp = p.with_name(p.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(msgspec.json.format(msgspec.json.encode(data), indent=1))
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> ReplayPlan:
        """Read a plan file; with ``verify`` (the default) refuse one whose content hash does not match."""
        import msgspec

        p = Path(path)
        try:
            raw = msgspec.json.decode(p.read_bytes())
        except OSError as exc:
            raise ReplayError(f"cannot read the plan {p}: {exc.strerror}", hint="check the path") from exc
        except msgspec.DecodeError as exc:
            raise ReplayRefusedError(
                f"{p} is not valid JSON ({exc}); was it edited by hand?",
                hint="make a new plan with: edgeinvestigate replay plan ... --out plan.json",
            ) from exc
        if not isinstance(raw, dict) or raw.get("format") != PLAN_FORMAT:
            raise ReplayRefusedError(
                f"{p} is not an edgeinvestigate replay plan (format {PLAN_FORMAT!r} expected)",
                hint="make a plan with: edgeinvestigate replay plan",
            )
        stated = raw.pop("content_hash", "")
        if verify:
            actual = sha256_hex(canonical_bytes(raw))
            if actual != stated:
                raise ReplayRefusedError(
                    f"{p} was changed after it was made: its content hash is {actual[:16]}..., the file says "
                    f"{str(stated)[:16]}...; a tampered plan is never run",
                    hint="make a new plan with: edgeinvestigate replay plan ... --out plan.json",
                )
        try:
            plan = cls.model_validate(raw)
        except ValidationError as exc:
            raise ReplayRefusedError(f"{p} is not a valid replay plan: {exc}", hint=RUNBOOK) from exc
        plan.content_hash = str(stated)
        return plan

    # -- review ------------------------------------------------------------------------------------
    def message(self, message_id: str) -> PlanMessage:
        for m in self.messages:
            if m.message_id == message_id:
                return m
        raise KeyError(message_id)

    def summary(
        self,
        *,
        samples: int = 3,
        diffs: int = 10,
        rate: float | None = None,
        max_requests_per_5min: int | None = None,
        mask: bool = True,
    ) -> str:
        """The text shown for review before a plan is written or run.

        ``rate`` / ``max_requests_per_5min``: the limits of the run about to start, when they differ
        from the plan's (``replay run --rate``): the estimate is then made for them. ``mask``: the
        credentials in the text (payloads, patch diffs) are masked (the plan file keeps the exact
        bodies); see :mod:`edgeinvestigate.models.credentials`.
        """
        est = self.estimates
        eff_rate = float(rate) if rate else est.rate
        eff_budget = int(max_requests_per_5min) if max_requests_per_5min else est.max_requests_per_5min
        duration = est.duration_s
        of_run = ""
        if (eff_rate, eff_budget) != (est.rate, est.max_requests_per_5min):
            duration = estimate_duration(est.messages, est.requests, eff_rate, eff_budget)
            of_run = f" (this run's limits; the plan was made for {est.rate:g} msg/s)"
        lines = [
            f"replay plan {self.plan_id}: {len(self.messages)} messages from {self.source_queue!r} "
            f"to {self.target_queue!r} in {len(self.batches)} batches",
            f"  selection: {canonical_json({k: v for k, v in self.selection.items() if v})}",
            f"  not selected (stay in the DLQ): {self.not_selected}; excluded: {len(self.excluded)}",
            f"  estimate: {est.requests} API requests ({est.push_requests} pushes + {est.removal_requests} "
            f"DLQ removals), {_fmt_duration(duration)} at {eff_rate:g} msg/s and "
            f"{eff_budget} requests/5 min{of_run}",
            "",
            "by cluster (messages, triage"
            + (", what the patch changes):" if self.selection.get("patch") else "):"),
        ]
        shown = [*self.warnings, *(w for w in self._review_warnings if w not in self.warnings)]
        if shown:
            lines[4:4] = [f"  WARNING: {w}" for w in shown]
        lines += self._cluster_lines()
        if self.messages and set(self.by_cluster) == {"(none)"} and self._cluster_note:
            lines.append(f"  ({self._cluster_note})")
        lines.append("by job type:")
        lines += [f"  {k:<40} {v:>8}" for k, v in sorted(self.by_type.items(), key=lambda kv: -kv[1])]
        if self.excluded:
            lines.append("excluded (not replayed):")
            reasons = Counter(e.reason for e in self.excluded)
            for reason, n in reasons.most_common():
                ids = [e.message_id for e in self.excluded if e.reason == reason][:3]
                more = ", ..." if n > 3 else ""
                lines.append(
                    f"  {reason:<26} {n:>6}  {REASONS.get(reason, '')} (e.g. {', '.join(ids)}{more})"
                )
                if reason == "patch_error":  # what went wrong, not only where
                    for e in [e for e in self.excluded if e.reason == reason][:3]:
                        lines.append(f"    {e.message_id}: {e.detail}")
        if self.messages and samples:
            lines.append("sample payloads (exactly as they will be pushed):")
            for m in self.messages[:samples]:
                payload = json.dumps(m.body.get("payload"), ensure_ascii=False)
                if len(payload) > 300:
                    payload = payload[:300] + "..."
                lines.append(f"  {m.message_id}  {m.body.get('type')}  payload {payload}")
            meta = json.dumps(self.messages[0].body.get("metadata"), ensure_ascii=False)
            lines.append(f"  metadata of the first: {meta}")
        patched = [m for m in self.messages if m.changes]
        if patched:
            lines.append(f"patch changes ({len(patched)} messages changed):")
            for m in patched[:diffs]:
                for ch in m.changes:
                    before = canonical_json(ch["before"]) if "before" in ch else "(absent)"
                    after = canonical_json(ch["after"]) if "after" in ch else "(removed)"
                    lines.append(f"  {m.message_id} {ch['path']}: {before} -> {after}")
            if len(patched) > diffs:
                lines.append(f"  ... and {len(patched) - diffs} more (see the plan file)")
        text = "\n".join(lines)
        return CredentialMasker().text(text) if mask else text

    def _cluster_lines(self) -> list[str]:
        """One line per cluster: messages, triage (transient / permanent) and, with a patch, how many
        of its messages the patch changes."""
        patched = Counter(m.cluster_id or "(none)" for m in self.messages if m.patched)
        has_patch = bool(self.selection.get("patch"))
        lines = []
        for k, v in sorted(self.by_cluster.items(), key=lambda kv: -kv[1]):
            kind = self.cluster_kinds.get(k, "-" if k == "(none)" else "unknown")
            line = f"  {k:<40} {v:>8}  {kind:<9}"
            if has_patch:
                n = patched.get(k, 0)
                line += f"  patch changes {'all' if n == v else n}" if n else "  unchanged by the patch"
            lines.append(line.rstrip())
        return lines


_OPTIONAL_FIELDS = ("warnings", "dlq_coverage", "dlq_source", "cluster_kinds")


def permanent_unpatched(messages: list[PlanMessage], kinds: dict[str, str], *, patch: bool) -> str | None:
    """The warning about messages of permanent clusters a patch leaves as they were (None: none)."""
    if not patch:
        return None
    left = Counter(m.cluster_id for m in messages if m.cluster_id and kinds.get(m.cluster_id) == "permanent"
                   and not m.patched)  # fmt: skip
    if not left:
        return None
    total = Counter(m.cluster_id for m in messages)
    each = ", ".join(
        f"{cid} ({n} of its {total[cid]} messages)" if n < total[cid] else f"{cid} ({n} messages)"
        for cid, n in left.most_common()
    )
    return (
        f"the patch leaves {sum(left.values())} messages of permanent clusters as they were: {each}. A "
        "permanent error fails again when the same body is replayed, unless its cause was fixed outside "
        "the payload; leave those clusters out (--cluster, --where), or extend the patch to them"
    )


def estimate_duration(messages: int, requests: int, rate: float, max_requests_per_5min: int) -> float:
    """Seconds a run takes at ``rate`` messages/s within ``max_requests_per_5min`` requests/5 min."""
    if not messages:
        return 0.0
    return round(max(messages / rate, requests * 300.0 / max_requests_per_5min), 1)


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def who() -> dict[str, str]:
    """The user and host running a command (postmortem evidence)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return {"user": user, "host": socket.gethostname()}
