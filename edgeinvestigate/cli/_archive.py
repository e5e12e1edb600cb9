"""``collect`` inputs that are Logpush archives in R2/S3 (``s3://bucket/prefix/``): the click type that
keeps such URLs intact (a ``Path`` would fold ``s3://`` into ``s3:/``), ``--dry-run``, and the
logging rule that keeps credentials out of ``-vv`` output."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

__all__ = ["INPUT", "archive_dry_run", "has_archives", "quiet_s3_logging"]


class _Input(click.ParamType):
    """A local file or directory (``Path``), or an ``s3://`` URL kept as a string."""

    name = "path_or_s3_url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from edgeinvestigate.sources.archive import is_archive_url

        if isinstance(value, str) and is_archive_url(value):
            return value
        return click.Path(path_type=Path).convert(value, param, ctx)


INPUT = _Input()


def has_archives(specs: list[Any]) -> bool:
    from edgeinvestigate.sources.archive import is_archive_url

    return any(is_archive_url(s[0] if isinstance(s, tuple) else s) for s in specs)


def quiet_s3_logging() -> None:
    """botocore and urllib3 log request headers at DEBUG (the session token among them): keep them
    at WARNING whatever ``-v`` asks for."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)


def archive_dry_run(specs: list[Any], since: Any, until: Any, margin: str | None) -> None:
    """Print what a collect would read (archive objects and their bytes, local files and their
    sizes) and read nothing."""
    from edgeinvestigate.sources.archive import is_archive_url, plan_archive
    from edgeinvestigate.sources.archive._client import make_s3_client
    from edgeinvestigate.sources.registry import expand_paths

    client = None
    total_objects = total_bytes = 0
    for spec in specs:
        value = spec[0] if isinstance(spec, tuple) else spec
        if is_archive_url(value):
            client = client or make_s3_client()
            plan = plan_archive(value, since, until, margin=margin, client=client)
            for line in plan.lines():
                click.echo(line)
            total_objects += len(plan.selected)
            total_bytes += plan.selected_bytes
            continue
        for f in expand_paths(Path(value)):
            size = f.stat().st_size
            click.echo(f"  {size:>12,d}  {f}")
            total_objects += 1
            total_bytes += size
    click.echo(f"dry run: would read {total_objects} objects/files, {total_bytes:,d} bytes; nothing was read")
