"""The exception hierarchy of edgeinvestigate.

Every error the library raises on purpose is an :class:`EdgeInvestigateError`. Each message says
three things: what failed, on what input (file and line, message id, queue, URL...), and what to do
next, usually by naming a runbook under ``runbooks/``. The CLI turns these into one-line errors with
a hint and a non-zero exit status (see :mod:`edgeinvestigate.cli`).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthError",
    "BundleError",
    "ConfigError",
    "EdgeInvestigateError",
    "GraphQLQueryError",
    "LoadError",
    "MissingExtraError",
    "NotFoundError",
    "NotebookError",
    "ParseError",
    "RateLimitedError",
    "ReplayError",
    "ReplayRefusedError",
    "SandboxError",
    "ServerError",
]


class EdgeInvestigateError(Exception):
    """Base class of every error edgeinvestigate raises on purpose.

    ``hint`` is what to do next (a command, a flag, or ``runbooks/<name>.md``); the CLI prints it
    on its own line. ``exit_code`` is the CLI's exit status for this kind of error.
    """

    exit_code: int = 1
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(EdgeInvestigateError):
    """Bad configuration or arguments: a missing account id, an unreadable token file, a bad option."""

    exit_code = 2


class MissingExtraError(EdgeInvestigateError):
    """An optional dependency group is not installed."""

    exit_code = 2

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependencies of edgeinvestigate[{extra}], which are not installed",
            hint=f"pip install 'edgeinvestigate[{extra}]'",
        )
        self.extra = extra


class LoadError(EdgeInvestigateError):
    """Telemetry could not be loaded (a file is missing or unreadable)."""

    default_hint = "see runbooks/collect-evidence-before-retention.md"


class ParseError(LoadError):
    """A record is malformed. Raised only in strict mode; otherwise the load report lists it.

    ``path`` and ``line`` (1-based, or ``None``) and ``offset`` (byte offset, or ``None``) name the
    place; ``expected`` says what the loader expected there.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        offset: int | None = None,
        expected: str = "",
        hint: str | None = None,
    ) -> None:
        where = path
        if line is not None:
            where += f":{line}"
        elif offset is not None:
            where += f" (byte {offset})"
        text = f"{where}: {message}"
        if expected:
            text += f"; expected {expected}"
        super().__init__(
            text, hint=hint or "run without --strict to skip and list bad records in the load report"
        )
        self.path = path
        self.line = line
        self.offset = offset
        self.expected = expected


class BundleError(EdgeInvestigateError):
    """An evidence bundle cannot be written or read (exists already, manifest missing or corrupt)."""


class APIError(EdgeInvestigateError):
    """Cloudflare's API (or the sandbox) answered with an error.

    Carries the HTTP ``status``, the Cloudflare error ``codes`` from the ``errors`` array, and the
    request ``method`` and ``url`` (never the token).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[int, ...] = (),
        method: str = "",
        url: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes
        self.method = method
        self.url = url


class AuthError(APIError):
    """401/403: the token is missing, wrong, or lacks a permission."""

    default_hint = "check CLOUDFLARE_API_TOKEN and its permissions (Queues Edit, Workers Observability Read)"


class NotFoundError(APIError):
    """404: an unknown queue, consumer, script or tail."""


class RateLimitedError(APIError):
    """429: the API rate limit was hit. ``retry_after`` is in seconds, when the server said."""

    default_hint = "wait for the rate-limit window to pass, or lower --max-requests-per-5min"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx, a dropped connection or a timeout."""


class GraphQLQueryError(APIError):
    """The GraphQL Analytics API refused a query (HTTP 400, or 200 with ``errors``).

    ``kind`` is ``limit`` (a dataset limit: time range, age, page size, fields) or ``query`` (parse
    errors, unknown fields); ``errors`` are the API's error objects (``message``, ``path``).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "query",
        errors: list[dict[str, object]] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.kind = kind
        self.errors = list(errors or [])


class SandboxError(EdgeInvestigateError):
    """The local sandbox could not start or was used wrongly."""


class ReplayError(EdgeInvestigateError):
    """A replay could not be planned or run."""

    default_hint = "see runbooks/replay-failed-jobs.md"


class ReplayRefusedError(ReplayError):
    """A replay was refused on purpose (hash mismatch, target not allowed, already completed)."""

    exit_code = 3


class NotebookError(EdgeInvestigateError):
    """A notebook could not be run, or its parameters are invalid."""


class NotebookParameterError(NotebookError):
    """A notebook parameter is unknown, ill-typed or a secret: a bad argument (exit status 2)."""

    exit_code = 2
