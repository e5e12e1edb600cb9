"""Live tail capture: a Worker's tail WebSocket (``trace-v1``) written to NDJSON.

>>> result = capture_tail(client, "jobs-consumer", "tail.ndjson", filters=[{"outcome": ["exception"]}],
...                       duration=60)                                          # doctest: +SKIP

It follows wrangler's protocol (``cloudflare-formats.md`` F): create a tail with the filters
(``POST …/workers/scripts/{script}/tails``), open its ``url`` with the ``trace-v1`` subprotocol, send
``{"debug": false}``, then write every message (one JSON object: a tail event, or a TailInfo
``overload`` notice) as one NDJSON line, flushed at once so a crash loses nothing already received. A
WebSocket ping goes out every 10 s; a missing pong counts as a lost connection. A lost connection is
retried by deleting the old tail and creating a new one, with backoff 1, 2, 4, 8, 16 s and at most 5
attempts in a row. A close with code 1000 (the tail was deleted) is a clean stop. The tail is deleted on
every exit, Ctrl-C included. The file is read by the ``tail`` loader (``edgeinvestigate collect --tail``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from edgeinvestigate._version import __version__
from edgeinvestigate.errors import APIError, ConfigError, ServerError

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = [
    "BACKOFF_S",
    "ERROR_OUTCOMES",
    "SUBPROTOCOL",
    "TailCapture",
    "build_filters",
    "capture_tail",
]

log = logging.getLogger(__name__)

SUBPROTOCOL = "trace-v1"
PING_INTERVAL_S = 10.0
BACKOFF_S: tuple[float, ...] = (1, 2, 4, 8, 16)
#: a connection that stayed up this long resets the reconnect budget
STABLE_AFTER_S = 60.0
#: what wrangler sends for ``--status error``
ERROR_OUTCOMES: tuple[str, ...] = ("exception", "exceededCpu", "exceededMemory", "unknown")
OUTCOMES: frozenset[str] = frozenset(
    {
        "unknown", "ok", "exception", "exceededCpu", "killSwitch", "daemonDown", "scriptNotFound", "canceled",
        "exceededMemory", "loadShed", "responseStreamDisconnected", "internalError", "exceededWallTime",
        "aborted",
    }
)  # fmt: skip

StopReason = Literal["duration", "max_events", "closed", "interrupted", "stopped"]


@dataclass
class TailCapture:
    """What a capture did: events written, TailInfo notices, reconnects, why it stopped."""

    path: Path
    script: str
    events: int = 0
    overloads: int = 0
    undecodable: int = 0
    tails_created: int = 0
    connections: int = 0  # WebSocket connections opened (handshake and subprotocol accepted)
    reconnects: int = 0
    stopped: StopReason = "stopped"
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"captured {self.events} tail events of {self.script!r} into {self.path} "
            f"({self.reconnects} reconnects; stopped: {self.stopped})"
        )
        if self.overloads:
            text += f"; {self.overloads} overload notices: the tail was sampling and dropped events"
        return text


def build_filters(
    *,
    outcomes: Sequence[str] = (),
    sampling_rate: float | None = None,
    search: str | None = None,
    methods: Sequence[str] = (),
    headers: Sequence[str] = (),
    client_ips: Sequence[str] = (),
    version_id: str | None = None,
) -> list[dict[str, Any]]:
    """wrangler's tail filters from CLI-style values. ``outcomes`` may use ``error`` (wrangler's
    ``--status error``: exception, exceededCpu, exceededMemory, unknown); ``headers`` are ``KEY`` or
    ``KEY:VALUE``."""
    filters: list[dict[str, Any]] = []
    if sampling_rate is not None:
        if not 0 < sampling_rate < 1:
            raise ConfigError(
                f"--sampling-rate {sampling_rate} is out of range",
                hint="give a fraction between 0 and 1 (exclusive), e.g. --sampling-rate 0.1",
            )
        filters.append({"sampling_rate": sampling_rate})
    if outcomes:
        wanted: list[str] = []
        for o in outcomes:
            names = ERROR_OUTCOMES if o == "error" else (o,)
            for name in names:
                if name not in OUTCOMES:
                    raise ConfigError(
                        f"unknown outcome {name!r}",
                        hint="use error, ok, canceled or a runtime outcome like exceededCpu "
                        f"({', '.join(sorted(OUTCOMES))})",
                    )
                if name not in wanted:
                    wanted.append(name)
        filters.append({"outcome": wanted})
    if methods:
        filters.append({"method": [m.upper() for m in methods]})
    for h in headers:
        key, sep, value = h.partition(":")
        if not key.strip():
            raise ConfigError(f"--header {h!r} has no name", hint="use --header KEY or --header KEY:VALUE")
        header: dict[str, Any] = {"key": key.strip()}
        if sep:
            header["query"] = value.strip()
        filters.append({"header": header})
    if client_ips:
        filters.append({"client_ip": list(client_ips)})
    if search:
        filters.append({"query": search})
    if version_id:
        filters.append({"scriptVersion": version_id})
    return filters


class _Lost(Exception):
    """The WebSocket connection was lost (not a clean 1000 close)."""


def capture_tail(
    client: CloudflareClient,
    script: str,
    out: str | Path,
    *,
    filters: Sequence[Mapping[str, Any]] = (),
    debug: bool = False,
    duration: float | None = None,
    max_events: int | None = None,
    max_reconnects: int = len(BACKOFF_S),
    backoff: Sequence[float] = BACKOFF_S,
    ping_interval: float = PING_INTERVAL_S,
    stop: threading.Event | None = None,
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    return_on_interrupt: bool = False,
) -> TailCapture:
    """Capture the live tail of ``script`` into ``out`` (appended, one JSON object per line).

    Stops after ``duration`` seconds, after ``max_events`` events, when ``stop`` is set, when the
    server closes the socket with 1000, or on Ctrl-C (``KeyboardInterrupt`` is re-raised after the
    tail is deleted, unless ``return_on_interrupt``: then the result says ``stopped="interrupted"``).
    Raises :class:`~edgeinvestigate.errors.ServerError` when the connection cannot be re-established
    after ``max_reconnects`` attempts in a row.
    """
    from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake

    path = Path(out)
    result = TailCapture(path=path, script=script)
    deadline = None if duration is None else time.monotonic() + duration
    failures = 0
    tail: Mapping[str, Any] | None = None
    last_error: BaseException | None = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        try:
            while True:
                started = time.monotonic()
                try:
                    tail = client.create_tail(script, filters)
                    result.tails_created += 1
                    log.info(
                        "tail %s created on %r (expires %s)", tail.get("id"), script, tail.get("expires_at")
                    )
                    reason = _run_socket(
                        str(tail.get("url")),
                        fh,
                        result,
                        debug,
                        deadline,
                        max_events,
                        ping_interval,
                        stop,
                        on_event,
                    )
                except (_Lost, ConnectionClosed, InvalidHandshake, OSError, TimeoutError, ServerError) as exc:
                    if isinstance(exc, ConnectionClosedOK):
                        result.stopped = "closed"
                        break
                    if time.monotonic() - started >= STABLE_AFTER_S:
                        failures = 0
                    failures += 1
                    last_error = exc
                    what = _describe(exc)
                    if tail is not None:
                        _delete(client, script, tail)
                    tail = None
                    if failures > max_reconnects and result.connections == 0:
                        raise _never_connected(script, path, failures, exc) from None
                    if failures > max_reconnects:
                        raise ServerError(
                            f"the live tail of {script!r} was lost ({what}) and {max_reconnects} reconnects "
                            "in a row failed",
                            hint=f"check the network and the API; what was captured so far is in {path}",
                        ) from None
                    wait = backoff[min(failures, len(backoff)) - 1] if backoff else 0.0
                    result.reconnects += 1
                    result.warnings.append(f"tail connection lost ({what}); reconnecting in {wait:g}s")
                    log.warning(
                        "tail connection lost (%s); reconnect %d of %d in %gs",
                        what,
                        failures,
                        max_reconnects,
                        wait,
                    )
                    sleep(wait)
                    if deadline is not None and time.monotonic() >= deadline:
                        if result.connections == 0:
                            raise _never_connected(script, path, failures, exc) from None
                        result.stopped = "duration"
                        break
                    continue
                result.stopped = reason
                break
        except KeyboardInterrupt:
            result.stopped = "interrupted"
            if tail is not None:
                _delete(client, script, tail)
                tail = None
            if not return_on_interrupt:
                raise
        finally:
            if tail is not None:
                _delete(client, script, tail)
    if result.connections == 0 and last_error is not None and result.stopped != "interrupted":
        raise _never_connected(script, path, failures, last_error)
    final: list[str] = []
    if result.events == 0:
        final.append(no_events_warning(client.account_id, script, filters, duration))
    if result.overloads:
        final.append(
            f"{result.overloads} overload notices: the tail entered sampling mode and dropped events; "
            "use --sampling-rate or filters, or Workers Logs for complete data"
        )
    for warning in final:  # the reconnect warnings were logged as they happened
        log.warning("%s", warning)
    result.warnings.extend(final)
    return result


def _never_connected(script: str, path: Path, attempts: int, exc: BaseException) -> ServerError:
    """The error for a tail that could not be created or connected even once: nothing was captured."""
    hint = (
        "check CLOUDFLARE_API_BASE_URL (or --api-url), the network and the API status; "
        "`edgeinvestigate collect --workers-logs` reads the same events after the fact"
    )
    return ServerError(
        f"could not open a live tail of {script!r} ({_describe(exc)}) after {attempts} attempt(s); "
        f"nothing was captured into {path}",
        hint=hint,
    )


def no_events_warning(
    account_id: str, script: str, filters: Sequence[Mapping[str, Any]], duration: float | None
) -> str:
    """What to check when a tail captured nothing (the API does not say "no traffic")."""
    took = f" in {duration:g}s" if duration is not None else ""
    text = (
        f"no tail events of {script!r} arrived{took}: check that a Worker named {script!r} exists in "
        f"account {account_id} (`wrangler deployments list --name {script}`; Cloudflare refuses an "
        "unknown script with 404 [10007], the local sandbox accepts any name) and that it received "
        "traffic while the tail was open"
    )
    if filters:
        text += "; the filters (--filter-outcome, --search, --sampling-rate, ...) may drop every event"
    return text


def _describe(exc: BaseException) -> str:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"closed with code {rcvd.code}" if rcvd is not None else "connection dropped"
    if isinstance(exc, InvalidStatus):
        return f"WebSocket handshake refused with HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ServerError):
        return exc.message
    if isinstance(exc, _Lost):
        return str(exc)
    return type(exc).__name__


def _delete(client: CloudflareClient, script: str, tail: Mapping[str, Any]) -> None:
    tail_id = str(tail.get("id"))
    try:
        client.delete_tail(script, tail_id)
        log.info("tail %s deleted", tail_id)
    except APIError as exc:
        # a 404 means it is gone already; anything else: it expires on its own (expires_at)
        log.warning("could not delete tail %s of %r: %s", tail_id, script, exc.message)


def _run_socket(
    url: str,
    fh: IO[str],
    result: TailCapture,
    debug: bool,
    deadline: float | None,
    max_events: int | None,
    ping_interval: float,
    stop: threading.Event | None,
    on_event: Callable[[Mapping[str, Any]], None] | None,
) -> StopReason:
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    with connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        user_agent_header=f"edgeinvestigate/{__version__}",
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        open_timeout=15,
        close_timeout=5,
        max_size=16 * 1024 * 1024,
    ) as ws:
        if ws.subprotocol != SUBPROTOCOL:
            raise _Lost(f"server did not accept the {SUBPROTOCOL} subprotocol")
        result.connections += 1
        ws.send(json.dumps({"debug": debug}))
        log.debug("tail socket open")
        while True:
            if stop is not None and stop.is_set():
                return "stopped"
            if max_events is not None and result.events >= max_events:
                return "max_events"
            wait = 1.0
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "duration"
                wait = min(wait, left)
            try:
                message = ws.recv(timeout=wait)
            except TimeoutError:
                continue
            _write(message, fh, result, on_event)


def _write(
    message: str | bytes,
    fh: IO[str],
    result: TailCapture,
    on_event: Callable[[Mapping[str, Any]], None] | None,
) -> None:
    text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
    try:
        event = json.loads(text)
    except ValueError:
        result.undecodable += 1
        log.warning("tail message is not JSON; kept as a string record: %.80r", text)
        event = {"undecodable_tail_message": text}
    if (
        isinstance(event, dict)
        and event.get("type") in ("overload", "overload-stop")
        and "outcome" not in event
    ):
        result.overloads += 1
    else:
        result.events += 1
    fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    fh.flush()
    if on_event is not None and isinstance(event, Mapping):
        on_event(event)
