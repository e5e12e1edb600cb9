"""``edgeinvestigate collect``: load telemetry files and API sources into an evidence bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from edgeinvestigate.cli._archive import INPUT, archive_inputs, archive_load_options, archive_options
from edgeinvestigate.errors import ConfigError

__all__ = ["collect"]

_FILE = click.Path(dir_okay=False, path_type=Path)
_ANY = click.Path(path_type=Path)


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--listen {value!r} is not HOST:PORT", hint="for example --listen 127.0.0.1:8788")
    return host, int(port)


@click.command(
    "collect",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "\b\n"
        "  edgeinvestigate collect --tail tail.json --logpush logpush/20261127/ \\\n"
        "      --since 2026-11-27T14:00Z --until 2026-11-27T16:00Z --out evidence/INC-123\n"
        "  edgeinvestigate collect --workers-logs email-consumer --dlq email-dlq \\\n"
        "      --since -2h --out evidence/INC-124\n"
        "  edgeinvestigate collect --listen 127.0.0.1:8788 --out traceitems.jsonl\n\n"
        "Secrets: the API token comes from CLOUDFLARE_API_TOKEN or --token-file, never from an option value."
    ),
)
@click.argument("paths", nargs=-1, type=INPUT)
@click.option(
    "--tail", "tail", multiple=True, type=_ANY, help="`wrangler tail --format json` output (repeatable)."
)
@click.option(
    "--logpush",
    multiple=True,
    type=INPUT,
    help="Logpush workers_trace_events file or directory tree, or an archive in R2/S3 as "
    "s3://BUCKET/PREFIX/ (credentials from AWS_* only; needs --since and --until) (repeatable).",
)
@archive_options
@click.option(
    "--traceitems",
    multiple=True,
    type=_ANY,
    help="Tail Worker TraceItem file: array, JSONL or wrapped (repeatable).",
)
@click.option(
    "--workers-logs-export",
    "workers_logs_export",
    multiple=True,
    type=_ANY,
    help="Workers Logs dashboard export or saved query events (repeatable).",
)
@click.option("--since", help="Start of the window (ISO-8601 like 2026-11-27T14:00Z, epoch, or -2h).")
@click.option("--until", help="End of the window, exclusive (same forms as --since).")
@click.option(
    "--out",
    type=_ANY,
    required=True,
    help="Bundle directory to write (with --listen: the TraceItem JSONL file to append to).",
)
@click.option("--strict", is_flag=True, help="Stop at the first malformed record instead of listing it.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing evidence bundle in --out (never any other folder, nor one holding the inputs).",
)
@click.option(
    "--workers-logs",
    "workers_logs",
    multiple=True,
    metavar="SCRIPT",
    help="Query Workers Logs of this Worker script through the API (repeatable).",
)
@click.option(
    "--dlq",
    multiple=True,
    metavar="QUEUE",
    help="Collect this dead-letter queue through the API (repeatable).",
)
@click.option(
    "--dlq-mode",
    type=click.Choice(["peek", "snapshot"]),
    default="peek",
    show_default=True,
    help="peek reads up to 100 messages from the head without leasing (consumes nothing, so it is the "
    "evidence mode). snapshot reads the whole queue by pulling (leasing) every message and then "
    "releasing it. THE TRAP: each pull is a delivery attempt, so every snapshot spends one of the DLQ "
    "pull consumer's max_retries on every message, and a message whose attempts pass max_retries is "
    "moved on or DELETED. Snapshot peeks the first 100 messages and refuses up front (unless --force) "
    "when one of them would pass the limit; a message beyond the first 100 found past the limit while "
    "pulling is saved (its body is pushed back as a new message, then the pulled copy is acked; a v8 "
    "or bytes body keeps a 12 h lease instead, with a warning). Two snapshots in a row need "
    "max_retries >= 2 more than the messages' attempts: raise max_retries of the DLQ's pull consumer "
    "first (`wrangler queues consumer http add` / the dashboard).",
)
@click.option("--force", is_flag=True, help="Allow a DLQ snapshot that the safety checks would refuse.")
@click.option(
    "--dlq-keep-leases",
    is_flag=True,
    help="With --dlq-mode snapshot: keep the leases instead of releasing them, and store each lease id in "
    "the bundle so that `replay run` can remove replayed messages by ack even deep in a large DLQ (peek "
    "only sees the first 100). Unreplayed messages reappear when --dlq-lease-ms runs out.",
)
@click.option(
    "--dlq-lease-ms",
    type=click.IntRange(30_000, 43_200_000),
    default=None,
    help="Visibility timeout of snapshot leases in ms (default 300000; up to 12 h with --dlq-keep-leases).",
)
@click.option("--dlq-file", multiple=True, type=_FILE, help="A saved peek/pull JSON of a DLQ (repeatable).")
@click.option("--api-url", help="Cloudflare API base URL (default: CLOUDFLARE_API_BASE_URL or the real API).")
@click.option("--account-id", help="Cloudflare account id (default: CLOUDFLARE_ACCOUNT_ID).")
@click.option(
    "--token-file",
    type=_FILE,
    help="File holding the API token (default: CLOUDFLARE_API_TOKEN from the environment).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Only run a collector for Tail Worker POSTs, appending TraceItems to --out (blocks until Ctrl-C).",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), help="Processes for large Logpush inputs (default: automatic)."
)
def collect(
    paths: tuple[Path, ...],
    tail: tuple[Path, ...],
    logpush: tuple[Path, ...],
    traceitems: tuple[Path, ...],
    workers_logs_export: tuple[Path, ...],
    since: str | None,
    until: str | None,
    out: Path,
    strict: bool,
    overwrite: bool,
    workers_logs: tuple[str, ...],
    dlq: tuple[str, ...],
    dlq_mode: str,
    force: bool,
    dlq_keep_leases: bool,
    dlq_lease_ms: int | None,
    dlq_file: tuple[Path, ...],
    api_url: str | None,
    account_id: str | None,
    token_file: Path | None,
    listen: str | None,
    jobs: int | None,
) -> None:
    """Load telemetry files and API sources into an evidence bundle (Parquet + manifest.json).

    PATHS are files or directories whose format is recognised from their content; the --tail,
    --logpush, --traceitems and --workers-logs-export options name the format explicitly. Malformed
    records are skipped and listed in the summary (and in manifest.json) unless --strict is given.
    """
    if listen:
        from edgeinvestigate.capture.collector import serve_collector

        host, port = _listen_address(listen)
        click.echo(
            f"collecting Tail Worker POSTs on http://{host}:{port} into {out} (Ctrl-C to stop)", err=True
        )
        serve_collector(host, port, out)
        return

    from edgeinvestigate._time import parse_time
    from edgeinvestigate.evidence.bundle import Evidence, concat_frames, load

    specs: list[Any] = list(paths)
    for name, items in (
        ("tail", tail),
        ("logpush", logpush),
        ("traceitems", traceitems),
        ("workers_logs_export", workers_logs_export),
    ):
        specs.extend((p, name) for p in items)
    if not (specs or workers_logs or dlq or dlq_file):
        raise ConfigError(
            "nothing to collect",
            hint="give files (--tail, --logpush, --traceitems, --workers-logs-export, PATHS), "
            "--workers-logs, --dlq or --dlq-file",
        )
    if dlq and dlq_keep_leases and dlq_mode != "snapshot":
        raise ConfigError("--dlq-keep-leases needs --dlq-mode snapshot", hint="add --dlq-mode snapshot")
    s, u = parse_time(since, name="--since"), parse_time(until, name="--until")
    from edgeinvestigate.evidence.bundle import check_destination

    # before anything is loaded or pulled: a refused --out changes nothing
    inputs = [spec[0] if isinstance(spec, tuple) else spec for spec in specs] + list(dlq_file)
    if archive_inputs(specs, s, u):  # s3:// archives: --dry-run (lists, reads nothing), logging
        return
    check_destination(out, inputs=inputs, overwrite=overwrite)

    parts = []
    if specs:
        parts.append(load(specs, since=s, until=u, strict=strict, jobs=jobs, **archive_load_options()))
        if not parts[-1].report.files:
            from edgeinvestigate.errors import LoadError

            given = ", ".join(str(spec[0] if isinstance(spec, tuple) else spec) for spec in specs)
            raise LoadError(
                f"no telemetry files found in {given}",
                hint="check the path: collect reads wrangler tail JSON, TraceItems JSON(L), Logpush "
                ".log/.gz files or YYYYMMDD trees, and Workers Logs exports",
            )
        rejected_files_error(parts[-1].report, inputs)
    client: Any = None
    if workers_logs or dlq:
        from edgeinvestigate.cloudflare.client import CloudflareClient

        client = CloudflareClient.from_env(api_url=api_url, account_id=account_id, token_file=token_file)
        click.get_current_context().call_on_close(client.close)  # also when a request fails
    shown: list[str] = []  # warnings printed on stderr already (kept in the manifest notes)
    if workers_logs:
        from edgeinvestigate.sources.api.workers_logs import load_workers_logs

        for script in workers_logs:
            part = load_workers_logs(client, script, since=s, until=u)
            empty = empty_query_warning(part.manifest, script, client.account_id)
            if empty:
                click.echo(f"warning: {empty}", err=True)
                part.report.notes.append(empty)
                shown.append(empty)
            parts.append(part)
    ev = Evidence.merge(parts) if parts else Evidence.empty()
    if parts:
        ev.manifest["window"] = {
            "since": None if s is None else s.isoformat(),
            "until": None if u is None else u.isoformat(),
        }
    dlq_frames: list[Any] = []
    if dlq:
        from edgeinvestigate.sources.api.dlq import load_dlq

        extra: dict[str, Any] = {"release": not dlq_keep_leases}
        if dlq_lease_ms is not None:
            extra["visibility_timeout_ms"] = dlq_lease_ms
        for queue in dlq:
            # load_dlq logs each of its warnings once (the CLI shows them as "warning: ..." on stderr)
            frame = load_dlq(client, queue, mode=dlq_mode, force=force, **extra)  # type: ignore[arg-type]
            shown.extend(frame.attrs.get("dlq_collection", {}).get("warnings", []))
            dlq_frames.append(frame)
    if dlq_file:
        from edgeinvestigate.sources.api.dlq import dlq_frame_from_file

        dlq_frames.extend(dlq_frame_from_file(p) for p in dlq_file)
    if dlq_frames:
        sources = [*(f"queue:{q}" for q in dlq), *(str(p) for p in dlq_file)]
        ev = ev.with_dlq(concat_frames([ev.dlq, *dlq_frames], "dlq"), source=", ".join(sources))
        collections = [f.attrs["dlq_collection"] for f in dlq_frames if "dlq_collection" in f.attrs]
        if collections:
            ev.manifest["dlq_collections"] = collections
            ev.report.notes.extend(w for c in collections for w in c["warnings"])
    ev.report.notes.extend(overlapping_sources(ev.invocations))
    dest = ev.save(out, overwrite=overwrite, inputs=inputs)

    click.echo(dataclasses.replace(ev.report, notes=[n for n in ev.report.notes if n not in shown]).summary())
    rows = ev.manifest["rows"]
    click.echo(
        f"wrote {dest}: {rows['invocations']} invocations, {rows['logs']} logs, "
        f"{rows['exceptions']} exceptions, {rows['dlq']} DLQ messages"
    )
    if ev.report.filtered and ev.report.filtered == ev.report.records:
        click.echo(
            f"warning: all {ev.report.records} records are outside the time window "
            f"(--since {since or '(open)'} --until {until or '(open)'}): the bundle holds no "
            "telemetry; check the window (times are UTC unless they carry an offset)",
            err=True,
        )
    if ev.report.skipped:
        click.echo(
            f"warning: {ev.report.skipped} records could not be loaded; see the list above and manifest.json",
            err=True,
        )


#: the collect option of each file format
FORMAT_FLAGS = {
    "tail": "--tail",
    "logpush": "--logpush",
    "traceitems": "--traceitems",
    "workers_logs_export": "--workers-logs-export",
}


def rejected_files_error(report: Any, inputs: list[Any]) -> None:
    """Raise :class:`~edgeinvestigate.errors.LoadError` when a file named on the command line (or
    every file of the load) gave nothing but rejected records: almost always the wrong format flag
    or not a telemetry file at all. The error names the file and the format it looks like."""
    from edgeinvestigate.errors import LoadError

    named = {str(path) for path in inputs}
    files = list(report.files)
    useless = [f for f in files if f.skipped and not f.invocations and not f.filtered]
    if not useless:
        return
    if len(useless) < len(files):
        useless = [f for f in useless if f.path in named]
        if not useless:
            return  # some foreign files inside a directory: listed in the summary
    problems = [_rejected(f) for f in useless]
    raise LoadError(
        "; ".join(problems) + "; nothing was written",
        hint="give each file with the flag of its format (--tail, --logpush, --traceitems, "
        "--workers-logs-export) or as PATHS to detect it from its content; `edgeinvestigate collect --help`",
    )


def _rejected(f: Any) -> str:
    from edgeinvestigate.sources.registry import sniff_source

    first = next((i for i in f.issues if i.severity == "error"), None)
    if first is not None and first.kind in ("gzip", "s3"):  # s3: an archive object that failed
        return f"{f.path}: {first.message}"
    as_what = f"as {f.source} ({FORMAT_FLAGS.get(f.source, f.source)})"
    what = f"none of the {f.skipped} records of {f.path} could be read {as_what}"
    looks: str | None = None
    head = b""
    try:
        from edgeinvestigate.sources.registry import _head

        head = _head(Path(f.path))
        looks = sniff_source(head)
    except (OSError, ValueError):
        looks = None
    if looks is not None and looks != f.source:
        return f"{what}: it looks like {looks} data; load it with {FORMAT_FLAGS.get(looks, looks)} {f.path}"
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 4090:  # not a multi-byte character cut by the slice
            return f"{what}: it is binary data, not JSON text"
    reason = f" (first problem: {first.message})" if first is not None else ""
    return f"{what}: it matches none of the known telemetry formats{reason}"


def empty_query_warning(manifest: dict[str, Any], script: str, account_id: str) -> str | None:
    """A warning when the Workers Logs query of ``script`` returned no event at all, else ``None``.

    An empty answer is not an error for the API, and the usual causes are on our side: a window
    that misses the data (times are UTC; a simulated incident keeps its own dates), another
    script name or account, or Workers Logs not enabled for the Worker.
    """
    sources = manifest.get("sources") or []
    stats = sources[0] if sources and isinstance(sources[0], dict) else {}
    if stats.get("events", 1):
        return None
    since, until = stats.get("since", "?"), stats.get("until", "?")
    return (
        f"Workers Logs returned 0 events for {script!r} in account {account_id} between {since} and "
        f"{until}: check the window (--since/--until are UTC; without them the last hour; a simulated "
        "incident keeps its scenario dates unless simulated with --start), the script name, "
        "CLOUDFLARE_ACCOUNT_ID, and that Workers Logs is enabled for this Worker "
        "([observability] enabled = true in its wrangler config)"
    )


def overlapping_sources(invocations: Any, min_share: float = 0.5) -> list[str]:
    """Notes for sources that hold the same invocations (same Worker and timestamp).

    The tail, TraceItems, Logpush and Workers Logs formats carry the same events: loading two of
    them for one time window counts every invocation, log line and error twice.
    """
    import pandas as pd

    if not len(invocations):
        return []
    keys: dict[str, pd.MultiIndex] = {}
    for source, frame in invocations.groupby("source", observed=True, sort=True):
        keys[str(source)] = pd.MultiIndex.from_arrays([frame["script"].astype(object), frame["ts"]]).unique()
    notes = []
    names = sorted(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = len(keys[a].intersection(keys[b]))
            if shared and shared >= min_share * min(len(keys[a]), len(keys[b])):
                notes.append(
                    f"{a} and {b} hold the same {shared} invocations (same Worker and timestamp): "
                    "every count in this bundle is doubled for them; collect one telemetry format "
                    "per time window"
                )
    return notes
