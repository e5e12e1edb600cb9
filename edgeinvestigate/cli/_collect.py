"""``edgeinvestigate collect``: load telemetry files and API sources into an evidence bundle."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgeinvestigate._scratch import scratch_dir
from edgeinvestigate.cli._archive import INPUT, archive_inputs, archive_load_options, archive_options
from edgeinvestigate.errors import ConfigError

# the CLI imports no loader before a command runs (they import pyarrow); these equal
# sources.files._context.MAX_RECORD_BYTES and sources.api.dlq_frame.DLQ_FILE_SOURCE (a test checks it)
MAX_RECORD_BYTES = 8 * 1024 * 1024
DLQ_FILE_SOURCE = "dlq_file"

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

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
    "--keep-secrets",
    is_flag=True,
    help="Keep credentials found in the telemetry verbatim in the bundle (masked by default; the DLQ keeps "
    "its exact bodies either way).",
)
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
@click.option(
    "--queue-metrics",
    "queue_metrics",
    multiple=True,
    metavar="QUEUE",
    help="Backlog, message operations (writes, reads, acks, DLQ moves) and consumer concurrency of this "
    "queue (name or id) from the GraphQL Analytics API: per minute up to 6 h windows, per hour beyond "
    "(repeatable; needs --since; the token needs Account Analytics Read).",
)
@click.option(
    "--worker-metrics",
    "worker_metrics",
    multiple=True,
    metavar="SCRIPT",
    help="Invocations, errors and CPU time of this Worker from the GraphQL Analytics API (repeatable).",
)
@click.option(
    "--queue-metrics-file",
    "queue_metrics_file",
    multiple=True,
    type=_FILE,
    help="A saved GraphQL Analytics answer of those datasets (the dashboard's or the simulator's "
    "analytics/analytics.json) (repeatable).",
)
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
@click.option(
    "--max-record-bytes",
    type=click.IntRange(min=1024),
    default=MAX_RECORD_BYTES,
    show_default=True,
    help="Skip (and list) any record larger than this many bytes: one line, or one JSON value, of a file.",
)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML or JSON file of cluster merge/split rules: the clusters stored in the bundle use them.",
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
    keep_secrets: bool,
    overwrite: bool,
    workers_logs: tuple[str, ...],
    dlq: tuple[str, ...],
    dlq_mode: str,
    force: bool,
    dlq_keep_leases: bool,
    dlq_lease_ms: int | None,
    dlq_file: tuple[Path, ...],
    queue_metrics: tuple[str, ...],
    worker_metrics: tuple[str, ...],
    queue_metrics_file: tuple[Path, ...],
    api_url: str | None,
    account_id: str | None,
    token_file: Path | None,
    listen: str | None,
    jobs: int | None,
    max_record_bytes: int,
    rules: Path | None,
) -> None:
    """Load telemetry files and API sources into an evidence bundle (Parquet + manifest.json).

    PATHS are files or directories whose format is recognised from their content; the --tail,
    --logpush, --traceitems and --workers-logs-export options name the format explicitly. Malformed
    records are skipped and listed in the summary (and in manifest.json) unless --strict is given.
    Folders are read recursively, following links; FIFOs, device files and dangling links in them are
    skipped and listed. The error clusters are computed once, here, and stored in the bundle
    (derived/), for `clusters`, `analyze`, `report`, the notebooks and `replay plan`.
    """
    if listen:
        from edgeinvestigate.capture.collector import serve_collector

        host, port = _listen_address(listen)
        click.echo(
            f"collecting Tail Worker POSTs on http://{host}:{port} into {out} (Ctrl-C to stop)", err=True
        )
        serve_collector(host, port, out)
        return
    from edgeinvestigate.cli._pipeline import cluster_and_store
    from edgeinvestigate.cli._progress import Progress

    progress = Progress()
    got = gather(
        progress,
        out=out,
        overwrite=overwrite,
        paths=paths,
        tail=tail,
        logpush=logpush,
        traceitems=traceitems,
        workers_logs_export=workers_logs_export,
        since=since,
        until=until,
        strict=strict,
        keep_secrets=keep_secrets,
        workers_logs=workers_logs,
        dlq=dlq,
        dlq_mode=dlq_mode,
        force=force,
        dlq_keep_leases=dlq_keep_leases,
        dlq_lease_ms=dlq_lease_ms,
        dlq_file=dlq_file,
        queue_metrics=queue_metrics,
        worker_metrics=worker_metrics,
        queue_metrics_file=queue_metrics_file,
        api_url=api_url,
        account_id=account_id,
        token_file=token_file,
        jobs=jobs,
        max_record_bytes=max_record_bytes,
    )
    if got is None:
        return  # --dry-run
    ev, clusters = cluster_and_store(got.ev, rules=rules, progress=progress)
    with progress.step(f"writing the bundle to {out}"):
        dest = ev.save(out, overwrite=overwrite, inputs=got.inputs)
    got.done()
    report_collected(ev, got.shown)
    rows = ev.manifest["rows"]
    click.echo(
        f"wrote {dest}: {rows['invocations']} invocations, {rows['logs']} logs, "
        f"{rows['exceptions']} exceptions, {rows['dlq']} DLQ messages"
        + "".join(f", {rows[n]} {n.replace('_', ' ')} rows" for n in ev.extra)
        + f", {len(clusters)} error clusters"
    )
    warn_collected(ev.report, since, until)


@dataclasses.dataclass
class Gathered:
    """What :func:`gather` collected: the evidence, its input paths, the warnings already shown."""

    ev: Any
    inputs: list[Any]
    shown: list[str]
    #: the folder the telemetry was loaded through (removed by :meth:`done`)
    spool: Path | None = None

    def done(self) -> None:
        """After ``ev.save()``: remove the spool (its frame files were copied into the bundle)."""
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)


def gather(
    progress: Any,
    *,
    out: Path,
    overwrite: bool,
    paths: tuple[Any, ...],
    tail: tuple[Path, ...] = (),
    logpush: tuple[Any, ...] = (),
    traceitems: tuple[Path, ...] = (),
    workers_logs_export: tuple[Path, ...] = (),
    since: str | None = None,
    until: str | None = None,
    strict: bool = False,
    keep_secrets: bool = False,
    workers_logs: tuple[str, ...] = (),
    dlq: tuple[str, ...] = (),
    dlq_mode: str = "peek",
    force: bool = False,
    dlq_keep_leases: bool = False,
    dlq_lease_ms: int | None = None,
    dlq_file: tuple[Path, ...] = (),
    queue_metrics: tuple[str, ...] = (),
    worker_metrics: tuple[str, ...] = (),
    queue_metrics_file: tuple[Path, ...] = (),
    api_url: str | None = None,
    account_id: str | None = None,
    token_file: Path | None = None,
    jobs: int | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    **_ignored: Any,
) -> Gathered | None:
    """The collecting part of ``collect`` (and ``investigate``): check the options and ``out``, load
    the files, query the APIs. ``None`` after a ``--dry-run`` (it printed what it would read)."""
    from edgeinvestigate._time import parse_time
    from edgeinvestigate.evidence.bundle import check_destination
    from edgeinvestigate.evidence.collect import collect as collect_evidence
    from edgeinvestigate.evidence.collect import collect_inputs

    specs: list[Any] = list(paths)
    for name, items in (
        ("tail", tail),
        ("logpush", logpush),
        ("traceitems", traceitems),
        ("workers_logs_export", workers_logs_export),
    ):
        specs.extend((p, name) for p in items)
    metrics = queue_metrics or worker_metrics or queue_metrics_file
    if not (specs or workers_logs or dlq or dlq_file or metrics):
        raise ConfigError(
            "nothing to collect",
            hint="give files (--tail, --logpush, --traceitems, --workers-logs-export, PATHS), "
            "--workers-logs, --dlq, --dlq-file, --queue-metrics, --worker-metrics or --queue-metrics-file",
        )
    if (queue_metrics or worker_metrics) and not since:
        raise ConfigError(
            "--queue-metrics and --worker-metrics need --since (the start of the window)",
            hint="add --since -2h or --since 2026-11-27T14:00Z (and --until)",
        )
    if dlq and dlq_keep_leases and dlq_mode != "snapshot":
        raise ConfigError("--dlq-keep-leases needs --dlq-mode snapshot", hint="add --dlq-mode snapshot")
    s, u = parse_time(since, name="--since"), parse_time(until, name="--until")
    # before anything is loaded or pulled: a refused --out changes nothing
    inputs = collect_inputs(specs, [*dlq_file, *queue_metrics_file])
    if archive_inputs(specs, s, u):  # s3:// archives: --dry-run (lists, reads nothing), logging
        return None
    check_destination(out, inputs=inputs, overwrite=overwrite)
    spool = _spool_next_to(out) if specs else None

    shown: list[str] = []  # warnings printed on stderr already (kept in the manifest notes)

    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)
        shown.append(text)

    def connect() -> CloudflareClient:
        from edgeinvestigate.cloudflare.client import CloudflareClient

        client = CloudflareClient.from_env(api_url=api_url, account_id=account_id, token_file=token_file)
        click.get_current_context().call_on_close(client.close)  # also when a request fails
        return client

    size = sum(_size(spec) for spec in specs)
    what = f"collecting {len(specs)} input(s)" + (f", {size / 1e6:,.0f} MB" if size else "")
    with progress.step(what + (", the APIs" if workers_logs or dlq or metrics else "")):
        ev = collect_evidence(
            specs,
            since=s,
            until=u,
            strict=strict,
            jobs=jobs,
            workers_logs=workers_logs,
            dlq=dlq,
            dlq_mode=dlq_mode,  # type: ignore[arg-type]
            force=force,
            release=not dlq_keep_leases,
            visibility_timeout_ms=dlq_lease_ms,
            dlq_files=dlq_file,
            client=connect,
            on_warning=warn,
            keep_secrets=keep_secrets,
            queue_metrics=queue_metrics,
            worker_metrics=worker_metrics,
            queue_metrics_files=queue_metrics_file,
            max_record_bytes=max_record_bytes,
            spool=spool,
            **archive_load_options(),
        )
    if keep_secrets:
        warn("--keep-secrets: credentials in the telemetry are stored verbatim; treat the bundle as a secret")
    # load_dlq logged each of its warnings once (shown as "warning: ..." on stderr)
    shown.extend(w for c in ev.manifest.get("dlq_collections", []) for w in c["warnings"])
    return Gathered(ev=ev, inputs=inputs, shown=shown, spool=spool)


def _spool_next_to(out: Path) -> Path:
    """A new folder beside the bundle ``out`` (same disk) to load the telemetry through; removed
    when the command ends, whatever happens (see :mod:`edgeinvestigate.evidence._spool`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spool = scratch_dir(f".{out.name}.spool", out.parent)  # a killed run's is swept
    click.get_current_context().call_on_close(lambda: shutil.rmtree(spool, ignore_errors=True))
    return spool


def _size(spec: Any) -> int:
    """Bytes of a local input (0 for an archive URL or what cannot be read)."""
    path = Path(spec[0] if isinstance(spec, tuple) else spec)
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
    except OSError:
        return 0


def report_collected(ev: Any, shown: list[str]) -> None:
    """The load summary (notes not shown already) and the credentials masked."""
    click.echo(dataclasses.replace(ev.report, notes=[n for n in ev.report.notes if n not in shown]).summary())
    masked = {k: v for k, v in ev.manifest.get("secrets_masked", {}).items() if k != "kept" and v}
    if masked:
        click.echo(
            "masked credentials in the telemetry: "
            + ", ".join(f"{v} in {k}" for k, v in masked.items())
            + " (--keep-secrets keeps them)"
        )


def warn_collected(report: Any, since: str | None, until: str | None) -> None:
    """Warnings after a collect (``report``: its load report): nothing in the window, records that
    could not be loaded."""
    telemetry = [f for f in report.files if f.source != DLQ_FILE_SOURCE]
    n_read, n_filtered = sum(f.records for f in telemetry), sum(f.filtered for f in telemetry)
    if n_filtered and n_filtered == n_read:
        click.echo(
            f"warning: all {n_read} records are outside the time window "
            f"(--since {since or '(open)'} --until {until or '(open)'}): the bundle holds no "
            "telemetry; check the window (times are UTC unless they carry an offset)",
            err=True,
        )
    if report.skipped:
        click.echo(
            f"warning: {report.skipped} records could not be loaded; see the list above and manifest.json",
            err=True,
        )
