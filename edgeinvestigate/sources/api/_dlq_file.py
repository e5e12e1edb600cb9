"""The messages of a saved DLQ file, whatever wraps them, and what in it could not be read.

Accepted (gzip too): a JSON array of messages; an object holding the array under ``messages`` or
``items`` (the simulator's ``{queue, messages}``, a Worker's archive ``{count, items}``); a peek or
pull API response (``{result: {messages}}``); NDJSON or pretty-printed objects, one message each. The
whole file is decoded at once when it can be; otherwise its structure is found without decoding it
(:func:`~edgeinvestigate.sources.files._framing.array_elements`) and each message is decoded on its
own, so a damaged, huge or deeply nested message costs only itself and is listed in the report
with its line and byte offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from edgeinvestigate.errors import ParseError
from edgeinvestigate.sources.files._context import FileContext, snippet
from edgeinvestigate.sources.files._framing import (
    DECODE_ERRORS,
    array_elements,
    iter_documents,
    member_values,
    why_not_json,
)

__all__ = ["CONTAINERS", "EXPECTED", "NOT_A_SNAPSHOT_HINT", "DlqRecords", "json_type", "split_dlq_records"]

#: the keys a wrapper object keeps the message array under
CONTAINERS: Final = ("messages", "items")
EXPECTED: Final = (
    "a JSON array of messages {id, body, attempts, timestamp_ms | timestamp, metadata}, an object with "
    "'messages' or 'items' (such as {count, items}), a peek/pull response, or NDJSON of messages"
)
NOT_A_SNAPSHOT_HINT: Final = (
    "check that this is the DLQ file: a saved peek/pull response, the simulator's dlq/messages.json, "
    "or an archive of runtime Message objects ({id | messageId | message_id, timestamp, body, attempts})"
)
_decode = msgspec.json.Decoder().decode
_NOT_DECODED: Final = object()


@dataclass
class DlqRecords:
    """What a DLQ file holds: message candidates as ``(value, line, offset, number)`` (line and
    offset ``None`` when not known; number: its place among the file's messages, from 1), how many
    messages the file holds (the bad ones too: ``seen``), the queue name and the ``count`` it gives."""

    messages: list[tuple[Any, int | None, int | None, int]] = field(default_factory=list)
    seen: int = 0
    queue: str | None = None
    count: Any = None


def _line_at(data: bytes, offset: int) -> int:
    return 1 + data.count(b"\n", 0, offset)


def _container(doc: Any) -> tuple[list[Any], Mapping[str, Any]] | None:
    """The message array of a decoded document and the object that holds it (``{}`` for a bare
    array), or ``None`` when the document has none."""
    if isinstance(doc, list):
        return doc, {}
    if not isinstance(doc, Mapping):
        return None
    result = doc.get("result")
    if isinstance(result, list):
        return result, doc
    if isinstance(result, Mapping):
        found = _container(result)
        if found is not None:
            return found
    for key in CONTAINERS:
        if isinstance(doc.get(key), list):
            return doc[key], doc
    return None


def _not_a_snapshot(ctx: FileContext, why: str) -> ParseError:
    return ParseError(
        f"not a DLQ snapshot: {why}",
        path=ctx.path,
        line=1,
        expected=EXPECTED,
        hint=NOT_A_SNAPSHOT_HINT,
    )


def _holder_fields(holder: Mapping[str, Any], out: DlqRecords) -> None:
    queue = holder.get("queue", holder.get("queue_name"))
    out.queue = queue if isinstance(queue, str) else None
    out.count = holder.get("count")


def split_dlq_records(data: bytes, ctx: FileContext) -> DlqRecords:
    """The message candidates of a DLQ file's (decompressed) content; every part that cannot be
    read is reported through ``ctx`` with its line and byte offset."""
    out = DlqRecords()
    start = len(data) - len(data.lstrip())
    if start == len(data):
        ctx.claim_oversized()  # a file that was one line over the cap
        return out
    try:
        # a file with a line blanked for being over the cap is read message by message
        doc: Any = _decode(data) if not ctx.oversized_lines else _NOT_DECODED
    except DECODE_ERRORS:
        doc = _NOT_DECODED
    if doc is not _NOT_DECODED:
        found = _container(doc)
        if found is None:
            if isinstance(doc, Mapping) and _is_message(doc):
                out.messages.append((doc, 1, start, 1))
                out.seen = 1
                return out
            raise _not_a_snapshot(ctx, f"the file is one JSON {json_type(doc)} without a message array")
        items, holder = found
        if all(isinstance(m, Mapping) for m in items):
            _holder_fields(holder, out)
            out.messages.extend((m, None, None, k) for k, m in enumerate(items, 1))
            out.seen = len(items)
            return out
    # salvage: find the message array from the structure and decode each message on its own
    if data[start : start + 1] == b"[":
        _elements(data, start, ctx, out)
    elif data[start : start + 1] == b"{" and _wrapped(data, start, ctx, out):
        pass
    else:
        _documents(data, ctx, out)
    ctx.claim_oversized()  # blanked lines that were no part of a message
    return out


def _is_message(doc: Mapping[str, Any]) -> bool:
    return "body" in doc and any(k in doc for k in ("id", "messageId", "message_id"))


def _wrapped(data: bytes, start: int, ctx: FileContext, out: DlqRecords) -> bool:
    """Read a wrapper object (``{queue, messages}``, ``{count, items}``, ``{result: ...}``) that did
    not decode whole; ``False`` when it holds no message array (then it is NDJSON of messages)."""
    members, end = member_values(data, start)
    holder_members = members
    span = next((members[k] for k in ("result", *CONTAINERS) if k in members), None)
    if span is not None and "result" in members and span == members["result"]:
        at = _value_start(data, span)
        if data[at : at + 1] == b"{":
            holder_members, _ = member_values(data, at)
            span = next((holder_members[k] for k in CONTAINERS if k in holder_members), None)
    if span is None:
        return False
    at = _value_start(data, span)
    if data[at : at + 1] != b"[":
        return False
    for key, attr in (("queue", "queue"), ("queue_name", "queue"), ("count", "count")):
        if key in holder_members and getattr(out, attr) is None:
            a, b = holder_members[key]
            try:
                value = _decode(data[a:b])
            except DECODE_ERRORS:
                continue
            if attr == "count" or isinstance(value, str):
                setattr(out, attr, value)
    _elements(data, at, ctx, out)
    if end is None:
        ctx.issue(
            "json",
            "the file ends inside its wrapper object (truncated?); the messages before the end were read",
            line=_line_at(data, len(data)),
            offset=len(data),
            expected="a complete JSON object",
            severity="warning",
        )
    elif data[end:].strip():
        _trailing(data, end, ctx)
    return True


def _value_start(data: bytes, span: tuple[int, int]) -> int:
    a, b = span
    return a + (len(data[a:b]) - len(data[a:b].lstrip()))


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (object, array, string, number, boolean, null)."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _trailing(data: bytes, end: int, ctx: FileContext) -> None:
    at = end + (len(data[end:]) - len(data[end:].lstrip()))
    ctx.issue(
        "json",
        f"text after the end of the snapshot {snippet(data[at : at + 60])}; skipped",
        line=_line_at(data, at),
        offset=at,
        expected="nothing after the snapshot",
    )


def _elements(data: bytes, at: int, ctx: FileContext, out: DlqRecords) -> None:
    """Decode each element of the array that opens at ``data[at]`` on its own."""
    parts, end = array_elements(data, at)
    for a, b in parts:
        out.seen += 1
        off = _value_start(data, (a, b))
        raw = data[off:b].rstrip()
        line = _line_at(data, off)
        if len(raw) > ctx.max_record_bytes:
            ctx.oversized(len(raw), line=line, offset=off)
            continue
        if ctx.claim_oversized(line, line + data.count(b"\n", off, b), offset=off):
            continue  # a line of it was over the cap (and blanked by the reader)
        try:
            value = _decode(raw)
        except DECODE_ERRORS as exc:
            ctx.issue(
                "json",
                f"invalid JSON message at byte {off} ({why_not_json(exc)}) {snippet(raw)}; skipped",
                line=line,
                offset=off,
                expected="one JSON message object",
            )
            continue
        out.messages.append((value, line, off, out.seen))
    if end is None and at == len(data) - len(data.lstrip()):
        ctx.issue(
            "json",
            "the file ends inside the message array (truncated?); the messages before the end were read"
            if parts
            else "the file ends inside the message array, before any message (truncated?)",
            line=_line_at(data, len(data)),
            offset=len(data),
            expected="a complete JSON array",
            severity="warning" if parts else "error",
        )
    elif end is not None and at == len(data) - len(data.lstrip()) and data[end:].strip():
        _trailing(data, end, ctx)


def _documents(data: bytes, ctx: FileContext, out: DlqRecords) -> None:
    """NDJSON (or pretty objects back to back): each value a message, or an array/wrapper of them."""
    for value, line, _raw in iter_documents(data, ctx):
        found = _container(value) if not (isinstance(value, Mapping) and _is_message(value)) else None
        if found is None:
            out.seen += 1
            out.messages.append((value, line, None, out.seen))
            continue
        items, holder = found
        if holder and out.queue is None:
            _holder_fields(holder, out)
        out.messages.extend((m, line, None, out.seen + k) for k, m in enumerate(items, 1))
        out.seen += len(items)
