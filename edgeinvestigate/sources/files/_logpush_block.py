"""The fast path of the Logpush loader: one block of lines into typed records, in batch decodes.

Every valid record stays here, whatever its shape (see ``_logpush_structs``): a block is decoded in
one call; a line the typed decode refuses (a malformed record) is found from the decoder's error
(``$[i]`` or the byte offset), goes through the general path on its own, and the lines around it
are decoded in batches again. Lines with ``<<<Logpush: ... truncated>>>`` markers are decoded with
the markers allowed and cut the way the general path cuts them (:func:`cut_markers`). Records
outside ``since``/``until`` are counted and dropped before their columns are built.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import xxhash

from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._logpush_columns import FROM_RECORDS, NO_RECORD, Block, ms_values
from edgeinvestigate.sources.files._logpush_record import (
    EVENT_TYPES,
    MARKER,
    MARKER_B,
    add_logpush_line,
    is_marker,
)
from edgeinvestigate.sources.files._logpush_structs import (
    DECODE_ERRORS,
    UNSET,
    decode_counts_lines,
    decode_marked,
    decode_record_lines,
)
from edgeinvestigate.sources.files._rows import Rows

__all__ = ["Lines", "cut_markers", "fast_block", "general_fast", "trigger_from_event", "valid_utf8"]

_TRIGGER_OR_NONE: Final[dict[str | None, str | None]] = {None: None}
_TRIGGER_OR_NONE.update(EVENT_TYPES)
_decode_any = msgspec.json.Decoder().decode
#: where msgspec says a batch decode failed: ``$[i]`` (a value of the wrong type in line i) or a byte
_AT_LINE: Final = re.compile(r"at `\$\[(\d+)\]")
_AT_BYTE: Final = re.compile(r"\(byte (\d+)\)")
#: malformed lines found from decode errors in one block; past that, the line-by-line path takes it
_MAX_BAD_LINES: Final = 32


def valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked by Arrow without building a str: ~0.1 ms per MiB
    whatever the text (``bytes.decode`` takes 1.5-3 ms per MiB once a block holds non-ASCII text)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class Lines:
    """The lines of a block, found without splitting it: the offsets of its newlines (one vectorised
    scan; ``bytes.split`` compares byte by byte and copies every line), each line cut out only when
    it is asked for (the general path, a marker) and hashed through a memoryview (no copy)."""

    __slots__ = ("block", "starts", "stops")

    def __init__(self, block: bytes) -> None:
        stops = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        if not block.endswith(b"\n"):  # the last line has no newline
            stops = np.append(stops, len(block))
        starts = np.empty_like(stops)
        starts[:1] = 0
        starts[1:] = stops[:-1] + 1
        self.block = block
        self.starts: list[int] = starts.tolist()
        self.stops: list[int] = stops.tolist()

    def __len__(self) -> int:
        return len(self.stops)

    def __getitem__(self, k: int) -> bytes:
        return self.block[self.starts[k] : self.stops[k]]

    def span(self, start: int, stop: int) -> bytes:
        """Lines ``start`` to ``stop - 1`` as one piece of the block (their newlines between them)."""
        return self.block[self.starts[start] : self.stops[stop - 1]]

    def line_of(self, offsets: list[int]) -> list[int]:
        """The line (index) each byte offset of the block falls in."""
        ends = np.array(self.stops, dtype=np.int64) + 1
        return np.searchsorted(ends, offsets, side="right").tolist()

    def ids(self) -> list[str]:
        """:func:`~edgeinvestigate.sources.files._rows.record_id` of every line."""
        mv = memoryview(self.block)
        h = xxhash.xxh3_64_hexdigest
        return [h(mv[a:b]) for a, b in zip(self.starts, self.stops, strict=True)]


def trigger_from_event(ev: Any) -> str:
    """The trigger of a record without ``EventType``, from the keys present in its ``Event`` (as the
    general path reads them: ``Request`` -> fetch, else ``Queue`` -> queue)."""
    if ev is None:
        return "unknown"
    if ev.Request is not UNSET:
        return "fetch"
    return "queue" if ev.Queue is not UNSET else "unknown"


def general_fast(raw: bytes, rows: Rows, ctx: FileContext, line: int, st: Block) -> None:
    """The general path from inside the fast path. Its invocation values become a patch of the
    record-built columns; its log and exception rows keep the invocation's row number."""
    log, exc, inv = rows.log, rows.exc, rows.inv
    n0, e0, i0 = len(log["invocation_id"]), len(exc["invocation_id"]), len(inv["invocation_id"])
    add_logpush_line(raw, rows, ctx, line)
    if len(inv["invocation_id"]) == i0:
        return
    st.patches.append((len(st.recs), {c: inv[c].pop() for c in FROM_RECORDS}))
    st.recs.append(NO_RECORD)
    st.lines.append(line)  # type: ignore[attr-defined]  # a list on this path
    for ids, start in ((log["invocation_id"], n0), (exc["invocation_id"], e0)):
        for k in range(start, len(ids)):
            ids[k] = i0


def cut_markers(r: Any) -> tuple[bool, bool] | None:
    """Drop the truncation markers of one record (a ``RecordMarked``) as the general path does: a
    marker entry, or a log whose arguments are a marker, is dropped; an exception's marker name or
    message becomes null. Returns ``(truncated, failed although no exception is left)``, or ``None``
    when an entry is neither an object nor a marker (malformed: the general path reports it)."""
    truncated = False
    if r.Logs:
        logs = []
        for lg in r.Logs:
            if type(lg) is str:
                if MARKER not in lg:
                    return None
                truncated = True
                continue
            if MARKER_B in bytes(lg.Message):
                args = _decode_any(lg.Message)
                if is_marker(args) or (type(args) is list and len(args) == 1 and is_marker(args[0])):
                    truncated = True
                    continue
            logs.append(lg)
        r.Logs = logs
    had_exceptions = bool(r.Exceptions)
    if r.Exceptions:
        excs = []
        for e in r.Exceptions:
            if type(e) is str:
                if MARKER not in e:
                    return None
                truncated = True
                continue
            for a, b in (("Name", "name"), ("Message", "message")):
                key = a if getattr(e, a) is not UNSET else b
                if is_marker(getattr(e, key)):
                    truncated = True
                    setattr(e, key, None)
            excs.append(e)
        r.Exceptions = excs
    return truncated, had_exceptions and not r.Exceptions


def _bad_line(exc: Exception, lines: Lines, start: int, stop: int) -> int | None:
    """The line (index into ``lines``) a batch decode of lines ``start`` to ``stop - 1`` failed on,
    from the decoder's message; ``None`` when it does not say (the line-by-line path finds it)."""
    text = str(exc)
    if m := _AT_LINE.search(text):
        k = start + int(m.group(1))
        return k if k < stop else None
    if m := _AT_BYTE.search(text):
        k = lines.line_of([lines.starts[start] + int(m.group(1))])[0]
        return k if k < stop else None
    if "truncated" in text:  # the last line ends early
        return stop - 1
    return None


def _decode(lines: Lines, block: bytes, bad: set[int], full: bool) -> list[Any] | None:
    """Typed records of ``lines`` in batch decodes; a line whose record the typed decode refuses is
    added to ``bad`` and stands as ``None``. ``None``: the block needs the line-by-line path (blank
    lines, or too many bad ones)."""
    decode = decode_record_lines if full else decode_counts_lines
    out: list[Any] = []
    n = len(lines)
    start = 0
    while start < n:
        stop = min([k for k in bad if k >= start], default=n)
        if start < stop:
            body = block if not bad and stop - start == n else lines.span(start, stop)
            try:
                recs = decode(body)
            except DECODE_ERRORS as exc:
                k = _bad_line(exc, lines, start, stop)
                if k is None or len(bad) >= _MAX_BAD_LINES:
                    return None
                bad.add(k)
                continue
            if len(recs) != stop - start:  # blank lines: the line-by-line path counts them
                return None
            out.extend(recs)
        if stop < n:
            out.append(None)
        start = stop + 1
    return out


def _lines_with(block: bytes, lines: Lines, needle: bytes) -> list[int]:
    """The lines of ``block`` (0-based) that hold ``needle``. Its first byte is looked for
    (``memchr``: ~20x faster than searching for the whole needle, and rare in records), the hits
    placed by their offsets among the line ends."""
    head = needle[:1]
    found = []
    at = block.find(head)
    while at >= 0:
        if block.startswith(needle, at):
            found.append(at)
            at += len(needle)
        else:
            at += 1
        at = block.find(head, at)
    if not found:
        return []
    return sorted(set(lines.line_of(found)))


def fast_block(block: bytes, line0: int, rows: Rows, ctx: FileContext, st: Block) -> int | None:
    """The typed records of one block (the first line is ``line0``) into ``st``, the general path's
    rows into ``rows``. Returns the next line number, or ``None`` when the block needs the
    line-by-line path (invalid UTF-8, blank lines, many malformed lines), which reports what it finds."""
    if not block.isascii() and not valid_utf8(block):
        return None  # a line with invalid UTF-8: found and reported line by line
    lines = Lines(block)
    full = "logs" in ctx.frames or "exceptions" in ctx.frames
    recs = _decode(lines, block, set(), full)
    if recs is None:
        return None
    flags: dict[int, tuple[bool, bool]] = {}
    if b"<" in block:  # memchr first: most blocks have no "<" at all
        for k in _lines_with(block, lines, MARKER_B):  # truncation markers, cut as the general path cuts them
            r = recs[k] if full else None
            if r is None:  # a marker entry in place of an object, or only counts were decoded
                try:
                    r = decode_marked(lines[k])
                except DECODE_ERRORS:
                    recs[k] = None  # the general path reports it
                    continue
            cut = cut_markers(r)
            recs[k] = None if cut is None else r
            if cut is not None:
                flags[k] = cut
    # EventType -> trigger ("" = unknown: the general path reports it; None = absent)
    trig = [None if r is None else _TRIGGER_OR_NONE.get(r.EventType, "") for r in recs]
    if "" in trig:
        for k in [k for k, t in enumerate(trig) if t == ""]:
            recs[k] = trig[k] = None
    if None in trig:
        for k in [k for k, t in enumerate(trig) if t is None and recs[k] is not None]:
            trig[k] = trigger_from_event(recs[k].Event)
    ts = [None if r is None else r.EventTimestampMs for r in recs]
    keep = None
    if ctx.windowed:  # read the times now (warning about bad ones) to drop the records outside
        ts = ms_values(ts, ctx, range(line0, line0 + len(lines)), "EventTimestampMs")
        keep = [r is None or ctx.in_window(t) for r, t in zip(recs, ts, strict=True)]
    n_typed = len(recs) - recs.count(None)
    n_kept = n_typed if keep is None else n_typed - keep.count(False)
    ctx.report.records += n_typed
    ctx.report.filtered += n_typed - n_kept
    ctx.report.invocations += n_kept
    if n_typed == len(recs) and keep is None:  # the common case: every line a record, all kept
        rows.inv["invocation_id"] = lines.ids()
        rows.inv["ts"] = ts  # as written: flush_block reads s, ns and RFC 3339 too
        rows.inv["trigger"] = trig
        st.recs = recs
        st.lines = range(line0, line0 + len(recs))
        st.flags = flags
        return line0 + len(lines)
    _merge(lines, line0, recs, trig, ts, keep, flags, rows, ctx, st)
    return line0 + len(lines)


def _merge(
    lines: Lines,
    line0: int,
    recs: list[Any],
    trig: list[Any],
    ts: list[Any],
    keep: list[bool] | None,
    flags: dict[int, tuple[bool, bool]],
    rows: Rows,
    ctx: FileContext,
    st: Block,
) -> None:
    """The typed records that are kept and the general path's records, in line order."""
    i_id, i_ts, i_trig = rows.inv["invocation_id"], rows.inv["ts"], rows.inv["trigger"]
    rec_lines: list[int] = []
    st.lines = rec_lines
    for k, (r, t, tr, kept) in enumerate(zip(recs, ts, trig, keep or repeat(True), strict=False)):
        if r is None:
            general_fast(lines[k], rows, ctx, line0 + k, st)
            continue
        if not kept:
            continue
        if k in flags:
            st.flags[len(st.recs)] = flags[k]
        i_id.append(xxhash.xxh3_64_hexdigest(lines[k]))
        i_ts.append(t)
        i_trig.append(tr)
        st.recs.append(r)
        rec_lines.append(line0 + k)
