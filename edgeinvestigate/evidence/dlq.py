"""The dead-letter queue in an evidence bundle: ``ev.dlq`` from saved DLQ files and API collections.

>>> ev = with_dlq_file(ei.load(["traceitems.jsonl"]), "dlq/messages.json")    # doctest: +SKIP

A saved DLQ file is the simulator's ``dlq/messages.json``, a peek/pull response, or NDJSON of
messages (:func:`edgeinvestigate.sources.api.dlq_frame.dlq_frame_from_file`); a queue read through
the API is :func:`edgeinvestigate.load_dlq`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from edgeinvestigate.evidence.bundle import Evidence, concat_frames
from edgeinvestigate.models.load_report import FileReport, LoadReport
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

__all__ = ["with_dlq_file", "with_dlq_frames"]


def with_dlq_file(ev: Evidence, path: str | Path, queue: str | None = None) -> Evidence:
    """A copy of ``ev`` whose ``dlq`` frame is read from a saved DLQ file, listed in its sources.

    ``queue`` names the queue when the file does not (default: the file's, else its stem).
    """
    return with_dlq_frames(ev, [dlq_frame_from_file(path, queue)], [str(path)])


def with_dlq_frames(ev: Evidence, frames: Sequence[pd.DataFrame], sources: Sequence[str]) -> Evidence:
    """A copy of ``ev`` with ``frames`` (``dlq`` frames of queues and files) added to its ``dlq``.

    ``sources`` (``queue:NAME`` or file paths) become one entry of the manifest's sources. A frame
    from :func:`edgeinvestigate.load_dlq` carries its collection summary
    (``frame.attrs["dlq_collection"]``): the summaries go to ``manifest["dlq_collections"]`` and
    their warnings to the load report's notes. A frame read from a file carries the report of
    reading it (``frame.attrs["load_report"]``): it joins the load report's files.
    """
    out = ev.with_dlq(concat_frames([ev.dlq, *frames], "dlq"), source=", ".join(sources))
    file_reports = [
        FileReport.from_dict(f.attrs["load_report"])
        for f in frames
        if isinstance(f.attrs.get("load_report"), dict)
    ]
    if file_reports:
        out.report = LoadReport(
            files=[*out.report.files, *file_reports],
            notes=list(out.report.notes),
            duplicates=out.report.duplicates,
        )
    collections = [f.attrs["dlq_collection"] for f in frames if "dlq_collection" in f.attrs]
    if collections:
        out.manifest["dlq_collections"] = collections
        out.report.notes.extend(w for c in collections for w in c["warnings"])
    return out
