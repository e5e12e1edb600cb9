"""Coercion of loose JSON values: event times, ``console.*`` arguments, the job fields of a log line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from edgeinvestigate.sources.files._context import WINDOW_LO_MS, snippet, window_hi_ms

__all__ = [
    "LOGPUSH_UNITS",
    "MS_ONLY",
    "NO_JOB",
    "BadTime",
    "JobFields",
    "job_fields_of",
    "join_args",
    "lift_job_fields",
    "parse_ms",
    "shown_number",
]

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode

#: the units of a Logpush time field: ``…Ms`` integers are epoch ms, but the job's ``timestamp_format``
#: may give ns or s, and RFC 3339 strings are possible (cloudflare-formats.md B2)
LOGPUSH_UNITS: Final = ("ms", "s", "ns")
#: tail events and TraceItems (A2/A4), Workers Logs (C2) and queue messages (D1, E): epoch ms
MS_ONLY: Final = ("ms",)
_INT64: Final = 2**63
_UNIT_NAMES: Final = {"ms": "ms", "s": "seconds", "ns": "ns"}


@dataclass(frozen=True)
class BadTime:
    """Why a value is not a usable event time: ``text`` shows the value; ``which`` says what is wrong
    with a number or date (``""``: it is not a time at all); ``too_big``: an integer beyond 64 bits
    (no real record has one: loaders skip the record when it is the record's own time)."""

    text: str
    which: str = ""
    too_big: bool = False

    def says(self, name: str) -> str:
        """``field 'X' is ...`` for a report."""
        if not self.which:
            return f"field {name!r} is not a time: {self.text}"
        return f"field {name!r} is {self.text}, which {self.which}"


def shown_number(value: Any) -> str:
    """A value for a report: a string quoted, a number as written (a long one shortened)."""
    if isinstance(value, str):
        return snippet(value)
    text = str(value) if not isinstance(value, int) or abs(value) < 10**4000 else "a 4000+ digit number"
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} digits)"


def _in_units(v: int | float, units: tuple[str, ...], hi: int) -> int | None:
    """Epoch ms of ``v`` read in the first of ``units`` that lands in [2010-01-01, ``hi``]; the
    windows of s, ms and ns do not overlap, so at most one unit fits."""
    for unit in units:
        ms = v if unit == "ms" else (v * 1000 if unit == "s" else v / 1_000_000)
        if WINDOW_LO_MS <= ms <= hi:
            return int(ms)
    return None


def parse_ms(value: Any, units: tuple[str, ...] = MS_ONLY, hi: int | None = None) -> int | BadTime | None:
    """An event time -> epoch ms; ``None`` for null, :class:`BadTime` for a value that is not one.

    A number (or a string of digits) is read in each of ``units`` (the units the reference allows
    for its field) and taken in the one that lands between 2010-01-01 and ``hi`` (default now +
    1 day); a number that fits no unit is not guessed. An ISO-8601 / RFC 3339 string must land in the
    same window. ``hi`` comes from the load (``FileContext.ts_hi``) so one load uses one window.
    """
    if value is None:
        return None
    hi = window_hi_ms() if hi is None else hi
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] == "-" else text
        if not (digits.isascii() and digits.isdigit()):
            return _iso_ms(value, hi)
        if len(digits) > 19:
            return BadTime(shown_number(value), "does not fit in 64 bits", too_big=True)
        number: int | float = int(text)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        return BadTime(repr(value) if isinstance(value, bool) else f"a {type(value).__name__}")
    if isinstance(number, int) and not -_INT64 <= number < _INT64:
        return BadTime(shown_number(value), "does not fit in 64 bits", too_big=True)
    if number != number or number in (float("inf"), float("-inf")):  # NaN, infinite
        return BadTime(shown_number(value))
    ms = _in_units(number, units, hi)
    if ms is None:
        read_as = " or ".join(_UNIT_NAMES[u] for u in units)
        return BadTime(shown_number(value), f"is no time between 2010-01-01 and tomorrow read as {read_as}")
    return ms


def _iso_ms(value: str, hi: int) -> int | BadTime:
    try:
        dt = datetime.fromisoformat(value.strip())
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ms = int(dt.timestamp() * 1000)
    except (OverflowError, ValueError):
        return BadTime(snippet(value))
    if not WINDOW_LO_MS <= ms <= hi:
        return BadTime(snippet(value), "is no time between 2010-01-01 and tomorrow")
    return ms


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
    if isinstance(v, str) and (t := v.strip()).isascii() and t.isdigit() and len(t) <= 10:
        return _as_int(int(t))
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
            except (ValueError, RecursionError):  # msgspec.DecodeError, invalid UTF-8, deep nesting
                continue
            if isinstance(d, dict):
                return job_fields_of(d)
    return NO_JOB
