"""The canonical ``dlq`` frame of DLQ messages: from pulled/peeked messages or a saved DLQ file.

One row per message: the decoded body and what its envelope says (see :mod:`.dlq_body`), the
delivery fields, and ``decode_error`` listing every problem; a message is never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from edgeinvestigate._time import epoch_to_ms, to_utc
from edgeinvestigate.errors import LoadError, ParseError
from edgeinvestigate.models import frames as schema
from edgeinvestigate.sources.api.dlq_body import Envelope, decode_body, recognise_envelope

__all__ = ["as_int", "dlq_frame", "dlq_frame_from_file", "message_row"]


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


def as_int(value: Any) -> int | None:
    """An integer field of a message (an int, an integral float or a digit string), else ``None``."""
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
        "attempts": as_int(message.get("attempts")),
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
