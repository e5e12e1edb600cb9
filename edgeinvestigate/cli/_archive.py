"""``collect`` inputs that are Logpush archives in R2/S3 (``s3://bucket/prefix/``): the click type that
keeps such URLs intact (a ``Path`` would fold ``s3://`` into ``s3:/``), ``--dry-run``, and the
logging rule that keeps credentials out of ``-vv`` output."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

__all__ = [
    "INPUT",
    "archive_dry_run",
    "archive_inputs",
    "archive_load_options",
    "archive_options",
    "has_archives",
    "quiet_s3_logging",
]

_META = "edgeinvestigate.archive"


class _Input(click.ParamType):
    """A local file or directory (``Path``), or an ``s3://`` URL kept as a string."""

    name = "path_or_s3_url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from edgeinvestigate.sources.archive import is_archive_url

        if isinstance(value, str) and is_archive_url(value):
            return value
        return click.Path(path_type=Path).convert(value, param, ctx)


INPUT = _Input()


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_META, {})[param.name] = value
    return value


def archive_options(f: Any) -> Any:
    """``--archive-margin`` and ``--dry-run``: kept in the click context (read them with
    :func:`archive_inputs` and :func:`archive_load_options`), not passed to the command."""
    f = click.option(
        "--dry-run",
        is_flag=True,
        expose_value=False,
        callback=_store,
        help="List the archive objects and files a collect would read, and their bytes; read nothing.",
    )(f)
    return click.option(
        "--archive-margin",
        metavar="DURATION",
        expose_value=False,
        callback=_store,
        help="s3:// archives: also read objects whose names lie up to this far outside the window "
        "(late records; default 10m).",
    )(f)


def _options() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return dict(ctx.meta.get(_META, {})) if ctx is not None else {}


def archive_load_options() -> dict[str, Any]:
    """The keyword arguments of :func:`edgeinvestigate.load` that the archive options give."""
    return {"archive_margin": _options().get("archive_margin")}


def archive_inputs(specs: list[Any], since: Any, until: Any) -> bool:
    """Before a collect: keep S3 logging quiet when there are archives; with ``--dry-run`` print
    what would be read and return True (the command then stops)."""
    if has_archives(specs):
        quiet_s3_logging()
    opts = _options()
    if opts.get("dry_run"):
        archive_dry_run(specs, since, until, opts.get("archive_margin"))
        return True
    return False


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
