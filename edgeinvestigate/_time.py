"""Time parsing shared by loaders, CLI and analysis. All times are tz-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from edgeinvestigate.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["epoch_to_ms", "is_relative_time", "parse_time", "to_utc"]

_REL = re.compile(r"^(?:now)?\s*-\s*(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str | datetime | pd.Timestamp | None, *, name: str = "time") -> pd.Timestamp | None:
    """Parse a user-given time: ISO-8601 (``2026-11-27T14:00Z``), epoch seconds/ms, ``now``, ``-2h``.

    Naive times are taken as UTC. ``None`` stays ``None``.
    """
    import pandas as pd  # here, not at the top: the loaders (and their worker processes) import no pandas

    if value is None or value == "":
        return None
    if isinstance(value, datetime | pd.Timestamp):
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise _bad_time(name, value, "it is NaT (not a time)")
        return to_utc(ts)
    text = str(value).strip()
    if text == "now":
        return pd.Timestamp(datetime.now(UTC))
    try:
        m = _REL.match(text)
        if m:
            ts = pd.Timestamp(datetime.now(UTC) - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)]))
        elif re.fullmatch(r"\d{9,19}", text):
            ts = pd.Timestamp(epoch_to_ms(int(text)), unit="ms", tz="UTC")
        else:
            ts = to_utc(pd.Timestamp(text))
        if ts is not pd.NaT:
            ts.as_unit("ns")  # every time must fit in ns (what frames and epoch-ms maths use)
    except (OverflowError, ValueError, TypeError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise _bad_time(name, value, _why(exc)) from exc
    if ts is pd.NaT or pd.isna(ts):  # "nan", "NaT", "" after strip
        raise _bad_time(name, value, "it is not a point in time")
    return ts


def is_relative_time(value: object) -> bool:
    """Whether ``value`` is a time relative to now (``now``, ``-2h``, ``now-2h``): it moves with the clock."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text == "now" or _REL.match(text) is not None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OverflowError) or type(exc).__name__ == "OutOfBoundsDatetime":
        return "it is out of range (times must lie between the years 1677 and 2262)"
    return "it is not a recognised time"


def _bad_time(name: str, value: object, why: str) -> ConfigError:
    return ConfigError(
        f"cannot read {name} {str(value)!r} as a time: {why}",
        hint="use ISO-8601 like 2026-11-27T14:00Z, epoch seconds or ms, 'now' or '-2h'",
    )


def to_utc(ts: pd.Timestamp) -> pd.Timestamp:
    """Make a timestamp tz-aware UTC (naive is taken as UTC)."""
    if ts.tzinfo is None:
        return ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def epoch_to_ms(value: int | float) -> int:
    """Normalise an epoch number in s, ms, us or ns to ms, judged by magnitude.

    Works for dates between 1973 and 2286: s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns.
    """
    v = float(value)
    a = abs(v)
    if a < 1e11:
        return int(v * 1000)
    if a < 1e14:
        return int(v)
    if a < 1e17:
        return int(v // 1000)
    return int(v // 1_000_000)
