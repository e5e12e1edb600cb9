"""The dead-letter queue: body decoding, envelope recognition, the ``dlq`` frame, peek and snapshot.

Bodies are decoded exactly as ``cloudflare-formats.md`` D2 says (the live API's encoding of ``json``
bodies is UNCONFIRMED, so both forms are accepted):

- ``text``: the string as is;
- ``json``: plain JSON text first, then validated base64 of JSON text; if neither, the raw string is
  kept and ``decode_error`` says why;
- ``bytes``: base64, decoded to bytes (kept as base64 in ``body_raw``);
- ``v8``: kept opaque (base64) and flagged in ``decode_error``: it cannot be decoded outside Workers
  nor replayed through the REST API;
- no content type (older producers): tried as ``json``, else kept as opaque ``v8``.

A message whose body cannot be decoded is kept with ``decode_error``; nothing is ever dropped.

The seed's job envelopes (``processing-architecture.md``) are recognised with pydantic models:

- ``raw``: a ``QueueMessage`` ``{type, payload, metadata: {attempts, originalTimestamp, lastAttempt?}}``
  (what ``env.DLQ.send(message.body)`` and the platform's automatic dead-lettering store);
- ``wrapped``: ``{original: QueueMessage, error}`` or ``{original: {id, timestamp, body, attempts}, error}``
  (``env.DEAD_LETTER_QUEUE.send({original: message, error: error.message})``);
- ``unknown``: anything else; ``payload`` then holds the whole decoded body as JSON text.

Two ways to read a DLQ from the API (:func:`load_dlq`):

``peek`` (default)
    Reads up to 100 messages from the head without leasing them: consumes nothing, changes no
    ``attempts``. When the queue's backlog (metrics endpoint) is larger, the result says so and
    points to ``snapshot``.

``snapshot``
    Pulls (leases) every message with a visibility timeout, extends the leases while it reads, then
    releases them (retry with ``delay_seconds: 0``). **The trap**: every pull is a delivery attempt.
    When a released message's ``attempts`` exceeds the DLQ consumer's ``max_retries``, Cloudflare
    dead-letters it again (to the DLQ's own DLQ) or **deletes** it. So before pulling, snapshot reads
    the consumer's ``max_retries``, peeks the head, and refuses (unless ``force=True``) when any
    message would pass the limit. Messages beyond the first 100 cannot be inspected before pulling;
    each is checked as it is pulled, and one found past the limit is saved: its body is pushed back
    onto the queue as a new message and only then is the pulled copy acked (the snapshot reads the
    new copy later; ``requeued`` lists the old ids). A body the REST API cannot send (``v8``,
    ``bytes``) or a failed push keeps its lease for 12 h instead, with a warning that says how to
    raise ``max_retries`` in time. With ``force=True`` nothing is saved: such messages are reported
    and lost (their bodies stay in the frame, so the evidence bundle keeps them).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from edgeinvestigate._time import epoch_to_ms, to_utc
from edgeinvestigate.errors import (
    APIError,
    ConfigError,
    EdgeInvestigateError,
    LoadError,
    ParseError,
    ReplayRefusedError,
)
from edgeinvestigate.models import frames as schema

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = [
    "DLQCollection",
    "DecodedBody",
    "Envelope",
    "QueueMessage",
    "QueueMessageMetadata",
    "RuntimeMessage",
    "WrappedQueueMessage",
    "WrappedRuntimeMessage",
    "collect_dlq",
    "decode_body",
    "dlq_frame",
    "dlq_frame_from_file",
    "load_dlq",
    "recognise_envelope",
    "release_leases",
]

log = logging.getLogger(__name__)

PEEK_MAX = 100
DEFAULT_VISIBILITY_MS = 300_000  # leases are extended at half of this while a snapshot reads
MAX_VISIBILITY_MS = 43_200_000  # 12 h, the API's limit
_CHUNK = 100

V8_FLAG = (
    "v8: undecodable V8 structured-clone body (kept as base64; it cannot be decoded outside Workers "
    "nor replayed through the REST API)"
)

SNAPSHOT_HELP = (
    "snapshot pulls (leases) every message and then releases it. Each pull is a delivery attempt: "
    "when a released message's attempts exceed the DLQ consumer's max_retries, Cloudflare moves it "
    "to that consumer's own dead-letter queue or DELETES it. snapshot therefore reads max_retries "
    "first and refuses (unless --force) when any message would pass it. peek (the default) consumes "
    "nothing but sees at most 100 messages from the head."
)


# ---------------------------------------------------------------------------------------------
# body decoding (reference D2)


@dataclass(frozen=True)
class DecodedBody:
    """A decoded message body.

    ``value`` is the decoded JSON value (``json``), the string (``text``), or ``None``;
    ``data`` holds decoded bytes (``bytes``); ``encoding`` says how ``json`` arrived
    (``plain`` or ``base64``); ``decode_error`` is set when the body could not be decoded or is
    opaque (``v8``).
    """

    content_type: str | None
    value: Any = None
    data: bytes | None = None
    encoding: Literal["plain", "base64", "none"] = "none"
    decode_error: str | None = None

    @property
    def has_value(self) -> bool:
        return self.decode_error is None and self.content_type in ("json", "text", None) and self.data is None


def _b64(body: str) -> bytes:
    return base64.b64decode(body.strip(), validate=True)


def _as_json(body: str) -> tuple[Any, str] | tuple[None, str]:
    """(value, "plain"|"base64") or (None, reason)."""
    try:
        return json.loads(body), "plain"
    except json.JSONDecodeError as plain_exc:
        plain_reason = f"not JSON ({plain_exc.msg} at char {plain_exc.pos})"
    try:
        raw = _b64(body)
    except (binascii.Error, ValueError):
        return None, f"{plain_reason} and not base64"
    try:
        return json.loads(raw.decode("utf-8")), "base64"
    except UnicodeDecodeError:
        return None, f"{plain_reason}; base64 decodes to bytes that are not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"{plain_reason}; base64 decodes to text that is not JSON ({exc.msg})"


def decode_body(body: Any, content_type: str | None) -> DecodedBody:
    """Decode one pulled/peeked ``body`` given ``metadata["CF-Content-Type"]`` (reference D2)."""
    ct = content_type.strip().lower() if isinstance(content_type, str) and content_type.strip() else None
    if not isinstance(body, str):
        # not the wire shape (a hand-written file with an object body): take the value as given
        if ct in (None, "json"):
            return DecodedBody(ct, value=body, encoding="plain")
        return DecodedBody(ct, decode_error=f"{ct} body is a {type(body).__name__}, expected a string")
    if ct == "text":
        return DecodedBody(ct, value=body, encoding="plain")
    if ct == "json":
        value, how = _as_json(body)
        if value is None and how not in ("plain", "base64"):
            return DecodedBody(ct, decode_error=f"json body is {how}; kept raw")
        return DecodedBody(ct, value=value, encoding=how)  # type: ignore[arg-type]
    if ct == "bytes":
        try:
            return DecodedBody(ct, data=_b64(body), encoding="base64")
        except (binascii.Error, ValueError) as exc:
            return DecodedBody(ct, decode_error=f"bytes body is not valid base64 ({exc}); kept raw")
    if ct == "v8":
        return DecodedBody(ct, encoding="base64", decode_error=V8_FLAG)
    if ct is None:
        value, how = _as_json(body)
        if how in ("plain", "base64"):
            return DecodedBody(None, value=value, encoding=how)  # type: ignore[arg-type]
        return DecodedBody(
            None,
            encoding="base64",
            decode_error=f"no CF-Content-Type and the body is {how}: treated as {V8_FLAG}",
        )
    return DecodedBody(ct, decode_error=f"unknown content type {content_type!r}; body kept raw")


# ---------------------------------------------------------------------------------------------
# envelopes (processing-architecture.md)


class QueueMessageMetadata(BaseModel):
    """``QueueMessage.metadata``: ``{attempts, originalTimestamp, lastAttempt?}``."""

    model_config = ConfigDict(extra="allow")

    attempts: StrictInt
    originalTimestamp: StrictStr | StrictInt
    lastAttempt: StrictStr | StrictInt | None = None


class QueueMessage(BaseModel):
    """The seed's job message ``{type, payload, metadata}``."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr
    payload: Any = None
    metadata: QueueMessageMetadata


class RuntimeMessage(BaseModel):
    """``JSON.stringify(message)`` of a runtime ``Message``: ``{id, timestamp, body, attempts}``."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr
    timestamp: StrictStr | StrictInt
    body: Any = None
    attempts: StrictInt


class WrappedQueueMessage(BaseModel):
    """``{original: QueueMessage, error}``."""

    model_config = ConfigDict(extra="allow")

    original: QueueMessage
    error: Any = None


class WrappedRuntimeMessage(BaseModel):
    """``{original: {id, timestamp, body, attempts}, error}``."""

    model_config = ConfigDict(extra="allow")

    original: RuntimeMessage
    error: Any = None


@dataclass(frozen=True)
class Envelope:
    """What the envelope says: the job fields (``None`` when unknown)."""

    kind: Literal["raw", "wrapped", "unknown"]
    job_type: str | None = None
    job_id: str | None = None
    payload: Any = None
    has_payload: bool = False
    original_timestamp: Any = None
    meta_attempts: int | None = None
    last_attempt: Any = None
    error: str | None = None
    original_id: str | None = None


_JOB_ID_KEYS = ("jobId", "job_id", "jobID")


def _job_id(payload: Any, extra: Mapping[str, Any] | None = None) -> str | None:
    for source in (payload, extra or {}):
        if isinstance(source, Mapping):
            for key in _JOB_ID_KEYS:
                v = source.get(key)
                if isinstance(v, str | int) and not isinstance(v, bool):
                    return str(v)
    return None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return json.dumps(error, ensure_ascii=False, sort_keys=True)


def _from_job(msg: QueueMessage, kind: Literal["raw", "wrapped"], **extra: Any) -> Envelope:
    return Envelope(
        kind=kind,
        job_type=msg.type,
        job_id=_job_id(msg.payload, msg.model_extra),
        payload=msg.payload,
        has_payload=True,
        original_timestamp=msg.metadata.originalTimestamp,
        meta_attempts=msg.metadata.attempts,
        last_attempt=msg.metadata.lastAttempt,
        **extra,
    )


def recognise_envelope(value: Any) -> Envelope:
    """Recognise a decoded body as ``raw``, ``wrapped`` or ``unknown``."""
    if not isinstance(value, Mapping):
        return Envelope("unknown", payload=value, has_payload=True)
    if "original" in value:
        try:
            w = WrappedQueueMessage.model_validate(value)
            return _from_job(w.original, "wrapped", error=_error_text(w.error))
        except ValidationError:
            pass
        try:
            r = WrappedRuntimeMessage.model_validate(value)
        except ValidationError:
            return Envelope("unknown", payload=value, has_payload=True)
        orig = r.original
        error = _error_text(r.error)
        try:
            job = QueueMessage.model_validate(orig.body)
        except ValidationError:
            return Envelope(
                "wrapped",
                job_id=_job_id(orig.body),
                payload=orig.body,
                has_payload=True,
                original_timestamp=orig.timestamp,
                meta_attempts=orig.attempts,
                error=error,
                original_id=orig.id,
            )
        return _from_job(job, "wrapped", error=error, original_id=orig.id)
    try:
        return _from_job(QueueMessage.model_validate(value), "raw")
    except ValidationError:
        return Envelope("unknown", job_id=_job_id(value), payload=value, has_payload=True)


# ---------------------------------------------------------------------------------------------
# the frame


def _ts_ms(value: Any) -> tuple[int | None, str | None]:
    """Epoch ms of an ISO string or epoch number; (None, problem) when unreadable."""
    if value is None or value == "":
        return None, None
    if isinstance(value, bool):
        return None, f"{value!r} is not a time"
    if isinstance(value, int | float):
        return epoch_to_ms(value), None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return epoch_to_ms(int(text)), None
        try:
            ts = to_utc(pd.Timestamp(text))
        except (ValueError, TypeError):
            return None, f"{value!r} is not a time"
        if pd.isna(ts):
            return None, f"{value!r} is not a time"
        return int(ts.value // 1_000_000), None
    return None, f"{value!r} is not a time"


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def message_row(message: Mapping[str, Any], queue: str | None) -> dict[str, Any]:
    """One ``dlq`` frame row (as a plain dict, timestamps in epoch ms) from a pulled/peeked message."""
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    content_type = metadata.get("CF-Content-Type", message.get("content_type"))
    body = message.get("body")
    problems: list[str] = []
    decoded = decode_body(body, content_type if isinstance(content_type, str) else None)
    if decoded.decode_error:
        problems.append(decoded.decode_error)
    env = recognise_envelope(decoded.value) if decoded.has_value else Envelope("unknown")
    orig_ms, p1 = _ts_ms(env.original_timestamp)
    last_ms, p2 = _ts_ms(env.last_attempt)
    for what, problem in (("metadata.originalTimestamp", p1), ("metadata.lastAttempt", p2)):
        if problem:
            problems.append(f"{what} {problem}")
    enq_ms, p3 = _ts_ms(message.get("timestamp_ms"))
    if p3:
        problems.append(f"timestamp_ms {p3}")
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id:
        problems.append("message has no id")
        message_id = None
    body_raw = body if isinstance(body, str) else (_dumps(body) if body is not None else None)
    if body is None:
        problems.append("message has no body")
    return {
        "message_id": message_id,
        "enqueued_at": enq_ms,
        "attempts": _int(message.get("attempts")),
        "content_type": decoded.content_type,
        "job_type": env.job_type,
        "job_id": env.job_id,
        "payload": _dumps(env.payload) if env.has_payload else None,
        "original_timestamp": orig_ms,
        "meta_attempts": env.meta_attempts,
        "last_attempt": last_ms,
        "error": env.error,
        "envelope": env.kind,
        "body_raw": body_raw,
        "decode_error": "; ".join(problems) if problems else None,
        "queue": queue,
        "lease_id": message.get("lease_id") if isinstance(message.get("lease_id"), str) else None,
    }


def dlq_frame(messages: Iterable[Mapping[str, Any]], queue: str | None) -> pd.DataFrame:
    """The canonical ``dlq`` frame (see :data:`models.frames.DLQ`) of pulled/peeked messages."""
    rows = [message_row(m, queue) for m in messages]
    columns: dict[str, pa.Array] = {}
    for name, typ in schema.DLQ.items():
        columns[name] = pa.array([r[name] for r in rows], type=typ)
    return schema.conform(pa.table(columns), "dlq")


def _messages_from_json(data: Any, path: Path) -> tuple[list[Any], str | None]:
    """Accept a list, ``{queue?, messages: [...]}``, or an API envelope ``{result: {...}}``."""
    queue = None
    if isinstance(data, Mapping) and isinstance(data.get("result"), Mapping | list):
        data = data["result"]
    if isinstance(data, Mapping):
        queue = data.get("queue") or data.get("queue_name")
        data = data.get("messages")
    if not isinstance(data, list):
        raise ParseError(
            "not a DLQ snapshot",
            path=str(path),
            line=1,
            expected="a JSON array of messages {id, body, attempts, timestamp_ms, metadata}, "
            "an object with 'messages', or NDJSON",
        )
    return data, queue if isinstance(queue, str) else None


def dlq_frame_from_file(path: str | Path, queue: str | None = None) -> pd.DataFrame:
    """The ``dlq`` frame of a saved DLQ (the simulator's ``dlq/messages.json``, a peek/pull response,
    or NDJSON of messages). A record that is not an object raises :class:`ParseError` naming the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"cannot read the DLQ file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ParseError("not UTF-8 text", path=str(p), offset=exc.start) from None
    file_queue: str | None
    try:
        messages, file_queue = _messages_from_json(json.loads(text), p)
        lines = None
    except json.JSONDecodeError as exc:
        # NDJSON: one message per line
        messages, lines = [], []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError as line_exc:
                raise ParseError(
                    f"invalid JSON ({line_exc.msg} at column {line_exc.colno})",
                    path=str(p),
                    line=lineno if len(messages) or lineno > 1 else exc.lineno,
                    expected="a JSON array of messages or one message object per line",
                ) from None
            lines.append(lineno)
        file_queue = None
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ParseError(
                f"message #{i + 1} is a {type(m).__name__}, not an object",
                path=str(p),
                line=lines[i] if lines else None,
                expected="{id, body, attempts, timestamp_ms, metadata}",
            )
    return dlq_frame(messages, queue or file_queue or p.stem)


# ---------------------------------------------------------------------------------------------
# collection from the API


@dataclass
class DLQCollection:
    """What :func:`collect_dlq` read, and how complete it is.

    ``complete`` is False when peek saw fewer messages than the backlog; ``warnings`` say so in
    plain words (print them). With ``release=False`` the leases are still held: ``leases`` lists
    them (also in the frame's ``lease_id``) and the caller must ack or release them.
    """

    queue: str
    queue_id: str
    mode: Literal["peek", "snapshot"]
    frame: pd.DataFrame
    backlog_count: int | None = None
    complete: bool = True
    max_retries: int | None = None
    released: int = 0
    leases: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    """ids of messages a snapshot pulled past ``max_retries``: their bodies were pushed back onto the
    queue as new messages (read later in the same snapshot) before the pulled copies were acked"""

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "queue_id": self.queue_id,
            "mode": self.mode,
            "messages": len(self.frame),
            "backlog_count": self.backlog_count,
            "complete": self.complete,
            "max_retries": self.max_retries,
            "released": self.released,
            "leases_held": len(self.leases),
            "requeued": list(self.requeued),
            "warnings": list(self.warnings),
        }


def _backlog(client: CloudflareClient, qid: str) -> int | None:
    try:
        m = client.metrics(qid)
    except APIError as exc:
        if exc.status in (401, 403):
            raise
        log.warning("could not read the backlog of queue %s: %s", qid, exc.message)
        return None
    return _int(m.get("backlog_count"))


def _http_pull_consumer(client: CloudflareClient, qid: str, queue: str) -> Mapping[str, Any]:
    consumers = client.list_consumers(qid)
    pull = [c for c in consumers if isinstance(c, Mapping) and c.get("type") == "http_pull"]
    if not pull:
        kinds = ", ".join(sorted({str(c.get("type")) for c in consumers if isinstance(c, Mapping)})) or "none"
        raise ConfigError(
            f"queue {queue!r} has no HTTP pull consumer (consumers: {kinds}), "
            "so snapshot cannot pull from it",
            hint=f"add one with `wrangler queues consumer http add {queue}`, or use --dlq-mode peek "
            "(reads up to 100 messages, consumes nothing)",
        )
    return pull[0]


def collect_dlq(
    client: CloudflareClient,
    queue: str,
    *,
    mode: Literal["peek", "snapshot"] = "peek",
    force: bool = False,
    batch_size: int = 100,
    visibility_timeout_ms: int = DEFAULT_VISIBILITY_MS,
    release: bool = True,
    limit: int | None = None,
) -> DLQCollection:
    """Read a DLQ into a :class:`DLQCollection` (see the module docstring for the modes)."""
    if mode not in ("peek", "snapshot"):
        raise ConfigError(f"unknown DLQ mode {mode!r}", hint="use --dlq-mode peek or --dlq-mode snapshot")
    qid = client.queue_id(queue)
    backlog = _backlog(client, qid)
    if mode == "peek":
        return _peek(client, queue, qid, backlog, min(batch_size, limit or PEEK_MAX, PEEK_MAX))
    return _snapshot(
        client,
        queue,
        qid,
        backlog,
        force=force,
        batch_size=max(1, min(batch_size, 100)),
        visibility_timeout_ms=visibility_timeout_ms,
        release=release,
        limit=limit,
    )


def load_dlq(
    client: CloudflareClient,
    queue: str,
    mode: Literal["peek", "snapshot"] = "peek",
    force: bool = False,
    *,
    batch_size: int = 100,
    visibility_timeout_ms: int = DEFAULT_VISIBILITY_MS,
    release: bool = True,
    limit: int | None = None,
) -> pd.DataFrame:
    """The ``dlq`` frame of a queue, read with ``peek`` (default) or ``snapshot``.

    ``frame.attrs["dlq_collection"]`` holds :meth:`DLQCollection.summary` (mode, backlog,
    completeness, warnings); :func:`collect_dlq` returns the full :class:`DLQCollection`.
    """
    result = collect_dlq(
        client,
        queue,
        mode=mode,
        force=force,
        batch_size=batch_size,
        visibility_timeout_ms=visibility_timeout_ms,
        release=release,
        limit=limit,
    )
    frame = result.frame
    frame.attrs["dlq_collection"] = result.summary()
    return frame


def _peek(client: CloudflareClient, queue: str, qid: str, backlog: int | None, n: int) -> DLQCollection:
    res = client.peek(qid, batch_size=n)
    messages = [m for m in res.get("messages") or [] if isinstance(m, Mapping)]
    frame = dlq_frame(messages, queue)
    out = DLQCollection(queue, qid, "peek", frame, backlog_count=backlog)
    if backlog is not None and backlog > len(messages):
        out.complete = False
        out.warnings.append(
            f"peek saw {len(messages)} of {backlog} messages in DLQ {queue!r}: peek reads at most "
            f"{PEEK_MAX} from the head of the queue. To read all of them run with --dlq-mode snapshot "
            "(read `edgeinvestigate collect --help` first: snapshot pulls count as delivery attempts)."
        )
    elif backlog is None:
        out.warnings.append(
            f"could not read the backlog of DLQ {queue!r}; peek saw {len(messages)} messages "
            f"(at most {PEEK_MAX} from the head), so there may be more"
        )
    for w in out.warnings:
        log.warning("%s", w)
    return out


def _exhaust_target(consumer: Mapping[str, Any]) -> str:
    dlq = consumer.get("dead_letter_queue") or ""
    return f"moved to its dead-letter queue {dlq!r}" if dlq else "DELETED"


def _snapshot(
    client: CloudflareClient,
    queue: str,
    qid: str,
    backlog: int | None,
    *,
    force: bool,
    batch_size: int,
    visibility_timeout_ms: int,
    release: bool,
    limit: int | None,
) -> DLQCollection:
    consumer = _http_pull_consumer(client, qid, queue)
    settings = consumer.get("settings") if isinstance(consumer.get("settings"), Mapping) else {}
    max_retries = _int((settings or {}).get("max_retries"))
    if max_retries is None:
        max_retries = 3  # Cloudflare's default
    fate = _exhaust_target(consumer)
    head = [m for m in client.peek(qid, batch_size=PEEK_MAX).get("messages") or [] if isinstance(m, Mapping)]
    at_risk = [m for m in head if (_int(m.get("attempts")) or 0) + 1 > max_retries]
    warnings: list[str] = []
    if at_risk:
        ids = ", ".join(str(m.get("id")) for m in at_risk[:5]) + (" ..." if len(at_risk) > 5 else "")
        text = (
            f"a snapshot of DLQ {queue!r} would push {len(at_risk)} message(s) past the consumer's "
            f"max_retries={max_retries} (one more delivery attempt each; {len(at_risk)} of the first "
            f"{len(head)} checked), and they would be {fate}: {ids}"
        )
        if not force:
            raise ReplayRefusedError(
                "refusing the snapshot: " + text,
                hint="use --dlq-mode peek (consumes nothing), raise max_retries of the DLQ's pull consumer "
                "(wrangler queues consumer http add/update), or pass --force if losing them is acceptable",
            )
        warnings.append("--force: " + text)
    if backlog is not None and backlog > len(head):
        log.info(
            "snapshot: %d messages are beyond the %d-message peek window; each is checked as it is pulled",
            backlog - len(head),
            PEEK_MAX,
        )

    held: dict[str, dict[str, Any]] = {}  # message id -> message (with lease_id)
    order: list[str] = []
    requeued: list[str] = []  # pulled past max_retries: body pushed back, pulled copy acked
    doomed: set[str] = set()  # pulled past max_retries and could not be pushed back: lease kept
    last_extended = time.monotonic()
    half = visibility_timeout_ms / 2000.0
    try:
        while limit is None or len(order) < limit:
            if held and time.monotonic() - last_extended >= half:
                _extend(client, qid, [m["lease_id"] for m in held.values()], visibility_timeout_ms, warnings)
                last_extended = time.monotonic()
            want = batch_size if limit is None else min(batch_size, limit - len(order))
            res = client.pull(qid, batch_size=want, visibility_timeout_ms=visibility_timeout_ms)
            batch = [m for m in res.get("messages") or [] if isinstance(m, Mapping)]
            if not batch:
                break
            if not held:
                last_extended = time.monotonic()
            for m in batch:
                mid = str(m.get("id"))
                attempts = _int(m.get("attempts")) or 0
                if attempts > max_retries and not force:
                    # beyond the checked head: releasing this pull (or its lease ending) would lose it
                    if _requeue(client, queue, qid, m, max_retries, fate, warnings):
                        requeued.append(mid)
                        if mid in held:
                            del held[mid]
                            order.remove(mid)
                        continue
                    doomed.add(mid)
                if mid in held:
                    warnings.append(
                        f"message {mid} was delivered again during the snapshot (its lease expired); "
                        "raise --visibility-timeout"
                    )
                else:
                    order.append(mid)
                held[mid] = dict(m)
                if attempts > max_retries and force:
                    warnings.append(
                        f"message {mid} was pulled with attempts={attempts} > max_retries={max_retries}: "
                        f"releasing it (or its lease ending) gets it {fate}; its body is kept in the frame"
                    )
    except BaseException:
        if release and held:
            log.warning("snapshot interrupted: releasing %d leased messages", len(held))
            try:
                release_leases(client, qid, [m["lease_id"] for m in held.values() if m.get("lease_id")])
            except Exception as exc:  # pragma: no cover - best effort, the original error wins
                log.error("could not release the leases (they return after the visibility timeout): %s", exc)
        raise

    messages = [held[mid] for mid in order]
    released = 0
    leases = [str(m["lease_id"]) for m in messages if m.get("lease_id")]
    if release:
        kept = {str(held[mid].get("lease_id")) for mid in doomed if mid in held}
        released, rel_warnings = release_leases(client, qid, [lease for lease in leases if lease not in kept])
        warnings.extend(rel_warnings)
        if kept:
            _extend(client, qid, sorted(kept), MAX_VISIBILITY_MS, warnings)
        for m in messages:
            if str(m.get("id")) not in doomed:
                m.pop("lease_id", None)
        leases = sorted(kept)
    frame = dlq_frame(messages, queue)
    complete = limit is None or len(messages) < limit
    out = DLQCollection(
        queue,
        qid,
        "snapshot",
        frame,
        backlog_count=backlog,
        complete=complete,
        max_retries=max_retries,
        released=released,
        leases=leases,
        warnings=warnings,
    )
    out.requeued = requeued
    if not complete:
        out.warnings.append(f"snapshot stopped at --limit {limit}; DLQ {queue!r} may hold more messages")
    for w in out.warnings:
        log.warning("%s", w)
    return out


def _requeue(
    client: CloudflareClient,
    queue: str,
    qid: str,
    message: Mapping[str, Any],
    max_retries: int,
    fate: str,
    warnings: list[str],
) -> bool:
    """Save a message that a snapshot pulled past ``max_retries``: push its body back onto the queue
    (a new message), and only after the push is confirmed ack the pulled copy. False (nothing acked,
    the lease is kept) when the body cannot be sent through the REST API or the push fails."""
    mid = str(message.get("id"))
    attempts = _int(message.get("attempts")) or 0
    metadata = message.get("metadata") if isinstance(message.get("metadata"), Mapping) else {}
    ctype = (metadata or {}).get("CF-Content-Type", message.get("content_type"))
    decoded = decode_body(message.get("body"), ctype if isinstance(ctype, str) else None)
    what = (
        f"message {mid} was pulled with attempts={attempts} > max_retries={max_retries} of the DLQ's "
        f"consumer (it was beyond the {PEEK_MAX}-message head checked before pulling)"
    )
    if decoded.has_value and decoded.content_type in ("json", "text", None):
        push_type: Literal["json", "text"] = "text" if decoded.content_type == "text" else "json"
        try:
            client.push(qid, decoded.value, push_type)
        except EdgeInvestigateError as exc:
            why = f"pushing its body back failed ({exc.message})"
        else:
            lease = message.get("lease_id")
            if lease:
                client.ack(qid, acks=[str(lease)])
            warnings.append(
                f"{what}: its body was pushed back onto {queue!r} as a new message and the pulled copy "
                f"acked, so it was not {fate}; the new copy has a new id and timestamp"
            )
            return True
    else:
        why = f"its {decoded.content_type or 'unknown'} body cannot be sent through the REST API"
    warnings.append(
        f"{what}, and {why}: its lease is kept for {MAX_VISIBILITY_MS // 3_600_000} h. Within that time "
        f"raise max_retries of {queue!r}'s pull consumer above {attempts} (dashboard, or `wrangler queues "
        f"consumer http remove {queue}` then `wrangler queues consumer http add {queue} --message-retries "
        f"{attempts + 10}`); then the message stays in the queue when the lease ends, otherwise it is {fate}"
    )
    return False


def _chunks(items: Sequence[str], n: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _extend(
    client: CloudflareClient, qid: str, leases: Sequence[str], visibility_ms: int, warnings: list[str]
) -> None:
    for chunk in _chunks(list(leases)):
        res = client.extend(qid, chunk, visibility_ms)
        for lease, why in (res.get("warnings") or {}).items():
            warnings.append(f"could not extend lease {lease[:12]}...: {why}")


def release_leases(
    client: CloudflareClient, queue_id: str, lease_ids: Sequence[str]
) -> tuple[int, list[str]]:
    """Release leased messages back to the queue at once (retry with ``delay_seconds: 0``).

    Returns (number released, warnings). Releasing counts the pull as a failed delivery attempt.
    """
    released = 0
    warnings: list[str] = []
    for chunk in _chunks(list(lease_ids)):
        res = client.ack(queue_id, acks=(), retries=[{"lease_id": lid, "delay_seconds": 0} for lid in chunk])
        released += _int(res.get("retryCount")) or 0
        for lease, why in (res.get("warnings") or {}).items():
            warnings.append(f"release of lease {lease[:12]}...: {why}")
    return released, warnings
