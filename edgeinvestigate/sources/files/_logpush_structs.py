"""Typed msgspec structs of a Logpush ``workers_trace_events`` record, for the fast path.

A line that decodes into :class:`Record` has the common exact shape (PascalCase fields, the types
the job writes); anything else raises one of :data:`DECODE_ERRORS` and takes the general path
(:mod:`edgeinvestigate.sources.files._logpush_record`). The constraints keep every value the fast path
builds columns from in range: times fit in 64 bits (the columns read them in the units the reference
allows, see ``_logpush_columns.ms_array``), counts fit in 32 bits, durations are floats.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

__all__ = [
    "DECODE_ERRORS",
    "Job",
    "QueueInfo",
    "Record",
    "RecordCounts",
    "decode_any_lines",
    "decode_counts",
    "decode_counts_lines",
    "decode_job",
    "decode_jobs",
    "decode_record",
    "decode_record_lines",
    "job_from_struct",
]


#: a time as the job wrote it: an integer of 64 bits (epoch ms, or s or ns by the job's timestamp_format;
#: the columns read each in its unit). A longer one is no record Logpush writes: the general path skips it
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: a 32-bit integer column value (batch size, HTTP status)
_I32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


class _Request(msgspec.Struct, gc=False):
    URL: str | None = None
    Method: str | None = None


class _Response(msgspec.Struct, gc=False):
    Status: _I32 | None = None


class QueueInfo(msgspec.Struct, gc=False):
    """``Event.Queue`` given as an object (``{"QueueName": "jobs", "BatchSize": 3}``)."""

    QueueName: str | None = None
    BatchSize: _I32 | None = None


class _Event(msgspec.Struct, gc=False):
    RayID: str | None = None
    Request: _Request | None = None
    Response: _Response | None = None
    Queue: str | QueueInfo | None = None
    BatchSize: _I32 | None = None


class _Version(msgspec.Struct, gc=False):
    ID: str | None = None


class _Log(msgspec.Struct, gc=False):
    Message: msgspec.Raw  # required: other casings and missing arguments take the general path
    Level: str | None = None
    TimestampMs: _I64 | None = None


class _Exc(msgspec.Struct, gc=False):
    Name: str | None = None
    Message: str | None = None
    TimestampMs: _I64 | None = None
    Stack: str | None = None
    name: str | None = None
    message: str | None = None
    stack: str | None = None


class Record(msgspec.Struct, gc=False):
    EventTimestampMs: _I64 | None = None
    EventType: str | None = None
    Outcome: str | None = None
    ScriptName: str | None = None
    ScriptVersion: _Version | None = None
    CPUTimeMs: float | None = None
    WallTimeMs: float | None = None
    Entrypoint: str | None = None
    DispatchNamespace: str | None = None
    Event: _Event | None = None
    Logs: list[_Log] | None = None
    Exceptions: list[_Exc] | None = None


class RecordCounts(msgspec.Struct, gc=False):
    """The same record when only the invocations frame is wanted: logs/exceptions only counted."""

    EventTimestampMs: _I64 | None = None
    EventType: str | None = None
    Outcome: str | None = None
    ScriptName: str | None = None
    ScriptVersion: _Version | None = None
    CPUTimeMs: float | None = None
    WallTimeMs: float | None = None
    Entrypoint: str | None = None
    DispatchNamespace: str | None = None
    Event: _Event | None = None
    Logs: list[msgspec.Raw] | None = None
    Exceptions: list[msgspec.Raw] | None = None


class Job(msgspec.Struct, gc=False):
    """The job fields of a structured log line, typed as the convention says. Other types (a
    numeric ``jobId``, an ``attempt`` of ``"3"``) fail validation and take the general path."""

    jobId: str | None = None
    job_id: str | None = None
    type: str | None = None
    jobType: str | None = None
    job_type: str | None = None
    attempt: int | None = None
    attempts: int | None = None
    messageId: str | None = None
    message_id: str | None = None


decode_record = msgspec.json.Decoder(Record).decode
decode_counts = msgspec.json.Decoder(RecordCounts).decode
decode_job = msgspec.json.Decoder(Job).decode
decode_jobs = msgspec.json.Decoder(Job).decode_lines
decode_any_lines = msgspec.json.Decoder().decode_lines
decode_record_lines = msgspec.json.Decoder(Record).decode_lines
decode_counts_lines = msgspec.json.Decoder(RecordCounts).decode_lines
#: msgspec.DecodeError and ValidationError (a ValueError; invalid UTF-8 too), RecursionError (JSON
#: nested deeper than the decoder allows)
DECODE_ERRORS: Final = (ValueError, RecursionError)


def job_from_struct(j: Job) -> tuple[Any, Any, Any, Any]:
    at = j.attempt if j.attempt is not None else j.attempts
    if at is not None and not -(2**31) <= at < 2**31:
        at = None
    return (
        j.jobId if j.jobId is not None else j.job_id,
        j.type if j.type is not None else (j.jobType if j.jobType is not None else j.job_type),
        at,
        j.messageId if j.messageId is not None else j.message_id,
    )
