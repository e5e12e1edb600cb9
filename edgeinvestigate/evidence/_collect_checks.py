"""What collect says about what it loaded: files that gave nothing, an empty Workers Logs query,
telemetry sources that hold the same invocations."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from edgeinvestigate.errors import LoadError
from edgeinvestigate.models.load_report import FileReport, LoadReport
from edgeinvestigate.sources.registry import read_head, sniff_source

__all__ = ["FORMAT_FLAGS", "empty_query_warning", "overlapping_sources", "rejected_files_error"]


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
