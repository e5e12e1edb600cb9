"""Archive URLs, the archive margin, and what an object's name says about its time range.

Logpush writes ``<path>/<YYYYMMDD>/<start>_<end>_<random>.log.gz`` with ``{DATE}`` in the destination
(logpush-archives-s3.md 1.2). Only the ``YYYYMMDDTHHMM`` UTC start is backed by a source; the full
pattern (seconds, ``Z``, the end time, the suffix) is not, so a name that does not match is read,
never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from edgeinvestigate.errors import ConfigError

__all__ = [
    "DEFAULT_MARGIN",
    "MAX_BATCH",
    "OWNERSHIP_CHALLENGE",
    "ArchiveURL",
    "is_archive_url",
    "name_range",
    "parse_archive_url",
    "parse_margin",
]

#: late records: how far outside its name's range an object may still hold records of the window
DEFAULT_MARGIN: Final = timedelta(minutes=10)
#: the longest batch (``max_upload_interval_seconds`` is at most 300 s): the assumed end of an object
#: whose name holds only its start
MAX_BATCH: Final = timedelta(minutes=5)
#: the file an S3 Logpush job writes into its destination to prove ownership: never telemetry
OWNERSHIP_CHALLENGE: Final = "ownership-challenge.txt"
#: the RUNBOOK every hint of this package names
RUNBOOK: Final = "runbooks/logpush-archives.md"

_SCHEMES: Final = ("s3://",)
_STAMP: Final = r"(\d{8}T\d{4}(?:\d{2})?)Z?"
_NAME: Final = re.compile(rf"^{_STAMP}(?:_{_STAMP})?(?=[_.\-]|$)")
_DAY: Final = re.compile(r"^\d{8}$")
_MARGIN: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS: Final = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ArchiveURL:
    """``s3://bucket/prefix/``: the prefix always ends in ``/`` (or is empty: the bucket root)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def is_archive_url(value: object) -> bool:
    """Whether ``value`` names an object store location (``s3://...``) rather than a local path."""
    return isinstance(value, str) and value[:5].lower() in ("s3://", "r2://")


def parse_archive_url(value: str) -> ArchiveURL:
    """``s3://bucket/prefix/`` -> :class:`ArchiveURL`; ``r2://`` gets a hint to use ``s3://``."""
    text = value.strip()
    if text[:5].lower() == "r2://":
        raise ConfigError(
            f"{value!r}: r2:// URLs are not read directly; R2 is reached through its S3 API",
            hint="use s3://BUCKET/PREFIX/ with "
            "AWS_ENDPOINT_URL=https://<ACCOUNT_ID>.r2.cloudflarestorage.com "
            f"and the R2 token's S3 credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; see {RUNBOOK}",
        )
    if text[:5].lower() not in _SCHEMES:
        raise ConfigError(f"{value!r} is not an s3:// URL", hint="write s3://BUCKET/PREFIX/")
    bucket, _, prefix = text[5:].partition("/")
    if not bucket or "?" in text or "#" in text:
        raise ConfigError(
            f"{value!r} is not an s3://BUCKET/PREFIX/ URL",
            hint="for example s3://logs-bucket/workers/ (the folder that holds the YYYYMMDD/ folders); "
            "credentials and the endpoint come from the AWS_* environment, never from the URL",
        )
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return ArchiveURL(bucket=bucket, prefix=prefix)


def parse_margin(value: str | timedelta | float | None) -> timedelta:
    """``--archive-margin``: ``10m``, ``600s``, ``1h``, ``0``, a number of minutes, or a timedelta."""
    if value is None:
        return DEFAULT_MARGIN
    if isinstance(value, timedelta):
        margin = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        margin = timedelta(minutes=value)
    else:
        m = _MARGIN.match(str(value))
        if m is None:
            raise ConfigError(
                f"--archive-margin {value!r} is not a duration",
                hint="for example --archive-margin 10m (also 600s, 1h, 0)",
            )
        margin = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    if margin < timedelta(0) or margin > timedelta(days=7):
        raise ConfigError(
            f"--archive-margin {value!r} is out of range", hint="give a duration between 0 and 7d"
        )
    return margin


def _stamp(text: str) -> datetime | None:
    fmt = "%Y%m%dT%H%M%S" if len(text) == 15 else "%Y%m%dT%H%M"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def name_range(key: str) -> tuple[datetime, datetime] | None:
    """The ``(start, end)`` an object's name says it covers, or ``None`` when the name does not say.

    ``<start>_<end>_...`` gives both; a name that starts with one stamp covers ``[start, start +
    MAX_BATCH]``. Stamps are UTC, with or without seconds and ``Z``.
    """
    m = _NAME.match(key.rpartition("/")[2])
    if m is None:
        return None
    start = _stamp(m.group(1))
    if start is None:
        return None
    if m.group(2) is None:
        return start, start + MAX_BATCH
    end = _stamp(m.group(2))
    if end is None or end < start:
        return None
    return start, end


def is_day_folder(name: str) -> bool:
    """``YYYYMMDD`` (a ``{DATE}`` folder name) that is a real date."""
    if not _DAY.match(name):
        return False
    try:
        datetime.strptime(name, "%Y%m%d")
    except ValueError:
        return False
    return True


def stamp(ts: datetime) -> str:
    """The name stamp of a time (``YYYYMMDDTHHMMSS``, no ``Z``): what sorts like Logpush's names."""
    return ts.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
