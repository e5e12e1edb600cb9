"""Value conversions and formats shared by the root-cause analysis (timestamps, versions, rows)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["as_utc", "hhmm", "pydt", "records", "short"]


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``df`` as dicts with string keys."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]


def as_utc(value: Any) -> pd.Timestamp | None:
    """A timestamp in UTC (naive is UTC), or None for a missing value."""
    if value is None or (not isinstance(value, pd.Timestamp) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def pydt(ts: pd.Timestamp | None) -> Any:
    """A Python datetime (or None), as the findings models hold."""
    return None if ts is None else ts.to_pydatetime()


def hhmm(ts: pd.Timestamp | None) -> str:
    """``14:05 UTC``, the time as the sentences say it."""
    return "?" if ts is None else f"{ts:%H:%M} UTC"


def short(version: str | None) -> str:
    """A version as the sentences say it (a long id shortened to 8 characters)."""
    if not version:
        return "?"
    return version if len(version) <= 12 else version[:8]
