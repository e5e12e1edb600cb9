"""The load report: what was read, what was skipped, and why, per file.

A load never drops a record silently. Every malformed record (invalid JSON, a truncated gzip stream,
a field of the wrong type, an unknown event variant, an oversized line) is counted and listed here
with its file and line (or byte offset), so an on-call engineer can see exactly what is missing from
the frames. ``strict=True`` turns the first such problem into a :class:`~edgeinvestigate.errors.ParseError`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["MAX_ISSUES_PER_FILE", "FileReport", "Issue", "LoadReport"]

#: at most this many issues are listed per file; the rest are only counted
MAX_ISSUES_PER_FILE = 200

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Issue:
    """One problem found in one file.

    ``severity`` is ``error`` when a record (or part of a file) could not be loaded, ``warning`` when
    a record was loaded but a field was unusable (it became null), ``info`` for known harmless
    artefacts (the stray ``json`` line of old wrangler versions, a sampling notice of the tail).
    """

    kind: str
    message: str
    line: int | None = None
    offset: int | None = None
    expected: str = ""
    severity: Severity = "error"

    def where(self, path: str) -> str:
        if self.line is not None:
            return f"{path}:{self.line}"
        if self.offset is not None:
            return f"{path} (byte {self.offset})"
        return path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    source: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str = ""
    records: int = 0
    """records (invocations, events) read from the file"""
    invocations: int = 0
    logs: int = 0
    exceptions: int = 0
    filtered: int = 0
    """records outside ``since``/``until`` (skipped on purpose)"""
    skipped: int = 0
    """records that could not be loaded (each one is an ``error`` issue)"""
    n_issues: int = 0
    issues: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        self.n_issues += 1
        if issue.severity == "error":
            self.skipped += 1
        if len(self.issues) < MAX_ISSUES_PER_FILE:
            self.issues.append(issue)

    @property
    def n_errors(self) -> int:
        return self.skipped

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["issues"] = [i.to_dict() for i in self.issues]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileReport:
        d = dict(d)
        issues = [Issue(**i) for i in d.pop("issues", [])]
        return cls(**d, issues=issues)


@dataclass
class LoadReport:
    """The per-file report of one :func:`edgeinvestigate.load` call (``ev.report``)."""

    files: list[FileReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """load-wide notes: tail sampling gaps, sources merged, ..."""
    duplicates: dict[str, int] = field(default_factory=dict)
    """cross-source duplicate invocations dropped, per source pair (``"logpush+tail": 3065``)"""

    # --- totals -------------------------------------------------------------------------
    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)

    @property
    def filtered(self) -> int:
        return sum(f.filtered for f in self.files)

    @property
    def n_issues(self) -> int:
        return sum(f.n_issues for f in self.files)

    @property
    def ok(self) -> bool:
        """True when nothing could not be loaded (warnings and info notes allowed)."""
        return self.skipped == 0

    def issues(self, severity: Severity | None = None) -> list[tuple[str, Issue]]:
        """Every listed issue as ``(path, issue)``, optionally only one severity."""
        return [
            (f.path, i) for f in self.files for i in f.issues if severity is None or i.severity == severity
        ]

    def merge(self, other: LoadReport) -> LoadReport:
        dups = dict(self.duplicates)
        for pair, n in other.duplicates.items():
            dups[pair] = dups.get(pair, 0) + n
        return LoadReport(
            files=[*self.files, *other.files], notes=[*self.notes, *other.notes], duplicates=dups
        )

    # --- output -------------------------------------------------------------------------
    def summary(self, max_issues: int = 10, max_clean_files: int = 5) -> str:
        """A few lines for people: per file what was read and skipped, then the first problems.

        Files with something to say (skipped, filtered or noted records) get a line each; when a
        source has more than ``max_clean_files`` clean files (a Logpush tree), they share one line.
        """
        lines = []
        clean: dict[str, list[FileReport]] = {}
        for f in self.files:
            if not (f.filtered or f.n_issues):
                clean.setdefault(f.source, []).append(f)
        grouped = {src for src, fs in clean.items() if len(fs) > max_clean_files}
        for f in self.files:
            if f.source in grouped and not (f.filtered or f.n_issues):
                fs = clean[f.source]
                if f is fs[0]:  # one line for the group, where its first file was
                    under = os.path.commonpath([os.path.dirname(g.path) or "." for g in fs])
                    if "://" in f.path:  # s3://bucket/...: commonpath folds the "//"
                        under = under.replace(":/", "://", 1)
                    lines.append(
                        f"{len(fs)} files under {under} [{f.source}]: {sum(g.records for g in fs)} "
                        f"records -> {sum(g.invocations for g in fs)} invocations, "
                        f"{sum(g.logs for g in fs)} logs, {sum(g.exceptions for g in fs)} exceptions"
                    )
                continue
            extra = []
            if f.filtered:
                extra.append(f"{f.filtered} outside the time window")
            if f.skipped:
                extra.append(f"{f.skipped} SKIPPED")
            warn = f.n_issues - f.skipped
            if warn:
                extra.append(f"{warn} notes")
            tail = f" ({', '.join(extra)})" if extra else ""
            lines.append(
                f"{f.path} [{f.source}]: {f.records} records -> {f.invocations} invocations, "
                f"{f.logs} logs, {f.exceptions} exceptions{tail}"
            )
        for shown, (path, issue) in enumerate(self.issues()):
            if shown >= max_issues:
                lines.append(f"... {self.n_issues - shown} more issues in the load report")
                break
            lines.append(f"  {issue.severity}: {issue.where(path)}: {issue.message}")
        lines.extend(f"note: {n}" for n in self.notes)
        for pair, n in sorted(self.duplicates.items()):
            lines.append(
                f"note: {n} invocations read from both {pair.replace('+', ' and ')} were counted once "
                "(cross-source duplicates dropped)"
            )
        total = (
            f"total: {self.records} records from {len(self.files)} files, "
            f"{self.skipped} skipped, {self.filtered} outside the time window"
        )
        lines.append(total)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [f.to_dict() for f in self.files],
            "notes": list(self.notes),
            "duplicates": dict(self.duplicates),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadReport:
        return cls(
            files=[FileReport.from_dict(f) for f in d.get("files", [])],
            notes=list(d.get("notes", [])),
            duplicates={str(k): int(v) for k, v in (d.get("duplicates") or {}).items()},
        )

    def to_frame(self) -> Any:
        """One row per issue (pandas DataFrame): path, severity, kind, line, offset, message, expected."""
        import pandas as pd

        rows = [{"path": p, **i.to_dict()} for p, i in self.issues()]
        cols = ["path", "severity", "kind", "line", "offset", "message", "expected"]
        return pd.DataFrame(rows, columns=cols)
