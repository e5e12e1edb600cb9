"""The per-file context every loader reads and reports through: window, strictness, the report.

Loaders call :meth:`FileContext.issue` for every problem: it lands in the file's
:class:`~edgeinvestigate.models.load_report.FileReport`, or, in strict mode, stops the load with a
:class:`~edgeinvestigate.errors.ParseError` worded for a stop (:func:`strict_wording`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from edgeinvestigate.errors import ParseError
from edgeinvestigate.models.load_report import FileReport, Issue, Severity

__all__ = [
    "ALL_FRAMES",
    "CONTAINER_FACTOR",
    "DAY_MS",
    "MAX_RECORD_BYTES",
    "SNIPPET",
    "WINDOW_LO_MS",
    "FileContext",
    "FormatSniffer",
    "snippet",
    "strict_wording",
    "window_hi_ms",
]

ALL_FRAMES: Final = ("invocations", "logs", "exceptions")
#: default cap on one record (a line, or one framed JSON value) in bytes: far above every record size
#: Cloudflare documents (Workers Logs 256 KB, Logpush 16,384 characters of logs, queue messages 128 KB);
#: a larger record is skipped and reported without being held in memory
MAX_RECORD_BYTES: Final = 8 * 1024 * 1024
#: a one-line JSON array (or, in a DLQ file, a one-line wrapper) holds many records, each capped on
#: its own: such a line may be this many times the record cap (128 MiB by default)
CONTAINER_FACTOR: Final = 16
#: the earliest plausible event time (2010-01-01T00:00Z, epoch ms); the latest is now + 1 day
WINDOW_LO_MS: Final = 1_262_304_000_000
DAY_MS: Final = 86_400_000
#: longest excerpt of a bad record quoted in a report or error message
SNIPPET: Final = 80

#: the registry name of the format a file's content looks like, or ``None`` (never raises)
FormatSniffer = Callable[[Path], "str | None"]


def window_hi_ms() -> int:
    """The latest plausible event time: now + 1 day (epoch ms)."""
    return int(time.time() * 1000) + DAY_MS


def snippet(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip().replace("\n", " ")
    if len(text) > SNIPPET:
        return repr(text[:SNIPPET]) + f"... ({len(data)} bytes)"
    return repr(text)


_LENIENT_TAIL = re.compile(
    r"(?:[;,]\s*|\s+)(?:it was |were |was )?(?:skipped|loaded as null|loaded with trigger 'unknown'"
    r"|the records before it were loaded|the other elements were loaded|not loaded)\s*$"
)


def strict_wording(message: str) -> str:
    """A report message reworded for a strict-mode error: nothing was skipped or loaded, the load
    stopped (the lenient endings such as "; skipped" or "it was loaded as null" are dropped)."""
    return _LENIENT_TAIL.sub("", message).rstrip(" ;,") + " (--strict: the load stopped here)"


@dataclass
class FileContext:
    """Everything a loader needs to know about the file it reads and the load it is part of."""

    path: str
    source: str
    since_ms: int | None = None
    until_ms: int | None = None
    strict: bool = False
    frames: tuple[str, ...] = ALL_FRAMES
    report: FileReport = field(default_factory=lambda: FileReport(path="", source=""))
    sniff: FormatSniffer | None = None
    """the registry's content sniffing (given by the loader driver): names the format a file looks
    like in the hint of a strict-mode stop and in a capture check; ``None``: not known here"""
    max_record_bytes: int = MAX_RECORD_BYTES
    """a record (line or framed JSON value) larger than this is skipped and reported, never held whole"""
    ts_hi: int = field(default_factory=window_hi_ms)
    """the latest plausible event time of this load (now + 1 day, epoch ms); see ``_coerce.parse_ms``"""
    strict_hint: str | None = None
    """the hint of a strict-mode stop, when the default (about --strict and format flags) does not fit"""
    oversized_lines: dict[int, int] = field(default_factory=dict)
    """line -> size of the lines the reader blanked for being larger than ``max_record_bytes``, not
    reported yet: the framing reports the record that held one (once, however many it held), and
    what is left (lines between records) one by one at the end (:meth:`claim_oversized`)"""

    def __post_init__(self) -> None:
        if not self.report.path:
            self.report.path = self.path
            self.report.source = self.source

    def issue(
        self,
        kind: str,
        message: str,
        *,
        line: int | None = None,
        offset: int | None = None,
        expected: str = "",
        severity: Severity = "error",
    ) -> None:
        """Record a problem; in strict mode errors and warnings raise :class:`ParseError`."""
        if self.strict and severity != "info":
            raise ParseError(
                strict_wording(message),
                path=self.path,
                line=line,
                offset=offset,
                expected=expected,
                hint=self._strict_hint(),
            )
        self.report.add(
            Issue(kind=kind, message=message, line=line, offset=offset, expected=expected, severity=severity)
        )

    def blanked(self, first: int, last: int) -> bool:
        """Whether a line in ``first..last`` was blanked for being over the cap (not reported yet)."""
        return bool(self.oversized_lines) and any(first <= n <= last for n in self.oversized_lines)

    def claim_oversized(
        self, first: int | None = None, last: int | None = None, *, offset: int | None = None
    ) -> bool:
        """Report the record on lines ``first..last`` as skipped when a line of it was blanked for
        being over the cap (one report, however many such lines it held); without a range, report
        every blanked line not claimed yet as a record of its own. Whether anything was reported."""
        lines = sorted(n for n in self.oversized_lines if first is None or first <= n <= (last or first))
        if first is None:
            for n in lines:
                self.oversized(self.oversized_lines.pop(n), line=n)
            return bool(lines)
        if not lines:
            return False
        size = max(self.oversized_lines.pop(n) for n in lines)
        self.oversized(size, line=first, offset=offset, part=lines[0] if lines[0] != first else None)
        return True

    def oversized(
        self, size: int, *, line: int | None = None, offset: int | None = None, part: int | None = None
    ) -> None:
        """Report one record larger than :attr:`max_record_bytes` (an error: it is skipped); ``part``:
        the line of it that was too long, when that is not its first."""
        what = (
            f"record of {size:,} bytes"
            if part is None
            else f"record with a line of {size:,} bytes (line {part})"
        )
        self.issue(
            "size",
            f"{what} is larger than max_record_bytes ({self.max_record_bytes:,}); skipped",
            line=line,
            offset=offset,
            expected=f"records of at most {self.max_record_bytes:,} bytes, a one-line JSON array of them "
            f"at most {CONTAINER_FACTOR} times that (to load larger ones, raise max_record_bytes, CLI: "
            "--max-record-bytes)",
        )

    def _strict_hint(self) -> str:
        """The next step after a strict-mode stop: the right flag when the file looks like another
        format than it is read as, else how to see every bad record."""
        if self.strict_hint is not None:
            return self.strict_hint
        looks = self.looks_like()
        if looks is not None and looks != self.source:
            flag = "--" + looks.replace("_", "-")
            return f"this file looks like {looks} data, not {self.source}: load it with {flag} {self.path}"
        return (
            "nothing was written (--strict stops at the first bad record); fix the file, or run "
            "without --strict to skip and list every bad record in the load report"
        )

    def looks_like(self) -> str | None:
        """The format the file's content looks like (``None`` when unknown or no sniffer was given)."""
        return None if self.sniff is None else self.sniff(Path(self.path))

    def in_window(self, ts: int | None) -> bool:
        """Whether a record at ``ts`` (ms) is inside since/until. Records without a time are kept."""
        if ts is None:
            return True
        if self.since_ms is not None and ts < self.since_ms:
            return False
        return not (self.until_ms is not None and ts >= self.until_ms)

    @property
    def windowed(self) -> bool:
        return self.since_ms is not None or self.until_ms is not None
