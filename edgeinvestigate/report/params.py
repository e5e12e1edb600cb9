"""The parameters of each investigation notebook, declared as pydantic models.

papermill accepts any parameter name and any value: an unknown name only logs "Passed unknown
parameter" and the notebook quietly runs with its default, and every value is written into the
executed notebook (the injected cell and ``metadata.papermill.parameters``). So edgeinvestigate
checks names and types itself, before a single cell runs, and no parameter may carry a secret:
API tokens come from the environment (``CLOUDFLARE_API_TOKEN``) inside the kernel, never from a
parameter.

Values given on the command line (``-p name=value``) arrive as strings; pydantic's lax mode turns
``"5"`` into ``5`` and ``"true"`` into ``True`` and refuses ``"five"``. List parameters accept a
comma-separated string (``-p clusters=c1a2,c3b4``) or a JSON list.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError, NotebookError, NotebookParameterError

__all__ = [
    "PARAMETER_MODELS",
    "SECRET_NAME_PARTS",
    "NotebookParameters",
    "describe_parameters",
    "is_secret_name",
    "path_parameters",
    "resolve_path_parameters",
    "validate_parameters",
]

# Name parts that mark a secret. A parameter called like this is refused outright: papermill
# would store its value in the executed notebook.
SECRET_NAME_PARTS = frozenset(
    {"token", "tokens", "secret", "secrets", "key", "apikey", "password", "passwd", "pwd", "credential",
     "credentials", "auth", "authorization", "cookie", "bearer"}
)  # fmt: skip


def is_secret_name(name: str) -> bool:
    """True when a parameter name looks like it carries a secret (``api_token``, ``authKey``...)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", snake) if p]
    return any(p in SECRET_NAME_PARTS for p in parts) or any(
        s in snake.replace("_", "") for s in ("apikey", "apitoken", "password", "secret")
    )


def _split_list(value: Any) -> Any:
    """``"a,b"`` -> ``["a", "b"]``; a JSON list string -> list; ``""`` -> ``[]``."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value  # pydantic then reports a type error
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class NotebookParameters(BaseModel):
    """Parameters every notebook shares. Defaults run on the bundled sample incident."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    notebook: ClassVar[str] = ""

    bundle: str = Field(
        "",
        description="evidence bundle directory (from `edgeinvestigate collect`); empty = the bundled sample",
        json_schema_extra={"path": "dir"},
    )
    since: str = Field("", description="only look at data at or after this UTC time (ISO-8601, epoch, -2h)")
    until: str = Field("", description="only look at data before this UTC time")

    @field_validator("since", "until")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if value:
            try:
                parse_time(value)
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        return value

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.__annotations__:
            if is_secret_name(name):  # a programming error, caught by the test suite at import
                raise TypeError(
                    f"notebook parameter {name!r} looks like a secret; read it from the environment"
                )


def _check_account(value: str) -> str:
    if value and not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise ValueError("a Cloudflare account id is 32 hex digits")
    return value.lower()


_ACCOUNT_HELP = (
    "Cloudflare account id for links to the dashboard's Workers Logs; empty = the bundle's (collect "
    "records it), else CLOUDFLARE_ACCOUNT_ID"
)


class TriageParameters(NotebookParameters):
    """triage: what is failing right now."""

    notebook: ClassVar[str] = "triage"
    top_n: int = Field(10, ge=1, le=200, description="how many clusters to show")
    recent_errors: int = Field(20, ge=0, le=500, description="how many of the latest error lines to list")
    interactive: bool = Field(
        False, description="searchable tables and a replay-plan picker (JupyterLab; reports are static)"
    )
    account_id: str = Field("", description=_ACCOUNT_HELP)

    _account = field_validator("account_id")(_check_account)


class ErrorClustersParameters(NotebookParameters):
    """error-clusters: the cluster table and one cluster in depth."""

    notebook: ClassVar[str] = "error-clusters"
    cluster_id: str = Field("", description="the cluster to drill into; empty = the largest cluster")
    top_n: int = Field(20, ge=1, le=500, description="how many clusters the table shows")
    n_examples: int = Field(5, ge=1, le=100, description="raw examples shown for the chosen cluster")
    account_id: str = Field("", description=_ACCOUNT_HELP)

    _account = field_validator("account_id")(_check_account)


class RootCauseParameters(NotebookParameters):
    """root-cause: ranked findings with their evidence."""

    notebook: ClassVar[str] = "root-cause"
    top_n: int = Field(5, ge=1, le=50, description="how many findings to show in detail")


class DlqReplayParameters(NotebookParameters):
    """dlq-replay: select, plan, dry-run and (only with execute=True) run a replay."""

    notebook: ClassVar[str] = "dlq-replay"
    from_queue: str = Field("", description="the dead-letter queue to replay from; empty = the bundle's DLQ")
    to_queue: str = Field("", description="the queue to replay into; empty = no plan (none is guessed)")
    clusters: list[str] = Field(default_factory=list, description="cluster ids to replay (comma-separated)")
    job_types: list[str] = Field(default_factory=list, description="job types to replay (comma-separated)")
    allow_queues: list[str] = Field(
        default_factory=list,
        description="queues this run may write to (the run-time allow-list of `replay run --allow-queue`; "
        "or EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES); needed with execute=true",
    )
    plan_out: str = Field(
        "replay-plan.json",
        description="where the plan file is written (default: next to the report)",
        json_schema_extra={"path": "output"},
    )
    execute: bool = Field(False, description="really push messages (needs CLOUDFLARE_API_TOKEN in the env)")
    rate: float = Field(
        50.0,
        gt=0,
        le=400,
        description="replay speed in messages per second (at most 400: the API's request budget)",
    )
    api_url: str = Field("", description="API base URL (e.g. the sandbox); empty = CLOUDFLARE_API_BASE_URL")

    _split = field_validator("clusters", "job_types", "allow_queues", mode="before")(_split_list)


class IncidentReportParameters(NotebookParameters):
    """incident-report: the postmortem evidence."""

    notebook: ClassVar[str] = "incident-report"
    title: str = Field("Incident report", description="the report's title")
    incident_id: str = Field("", description="your incident id, e.g. INC-123")
    replay_plan: str = Field(
        "", description="a replay plan.json whose results to include", json_schema_extra={"path": "file"}
    )
    top_n: int = Field(5, ge=1, le=50, description="how many findings and clusters to include")
    findings_file: str = Field(
        "",
        description="the bundle's findings.json (written by investigate or analyze --format json) to "
        "report instead of analysing the bundle again; not with since/until",
        json_schema_extra={"path": "file"},
    )


PARAMETER_MODELS: dict[str, type[NotebookParameters]] = {
    m.notebook: m
    for m in (
        TriageParameters,
        ErrorClustersParameters,
        RootCauseParameters,
        DlqReplayParameters,
        IncidentReportParameters,
    )
}


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def describe_parameters(notebook: str) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, description)`` for each parameter of ``notebook``."""
    model = _model(notebook)
    rows = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        rows.append((name, _type_name(field.annotation), json.dumps(default), field.description or ""))
    return rows


def _model(notebook: str) -> type[NotebookParameters]:
    try:
        return PARAMETER_MODELS[notebook]
    except KeyError:
        raise NotebookError(
            f"unknown notebook {notebook!r}; the notebooks are: {', '.join(sorted(PARAMETER_MODELS))}",
            hint="edgeinvestigate notebooks list",
        ) from None


# Environment variables holding the API token: no parameter value may contain their values.
TOKEN_ENVS: tuple[str, ...] = ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "EDGEINVESTIGATE_SANDBOX_TOKEN")
_MIN_TOKEN_LEN = 8  # shorter values (test placeholders) would match ordinary text


def _carries_token(value: Any) -> bool:
    """True when ``value`` (or an item of a list/tuple/dict value) contains a token from the environment."""
    tokens = [t for t in (os.environ.get(k, "").strip() for k in TOKEN_ENVS) if len(t) >= _MIN_TOKEN_LEN]
    if not tokens:
        return False
    if isinstance(value, list | tuple | set):
        return any(_carries_token(v) for v in value)
    if isinstance(value, dict):
        return any(_carries_token(k) or _carries_token(v) for k, v in value.items())
    text = str(value)
    return any(t in text for t in tokens)


def validate_parameters(notebook: str, parameters: dict[str, Any] | None) -> NotebookParameters:
    """Check ``parameters`` against the notebook's model; raise :class:`NotebookError` if wrong.

    The message lists what was wrong and every valid parameter with its type. It never repeats a
    given value (a value might be a secret pasted in the wrong place).
    """
    model = _model(notebook)
    given = dict(parameters or {})
    valid = ", ".join(f"{name} ({typ})" for name, typ, _, _ in describe_parameters(notebook))
    secret = sorted(name for name in given if is_secret_name(name))
    if secret:
        raise NotebookParameterError(
            f"notebook {notebook!r} refuses parameter(s) {', '.join(secret)}: secrets are never notebook "
            f"parameters (papermill writes every parameter into the executed notebook); valid: {valid}",
            hint="set CLOUDFLARE_API_TOKEN in the environment instead",
        )
    carrying = sorted(name for name, value in given.items() if _carries_token(value))
    if carrying:
        raise NotebookParameterError(
            f"notebook {notebook!r} was not run: the value of parameter(s) {', '.join(carrying)} contains "
            f"the API token from the environment ({' or '.join(TOKEN_ENVS)}); papermill would write it "
            "into the executed notebook",
            hint="pass a value without the token (the notebook reads the token from the environment itself)",
        )
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown parameter {loc!r}")
            else:
                problems.append(f"{loc}: {err['msg']}")
        raise NotebookParameterError(
            f"notebook {notebook!r} was not run: {'; '.join(problems)}. Valid parameters: {valid}",
            hint=f"edgeinvestigate notebooks list shows each parameter of {notebook} with its default",
        ) from None


def path_parameters(notebook: str) -> dict[str, str]:
    """``name -> kind`` of the parameters of ``notebook`` that name a path.

    ``dir`` and ``file`` must exist; ``output`` is written by the notebook (its folder must exist).
    """
    out: dict[str, str] = {}
    for name, field in _model(notebook).model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("path"), str):
            out[name] = str(extra["path"])
    return out


def resolve_path_parameters(params: NotebookParameters, base: Path | None = None) -> NotebookParameters:
    """The parameters with every given path made absolute against ``base`` (default: the cwd).

    The kernel runs in the report folder, so a relative ``-p replay_plan=plan.json`` would be read
    from there, not from where the command was typed. Paths the caller gave are resolved here, and
    a missing input (or the missing folder of an output) is refused before any cell runs, naming
    the parameter and the path. Defaults are left alone (``plan_out`` defaults to the report folder).
    """
    root = Path.cwd() if base is None else Path(base)
    kinds = path_parameters(params.notebook)
    update: dict[str, str] = {}
    for name in sorted(params.model_fields_set & kinds.keys()):
        value = getattr(params, name)
        if not value:
            continue
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else root / path).resolve()
        kind = kinds[name]
        where = "" if Path(value).expanduser().is_absolute() else f" (relative paths are read from {root})"
        problem = None
        if kind == "dir" and not path.is_dir():
            problem = "is not a folder" if path.exists() else "does not exist"
        elif kind == "file" and not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
        elif kind == "output" and not path.parent.is_dir():
            problem = f"cannot be written: its folder {path.parent} does not exist"
        if problem:
            raise NotebookParameterError(
                f"notebook {params.notebook!r} was not run: parameter {name}: {path} {problem}{where}",
                hint=f"check -p {name}=PATH; edgeinvestigate notebooks list shows what {name} expects",
            )
        update[name] = str(path)
    return params.model_copy(update=update) if update else params
