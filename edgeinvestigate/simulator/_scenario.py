"""Declarative incident scenarios: TOML files validated by pydantic.

A scenario describes the job system of ``processing-architecture.md`` (queues, consumer settings,
traffic mix), the deployments of the consumer Worker, and the injected root causes
(``[[incidents]]``). The shipped scenarios live in ``edgeinvestigate/simulator/scenarios/*.toml``;
any other TOML file with the same fields can be given by path.

Times are either absolute ISO-8601 (``2026-11-27T14:45:00Z``) or offsets from the scenario start
(``+45m``, ``-3d``, ``+1h30m``).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.simulator._values import Template

__all__ = [
    "JOB_TYPES",
    "Deployment",
    "IncidentSpec",
    "Scenario",
    "list_scenarios",
    "load_scenario",
]

JOB_TYPES: tuple[str, ...] = (
    "IMAGE_PROCESSING",
    "EMAIL_DELIVERY",
    "REPORT_GENERATION",
    "DATA_SYNC",
    "WEBHOOK_PROCESSING",
)
JobType = Literal[
    "IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING"
]

_OFFSET = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[dhms])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _check_time(value: str) -> str:
    value = value.strip()
    if _OFFSET.match(value):
        return value
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither an offset like '+45m' nor an ISO-8601 time") from None
    return value


TimeSpec = Annotated[str, Field(description="ISO-8601 time or offset from start like '+45m'")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorSpec(_Model):
    """One error message an incident produces: a template with typed fields (see ``_values.KINDS``)."""

    template: str
    weight: float = Field(default=1.0, gt=0)
    name: str = "Error"
    outcome: str = "exception"  # for cpu_limits: exceededCpu | exceededWallTime

    @field_validator("template")
    @classmethod
    def _valid_template(cls, v: str) -> str:
        Template("check", v)  # raises on unknown kinds
        return v


class Deployment(_Model):
    """A new ScriptVersion of the consumer Worker."""

    tag: str
    at: TimeSpec
    message: str = ""
    version_id: str | None = None

    _t = field_validator("at")(classmethod(lambda cls, v: _check_time(v)))


class IncidentSpec(_Model):
    """An injected root cause.

    - ``bad_deploy``: deliveries of ``job_type`` handled by version ``deployment`` fail with
      probability ``rate`` (permanent: ``{original, error}`` to the DLQ). Ends at the next deployment.
    - ``dependency_outage``: deliveries of ``job_type`` in ``[start, end)`` fail with probability
      ``rate`` (transient: retried with backoff; exhausted ones moved raw to the DLQ by the runtime).
    - ``poison_payload``: a share ``rate`` of ``job_type`` jobs produced in ``[start, end)`` carry a
      malformed ``field`` and fail on every delivery (permanent).
    - ``cpu_limits``: a share ``rate`` of ``job_type`` jobs produced in ``[start, end)`` are too heavy
      and kill the invocation (``exceededCpu`` / ``exceededWallTime``); every unacked message of that
      batch is retried by the runtime; exhausted ones are moved raw to the DLQ.
    - ``consumer_stall``: in ``[start, end)`` the consumer receives no batch at all (a hung consumer,
      delivery paused): nothing errs, the backlog grows, and the messages are delivered when it ends.
      ``job_type`` and ``rate`` are ignored; ``errors`` may be empty.
    - ``silent_retries``: like ``dependency_outage`` (transient errors in ``[start, end)``, retried,
      exhausted ones moved raw to the DLQ by the runtime), but the consumer logs nothing about them:
      messages are dead-lettered without any error log.
    """

    id: str
    kind: Literal[
        "bad_deploy", "dependency_outage", "poison_payload", "cpu_limits", "consumer_stall", "silent_retries"
    ]
    job_type: JobType
    description: str
    rate: float = Field(gt=0, le=1)
    deployment: str | None = None
    start: TimeSpec | None = None
    end: TimeSpec | None = None
    transient: bool | None = None
    field: str | None = None
    bad_values: list[str] = Field(default_factory=list)
    errors: list[ErrorSpec] = Field(default_factory=list)

    _t = field_validator("start", "end")(classmethod(lambda cls, v: None if v is None else _check_time(v)))

    @model_validator(mode="after")
    def _consistent(self) -> IncidentSpec:
        if self.kind == "bad_deploy" and not self.deployment:
            raise ValueError(f"incident {self.id}: kind bad_deploy needs deployment = '<tag>'")
        if self.kind != "bad_deploy" and (self.start is None or self.end is None):
            raise ValueError(f"incident {self.id}: kind {self.kind} needs start and end")
        if self.kind == "poison_payload" and (not self.field or not self.bad_values):
            raise ValueError(f"incident {self.id}: kind poison_payload needs field and bad_values")
        if self.kind != "consumer_stall" and not self.errors:
            raise ValueError(f"incident {self.id}: kind {self.kind} needs at least one [[incidents.errors]]")
        return self

    @property
    def is_transient(self) -> bool:
        if self.transient is not None:
            return self.transient
        return self.kind in ("dependency_outage", "silent_retries")


#: the account every shipped scenario uses (the sandbox serves whatever account a scenario names)
DEFAULT_ACCOUNT_ID: Final = "9a7806061c88ada191ed06f989cc3dac"


class SystemSpec(_Model):
    """The queues and consumer settings (Cloudflare defaults where the reference gives them)."""

    account_id: str = DEFAULT_ACCOUNT_ID
    consumer_script: str = "jobs-consumer"
    producer_script: str = "jobs-api"
    queue: str = "jobs"
    retry_queue: str = "jobs-retry"
    dlq: str = "jobs-dlq"
    max_retries: int = Field(default=3, ge=0, le=100)
    batch_size: int = Field(default=10, ge=1, le=100)
    batch_timeout_s: float = Field(default=5.0, gt=0, le=60)
    mean_batch_fill: float = Field(default=3.0, ge=1)
    retry_delay_s: int = Field(default=5, ge=0, le=43200)
    backoff_base_s: float = Field(default=10.0, gt=0)
    backoff_factor: float = Field(default=3.0, ge=1)
    backoff_max_s: float = Field(default=900.0, gt=0)
    message_retention_period: int = Field(default=345600, ge=60, le=1209600)
    dlq_envelope: Literal["message", "body"] = "message"
    dlq_json_encoding: Literal["base64", "plain"] = "base64"
    dlq_prior_pulls: list[float] = Field(
        default_factory=lambda: [1.0],
        description="share of DLQ messages already delivered 0, 1, 2... times by earlier snapshots",
    )
    logpush_interval_s: int = Field(default=300, ge=30, le=300)
    producer_host: str = "jobs.example.com"
    colos: list[str] = Field(default_factory=lambda: ["FRA", "AMS", "LHR", "IAD", "SJC"])


class TrafficSpec(_Model):
    mix: dict[JobType, float] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "IMAGE_PROCESSING": 0.25,
            "EMAIL_DELIVERY": 0.3,
            "REPORT_GENERATION": 0.1,
            "DATA_SYNC": 0.15,
            "WEBHOOK_PROCESSING": 0.2,
        }
    )
    tenants: int = Field(default=60, ge=1)
    jobs_per_request: float = Field(default=2.5, ge=1)
    report_cron: str = "*/5 * * * *"
    report_cron_minutes: int = Field(default=5, ge=1)


class Scenario(_Model):
    """One incident scenario (see the module docstring)."""

    name: str
    description: str
    start: str = "2026-11-27T14:00:00Z"
    duration_minutes: float = Field(default=120, gt=0)
    invocations: int = Field(default=3000, ge=10, description="default size: about this many invocations")
    noise: float = Field(default=1.0, ge=0, description="multiplier of background errors and chatter")
    uncaught_rate: float = Field(
        default=0.004, ge=0, le=1, description="share of consumer batches that throw after settling messages"
    )
    system: SystemSpec = Field(default_factory=lambda: SystemSpec())
    traffic: TrafficSpec = Field(default_factory=lambda: TrafficSpec())
    deployments: list[Deployment] = Field(min_length=1)
    incidents: list[IncidentSpec] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _abs_start(cls, v: str) -> str:
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"start {v!r} must be an absolute ISO-8601 time") from None
        return v

    @model_validator(mode="after")
    def _refs(self) -> Scenario:
        tags = [d.tag for d in self.deployments]
        if len(set(tags)) != len(tags):
            raise ValueError(f"deployment tags must be unique, got {tags}")
        if self.at_ms(self.deployments[0].at) > self.start_ms:
            raise ValueError("the first deployment must be at or before start (the version running at start)")
        ids = [i.id for i in self.incidents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"incident ids must be unique, got {ids}")
        for inc in self.incidents:
            if inc.deployment is not None and inc.deployment not in tags:
                raise ValueError(f"incident {inc.id} names deployment {inc.deployment!r}; known tags: {tags}")
        return self

    @property
    def start_ms(self) -> int:
        dt = datetime.fromisoformat(self.start.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.duration_minutes * 60_000)

    def at_ms(self, spec: str) -> int:
        """Epoch ms of a time spec (offset from start or absolute)."""
        m = _OFFSET.match(spec)
        if m:
            secs = sum(float(n) * _UNIT[u] for n, u in _PART.findall(m.group(2)))
            sign = -1 if m.group(1) == "-" else 1
            return self.start_ms + sign * int(secs * 1000)
        dt = datetime.fromisoformat(spec.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)

    def deployment_ms(self) -> list[int]:
        return [self.at_ms(d.at) for d in self.deployments]

    def incident_window(self, inc: IncidentSpec) -> tuple[int, int]:
        """``[start, end)`` in epoch ms of an incident (a bad deploy runs until the next deployment)."""
        if inc.kind == "bad_deploy":
            times = self.deployment_ms()
            idx = [d.tag for d in self.deployments].index(inc.deployment or "")
            end = times[idx + 1] if idx + 1 < len(times) else self.end_ms + 3_600_000
            return times[idx], end
        assert inc.start is not None
        assert inc.end is not None
        return self.at_ms(inc.start), self.at_ms(inc.end)

    def digest(self) -> str:
        """A short hash of the scenario content (cache keys)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def with_duration(self, minutes: float) -> Scenario:
        return self.model_copy(update={"duration_minutes": minutes})


def _shipped() -> dict[str, resources.abc.Traversable]:
    root = resources.files("edgeinvestigate.simulator") / "scenarios"
    return {p.name[: -len(".toml")]: p for p in root.iterdir() if p.name.endswith(".toml")}


def list_scenarios() -> dict[str, str]:
    """The shipped scenarios: name -> one-line description."""
    out = {}
    for name, path in sorted(_shipped().items()):
        out[name] = _parse(path.read_text(encoding="utf-8"), f"scenarios/{name}.toml").description
    return out


def _parse(text: str, where: str) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"scenario file {where} is not valid TOML: {exc}", hint="fix the file, see scenarios/default.toml"
        ) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigError(
            f"scenario file {where} is invalid: {problems}",
            hint="compare with the shipped scenarios (edgeinvestigate simulate --list)",
        ) from None


def load_scenario(scenario: str | Path | Scenario) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    if isinstance(scenario, Scenario):
        return scenario
    shipped = _shipped()
    if isinstance(scenario, str) and scenario in shipped:
        return _parse(shipped[scenario].read_text(encoding="utf-8"), f"scenarios/{scenario}.toml")
    path = Path(scenario)
    if path.suffix == ".toml" and path.is_file():
        return _parse(path.read_text(encoding="utf-8"), str(path))
    raise ConfigError(
        f"unknown scenario {str(scenario)!r}: not a shipped scenario ({', '.join(sorted(shipped))}) "
        "and not a .toml file",
        hint="edgeinvestigate simulate --list",
    )
