"""The registry of telemetry sources: name -> loader, and content sniffing.

A source is a file format with a loader ``loader(path, ctx) -> {frame: pyarrow.Table}`` and a
``sniff(head) -> bool`` that recognises it from the first bytes of a file (decompressed when the file
is gzip). :func:`edgeinvestigate.load` looks formats up here instead of in if-chains, and recognises
a file by its content, not its name; pass ``source=`` (or the CLI flag) to override.

>>> from edgeinvestigate.sources.registry import SOURCES
>>> sorted(SOURCES)  # doctest: +SKIP
['logpush', 'tail', 'traceitems', 'workers_logs_export']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from edgeinvestigate.errors import LoadError

if TYPE_CHECKING:
    import pyarrow as pa

    from edgeinvestigate.sources.files._framing import FileContext

__all__ = ["SOURCES", "Source", "expand_paths", "register_source", "sniff_file", "sniff_source"]

Loader = Callable[[Path, "FileContext"], "dict[str, pa.Table]"]
Sniffer = Callable[[Any], bool]

#: bytes read (after decompression) to recognise a file's format
SNIFF_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class Source:
    """One registered telemetry format."""

    name: str
    loader: Loader
    sniff: Sniffer | None
    description: str
    parallel: bool = False
    """large inputs of this source are worth reading in several processes"""


SOURCES: dict[str, Source] = {}


def register_source(
    name: str,
    loader: Loader,
    *,
    sniff: Sniffer | None = None,
    description: str = "",
    parallel: bool = False,
    replace: bool = False,
) -> Source:
    """Add a source to the registry. ``sniff(first_json_value)`` says whether a file is of this format."""
    if name in SOURCES and not replace:
        raise ValueError(f"a source named {name!r} is already registered (pass replace=True)")
    src = Source(name=name, loader=loader, sniff=sniff, description=description, parallel=parallel)
    SOURCES[name] = src
    return src


# --- built-in sources --------------------------------------------------------------------------

_LOGPUSH_KEYS: Final = frozenset(
    {
        "EventTimestampMs",
        "Outcome",
        "ScriptName",
        "EventType",
        "Logs",
        "Exceptions",
        "CPUTimeMs",
        "WallTimeMs",
    }
)
_TRACE_KEYS: Final = frozenset(
    {"eventTimestamp", "outcome", "scriptName", "logs", "exceptions", "event", "cpuTime", "wallTime"}
)


def _is_logpush(v: Any) -> bool:
    return isinstance(v, dict) and bool(_LOGPUSH_KEYS & v.keys())


def _is_workers_logs(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and _is_workers_logs(v[0])
    if not isinstance(v, dict):
        return False
    if "$metadata" in v or "$workers" in v:
        return True
    result = v.get("result", v.get("data"))
    return isinstance(result, dict) and ("events" in result or "invocations" in result)


def _is_trace(v: Any) -> bool:
    return isinstance(v, dict) and len(_TRACE_KEYS & v.keys()) >= 2


def _is_traceitems(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and _is_trace(v[0])
    return isinstance(v, dict) and isinstance(v.get("events"), list) and "outcome" not in v


def _is_tail(v: Any) -> bool:
    return _is_trace(v) or (isinstance(v, dict) and v.get("type") in ("overload", "overload-stop"))


def _register_builtins() -> None:
    from edgeinvestigate.sources.files import (
        load_logpush,
        load_tail,
        load_traceitems,
        load_workers_logs_export,
    )

    # order matters only for sniffing: the first match wins
    register_source(
        "logpush",
        load_logpush,
        sniff=_is_logpush,
        description="Logpush workers_trace_events NDJSON (plain or gzip): a file or a YYYYMMDD tree",
        parallel=True,
    )
    register_source(
        "workers_logs_export",
        load_workers_logs_export,
        sniff=_is_workers_logs,
        description="Workers Logs dashboard export or saved query-API events ($metadata/$workers)",
    )
    register_source(
        "traceitems",
        load_traceitems,
        sniff=_is_traceitems,
        description="Tail Worker TraceItem arrays: JSON array, JSONL, or {receivedAt, events} lines",
    )
    register_source(
        "tail",
        load_tail,
        sniff=_is_tail,
        description="wrangler tail --format json output (pretty objects, 2 or 4 spaces, or NDJSON)",
    )


_register_builtins()


# --- sniffing and file discovery ---------------------------------------------------------------


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head[:2] == b"\x1f\x8b":
        from isal import isal_zlib

        try:  # a truncated or corrupt stream still shows its first records
            return isal_zlib.decompressobj(wbits=31).decompress(head, SNIFF_BYTES)
        except Exception:
            return b""
    return head


def _first_value(head: bytes) -> Any:
    from edgeinvestigate.sources.files._framing import FileContext, iter_documents

    ctx = FileContext(path="<sniff>", source="<sniff>")
    try:
        for value, _line, _raw in iter_documents(head, ctx):
            return value
    except Exception:
        return None
    # The head may cut a big pretty document; try the first line alone.
    first = head.split(b"\n", 1)[0].strip()
    try:
        return msgspec.json.decode(first)
    except ValueError:  # msgspec.DecodeError, invalid UTF-8
        return None


def sniff_source(head: bytes) -> str | None:
    """The registry name of the format of a file that starts with ``head``, or ``None``."""
    value = _first_value(head)
    if value is not None:
        for src in SOURCES.values():
            if src.sniff is not None and src.sniff(value):
                return src.name
    # The first record may be cut by the head or be malformed: fall back to telltale keys.
    start = head.lstrip()[:1]
    if start not in (b"{", b"["):
        return None
    for key, name in _KEY_HINTS:
        if key in head:
            if name == "tail" and start == b"[":
                return "traceitems"
            return name
    return None


_KEY_HINTS: Final = (
    (b'"EventTimestampMs"', "logpush"),
    (b'"$metadata"', "workers_logs_export"),
    (b'"receivedAt"', "traceitems"),
    (b'"eventTimestamp"', "tail"),
)


def sniff_file(path: Path) -> str | None:
    """The registry name of a file's format, judged from its content (``None`` for an empty file)."""
    try:
        head = _head(path)
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not head.strip():
        return None
    name = sniff_source(head)
    if name is None:
        raise LoadError(
            f"cannot tell the telemetry format of {path} from its content "
            f"(starts with {head[:60].decode('utf-8', 'replace')!r})",
            hint=f"name the source explicitly (one of {', '.join(SOURCES)}), e.g. collect --tail/--logpush",
        )
    return name


def expand_paths(path: Path) -> list[Path]:
    """A file, or every regular file under a directory (``**/*``, hidden files skipped), sorted."""
    if not path.exists():
        raise LoadError(
            f"{path} does not exist",
            hint="check the path; `edgeinvestigate collect --help` lists the accepted inputs",
        )
    if path.is_file():
        return [path]
    out: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
    return out
