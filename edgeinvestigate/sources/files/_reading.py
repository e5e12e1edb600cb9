"""Reading telemetry files: whole or as blocks of lines, plain or gzip (salvaging damaged streams).

A truncated or corrupt gzip stream is reported through the file's context with its byte offset;
everything before the damage is still read. A ``.gz`` name on a file that is not gzip is handled
by :func:`plain_despite_gz_name`. Everything is read as a stream of bounded pieces: a line longer
than the record cap (``FileContext.max_record_bytes``) is skipped while it streams by, so neither a
huge line nor a gzip bomb is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgeinvestigate.errors import LoadError
from edgeinvestigate.sources.files._context import CONTAINER_FACTOR

if TYPE_CHECKING:
    from edgeinvestigate.sources.files._context import FileContext

__all__ = [
    "BLOCK_SIZE",
    "CONTAINER_FACTOR",
    "GZIP_MAGIC",
    "SKIPPED_LINE",
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
#: what :func:`iter_line_blocks` yields in place of a line longer than the record cap (no real block
#: is empty); the number next to it is the line's size in bytes
SKIPPED_LINE: Final = b""


def _open_error(path: Path, exc: OSError) -> LoadError:
    return LoadError(
        f"cannot read {path}: {exc.strerror or exc}",
        hint="check the path; `edgeinvestigate collect --help` lists the accepted inputs",
    )


def read_bytes(path: Path, ctx: FileContext, containers: bytes = b"[") -> bytes:
    """The whole (decompressed) content of a file; gzip is recognised by its magic bytes.

    Read as a stream (:func:`iter_line_blocks`): a line longer than ``ctx.max_record_bytes`` is
    replaced by an empty line (so later line numbers stay right) and noted in ``ctx.oversized_lines``
    (the framing reports the record that held it) without ever being held whole, so neither a huge
    line nor a gzip bomb can exhaust memory. A line
    that starts with one of ``containers`` (default: a one-line JSON array of records, framed element
    by element) may be up to :data:`CONTAINER_FACTOR` times longer.
    """
    out: list[bytes] = []
    line = 1
    for block, n in iter_line_blocks(path, ctx, count_lines=False, containers=containers):
        if not block:  # SKIPPED_LINE: reported by the framing with the record that held it
            ctx.oversized_lines[line] = n
            out.append(b"\n")
            line += 1
            continue
        out.append(block)
        line += block.count(b"\n")
    return b"".join(out)


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


def _iter_gunzip(fh: Any, ctx: FileContext, max_out: int, read_size: int = GZIP_READ_SIZE) -> Iterator[bytes]:
    """Decompressed pieces of at most ``max_out`` bytes of a gzip file (every member), streaming. A
    truncated or corrupt stream is reported with its byte offset; everything before the damage is
    still yielded. The pieces are bounded, so a gzip bomb is never held whole."""
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
        while True:  # at most max_out bytes at a time, until this input is used up
            try:
                out = d.decompress(chunk, max_out)
            except Exception as exc:  # isal_zlib.error
                ctx.issue(
                    "gzip",
                    f"corrupt gzip data ({exc}); "
                    + (
                        "the records before it were loaded"
                        if produced
                        else "nothing of the file could be read"
                    ),
                    offset=offset,
                    expected="a complete gzip stream",
                )
                return
            if out:
                produced = True
                yield out
            chunk = d.unconsumed_tail
            if d.eof or (not chunk and len(out) < max_out):
                break
        if d.eof:
            pending = d.unused_data


def _pieces(fh: Any, path: Path, ctx: FileContext, size: int) -> Iterator[bytes]:
    """The (decompressed) content of an open file in pieces of at most ``size`` bytes."""
    magic = fh.read(2)
    fh.seek(0)
    if magic == GZIP_MAGIC:
        yield from _iter_gunzip(fh, ctx, size)
    elif plain_despite_gz_name(path, fh.read(64), ctx):
        fh.seek(0)
        yield from iter(lambda: fh.read(size), b"")


def iter_line_blocks(
    path: Path,
    ctx: FileContext,
    block_size: int | None = None,
    *,
    count_lines: bool = True,
    containers: bytes = b"",
) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of a (possibly gzip) file with the 1-based number of their first line,
    read as a stream (memory stays near ``block_size`` whatever the file size).

    A line longer than ``ctx.max_record_bytes`` is never held: it is skipped while reading and
    stands in the stream as ``(SKIPPED_LINE, its size in bytes)``; the caller reports it (it knows
    the line number) and counts it as one line. A trailing line without newline is yielded as is
    (the caller decides whether it is complete). With ``count_lines=False`` the line numbers are 0
    (for callers that count lines themselves). A line that starts with one of ``containers`` (``[``
    of a one-line JSON array, whose elements the framing caps one by one) may be up to
    :data:`CONTAINER_FACTOR` times the cap.
    """
    block_size = block_size or BLOCK_SIZE
    cap = max(1, ctx.max_record_bytes)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise _open_error(path, exc) from exc
    with fh:
        lines = _LineBlocks(block_size, cap, count_lines, containers, CONTAINER_FACTOR * cap)
        for piece in _pieces(fh, path, ctx, min(block_size, cap)):
            yield from lines.feed(piece)
        yield from lines.end()


class _LineBlocks:
    """Joins pieces (each at most ``cap`` bytes) into blocks of whole lines; a line longer than its
    limit (``cap``, or ``container_cap`` for a line that starts with one of ``containers``) is
    dropped while it streams by (only its length is counted)."""

    __slots__ = (
        "block_size",
        "buf",
        "cap",
        "container_cap",
        "containers",
        "count_lines",
        "head",
        "line",
        "size",
        "skip",
        "tail",
    )

    def __init__(
        self, block_size: int, cap: int, count_lines: bool, containers: bytes = b"", container_cap: int = 0
    ) -> None:
        self.block_size = block_size
        self.cap = cap
        self.containers = containers
        self.container_cap = max(cap, container_cap)
        self.count_lines = count_lines
        self.line = 1
        self.buf: list[bytes] = []
        self.size = 0  # bytes in buf
        self.tail = 0  # bytes after the last newline in buf (the line being read)
        self.head = b""  # the first non-blank byte of the line being read (b"": none yet)
        self.skip = -1  # >= 0: inside a line over its limit, this many bytes of it seen

    def _limit(self, more: bytes) -> int:
        """The limit of the line being read, which continues with ``more``."""
        if not self.head and self.containers:
            self.head = more.lstrip()[:1]
        return self.container_cap if self.head and self.head in self.containers else self.cap

    def _complete(self) -> Iterator[tuple[bytes, int]]:
        """Yield the whole lines in buf and drop the partial last line (it is over its limit)."""
        if self.size > self.tail:
            block = b"".join(self.buf)[: self.size - self.tail]
            yield block, self.line if self.count_lines else 0
            if self.count_lines:
                self.line += block.count(b"\n")
        self.buf, self.size, self.tail, self.head = [], 0, 0, b""

    def _skipped(self, n: int) -> tuple[bytes, int]:
        self.line += 1 if self.count_lines else 0
        return SKIPPED_LINE, n

    def feed(self, piece: bytes) -> Iterator[tuple[bytes, int]]:
        if self.skip >= 0:
            nl = piece.find(b"\n")
            if nl < 0:
                self.skip += len(piece)
                return
            yield self._skipped(self.skip + nl)
            self.skip = -1
            piece = piece[nl + 1 :]
            if not piece:
                return
        last = piece.rfind(b"\n")
        if last < 0:
            if self.tail + len(piece) > self._limit(piece):
                skipped = self.tail + len(piece)
                yield from self._complete()
                self.skip = skipped
                return
            self.buf.append(piece)
            self.size += len(piece)
            self.tail += len(piece)
            return
        first = piece.find(b"\n")
        if self.tail and self.tail + first > self._limit(piece[:first]):
            # the line being read ends in this piece, over its limit
            skipped = self.tail + first
            yield from self._complete()
            yield self._skipped(skipped)
            piece = piece[first + 1 :]
            last -= first + 1
            if not piece:
                return
        self.buf.append(piece)
        self.size += len(piece)
        self.tail = len(piece) - last - 1
        self.head = piece[last + 1 :].lstrip()[:1] if self.containers else b""
        if self.size - self.tail >= self.block_size:
            # the block copied once: its last piece joined through a view up to its last newline
            block = b"".join([*self.buf[:-1], memoryview(piece)[: last + 1]])
            self.buf, self.size = ([piece[last + 1 :]], self.tail) if self.tail else ([], 0)
            yield block, self.line if self.count_lines else 0
            if self.count_lines:
                self.line += block.count(b"\n")

    def end(self) -> Iterator[tuple[bytes, int]]:
        if self.skip >= 0:
            yield self._skipped(self.skip)
        elif self.buf:
            yield b"".join(self.buf), self.line if self.count_lines else 0
