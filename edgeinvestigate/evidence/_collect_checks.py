"""What collect says about what it loaded: files that gave nothing, an empty Workers Logs query,
telemetry sources that hold the same invocations."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from edgeinvestigate.errors import ConfigError, LoadError
from edgeinvestigate.models.load_report import FileReport, LoadReport
from edgeinvestigate.sources.registry import read_head, sniff_source

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = [
    "FORMAT_FLAGS",
    "empty_query_warning",
    "overlapping_sources",
    "rejected_files_error",
    "scripts_with_events",
    "unknown_script_check",
]

SCRIPT_KEY = "$workers.scriptName"


#: the collect option of each file format
FORMAT_FLAGS = {
    "tail": "--tail",
    "logpush": "--logpush",
    "traceitems": "--traceitems",
    "workers_logs_export": "--workers-logs-export",
}


def rejected_files_error(report: LoadReport, inputs: Iterable[Any]) -> None:
    """Raise :class:`~edgeinvestigate.errors.LoadError` when a file named on the command line (or
    every file of the load) gave nothing but rejected records: almost always the wrong format flag
    or not a telemetry file at all. The error names the file and the format it looks like."""
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


def _rejected(f: FileReport) -> str:
    first = next((i for i in f.issues if i.severity == "error"), None)
    if first is not None and first.kind in ("gzip", "s3"):  # s3: an archive object that failed
        return f"{f.path}: {first.message}"
    as_what = f"as {f.source} ({FORMAT_FLAGS.get(f.source, f.source)})"
    what = f"none of the {f.skipped} records of {f.path} could be read {as_what}"
    looks: str | None = None
    head = b""
    try:
        head = read_head(Path(f.path))
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


def scripts_with_events(client: CloudflareClient, since_ms: int, until_ms: int) -> dict[str, int]:
    """Events per Worker script in the window, from ONE ``calculations`` query grouped by script name
    (the telemetry query's script facet), most first."""
    body = {
        "queryId": f"edgeinvestigate-scripts-{uuid.uuid4().hex[:12]}",
        "timeframe": {"from": since_ms, "to": until_ms},
        "view": "calculations",
        "dry": True,
        "limit": 100,
        "parameters": {
            "datasets": ["cloudflare-workers"],
            "calculations": [{"operator": "count", "alias": "events"}],
            "groupBys": [{"type": "string", "value": SCRIPT_KEY}],
        },
    }
    result = client.telemetry_query(body)
    counts: dict[str, int] = {}
    calcs = result.get("calculations")
    for calc in calcs if isinstance(calcs, list) else []:
        for agg in (calc.get("aggregates") or []) if isinstance(calc, Mapping) else []:
            if not isinstance(agg, Mapping):
                continue
            for group in agg.get("groups") or []:
                if isinstance(group, Mapping) and group.get("key") == SCRIPT_KEY and group.get("value"):
                    value = agg.get("count", agg.get("value"))
                    counts[str(group["value"])] = int(value) if isinstance(value, int | float) else 0
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def unknown_script_check(
    client: CloudflareClient, manifest: dict[str, Any], script: str, warning: str
) -> str:
    """After the Workers Logs query of ``script`` came back empty: which scripts DO have events in that
    window. A name close to one of them is a typo: :class:`~edgeinvestigate.errors.ConfigError` ("did you
    mean"), before anything else is read or written. Otherwise ``warning`` with the scripts that have
    events (or that none has) added. Costs one request, only on the empty path."""
    sources = manifest.get("sources") or []
    stats = sources[0] if sources and isinstance(sources[0], dict) else {}
    try:
        since_ms = int(pd.Timestamp(stats["since"]).value // 1_000_000)
        until_ms = int(pd.Timestamp(stats["until"]).value // 1_000_000)
    except (KeyError, ValueError, TypeError):
        return warning
    found = scripts_with_events(client, since_ms, until_ms)
    if not found:
        return (
            warning
            + "; no Worker has events in this window, so the window (or the account) is the likely cause"
        )
    listed = ", ".join(f"{name} ({n} events)" for name, n in list(found.items())[:10])
    close = difflib.get_close_matches(script, list(found), n=1, cutoff=0.8)
    if close:
        raise ConfigError(
            f"Workers Logs has no events for {script!r} between {stats['since']} and {stats['until']}; "
            f"did you mean {close[0]!r}? Workers with events in this window: {listed}",
            hint=f"run the same collect with --workers-logs {close[0]}; nothing was read or written. If "
            f"{script!r} is right, it logged nothing in this window: widen --since/--until",
        )
    return warning + f"; Workers with events in this window: {listed}"


def overlapping_sources(invocations: pd.DataFrame, min_share: float = 0.5) -> list[str]:
    """Notes for sources that hold the same invocations (same Worker and timestamp).

    The tail, TraceItems, Logpush and Workers Logs formats carry the same events: loading two of
    them for one time window counts every invocation, log line and error twice.
    """
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
