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
from pathlib import Path
from typing import Any, Final

import msgspec

from edgeinvestigate.errors import LoadError
from edgeinvestigate.sources._builtin import BUILTIN_SOURCES
from edgeinvestigate.sources._source import Loader, Sniffer, Source
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents
from edgeinvestigate.sources.files._reading import GZIP_MAGIC

__all__ = [
    "SNIFF_BYTES",
    "SOURCES",
    "expand_paths",
    "looks_like",
    "read_head",
    "register_source",
    "sniff_file",
    "sniff_source",
]

#: bytes read (after decompression) to recognise a file's format
SNIFF_BYTES: Final = 256 * 1024

SOURCES: dict[str, Source] = {src.name: src for src in BUILTIN_SOURCES}


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


# --- sniffing and file discovery ---------------------------------------------------------------


def read_head(path: Path) -> bytes:
    """The first :data:`SNIFF_BYTES` of a file, decompressed when it is gzip (what sniffing reads).

    Raises :class:`OSError` when the file cannot be read; a gzip stream that cannot be
    decompressed at all gives ``b""`` (a truncated or corrupt one still shows its first records).
    """
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head[:2] == GZIP_MAGIC:
        from isal import isal_zlib

        try:  # a truncated or corrupt stream still shows its first records
            return isal_zlib.decompressobj(wbits=31).decompress(head, SNIFF_BYTES)
        except Exception:
            return b""
    return head


def _first_value(head: bytes) -> Any:
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
        head = read_head(path)
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


def looks_like(path: Path) -> str | None:
    """The registry name of the format a file's content looks like, or ``None`` when it is unknown,
    empty or unreadable. Never raises: loaders use it for hints (a :class:`FileContext` ``sniff``)."""
    try:
        return sniff_source(read_head(path))
    except (OSError, ValueError):
        return None


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
