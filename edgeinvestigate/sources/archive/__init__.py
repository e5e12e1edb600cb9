"""Logpush archives in R2 or S3, read in place: list only the window, stream it, never download it.

>>> import edgeinvestigate as ei
>>> url, t0, t1 = "s3://logs-bucket/workers/", "2026-11-27T14:00Z", "2026-11-27T16:00Z"
>>> ev = ei.load([url], since=t0, until=t1)                        # doctest: +SKIP
>>> from edgeinvestigate.sources.archive import plan_archive, load_logpush_archive
>>> print("\n".join(plan_archive(url, t0, t1).lines()))           # doctest: +SKIP

Needs the ``s3`` extra (boto3). Credentials and the endpoint come from the AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``), never from arguments.
"""

from __future__ import annotations

from edgeinvestigate.sources.archive._listing import ArchiveObject, ArchivePlan
from edgeinvestigate.sources.archive._load import (
    DEFAULT_CONNECTIONS,
    ArchiveLoad,
    load_archives,
    load_logpush_archive,
    plan_archive,
    split_archive_specs,
)
from edgeinvestigate.sources.archive._names import (
    DEFAULT_MARGIN,
    ArchiveURL,
    is_archive_url,
    name_range,
    parse_archive_url,
    parse_margin,
)

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_MARGIN",
    "ArchiveLoad",
    "ArchiveObject",
    "ArchivePlan",
    "ArchiveURL",
    "is_archive_url",
    "load_archives",
    "load_logpush_archive",
    "name_range",
    "parse_archive_url",
    "parse_margin",
    "plan_archive",
    "split_archive_specs",
]
