"""The canonical ``dlq`` frame of DLQ messages: from pulled/peeked messages or a saved DLQ file.

One row per message: the decoded body and what its envelope says (see :mod:`.dlq_body`), the
delivery fields, and ``decode_error`` listing every problem; a message is never dropped.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa

from edgeinvestigate._time import to_utc
from edgeinvestigate.errors import LoadError, ParseError
from edgeinvestigate.models import frames as schema
from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.api._dlq_file import EXPECTED, NOT_A_SNAPSHOT_HINT, json_type, split_dlq_records
from edgeinvestigate.sources.api.dlq_body import DecodedBody, Envelope, decode_body, recognise_envelope
from edgeinvestigate.sources.files._coerce import MS_ONLY, BadTime, parse_ms, shown_number
from edgeinvestigate.sources.files._context import MAX_RECORD_BYTES, FileContext
from edgeinvestigate.sources.files._reading import read_bytes
from edgeinvestigate.sources.files._rows import show

__all__ = ["DLQ_FILE_SOURCE", "as_int", "dlq_frame", "dlq_frame_from_file", "message_row", "read_dlq_file"]

#: the ``source`` of a DLQ file's report in the load report
DLQ_FILE_SOURCE: Final = "dlq_file"
STRICT_HINT: Final = (
    "nothing was written; fix the DLQ file, or collect it without --strict to skip and list every bad "
    "record in the load report"
)


def _ts_ms(value: Any, hi: int | None = None) -> tuple[int | None, str | None]:
    """Epoch ms of an ISO string or epoch-ms number (reference D1, E); (None, problem) when it is not
    one, or lands outside 2010-01-01 .. now + 1 day (the same window the file loaders use)."""
    if value is None or value == "":
        return None, None
    ms = parse_ms(value, MS_ONLY, hi)
    if isinstance(ms, BadTime) and not ms.which and isinstance(value, str):
        try:  # other date spellings pandas reads (JavaScript's Date.toString(), say)
            ts = to_utc(pd.Timestamp(value.strip()))
            if not pd.isna(ts):
                ms = parse_ms(int(ts.value // 1_000_000), MS_ONLY, hi)
                if isinstance(ms, BadTime):
                    ms = BadTime(show(value), "is no time between 2010-01-01 and tomorrow")
        except (ValueError, TypeError, OverflowError):
            pass
    if isinstance(ms, BadTime):
        return None, f"{ms.text}, which {ms.which}" if ms.which else f"{ms.text} is not a time"
    return ms, None


def as_int(value: Any) -> int | None:
    """An integer field of a message (an int, an integral float or a digit string), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (t := value.strip()).isascii() and t.isdigit() and len(t) <= 18:
        return int(t)
    return None


def _int32(value: Any) -> int | None:
    """A count that fits the frame's 32-bit column (``attempts`` is a uint16 in the runtime)."""
    v = as_int(value)
    return v if v is not None and -(2**31) <= v < 2**31 else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_ID_KEYS: Final = ("id", "messageId", "message_id")
_TIME_KEYS: Final = ("timestamp_ms", "timestamp", "timestampMs")


def _first(message: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if message.get(key) is not None:
            return key, message[key]
    return keys[0], None


def _decoded(message: Mapping[str, Any], body: Any, content_type: Any) -> DecodedBody:
    """The body of a pulled/peeked message (decoded by its content type, reference D2), or of a
    runtime ``Message`` a Worker stored (``{id, timestamp, body, attempts}``, reference E: the body
    is the value itself, a string being a text body)."""
    ct = content_type if isinstance(content_type, str) else None
    runtime = ct is None and "timestamp_ms" not in message and "metadata" not in message
    if runtime and isinstance(body, str):
        return DecodedBody("text", value=body, encoding="plain")
    if runtime and body is not None:
        return DecodedBody("json", value=body, encoding="plain")
    return decode_body(body, ct)


def message_row(message: Mapping[str, Any], queue: str | None, hi: int | None = None) -> dict[str, Any]:
    """One ``dlq`` frame row (as a plain dict, timestamps in epoch ms) from a pulled/peeked message
    or a stored runtime ``Message`` (``id``/``messageId``/``message_id``; ``timestamp_ms``, or
    ``timestamp`` as ISO or epoch ms; ``body`` a string or any JSON value). A message that cannot be
    read at all (nested too deeply, say) still gets a row, with ``decode_error`` saying why."""
    try:
        return _message_row(message, queue, hi)
    except (RecursionError, ValueError, OverflowError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
        message_id = _first(message, _ID_KEYS)[1]
        row: dict[str, Any] = dict.fromkeys(schema.DLQ)
        row.update(
            message_id=message_id if isinstance(message_id, str) and message_id else None,
            envelope="unknown",
            decode_error=f"the message could not be read ({why[:200]})",
            queue=queue,
        )
        return row


def _message_row(message: Mapping[str, Any], queue: str | None, hi: int | None) -> dict[str, Any]:
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    content_type = metadata.get("CF-Content-Type", message.get("content_type"))
    body = message.get("body")
    problems: list[str] = []
    decoded = _decoded(message, body, content_type)
    if decoded.decode_error:
        problems.append(decoded.decode_error)
    env = recognise_envelope(decoded.value) if decoded.has_value else Envelope("unknown")
    orig_ms, p1 = _ts_ms(env.original_timestamp, hi)
    last_ms, p2 = _ts_ms(env.last_attempt, hi)
    for what, problem in (("metadata.originalTimestamp", p1), ("metadata.lastAttempt", p2)):
        if problem:
            problems.append(f"{what} {problem}")
    time_key, enqueued = _first(message, _TIME_KEYS)
    enq_ms, p3 = _ts_ms(enqueued, hi)
    if p3:
        problems.append(f"{time_key} {p3}")
    _key, message_id = _first(message, _ID_KEYS)
    if not isinstance(message_id, str) or not message_id:
        problems.append("message has no id")
        message_id = None
    body_raw = body if isinstance(body, str) else (_dumps(body) if body is not None else None)
    if body is None:
        problems.append("message has no body")
    attempts = message.get("attempts")
    if attempts is not None and _int32(attempts) is None:
        problems.append(f"attempts {shown_number(attempts)} is not a count")
    return {
        "message_id": message_id,
        "enqueued_at": enq_ms,
        "attempts": _int32(attempts),
        "content_type": decoded.content_type,
        "job_type": env.job_type,
        "job_id": env.job_id,
        "payload": _dumps(env.payload) if env.has_payload else None,
        "original_timestamp": orig_ms,
        "meta_attempts": _int32(env.meta_attempts),
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
    return _frame_of_rows([message_row(m, queue) for m in messages])


def _frame_of_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns: dict[str, pa.Array] = {}
    for name, typ in schema.DLQ.items():
        columns[name] = pa.array([r[name] for r in rows], type=typ)
    return schema.conform(pa.table(columns), "dlq")


def read_dlq_file(
    path: str | Path,
    queue: str | None = None,
    *,
    strict: bool = True,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> tuple[pd.DataFrame, FileReport]:
    """The ``dlq`` frame of a saved DLQ file and the report of reading it.

    Read: the simulator's ``dlq/messages.json``, a peek/pull response, a Worker's archive of the
    runtime ``Message`` objects it saw (``{count, items}``, ``messageId``...), NDJSON; plain or gzip
    (see :mod:`._dlq_file`). A record that is not a message (invalid JSON, not an object, larger than
    ``max_record_bytes``) is listed in the report with its line and byte offset (message number when
    the file decoded whole) and skipped; with ``strict`` it raises
    :class:`~edgeinvestigate.errors.ParseError` instead. A file with no message array at all, or
    with nothing but bad records, raises :class:`~edgeinvestigate.errors.ParseError`.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise LoadError(f"cannot read the DLQ file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(
            f"the DLQ file {p} is not a regular file (a pipe or device can block or never end)",
            hint="save the DLQ snapshot to a file first",
        )
    report = FileReport(path=str(p), source=DLQ_FILE_SOURCE, size=st.st_size, mtime_ns=st.st_mtime_ns)
    ctx = FileContext(
        path=str(p),
        source=DLQ_FILE_SOURCE,
        strict=strict,
        report=report,
        max_record_bytes=max_record_bytes,
        strict_hint=STRICT_HINT,
    )
    recs = split_dlq_records(read_bytes(p, ctx, containers=b"[{"), ctx)  # a one-line snapshot holds many
    rows = []
    for message, line, offset, number in recs.messages:
        if not isinstance(message, Mapping):
            kind = json_type(message)
            value = (
                "" if message is None else f" {shown_number(message) if kind == 'number' else show(message)}"
            )
            ctx.issue(
                "type",
                f"message #{number} is a JSON {kind}{value}, not a message object; skipped",
                line=line,
                offset=offset,
                expected="{id, body, attempts, timestamp_ms | timestamp, metadata}",
            )
            continue
        report.records += 1
        rows.append(message_row(message, queue or recs.queue or p.stem, ctx.ts_hi))
    if isinstance(recs.count, int) and not isinstance(recs.count, bool) and recs.count != recs.seen:
        ctx.issue(
            "count",
            f"the file says count {recs.count} but holds {recs.seen} messages",
            severity="info",
        )
    if not rows and report.skipped:
        first = next(i for i in report.issues if i.severity == "error")
        raise ParseError(
            f"none of the {report.skipped} records could be read as a DLQ message (first: {first.message})",
            path=str(p),
            line=first.line,
            offset=first.offset,
            expected=EXPECTED,
            hint=NOT_A_SNAPSHOT_HINT,
        )
    return _frame_of_rows(rows), report


def dlq_frame_from_file(
    path: str | Path,
    queue: str | None = None,
    *,
    strict: bool = True,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> pd.DataFrame:
    """The ``dlq`` frame of a saved DLQ file (see :func:`read_dlq_file`); the report of reading it
    is ``frame.attrs["load_report"]`` (a :class:`~edgeinvestigate.models.load_report.FileReport` as
    a dict).
    ``strict`` (the default here) stops at the first bad record; ``collect --dlq-file`` passes its
    ``--strict``, so a collect skips and lists bad records."""
    frame, report = read_dlq_file(path, queue, strict=strict, max_record_bytes=max_record_bytes)
    frame.attrs["load_report"] = report.to_dict()  # attrs stay JSON (pyarrow keeps them with the frame)
    return frame
