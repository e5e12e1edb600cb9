"""Logpush ``workers_trace_events``: NDJSON, plain or gzip, one file or a directory tree.

Fields are PascalCase (cloudflare-formats.md B1); only the fields the job selected are present;
``Exceptions`` keys come in either casing; ``<<<Logpush: ... truncated>>>`` markers replace entries
past the 16,384-character cap; times are epoch ms, ns or s, or RFC 3339 (B2).

Two paths build the same rows: a fast one that decodes blocks of lines straight into typed msgspec
structs and builds the columns with comprehensions (every valid shape: ``_logpush_block``,
``_logpush_structs``, ``_logpush_columns``), and a general one, record by record, for the malformed
records (wrong types, unknown event types, other key casings), which reports what it could not use
(``_logpush_record``). A block the fast path cannot take (invalid UTF-8, blank lines, many
malformed lines) is read line by line: typed records where they decode, the general path for the
rest (:func:`_load_block`). A large file is parsed by two processes (``_split``).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Final

import pyarrow as pa

import edgeinvestigate.sources.files._reading as _reading
from edgeinvestigate._memory import system_pool
from edgeinvestigate.sources.files._coerce import LOGPUSH_UNITS, parse_ms
from edgeinvestigate.sources.files._context import WINDOW_LO_MS, FileContext
from edgeinvestigate.sources.files._logpush_block import (
    fast_block,
    general_fast,
    trigger_from_event,
    valid_utf8,
)
from edgeinvestigate.sources.files._logpush_columns import Block, flush_block
from edgeinvestigate.sources.files._logpush_record import (
    EVENT_TYPES,
    MARKER_B,
    add_logpush_line,
    invalid_utf8,
)
from edgeinvestigate.sources.files._logpush_structs import (
    DECODE_ERRORS,
    decode_counts,
    decode_record,
)
from edgeinvestigate.sources.files._reading import SKIPPED_LINE, iter_line_blocks
from edgeinvestigate.sources.files._rows import (
    EXC_COLS,
    INV_COLS,
    LOG_COLS,
    RECORD_ERRORS,
    Rows,
    arrow_column,
    constant_dictionary,
    record_id,
)
from edgeinvestigate.sources.files._split import load_split, should_split

__all__ = ["load_logpush"]

_DIGITS: Final = re.compile(rb" *(\d{9,20})(?=[ ,}])")


def load_logpush(
    path: Path, ctx: FileContext, *, blocks: Iterable[tuple[bytes, int]] | None = None
) -> dict[str, pa.Table]:
    """Load one Logpush ``workers_trace_events`` file (NDJSON, plain or gzip). ``blocks``: its line
    blocks from another reader (an object streamed from S3, see ``sources.archive``) instead of ``path``.
    A large file is parsed by this process and a helper process together (``_split``)."""
    chunks: dict[str, list[pa.RecordBatch]] | None = None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with system_pool():  # see _memory: fewer page faults than the default pool
            # both processes must cut the same units: the block size is read here, once
            units = partial(_units, block_size=_reading.BLOCK_SIZE)
            if blocks is None and should_split(path):
                chunks = load_split(path, ctx, units, _read_unit, _reading.BLOCK_SIZE, warm_up)
            if chunks is None:
                chunks = {"invocations": [], "logs": [], "exceptions": []}
                line = 1
                for block, size in blocks if blocks is not None else units(path, ctx):
                    line = _read_unit(block, size, line, chunks, ctx)
            out: dict[str, pa.Table] = {}
            for frame, names in (("invocations", INV_COLS), ("logs", LOG_COLS), ("exceptions", EXC_COLS)):
                if chunks[frame]:
                    table = pa.Table.from_batches(chunks[frame])
                    if frame != "logs":
                        # one chunk per column instead of one per 1 MiB block (~100 per file), which every
                        # later pandas operation pays for; cheap here (2 ms per 100k invocations), inside the
                        # system pool: from the default pool, fresh pages made it 50-390 ms for 1M
                        # invocations instead of 50-100 ms. The logs (3x the rows, long strings) stay in
                        # block chunks: combining them cost ~10% of the load, more than the slower later
                        # operations (~6% on 300k rows) cost
                        table = table.combine_chunks()
                else:
                    table = pa.table({c: arrow_column(c, []) for c in names})
                out[frame] = table
    finally:
        if gc_was_enabled:
            gc.enable()
    n = out["invocations"].num_rows
    inv = out["invocations"]
    inv = inv.append_column("source", constant_dictionary(ctx.source, n))
    out["invocations"] = inv.append_column("source_file", constant_dictionary(ctx.path, n))
    return out


#: one small record of every part the fast path builds columns from (for :func:`warm_up`)
_WARM_UP: Final = (
    b'{"CPUTimeMs":1,"Event":{"Queue":"q","BatchSize":1},"EventTimestampMs":1795780800000,'
    b'"EventType":"queue","Exceptions":[{"Name":"Error","Message":"m","TimestampMs":1795780800001}],'
    b'"Logs":[{"Level":"log","Message":["{\\"jobId\\":\\"j\\"}",{"a":1}],"TimestampMs":1795780800001},'
    b'{"Level":"log","Message":["{\\"jobId\\":\\"j\\"}"],"TimestampMs":1795780800001}],'
    b'"Outcome":"exception","ScriptName":"s","ScriptVersion":{"ID":"v"},"WallTimeMs":2}\n'
)


def warm_up() -> None:
    """Read one record the way a load does (in a helper process, before it forks for jobs: what
    pyarrow and the decoders set up on first use is then done once)."""
    import io

    ctx = FileContext(path="warm-up", source="logpush")
    chunks: dict[str, list[pa.RecordBatch]] = {"invocations": [], "logs": [], "exceptions": []}
    _read_unit(_WARM_UP, len(_WARM_UP), 1, chunks, ctx)
    for batches in chunks.values():
        with pa.ipc.new_stream(io.BytesIO(), batches[0].schema) as writer:
            writer.write_batch(batches[0])


def _units(path: Path, ctx: FileContext, block_size: int) -> Iterator[tuple[bytes, int]]:
    """The units of a file: blocks of whole lines, and ``(SKIPPED_LINE, size)`` for a line over the cap."""
    return iter_line_blocks(path, ctx, block_size, count_lines=False)


def _read_unit(
    block: bytes, size: int, line: int, chunks: dict[str, list[pa.RecordBatch]], ctx: FileContext
) -> int:
    """Read one unit (its first line is ``line``) into ``chunks``; returns the next line number."""
    if block is SKIPPED_LINE or not block:  # a line over the record cap, never read whole
        ctx.oversized(size, line=line)
        return line + 1
    return _read_block(block, line, chunks, ctx)


def _read_block(block: bytes, line: int, chunks: dict[str, list[pa.RecordBatch]], ctx: FileContext) -> int:
    """Read one block of lines (the first is ``line``) into ``chunks``; returns the next line number.

    The typed paths only meet values their structs allow, but should one of them still fail on a
    hostile record, the block is read again line by line through the general path (which reports
    each bad record), after undoing what the failed attempt counted."""
    rep = ctx.report
    counts = (rep.records, rep.invocations, rep.logs, rep.exceptions, rep.filtered, rep.skipped, rep.n_issues)
    n_listed = len(rep.issues)
    try:
        rows = Rows()
        st = Block()
        nxt = fast_block(block, line, rows, ctx, st)
        nxt = nxt if nxt is not None else _load_block(block, line, rows, ctx, st)
        batches: dict[str, list[pa.RecordBatch]] = {name: [] for name in chunks}
        flush_block(rows, batches, st, ctx)
    except (*RECORD_ERRORS, pa.ArrowException):
        (rep.records, rep.invocations, rep.logs, rep.exceptions, rep.filtered, rep.skipped, rep.n_issues) = (
            counts
        )
        del rep.issues[n_listed:]
        return _general_block(block, line, chunks, ctx)
    for name, got in batches.items():
        chunks[name].extend(got)
    if len(rep.issues) > n_listed + 1:  # in line order, like the general path lists them
        rep.issues[n_listed:] = sorted(rep.issues[n_listed:], key=lambda i: i.line or 0)
    return nxt


def _general_block(block: bytes, line: int, chunks: dict[str, list[pa.RecordBatch]], ctx: FileContext) -> int:
    """Every line of a block through the general path (the fallback of :func:`_read_block`)."""
    rows = Rows()
    lines = block.split(b"\n")
    if not block.endswith(b"\n"):
        lines.append(b"")  # keeps the count right: the last line has no newline
    for k, raw in enumerate(lines[:-1]):
        if raw.strip():
            add_logpush_line(raw, rows, ctx, line + k)
    tables = rows.to_tables(ctx.source, ctx.path)
    for name in chunks:
        table = tables[name]
        if name == "invocations":
            table = table.drop_columns(["source", "source_file"])
        chunks[name].extend(table.to_batches())
    return line + len(lines) - 1


def _load_block(block: bytes, line0: int, rows: Rows, ctx: FileContext, st: Block) -> int:
    """Read the lines of one block (the first is line ``line0``); returns the next line number.

    The loop only decodes, filters and keeps the records; the columns are built in :func:`flush_block`.
    """
    inv = rows.inv
    i_id, i_ts, i_trig = inv["invocation_id"], inv["ts"], inv["trigger"]
    recs = st.recs
    rec_lines: list[int] = []
    st.lines = rec_lines
    decode = decode_record if ("logs" in ctx.frames or "exceptions" in ctx.frames) else decode_counts
    since, until = ctx.since_ms, ctx.until_ms
    windowed = ctx.windowed
    report = ctx.report
    triggers = EVENT_TYPES
    n_records = n_inv = n_filtered = 0
    check_utf8 = not block.isascii() and not valid_utf8(block)
    hi = ctx.ts_hi
    lineno = line0 - 1
    for raw in block.split(b"\n"):
        lineno += 1
        if not raw:
            continue
        if check_utf8 and not raw.isascii() and (bad := invalid_utf8(raw)) is not None:
            ctx.issue(
                "json",
                f"invalid UTF-8 at byte {bad} of the record; skipped",
                line=lineno,
                expected="UTF-8 JSON text",
            )
            continue
        if windowed:
            # push since/until down: read the event time from the raw bytes before decoding
            k = raw.find(b'"EventTimestampMs":')
            if k >= 0:
                dm = _DIGITS.match(raw, k + 19)
                if dm is not None:
                    t = parse_ms(int(dm.group(1)), LOGPUSH_UNITS, hi)
                    if type(t) is int and (
                        (since is not None and t < since) or (until is not None and t >= until)
                    ):
                        n_records += 1
                        n_filtered += 1
                        continue
        if MARKER_B in raw:
            general_fast(raw, rows, ctx, lineno, st)
            continue
        try:
            r = decode(raw)
        except DECODE_ERRORS:
            general_fast(raw, rows, ctx, lineno, st)
            continue
        et = r.EventType
        trig = triggers.get(et) if et is not None else None
        if trig is None and et is not None:
            general_fast(raw, rows, ctx, lineno, st)  # unknown variant: reported there
            continue
        ts = r.EventTimestampMs
        if ts is not None and (type(ts) is not int or not WINDOW_LO_MS <= ts <= hi):  # s, ns, RFC 3339
            ms = parse_ms(ts, LOGPUSH_UNITS, hi)
            if not isinstance(ms, int):
                general_fast(raw, rows, ctx, lineno, st)  # reported there, loaded with a null time
                continue
            ts = ms
        n_records += 1
        if (
            windowed
            and ts is not None
            and ((since is not None and ts < since) or (until is not None and ts >= until))
        ):
            n_filtered += 1
            continue
        if trig is None:
            trig = trigger_from_event(r.Event)
        i_id.append(record_id(raw))
        i_ts.append(ts)
        i_trig.append(trig)
        recs.append(r)
        rec_lines.append(lineno)
        n_inv += 1
    report.records += n_records
    report.filtered += n_filtered
    report.invocations += n_inv
    return lineno if block.endswith(b"\n") else lineno + 1
