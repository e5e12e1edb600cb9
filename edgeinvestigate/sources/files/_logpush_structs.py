"""Typed msgspec structs of a Logpush ``workers_trace_events`` record, for the fast path.

A line decodes into :class:`Record` when it has a valid shape: PascalCase fields (and the other key
spellings the general path reads, :mod:`edgeinvestigate.sources.files._logpush_record`), only the
fields the job selected, any ``Event`` variant, ``Event.Queue`` as a string or an object, log
arguments of any JSON type, exception keys in either casing, times as 64-bit integers (ms, s or ns)
or strings (RFC 3339). A value of a type the frames cannot hold (a string status, an object
``Level``) raises one of :data:`DECODE_ERRORS` and takes the general path, which reports it.

Where the general path reads the first of several spellings that is *present* (``_get``), the
structs default to ``UNSET`` so the columns can tell "absent" from "null" the same way
(:func:`first`). The constraints keep every value the fast path builds columns from in range:
times fit in 64 bits (the columns read them in the units the reference allows, see
``_logpush_columns.ms_array``), counts fit in 32 bits, durations are floats.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "DECODE_ERRORS",
    "UNSET",
    "Job",
    "QueueInfo",
    "Record",
    "RecordCounts",
    "RecordMarked",
    "decode_any_lines",
    "decode_counts",
    "decode_counts_lines",
    "decode_job",
    "decode_jobs",
    "decode_marked",
    "decode_record",
    "decode_record_lines",
    "first",
    "int_of",
    "job_from_struct",
    "text_of",
]


#: a time as the job wrote it: an integer of 64 bits (epoch ms, or s or ns by the job's timestamp_format;
#: the columns read each in its unit) or a string (RFC 3339). A longer integer is no record Logpush
#: writes: the general path skips it
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Time = _I64 | str
#: a 32-bit integer column value (batch size, HTTP status)
_I32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
_Str = str | UnsetType | None
_Int = _I32 | UnsetType | None
_TimeU = _Time | UnsetType | None


def first(*values: Any) -> Any:
    """The first value that is not ``UNSET`` (the first spelling present), else ``None``."""
    for v in values:
        if v is not UNSET:
            return v
    return None


class _Request(msgspec.Struct, gc=False):
    URL: _Str = UNSET
    Url: _Str = UNSET
    url: _Str = UNSET
    Method: _Str = UNSET
    method: _Str = UNSET


class _Response(msgspec.Struct, gc=False):
    Status: _Int = UNSET
    status: _Int = UNSET


class QueueInfo(msgspec.Struct, gc=False):
    """``Event.Queue`` given as an object (``{"QueueName": "jobs", "BatchSize": 3}``)."""

    QueueName: _Str = UNSET
    queueName: _Str = UNSET
    Name: _Str = UNSET
    name: _Str = UNSET
    BatchSize: _Int = UNSET
    batchSize: _Int = UNSET

    def queue_name(self) -> str | None:
        return first(self.QueueName, self.queueName, self.Name, self.name)

    def batch_size(self) -> int | None:
        return first(self.BatchSize, self.batchSize)


class _Event(msgspec.Struct, gc=False):
    """``Event`` of any trigger: the fields the frames use (the others are skipped while decoding).
    ``Request`` and ``Queue`` stay ``UNSET`` when absent: their presence names the trigger of a
    record without ``EventType``."""

    RayID: _Str = UNSET
    RayId: _Str = UNSET
    rayId: _Str = UNSET
    Request: _Request | UnsetType | None = UNSET
    request: _Request | UnsetType | None = UNSET
    Response: _Response | UnsetType | None = UNSET
    response: _Response | UnsetType | None = UNSET
    Queue: str | QueueInfo | UnsetType | None = UNSET
    queue: str | QueueInfo | UnsetType | None = UNSET
    BatchSize: _Int = UNSET
    batchSize: _Int = UNSET


class _Version(msgspec.Struct, gc=False):
    ID: _Str = UNSET
    Id: _Str = UNSET
    id: _Str = UNSET


class _Log(msgspec.Struct, gc=False):
    Message: msgspec.Raw  # required: other casings and missing arguments take the general path
    Level: _Str = UNSET
    level: _Str = UNSET
    TimestampMs: _TimeU = UNSET
    timestampMs: _TimeU = UNSET
    Timestamp: _TimeU = UNSET
    timestamp: _TimeU = UNSET


class _Exc(msgspec.Struct, gc=False):
    Name: _Str = UNSET
    name: _Str = UNSET
    Message: Any = UNSET  # a string; anything else is kept as its JSON text
    message: Any = UNSET
    TimestampMs: _TimeU = UNSET
    timestampMs: _TimeU = UNSET
    Timestamp: _TimeU = UNSET
    timestamp: _TimeU = UNSET
    Stack: _Str = UNSET
    stack: _Str = UNSET


class _RecordFields(msgspec.Struct, gc=False):
    """The fields of a record the loaders read (each record struct below says how Logs/Exceptions decode)."""

    EventTimestampMs: _Time | None = None
    EventType: str | None = None
    Outcome: str | None = None
    ScriptName: str | None = None
    ScriptVersion: _Version | None = None
    CPUTimeMs: float | None = None
    WallTimeMs: float | None = None
    Entrypoint: str | None = None
    DispatchNamespace: str | None = None
    Event: _Event | None = None


class Record(_RecordFields, gc=False):
    Logs: list[_Log] | None = None
    Exceptions: list[_Exc] | None = None


class RecordCounts(_RecordFields, gc=False):
    """The same record when only the invocations frame is wanted: logs/exceptions only counted."""

    Logs: list[msgspec.Raw] | None = None
    Exceptions: list[msgspec.Raw] | None = None


class RecordMarked(_RecordFields, gc=False):
    """A record with ``<<<Logpush: ... truncated>>>`` markers past the 16,384-character cap: an entry
    of ``Logs`` or ``Exceptions`` may be the marker string itself (``_logpush_markers`` cuts them)."""

    Logs: list[_Log | str] | None = None
    Exceptions: list[_Exc | str] | None = None


class Job(msgspec.Struct, gc=False):
    """The job fields of a structured log line, of any JSON type: read with the general rules
    (:func:`job_from_struct`, like ``_coerce.job_fields_of``), so a numeric ``jobId`` or an
    ``attempt`` of ``"3"`` never fails the decode of a whole block."""

    jobId: Any = None
    job_id: Any = None
    type: Any = None
    jobType: Any = None
    job_type: Any = None
    attempt: Any = None
    attempts: Any = None
    messageId: Any = None
    message_id: Any = None


decode_job = msgspec.json.Decoder(Job).decode
decode_jobs = msgspec.json.Decoder(Job).decode_lines
decode_any_lines = msgspec.json.Decoder().decode_lines
decode_record = msgspec.json.Decoder(Record).decode
decode_counts = msgspec.json.Decoder(RecordCounts).decode
decode_record_lines = msgspec.json.Decoder(Record).decode_lines
decode_counts_lines = msgspec.json.Decoder(RecordCounts).decode_lines
decode_marked = msgspec.json.Decoder(RecordMarked).decode
#: msgspec.DecodeError and ValidationError (a ValueError; invalid UTF-8 too), RecursionError (JSON
#: nested deeper than the decoder allows)
DECODE_ERRORS: Final = (ValueError, RecursionError)


def text_of(v: Any) -> str | None:
    """``_coerce._as_text`` of a decoded value: a string, or an integer as its digits."""
    t = type(v)
    if t is str:
        return v
    return str(v) if t is int else None


def int_of(v: Any) -> int | None:
    """``_coerce._as_int`` of a decoded value: an integer (or an integral float, or a string of at
    most 10 digits) of 32 bits."""
    t = type(v)
    if t is float and v.is_integer():
        v, t = int(v), int
    elif t is str and (s := v.strip()).isascii() and s.isdigit() and len(s) <= 10:
        v, t = int(s), int
    if t is int:
        return v if -(2**31) <= v < 2**31 else None
    return None


def job_from_struct(j: Job) -> tuple[Any, Any, Any, Any]:
    """The job fields of one decoded :class:`Job`, by the rules of ``_coerce.job_fields_of``: the first
    key that is not null, then as text (ids, type) or as a 32-bit integer (attempt)."""
    return (
        text_of(j.jobId if j.jobId is not None else j.job_id),
        text_of(j.type if j.type is not None else (j.jobType if j.jobType is not None else j.job_type)),
        int_of(j.attempt if j.attempt is not None else j.attempts),
        text_of(j.messageId if j.messageId is not None else j.message_id),
    )
