"""Time parsing shared by loaders, CLI and analysis. All times are tz-aware UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["epoch_to_ms", "parse_time", "to_utc"]

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
        return to_utc(pd.Timestamp(value))
    text = str(value).strip()
    if text == "now":
        return pd.Timestamp(datetime.now(UTC))
    m = _REL.match(text)
    if m:
        return pd.Timestamp(datetime.now(UTC) - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)]))
    if re.fullmatch(r"\d{9,19}", text):
        return pd.Timestamp(epoch_to_ms(int(text)), unit="ms", tz="UTC")
    try:
        return to_utc(pd.Timestamp(text))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot read {name} {text!r} as a time",
            hint="use ISO-8601 like 2026-11-27T14:00Z, epoch seconds or ms, 'now' or '-2h'",
        ) from exc


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
