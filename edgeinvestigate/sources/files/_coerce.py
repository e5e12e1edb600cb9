"""Coercion of loose JSON values: event times, ``console.*`` arguments, the job fields of a log line."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from edgeinvestigate._time import epoch_to_ms

__all__ = ["NO_JOB", "JobFields", "is_bad", "job_fields_of", "join_args", "lift_job_fields", "to_ms"]

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode

_BAD: Final = object()


def to_ms(value: Any) -> int | object | None:
    """An event time in epoch s/ms/us/ns (number or digit string) or RFC 3339 -> epoch ms.

    Returns ``None`` for null and the private ``_BAD`` sentinel for a value that is not a time.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, int | float):
        if value != value or abs(value) > 1e20:  # NaN, absurd
            return _BAD
        return epoch_to_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return epoch_to_ms(int(text))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return _BAD
        if dt.tzinfo is None:
            from datetime import UTC

            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return _BAD


def is_bad(value: object) -> bool:
    return value is _BAD


def join_args(args: Any) -> str | None:
    """``console.*`` arguments joined for reading: strings as-is, everything else as compact JSON."""
    if args is None:
        return None
    if isinstance(args, str):
        return args
    if isinstance(args, list):
        if len(args) == 1 and isinstance(args[0], str):
            return args[0]
        return " ".join(a if isinstance(a, str) else _json_encode(a).decode() for a in args)
    return _json_encode(args).decode()


_ID_KEYS: Final = ("jobId", "job_id")
_TYPE_KEYS: Final = ("type", "jobType", "job_type")
_ATTEMPT_KEYS: Final = ("attempt", "attempts")
_MSG_KEYS: Final = ("messageId", "message_id")

JobFields = tuple[str | None, str | None, int | None, str | None]
NO_JOB: Final[JobFields] = (None, None, None, None)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def _as_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if -(2**31) <= v < 2**31 else None
    if isinstance(v, float) and v.is_integer():
        return _as_int(int(v))
    if isinstance(v, str) and v.strip().isdigit():
        return _as_int(int(v))
    return None


def job_fields_of(d: dict[str, Any]) -> JobFields:
    """The job fields of one structured log object (see the convention in :mod:`models.frames`)."""
    return (
        _as_text(_first(d, _ID_KEYS)),
        _as_text(_first(d, _TYPE_KEYS)),
        _as_int(_first(d, _ATTEMPT_KEYS)),
        _as_text(_first(d, _MSG_KEYS)),
    )


def lift_job_fields(args: Any) -> JobFields:
    """Job fields from the arguments of one ``console.*`` call.

    Looks at the first object argument, or the first string argument that is a JSON object
    (``console.log(JSON.stringify({...}))``).
    """
    items = args if isinstance(args, list) else [args]
    for a in items:
        if isinstance(a, dict):
            return job_fields_of(a)
        if isinstance(a, str) and a[:1] == "{" and a.rstrip()[-1:] == "}":
            try:
                d = _json_decode(a)
            except ValueError:  # msgspec.DecodeError, invalid UTF-8
                continue
            if isinstance(d, dict):
                return job_fields_of(d)
    return NO_JOB
