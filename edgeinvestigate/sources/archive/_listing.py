"""Which objects of a Logpush archive a window needs: list the day folders, judge each name.

The day folders from the day before the window (a batch that crosses midnight sits in the earlier
day's folder) to the last day of the window are listed whole, page by page (about three LIST
requests a day at Logpush's default 30 s batches). Listing the whole folder rather than starting
after a key costs a few requests more, but sees every object with a name that does not follow the
pattern: those are read, never dropped. An object whose name says it ends before ``since - margin``
or starts after ``until + margin`` is skipped; every other ``.gz`` (or plain NDJSON) object is read.

An archive without ``{DATE}`` folders (all objects under the prefix itself, or a prefix that is one
day folder) is listed from the key of ``since - margin - MAX_BATCH`` on and stops at the first name
past ``until + margin``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from edgeinvestigate.errors import ConfigError, LoadError
from edgeinvestigate.sources.archive._client import not_s3_error, s3_error
from edgeinvestigate.sources.archive._names import (
    MAX_BATCH,
    OWNERSHIP_CHALLENGE,
    RUNBOOK,
    ArchiveURL,
    is_day_folder,
    name_range,
    stamp,
)

__all__ = ["ArchiveObject", "ArchivePlan", "list_window"]

#: object names read as telemetry (Logpush always gzips; plain NDJSON is read too)
READ_SUFFIXES: Final = (".gz", ".log", ".json", ".ndjson", ".jsonl")


@dataclass(frozen=True)
class ArchiveObject:
    """One listed object: its key, size in bytes, ETag, last-modified time and what its name says."""

    key: str
    size: int
    etag: str = ""
    last_modified: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class ArchivePlan:
    """What a window needs from one archive (``collect --dry-run`` prints it; nothing is read)."""

    url: ArchiveURL
    since: datetime
    until: datetime
    margin: timedelta
    layout: str = "daily"
    """``daily`` (``YYYYMMDD/`` folders) or ``flat`` (objects directly under the prefix)"""
    prefixes: list[str] = field(default_factory=list)
    """the prefixes listed"""
    list_requests: int = 0
    listed: int = 0
    selected: list[ArchiveObject] = field(default_factory=list)
    """the objects to read: named inside the window (with the margin), or with an unknown name"""
    skipped: list[ArchiveObject] = field(default_factory=list)
    """skipped because their name says they lie outside the window"""
    ignored: list[str] = field(default_factory=list)
    """keys that are not telemetry: the ownership challenge, folder markers, other suffixes"""
    days_found: list[str] = field(default_factory=list)
    """day folders seen under the prefix when the window's folders were empty"""

    @property
    def selected_bytes(self) -> int:
        return sum(o.size for o in self.selected)

    @property
    def unnamed(self) -> list[ArchiveObject]:
        """Selected objects whose name says nothing about their time (read whole, filtered by record)."""
        return [o for o in self.selected if o.start is None]

    def lines(self, max_keys: int | None = None) -> list[str]:
        """The plan for people: one line per object to read, then the totals."""
        out = [
            f"{self.url}: window {self.since:%Y-%m-%dT%H:%M:%SZ} .. {self.until:%Y-%m-%dT%H:%M:%SZ} "
            f"(margin {_duration(self.margin)}), {self.layout} layout, listed {', '.join(self.prefixes)}"
        ]
        shown = self.selected if max_keys is None else self.selected[:max_keys]
        out.extend(
            f"  {o.size:>12,d}  {self.url.url(o.key)}{'' if o.start else '  (name without times)'}"
            for o in shown
        )
        if len(shown) < len(self.selected):
            out.append(f"  ... {len(self.selected) - len(shown)} more objects")
        out.append(
            f"would read {len(self.selected)} objects, {self.selected_bytes:,d} bytes "
            f"({_mib(self.selected_bytes)}); listed {self.listed} objects in {self.list_requests} LIST "
            f"requests; {len(self.skipped)} skipped by name, {len(self.ignored)} ignored"
        )
        return out


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"


def _days(first: datetime, last: datetime) -> list[str]:
    day, end = first.date(), last.date()
    out = []
    while day <= end:
        out.append(f"{day:%Y%m%d}")
        day += timedelta(days=1)
    return out


class _Lister:
    """ListObjectsV2 pages with error translation and a request count."""

    def __init__(self, client: Any, url: ArchiveURL) -> None:
        self.client = client
        self.url = url
        self.requests = 0

    def pages(self, prefix: str, *, delimiter: str = "", start_after: str = "") -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        kw: dict[str, Any] = {"Bucket": self.url.bucket, "Prefix": prefix}
        if delimiter:
            kw["Delimiter"] = delimiter
        if start_after:
            kw["StartAfter"] = start_after
        while True:
            try:
                page = self.client.list_objects_v2(**kw)
            except (BotoCoreError, ClientError) as exc:
                raise s3_error(exc, self.client, "ListObjectsV2", self.url.bucket, prefix) from exc
            self.requests += 1
            if "IsTruncated" not in page:  # a web server answering 200 with a page, not S3's XML
                status = page.get("ResponseMetadata", {}).get("HTTPStatusCode")
                ctype = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-type", "?")
                raise not_s3_error(
                    self.client, "ListObjectsV2", f"HTTP {status}, {ctype}, no ListBucketResult"
                )
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kw["ContinuationToken"] = token
            kw.pop("StartAfter", None)


def _object(o: dict[str, Any]) -> ArchiveObject:
    rng = name_range(o["Key"])
    lm = o.get("LastModified")
    return ArchiveObject(
        key=o["Key"],
        size=int(o.get("Size") or 0),
        etag=str(o.get("ETag") or ""),
        last_modified=lm if isinstance(lm, datetime) else None,
        start=rng[0] if rng else None,
        end=rng[1] if rng else None,
    )


def _is_telemetry(key: str) -> bool:
    name = key.rpartition("/")[2]
    return bool(name) and name != OWNERSHIP_CHALLENGE and name.lower().endswith(READ_SUFFIXES)


def _judge(plan: ArchivePlan, o: dict[str, Any]) -> ArchiveObject:
    obj = _object(o)
    plan.listed += 1
    if not _is_telemetry(obj.key):
        plan.ignored.append(obj.key)
    elif obj.start is None or obj.end is None:
        plan.selected.append(obj)  # the name says nothing: read it
    elif obj.end < plan.since - plan.margin or obj.start > plan.until + plan.margin:
        plan.skipped.append(obj)
    else:
        plan.selected.append(obj)
    return obj


def list_window(
    client: Any, url: ArchiveURL, since: datetime, until: datetime, margin: timedelta
) -> ArchivePlan:
    """List what ``[since, until)`` needs from the archive at ``url`` (no object is read)."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    plan = ArchivePlan(url=url, since=since, until=until, margin=margin)
    lister = _Lister(client, url)
    first = min(since - timedelta(days=1), since - margin - MAX_BATCH)  # and the day before
    for day in _days(first, until + margin):
        prefix = f"{url.prefix}{day}/"
        plan.prefixes.append(prefix)
        for page in lister.pages(prefix):
            for o in page.get("Contents", ()):
                _judge(plan, o)
    if not plan.listed:
        _flat_or_nothing(plan, lister)
    plan.list_requests = lister.requests
    if not plan.selected:
        raise _nothing_error(plan)
    return plan


def _flat_or_nothing(plan: ArchivePlan, lister: _Lister) -> None:
    """No object in the window's day folders: an archive without ``{DATE}`` folders is read from the
    prefix itself; otherwise say which day folders there are (raised by the caller)."""
    url = plan.url
    folders: list[str] = []
    direct = 0
    for page in lister.pages(url.prefix, delimiter="/"):
        for cp in page.get("CommonPrefixes", ()):
            name = cp["Prefix"][len(url.prefix) :].rstrip("/")
            if is_day_folder(name):
                folders.append(name)
        direct += sum(1 for o in page.get("Contents", ()) if _is_telemetry(o["Key"]))
        if folders and not direct:
            break  # a daily archive: the first page shows it
    plan.days_found = sorted(folders)
    if folders or not direct:
        return
    plan.layout = "flat"
    plan.prefixes = [url.prefix]
    lo, hi = plan.since - plan.margin - MAX_BATCH, plan.until + plan.margin
    for page in lister.pages(url.prefix, delimiter="/", start_after=f"{url.prefix}{stamp(lo)}"):
        for o in page.get("Contents", ()):
            obj = _judge(plan, o)
            if obj.start is not None and obj.start > hi:
                return  # keys come in ascending order: no later name lies in the window


def _nothing_error(plan: ArchivePlan) -> LoadError:
    url = plan.url
    window = f"{plan.since:%Y-%m-%dT%H:%MZ} .. {plan.until:%Y-%m-%dT%H:%MZ}"
    days = plan.days_found
    if plan.listed:
        what = (
            f"none of the {plan.listed} objects listed under {url} lies in the window {window} "
            f"(± {_duration(plan.margin)}) by its name"
        )
        if plan.ignored and len(plan.ignored) == plan.listed:
            what = f"the {plan.listed} objects listed under {url} are not telemetry ({plan.ignored[0]}, ...)"
        hint = "check --since/--until (UTC unless they carry an offset), or widen --archive-margin"
    elif days:
        what = f"{url} has no objects in the day folders of the window {window}"
        hint = f"its day folders run from {days[0]} to {days[-1]}; check --since/--until (UTC)"
    else:
        what = f"there are no Logpush objects under {url}"
        hint = (
            "the URL must name the folder that holds the YYYYMMDD/ folders (the destination path of "
            "the Logpush job, without {DATE}); check the bucket and prefix"
        )
    return LoadError(f"{what}; nothing was read", hint=f"{hint}; see {RUNBOOK}")


def require_window(since: Any, until: Any, url: str) -> None:
    """An archive holds months of logs: a window is required on both ends."""
    if since is None or until is None:
        missing = " and ".join(n for n, v in (("--since", since), ("--until", until)) if v is None)
        raise ConfigError(
            f"{url} is a Logpush archive: reading it needs a time window, and {missing} is missing "
            "(an open window would read the whole archive)",
            hint="give both, e.g. --since 2026-11-27T14:00Z --until 2026-11-27T16:00Z (or --until now); "
            "from Python: ei.load([url], since=..., until=...)",
        )
