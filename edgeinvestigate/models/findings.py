"""``Findings``: what :func:`edgeinvestigate.analyze` found, ranked, with the numbers behind it.

Everything here is a pydantic v2 model, so a whole investigation serialises to JSON for reports
(``findings.model_dump_json()``) and loads back (``Findings.model_validate_json(text)``). Times are
tz-aware UTC. Every hypothesis carries its evidence (numbers, clusters, time window) and one
plain-language sentence that can be pasted into the incident channel.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeinvestigate.models.queue_health import QueueHealth

__all__ = [
    "AttemptsBin",
    "BlastRadiusRow",
    "ClusterShift",
    "ClusterSummary",
    "Deploy",
    "DlqCluster",
    "DlqCoverage",
    "Findings",
    "Hypothesis",
    "Impact",
    "Incident",
    "IncidentTimeline",
    "LimitHit",
    "LimitStats",
    "RateRow",
    "RetryStorm",
    "TimeWindow",
    "TimelineRow",
]

Evidence = dict[str, float | int | str | list[str] | None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeWindow(_Model):
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M} UTC"


class Deploy(_Model):
    """A deployment marker: the first invocation of a new version, or a deployment given by the user.

    ``source`` says where the version came from: ``script_version`` (the invocations'
    ``script_version``), ``log_field`` (a ``deploy``/``version`` field of structured log lines) or
    ``given`` (``analyze(deployments=...)`` / ``analyze --deploy VERSION@TIME``).
    """

    script: str | None
    version: str
    previous_version: str | None
    at: datetime
    invocations_after: int = 0
    source: Literal["script_version", "log_field", "given"] = "script_version"


class TimelineRow(_Model):
    """Invocations per bucket, job type and runtime outcome; ``failed`` counts those that failed by
    the one definition of :mod:`edgeinvestigate.analysis.rca` (an ``ok`` outcome can still have failed:
    an error-level line or a caught exception)."""

    bucket: datetime
    job_type: str
    outcome: str
    invocations: int
    failed: int = 0


class RateRow(_Model):
    bucket: datetime
    job_type: str
    invocations: int
    failed: int
    failed_rate: float


class AttemptsBin(_Model):
    attempts: int
    deliveries: int


class LimitStats(_Model):
    cpu_limit_ms: float
    wall_limit_ms: float
    cpu_p50_ms: float | None = None
    cpu_p95_ms: float | None = None
    cpu_p99_ms: float | None = None
    cpu_max_ms: float | None = None
    wall_p50_ms: float | None = None
    wall_p95_ms: float | None = None
    wall_p99_ms: float | None = None
    wall_max_ms: float | None = None
    exceeded_cpu: int = 0
    exceeded_memory: int = 0
    exceeded_wall: int = 0
    cpu_near_limit: int = 0
    wall_near_limit: int = 0


class ClusterShift(_Model):
    """One cluster around one deploy marker: rate before and after, and whether it is new."""

    cluster_id: str
    template: str
    version: str
    script: str | None
    before: int
    after: int
    rate_before_per_min: float
    rate_after_per_min: float
    share_on_version: float | None
    first_seen: datetime
    minutes_after_deploy: float
    new_after_deploy: bool


class BlastRadiusRow(_Model):
    dimension: str  # job_type | queue | script | script_version | payload field name
    value: str
    errors: int
    share: float
    jobs: int | None = None


class DlqCluster(_Model):
    cluster_id: str | None
    template: str | None
    messages: int
    joins: dict[str, int]


class DlqCoverage(_Model):
    """The bundle holds only part of the dead-letter queue: a peek sees the head of the queue (at
    most 100 messages), a snapshot may stop early. Every DLQ number of the findings (per cluster, per
    finding, the impact) is then of those ``seen`` messages only, which :attr:`label` says
    ("of the first 100 only"). From the manifest's ``dlq_collections`` (mode, messages, backlog,
    complete)."""

    mode: Literal["peek", "snapshot", "mixed"]
    seen: int
    backlog: int | None = None
    queues: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        """What every DLQ number of a partial bundle says: ``"of the first 100 only"``."""
        return f"of the first {self.seen:,} only"

    @property
    def reason(self) -> str:
        """Why, in words: ``"a peek sees the head of the queue only; jobs-dlq held 566"``."""
        why = {
            "peek": "a peek sees the head of the queue only",
            "snapshot": "the snapshot stopped before the end of the queue",
            "mixed": "a peek sees the head of the queue only and a snapshot stopped early",
        }[self.mode]
        held = f"{', '.join(self.queues) or 'the queue'} held {self.backlog:,}" if self.backlog else ""
        return why + (f"; {held}" if held else "")

    def note(self) -> str:
        """The sentence for :attr:`Findings.notes`."""
        return (
            f"The DLQ numbers are {self.label}: {self.reason}. Collect with "
            "`edgeinvestigate collect --dlq QUEUE --dlq-mode snapshot` to count every message."
        )


class RetryStorm(_Model):
    window: TimeWindow
    deliveries: int
    retried_deliveries: int
    jobs: int
    max_attempt: int
    job_types: list[str]
    repeated_job_ids: list[str]
    sentence: str


class LimitHit(_Model):
    limit: Literal["exceededCpu", "exceededMemory", "exceededWallTime", "wall_near_limit", "cpu_near_limit"]
    invocations: int
    job_types: list[str]
    scripts: list[str]
    window: TimeWindow | None
    sentence: str


class ClusterSummary(_Model):
    cluster_id: str
    template: str
    count: int
    kind: str
    kind_rule: str
    first_seen: datetime | None
    last_seen: datetime | None
    job_types: list[str]
    n_dlq_messages: int


class Hypothesis(_Model):
    """One ranked explanation of the incident."""

    rank: int
    kind: Literal[
        "bad_deploy",
        "dependency_outage",
        "retry_storm",
        "limit_hit",
        "poison_payload",
        "error_spike",
        "dlq_cluster",  # a large cluster of DLQ error texts, when the bundle has no telemetry
        # from queue analytics (analysis/rca/_hypotheses/queue_*.py)
        "consumer_stalled",
        "dead_lettering",
        "throughput_drop",
    ]
    title: str
    sentence: str
    score: float
    confidence: Literal["high", "medium", "low"]
    cluster_ids: list[str] = Field(default_factory=list)
    job_types: list[str] = Field(default_factory=list)
    window: TimeWindow | None = None
    deploy: Deploy | None = None
    evidence: Evidence = Field(default_factory=dict)


class Impact(_Model):
    """How big the incident is. ``failed_invocations``: see "failed" in :mod:`edgeinvestigate.analysis.rca`;
    ``errors``: every clustered error row (warn lines included), ``failure_rows``: those that are
    failures (exceptions and error-level lines); ``dlq_unattributed``: DLQ messages no cluster explains."""

    invocations: int
    failed_invocations: int
    failed_rate: float
    errors: int
    incident_errors: int
    jobs_failed: int | None
    dlq_messages: int
    affected_job_types: list[str]
    failure_rows: int = 0
    dlq_unattributed: int = 0


class IncidentTimeline(_Model):
    first_error: datetime | None
    detection: datetime | None
    peak: datetime | None
    last_error: datetime | None


class Incident(_Model):
    """The skeleton of the postmortem."""

    title: str
    impact: Impact
    timeline: IncidentTimeline
    trigger: str
    affected_job_types: list[str]
    root_causes: list[str]


class Findings(_Model):
    """Everything :func:`edgeinvestigate.analyze` found (JSON-serialisable)."""

    window: TimeWindow | None
    bucket_seconds: int
    totals: dict[str, int]
    timeline: list[TimelineRow]
    failed_rate: list[RateRow]
    attempts: list[AttemptsBin]
    limits: LimitStats
    deploys: list[Deploy]
    cluster_shifts: list[ClusterShift]
    new_after_deploy: list[ClusterShift]
    blast_radius: list[BlastRadiusRow]
    dlq_by_cluster: list[DlqCluster]
    retry_storms: list[RetryStorm]
    limit_hits: list[LimitHit]
    hypotheses: list[Hypothesis]
    incident: Incident
    clusters: list[ClusterSummary]
    #: where the deploy markers came from (``script_version``, ``log_field``, ``given``); empty when
    #: the data names no version at all
    deploy_sources: list[str] = Field(default_factory=list)
    #: caveats about the data that limit what the analysis can tell (e.g. no deploy information)
    notes: list[str] = Field(default_factory=list)
    #: False when the bundle has no invocations, logs or exceptions (a DLQ-only or empty bundle)
    has_telemetry: bool = True
    #: per queue, when the bundle has queue analytics (``collect --queue-metrics``); empty otherwise
    queue_health: list[QueueHealth] = Field(default_factory=list)

    #: set when the bundle holds only part of the DLQ (a peek): every DLQ number is of those only
    dlq_coverage: DlqCoverage | None = None

    def dlq_count(self, n: int) -> str:
        """A DLQ number as text: ``"64"``, or ``"64 (of the first 100 only)"`` for a partial DLQ."""
        return f"{n:,}" + (f" ({self.dlq_coverage.label})" if self.dlq_coverage else "")

    @property
    def top(self) -> Hypothesis | None:
        """The best-ranked hypothesis (``None`` when nothing stands out)."""
        return self.hypotheses[0] if self.hypotheses else None

    def to_text(self, max_hypotheses: int = 5, width: int | None = None) -> str:
        """A short plain-text summary for a terminal or a chat message.

        With ``width``, long lines are wrapped to that many columns (continuations indented).
        """
        lines: list[str] = []
        if self.window:
            lines.append(f"Window: {self.window} (buckets of {self.bucket_seconds // 60 or 1} min)")
        imp = self.incident.impact
        n_dlq = self.totals.get("dlq_messages", 0)
        in_all = [f"{n_dlq} in all"] if n_dlq != imp.dlq_messages else []
        if imp.dlq_unattributed:
            in_all.append(f"{imp.dlq_unattributed} not attributed to any cluster")
        warn_rows = imp.errors - imp.failure_rows
        if self.dlq_coverage is not None:
            in_all.append(self.dlq_coverage.label)
        lines.append(
            f"Invocations: {imp.invocations}, failed: {imp.failed_invocations} ({imp.failed_rate:.1%}); "
            f"errors: {imp.errors}"
            + (f" ({imp.failure_rows} failures, {warn_rows} warnings)" if warn_rows > 0 else "")
            + f"; DLQ messages: {imp.dlq_messages} in the incident's clusters"
            + (f" ({', '.join(in_all)})" if in_all else "")
        )
        if not self.has_telemetry:
            lines.append(
                "This bundle has no telemetry (no invocations, logs or exceptions)"
                + (": the findings below come from the DLQ messages alone." if self.hypotheses else ".")
            )
        if not self.hypotheses:
            if self.has_telemetry:
                lines.append("No hypothesis stands out: errors look like the usual background.")
        else:
            lines.append("Hypotheses (most likely first):")
            for h in self.hypotheses[:max_hypotheses]:
                lines.append(f"  {h.rank}. [{h.kind}, {h.confidence}] {h.sentence}")
        for note in self.notes:
            lines.append(f"Note: {note}")
        tl = self.incident.timeline
        lines.append("Timeline (UTC):")
        bucket = f"{self.bucket_seconds // 60 or 1} min bucket"
        for label, value, note in (
            ("first error", tl.first_error, ""),
            # bucket starts: without a note, detection would read as earlier than the first error
            ("detection", tl.detection, f"  (start of the first {bucket} above the background)"),
            ("peak", tl.peak, f"  (start of the {bucket} with the most incident errors)"),
            ("last error", tl.last_error, ""),
        ):
            lines.append(f"  {label:<12} {value:%Y-%m-%d %H:%M:%S}{note}" if value else f"  {label:<12} -")
        if self.deploys:
            lines.append("Deploys:")
            for d in self.deploys:
                lines.append(
                    f"  {d.at:%Y-%m-%d %H:%M:%S} {d.script or '?'} {d.previous_version or '?'} -> {d.version}"
                    f" ({d.source})"
                )
        if width is None:
            return "\n".join(lines)
        return "\n".join(_wrap(line, width) for line in lines)


def _wrap(line: str, width: int) -> str:
    """Wrap one line to ``width`` columns; continuations are indented past the line's own indent."""
    if len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip(" ")) + 4)
    return textwrap.fill(
        line, width=width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
