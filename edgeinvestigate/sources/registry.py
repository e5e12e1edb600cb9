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
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from edgeinvestigate.errors import LoadError
from edgeinvestigate.models.load_report import Severity
from edgeinvestigate.sources._builtin import BUILTIN_SOURCES
from edgeinvestigate.sources._source import Loader, Sniffer, Source
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents
from edgeinvestigate.sources.files._reading import GZIP_MAGIC

__all__ = [
    "SNIFF_BYTES",
    "SOURCES",
    "SkippedPath",
    "expand_paths",
    "looks_like",
    "read_head",
    "register_source",
    "sniff_file",
    "sniff_source",
    "walk_inputs",
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
    except (ValueError, RecursionError):  # msgspec.DecodeError, invalid UTF-8, deep nesting
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


@dataclass(frozen=True)
class SkippedPath:
    """A path met while expanding an input folder that is not loaded, and why (for the load report)."""

    path: Path
    why: str
    severity: Severity = "warning"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _dangling(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return f"a symbolic link to {target}, which does not exist (dangling)"


def expand_paths(path: Path) -> list[Path]:
    """A file, or every regular file under a directory (``**/*``, hidden files skipped), sorted.
    What :func:`walk_inputs` skips is not listed; use that to report it."""
    return walk_inputs(path)[0]


def walk_inputs(path: Path) -> tuple[list[Path], list[SkippedPath]]:
    """The files to load for one input path, and the paths skipped on the way.

    ``path`` is a regular file (or a link to one) or a directory, read recursively with hidden
    entries skipped. Symbolic links are followed, folders included (a ``20261128 -> ../elsewhere``
    day folder), with loop protection: a folder or file reached a second time (a link loop, or two
    links to one place) is read once. Inside a folder, a dangling link, an unreadable entry, and
    anything that is not a regular file (a FIFO, a device such as ``/dev/zero``, a socket: reading
    one could block or never end) is skipped and listed. An input given directly that is missing,
    dangling or not a regular file or folder raises :class:`~edgeinvestigate.errors.LoadError`.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        what = f"is {_dangling(path)}" if path.is_symlink() else "does not exist"
        raise LoadError(
            f"{path} {what}",
            hint="check the path; `edgeinvestigate collect --help` lists the accepted inputs",
        ) from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISREG(st.st_mode):
        return [path], []
    if not stat.S_ISDIR(st.st_mode):
        raise LoadError(
            f"{path} is {_kind(st.st_mode)}, not a file: collect reads files (a pipe or device can "
            "block or never end)",
            hint="save the output to a file first, e.g. `wrangler tail --format json > tail.json`",
        )
    out: list[Path] = []
    skipped: list[SkippedPath] = []
    seen_dirs = {(st.st_dev, st.st_ino)}
    seen_files: dict[tuple[int, int], Path] = {}

    def unlisted(exc: OSError) -> None:
        skipped.append(SkippedPath(Path(exc.filename or path), f"cannot be listed: {exc.strerror or exc}"))

    for root, dirs, files in os.walk(path, followlinks=True, onerror=unlisted):
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            full = Path(root) / d
            try:
                dst = full.stat()
            except OSError as exc:
                skipped.append(SkippedPath(full, f"cannot be read: {exc.strerror or exc}"))
                continue
            if (dst.st_dev, dst.st_ino) in seen_dirs:
                skipped.append(
                    SkippedPath(
                        full,
                        f"a symbolic link to {os.readlink(full) if full.is_symlink() else full}, a folder "
                        "that is read already (a link loop, or a second path to it); not read again",
                        "info",
                    )
                )
                continue
            seen_dirs.add((dst.st_dev, dst.st_ino))
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if f.startswith("."):
                continue
            full = Path(root) / f
            entry = _file_entry(full, seen_files)
            if isinstance(entry, SkippedPath):
                skipped.append(entry)
            else:
                out.append(entry)
    return out, skipped


def _file_entry(full: Path, seen: dict[tuple[int, int], Path]) -> Path | SkippedPath:
    """``full`` when it is a regular file not met before, else why it is skipped."""
    try:
        fst = full.stat()  # follows links
    except FileNotFoundError:
        why = _dangling(full) if full.is_symlink() else "vanished while the folder was read"
        return SkippedPath(full, f"{why}; skipped")
    except OSError as exc:  # a link loop (ELOOP), permissions
        return SkippedPath(full, f"cannot be read: {exc.strerror or exc}; skipped")
    if not stat.S_ISREG(fst.st_mode):
        return SkippedPath(
            full,
            f"{_kind(fst.st_mode)}, not a regular file; skipped (reading it could block or never end)",
            "info",
        )
    key = (fst.st_dev, fst.st_ino)
    if key in seen:
        return SkippedPath(full, f"the same file as {seen[key]} (through a link); read once", "info")
    seen[key] = full
    return full
