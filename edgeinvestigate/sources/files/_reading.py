"""Reading telemetry files: whole or as blocks of lines, plain or gzip (salvaging damaged streams).

A truncated or corrupt gzip stream is reported through the file's context with its byte offset;
everything before the damage is still read. A ``.gz`` name on a file that is not gzip is handled
by :func:`plain_despite_gz_name`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgeinvestigate.errors import LoadError

if TYPE_CHECKING:
    from edgeinvestigate.sources.files._context import FileContext

__all__ = [
    "BLOCK_SIZE",
    "GZIP_MAGIC",
    "iter_line_blocks",
    "plain_despite_gz_name",
    "read_bytes",
]

#: bytes of whole lines handled at a time: small enough that a block, its decoded records and the
#: columns built from them stay in the CPU caches and the allocator reuses the memory of the previous
#: block (1 MiB loaded the Logpush benchmark 35-40% faster than 16 MiB; 256 KiB was slower again)
BLOCK_SIZE: Final = 1024 * 1024
#: compressed bytes read at a time (about 10x that decompressed: a few pieces per block)
GZIP_READ_SIZE: Final = 64 * 1024
GZIP_MAGIC: Final = b"\x1f\x8b"


def _open_error(path: Path, exc: OSError) -> LoadError:
    return LoadError(
        f"cannot read {path}: {exc.strerror or exc}",
        hint="check the path; `edgeinvestigate collect --help` lists the accepted inputs",
    )


def _gunzip_salvage(data: bytes, ctx: FileContext) -> bytes:
    """Decompress every gzip member; on a truncated or corrupt stream keep what decoded and report it."""
    from isal import isal_zlib

    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        d = isal_zlib.decompressobj(wbits=31)
        try:
            out.append(d.decompress(data[pos:]))
        except Exception as exc:  # isal_zlib.error
            ctx.issue(
                "gzip",
                f"corrupt gzip data ({exc}); "
                + ("nothing of the file could be read" if not out else "the records before it were loaded"),
                offset=pos,
                expected="a complete gzip stream",
            )
            break
        if not d.eof:
            ctx.issue(
                "gzip",
                f"the gzip stream ends early (truncated file, {len(data)} bytes); "
                "the records before it were loaded",
                offset=len(data),
                expected="a complete gzip stream (re-download the file)",
            )
            break
        rest = d.unused_data
        pos = len(data) - len(rest)
        if not rest.strip(b"\x00"):
            break
    return b"".join(out)


def read_bytes(path: Path, ctx: FileContext) -> bytes:
    """The whole (decompressed) content of a file; gzip is recognised by its magic bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _open_error(path, exc) from exc
    if data[:2] == GZIP_MAGIC:
        # zlib-style decompression objects (ISA-L): twice as fast as igzip.decompress here, and a
        # truncated or corrupt stream keeps everything before the damage
        return _gunzip_salvage(data, ctx)
    if not plain_despite_gz_name(path, data, ctx):
        return b""
    return data


def plain_despite_gz_name(path: Path, head: bytes, ctx: FileContext) -> bool:
    """For a file that does not start with the gzip magic bytes: whether to read it as plain text.

    A ``.gz`` name with JSON text inside (a download that was decompressed on the way) is read, with
    a note; a ``.gz`` name with anything else is reported once as "not a gzip file" (instead of one
    "invalid JSON" per line of binary garbage) and nothing of it is read.
    """
    if not path.name.lower().endswith(".gz"):
        return True
    if head.lstrip()[:1] in (b"{", b"["):
        ctx.issue(
            "gzip",
            "named .gz but not gzip-compressed (decompressed on download?); read as plain JSON text",
            severity="info",
        )
        return True
    ctx.issue(
        "gzip",
        f"not a gzip file: the name ends in .gz but it does not start with the gzip magic bytes 1f 8b "
        f"(it starts with {head[:8].hex(' ')}); nothing of it could be read",
        offset=0,
        expected="a gzip file (re-download it) or the uncompressed file",
    )
    return False


def _iter_gunzip(fh: Any, ctx: FileContext, read_size: int = GZIP_READ_SIZE) -> Iterator[bytes]:
    """Decompressed pieces of a gzip file (every member), streaming. A truncated or corrupt stream
    is reported with its byte offset; everything before the damage is still yielded."""
    from isal import isal_zlib

    d = isal_zlib.decompressobj(wbits=31)
    fed = False  # the current member has input
    produced = False  # some bytes were decompressed
    offset = 0  # compressed bytes read so far
    pending = b""
    while True:
        chunk = pending or fh.read(read_size)
        if not pending:
            offset += len(chunk)
        pending = b""
        if not chunk:
            if fed and not d.eof:
                ctx.issue(
                    "gzip",
                    f"the gzip stream ends early (truncated file, {offset} bytes); "
                    "the records before it were loaded",
                    offset=offset,
                    expected="a complete gzip stream (re-download the file)",
                )
            return
        if d.eof:  # a new member after the previous one
            if not chunk.strip(b"\x00"):
                continue  # padding
            d = isal_zlib.decompressobj(wbits=31)
        fed = True
        try:
            out = d.decompress(chunk)
        except Exception as exc:  # isal_zlib.error
            ctx.issue(
                "gzip",
                f"corrupt gzip data ({exc}); "
                + ("the records before it were loaded" if produced else "nothing of the file could be read"),
                offset=offset,
                expected="a complete gzip stream",
            )
            return
        if out:
            produced = True
            yield out
        if d.eof:
            pending = d.unused_data


def iter_line_blocks(
    path: Path, ctx: FileContext, block_size: int | None = None, *, count_lines: bool = True
) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of a (possibly gzip) file with the 1-based number of their first line,
    read as a stream (memory stays near ``block_size`` whatever the file size).

    A trailing line without newline is yielded as is (the caller decides whether it is complete).
    With ``count_lines=False`` the line numbers are 0 (for callers that count lines themselves).
    """
    block_size = block_size or BLOCK_SIZE
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise _open_error(path, exc) from exc
    with fh:
        magic = fh.read(2)
        fh.seek(0)
        pieces: Iterator[bytes]
        if magic == GZIP_MAGIC:
            pieces = _iter_gunzip(fh, ctx)
        elif plain_despite_gz_name(path, fh.read(64), ctx):
            fh.seek(0)
            pieces = iter(lambda: fh.read(block_size), b"")
        else:
            return
        line = 1
        buf: list[bytes] = []
        size = 0
        for piece in pieces:
            buf.append(piece)
            size += len(piece)
            if size < block_size:
                continue
            data = b"".join(buf)
            cut = data.rfind(b"\n")
            if cut < 0:
                buf, size = [data], len(data)
                continue
            block = data[: cut + 1]
            rest = data[cut + 1 :]
            buf, size = ([rest], len(rest)) if rest else ([], 0)
            yield block, line
            if count_lines:
                line += block.count(b"\n")
        if buf:
            yield b"".join(buf), line
