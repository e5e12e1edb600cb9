"""Shared parts of the file loaders: the per-file context, the row builder, framing and coercion.

Loaders return plain pyarrow tables (:class:`Rows.to_tables`); :func:`edgeinvestigate.load` conforms
them to :mod:`models.frames` once, after all files are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import pyarrow as pa
import xxhash

from edgeinvestigate._time import epoch_to_ms
from edgeinvestigate.errors import LoadError, ParseError
from edgeinvestigate.models.load_report import FileReport, Issue, Severity

__all__ = [
    "ALL_FRAMES",
    "BLOCK_SIZE",
    "FileContext",
    "Rows",
    "iter_documents",
    "iter_line_blocks",
    "join_args",
    "lift_job_fields",
    "read_bytes",
    "record_id",
    "to_ms",
]

ALL_FRAMES: Final = ("invocations", "logs", "exceptions")
#: bytes of whole lines handled at a time: small enough that a block, its decoded records and the
#: columns built from them stay in the CPU caches and the allocator reuses the memory of the previous
#: block (1 MiB loaded the Logpush benchmark 35-40% faster than 16 MiB; 256 KiB was slower again)
BLOCK_SIZE: Final = 1024 * 1024
#: compressed bytes read at a time (about 10x that decompressed: a few pieces per block)
GZIP_READ_SIZE: Final = 64 * 1024
GZIP_MAGIC: Final = b"\x1f\x8b"
#: longest excerpt of a bad record quoted in a report or error message
SNIPPET: Final = 80

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode


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


def record_id(canonical: bytes) -> str:
    """The stable id of a record: 64-bit xxh3 of its compact JSON bytes, as 16 hex digits."""
    return xxhash.xxh3_64_hexdigest(canonical)


def canonical_bytes(obj: Any) -> bytes:
    """Compact JSON in the key order of the source (what ``JSON.stringify`` writes)."""
    return _json_encode(obj)


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

    def _strict_hint(self) -> str:
        """The next step after a strict-mode stop: the right flag when the file looks like another
        format than it is read as, else how to see every bad record."""
        from edgeinvestigate.sources.registry import SOURCES, _head, sniff_source

        try:
            looks = sniff_source(_head(Path(self.path)))
        except (OSError, ValueError):
            looks = None
        if looks is not None and looks != self.source and self.source in SOURCES:
            flag = "--" + looks.replace("_", "-")
            return f"this file looks like {looks} data, not {self.source}: load it with {flag} {self.path}"
        return (
            "nothing was written (--strict stops at the first bad record); fix the file, or run "
            "without --strict to skip and list every bad record in the load report"
        )

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


INV_COLS: Final = (
    "invocation_id",
    "ts",
    "script",
    "script_version",
    "trigger",
    "queue",
    "batch_size",
    "outcome",
    "failed",
    "cpu_ms",
    "wall_ms",
    "n_logs",
    "n_exceptions",
    "truncated",
    "url",
    "method",
    "status",
    "entrypoint",
    "dispatch_namespace",
)
LOG_COLS: Final = (
    "invocation_id",
    "ts",
    "level",
    "message",
    "args",
    "job_id",
    "job_type",
    "attempt",
    "message_id",
)
EXC_COLS: Final = ("invocation_id", "ts", "name", "message", "stack")

_TS = pa.timestamp("ms", tz="UTC")
_TYPES: Final[dict[str, pa.DataType]] = {
    "ts": _TS,
    "batch_size": pa.int32(),
    "failed": pa.bool_(),
    "cpu_ms": pa.float64(),
    "wall_ms": pa.float64(),
    "n_logs": pa.int32(),
    "n_exceptions": pa.int32(),
    "truncated": pa.bool_(),
    "status": pa.int32(),
    "attempt": pa.int32(),
}


#: low-cardinality columns (categoricals in the frames): dictionary-encoded where they are built,
#: so the encoding work happens in the loader processes, not in the parent
_DICT_COLS: Final = frozenset(
    {"script", "script_version", "trigger", "queue", "outcome", "level", "job_type", "name"}
)


def _array(name: str, values: list[Any]) -> pa.Array:
    typ = _TYPES.get(name, pa.string())
    if typ is _TS:
        return pa.array(values, type=pa.int64()).cast(_TS)
    if name in _DICT_COLS:
        return pa.array(values, type=typ).dictionary_encode()
    return pa.array(values, type=typ)


class Rows:
    """Column lists for the three frames of one file, turned into pyarrow tables at the end."""

    def __init__(self) -> None:
        self.inv: dict[str, list[Any]] = {c: [] for c in INV_COLS}
        self.log: dict[str, list[Any]] = {c: [] for c in LOG_COLS}
        self.exc: dict[str, list[Any]] = {c: [] for c in EXC_COLS}

    def add_invocation(self, **values: Any) -> None:
        for c in INV_COLS:
            self.inv[c].append(values.get(c))

    def add_log(self, **values: Any) -> None:
        for c in LOG_COLS:
            self.log[c].append(values.get(c))

    def add_exception(self, **values: Any) -> None:
        for c in EXC_COLS:
            self.exc[c].append(values.get(c))

    def to_tables(self, source: str, source_file: str) -> dict[str, pa.Table]:
        n = len(self.inv["invocation_id"])
        inv = {c: _array(c, v) for c, v in self.inv.items()}
        inv["source"] = constant_dictionary(source, n)
        inv["source_file"] = constant_dictionary(source_file, n)
        return {
            "invocations": pa.table(inv),
            "logs": pa.table({c: _array(c, v) for c, v in self.log.items()}),
            "exceptions": pa.table({c: _array(c, v) for c, v in self.exc.items()}),
        }


def constant_dictionary(value: str, n: int) -> pa.Array:
    """``n`` copies of one string as a dictionary array (cheap for source/source_file)."""
    import numpy as np

    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


# --- coercion -------------------------------------------------------------------------------

_BAD: Final = object()


def to_ms(value: Any) -> int | object | None:
    """An event time in epoch s/ms/us/ns (number or digit string) or RFC 3339 -> epoch ms.

    Returns ``None`` for null and the private ``_BAD`` sentinel for a value that is not a time.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, int | float):
        if value != value or abs(value) > 1e20:  # NaN, absurd
            return _BAD
        return epoch_to_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return epoch_to_ms(int(text))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return _BAD
        if dt.tzinfo is None:
            from datetime import UTC

            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return _BAD


def is_bad(value: object) -> bool:
    return value is _BAD


def join_args(args: Any) -> str | None:
    """``console.*`` arguments joined for reading: strings as-is, everything else as compact JSON."""
    if args is None:
        return None
    if isinstance(args, str):
        return args
    if isinstance(args, list):
        if len(args) == 1 and isinstance(args[0], str):
            return args[0]
        return " ".join(a if isinstance(a, str) else _json_encode(a).decode() for a in args)
    return _json_encode(args).decode()


_ID_KEYS: Final = ("jobId", "job_id")
_TYPE_KEYS: Final = ("type", "jobType", "job_type")
_ATTEMPT_KEYS: Final = ("attempt", "attempts")
_MSG_KEYS: Final = ("messageId", "message_id")

JobFields = tuple[str | None, str | None, int | None, str | None]
NO_JOB: Final[JobFields] = (None, None, None, None)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def _as_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if -(2**31) <= v < 2**31 else None
    if isinstance(v, float) and v.is_integer():
        return _as_int(int(v))
    if isinstance(v, str) and v.strip().isdigit():
        return _as_int(int(v))
    return None


def job_fields_of(d: dict[str, Any]) -> JobFields:
    """The job fields of one structured log object (see the convention in :mod:`models.frames`)."""
    return (
        _as_text(_first(d, _ID_KEYS)),
        _as_text(_first(d, _TYPE_KEYS)),
        _as_int(_first(d, _ATTEMPT_KEYS)),
        _as_text(_first(d, _MSG_KEYS)),
    )


def lift_job_fields(args: Any) -> JobFields:
    """Job fields from the arguments of one ``console.*`` call.

    Looks at the first object argument, or the first string argument that is a JSON object
    (``console.log(JSON.stringify({...}))``).
    """
    items = args if isinstance(args, list) else [args]
    for a in items:
        if isinstance(a, dict):
            return job_fields_of(a)
        if isinstance(a, str) and a[:1] == "{" and a.rstrip()[-1:] == "}":
            try:
                d = _json_decode(a)
            except ValueError:  # msgspec.DecodeError, invalid UTF-8
                continue
            if isinstance(d, dict):
                return job_fields_of(d)
    return NO_JOB


# --- reading --------------------------------------------------------------------------------


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


# --- framing of concatenated / pretty / NDJSON JSON -----------------------------------------

_CLOSE_OBJ = re.compile(rb"\n\}[ \t\r]*(?:\n|$)")
_CLOSE_ARR = re.compile(rb"\n\][ \t\r]*(?:\n|$)")
_WS = re.compile(rb"[ \t\r\n]*")

#: bare words known to appear on stdout between objects (wrangler 3.35.0-4.24.3 printed "json")
KNOWN_STRAY: Final = frozenset({b"json"})


def iter_documents(data: bytes, ctx: FileContext) -> Iterator[tuple[Any, int, bytes]]:
    """JSON values of a file holding NDJSON, pretty-printed objects back to back (any indentation),
    a JSON array, or a mix, as ``(value, line, raw_bytes)``.

    It never splits pretty objects on lines: a top-level value ends at a line that starts with its
    closing bracket (nested lines are indented), checked by decoding. Text between values (the stray
    ``json`` line of old wrangler versions, anything else) is reported, not fatal. Damage costs only
    the damaged value: an array with a bad element yields its other elements one by one (the bad one
    is reported with its line and byte offset), and a value whose closing bracket is missing or
    doubled does not swallow the value after it.
    """
    yield from _frame(data, ctx, 0, len(data), 1, b"", in_array=False)


def _close_pattern(closer: bytes, indent: bytes, in_array: bool) -> re.Pattern[bytes]:
    if not indent and not in_array:
        return _CLOSE_OBJ if closer == b"}" else _CLOSE_ARR
    return re.compile(rb"\n" + re.escape(indent) + re.escape(closer) + rb"[ \t\r]*,?[ \t\r]*(?:\n|$)")


def _frame(
    data: bytes, ctx: FileContext, pos: int, n: int, line: int, indent: bytes, *, in_array: bool
) -> Iterator[tuple[Any, int, bytes]]:
    """Frame the values in ``data[pos:n]`` (``line``: the line at ``pos``); top-level values start
    and end on lines indented by ``indent`` (``b""`` for a file, the element indentation inside an
    array being salvaged). Inside an array (``indent`` given or not), lone ``,`` lines are skipped."""
    while True:
        m = _WS.match(data, pos, n)
        end_ws = m.end() if m else pos
        if end_ws > pos:
            line += data.count(b"\n", pos, end_ws)
            pos = end_ws
        if pos >= n:
            return
        eol = data.find(b"\n", pos, n)
        if eol < 0:
            eol = n
        first = data[pos:eol].rstrip()
        ch = data[pos : pos + 1]
        if ch in (b"{", b"["):
            closer = b"}" if ch == b"{" else b"]"
            if first.endswith(closer) or first.endswith(closer + b","):
                raw = first[:-1] if first.endswith(b",") else first
                try:
                    value = _json_decode(raw)
                except ValueError:  # msgspec.DecodeError, invalid UTF-8
                    value = _BAD
                if value is not _BAD:
                    yield value, line, raw
                elif ch == b"[" and (parts := _split_array_line(raw)) is not None:
                    yield from _salvage_elements(data, ctx, pos, parts, line)
                else:
                    ctx.issue(
                        "json",
                        f"invalid JSON array element at byte {pos} {snippet(first)}; the other elements "
                        "were loaded"
                        if in_array
                        else f"invalid JSON record {snippet(first)}",
                        line=line,
                        offset=pos,
                        expected="one JSON value per line (NDJSON) or pretty-printed JSON objects",
                    )
                line += 1
                pos = eol + 1
                continue
            pat = _close_pattern(closer, indent, in_array)
            mm = pat.search(data, eol if eol < n else pos, n)
            if mm is not None:
                # In pretty output the first closing bracket in column 0 ends the top-level value.
                close_at = mm.start() + 1 + len(indent) + 1
                raw = data[pos:close_at]
                try:
                    value = _json_decode(raw)
                except ValueError as exc:  # msgspec.DecodeError, invalid UTF-8
                    nxt = _next_record_start(data, eol + 1, indent, close_at)
                    if ch == b"{" and nxt < close_at:
                        # a value that starts inside this one: this one lost its closing bracket
                        # (or has one too many); report it alone and go on with the next
                        ctx.issue(
                            "json",
                            f"invalid JSON value ({exc}; its closing {closer.decode()} is missing or "
                            f"doubled) starting {snippet(data[pos : min(n, pos + 200)])}",
                            line=line,
                            offset=pos,
                            expected="a complete JSON object",
                        )
                        line += data.count(b"\n", pos, nxt)
                        pos = nxt
                        continue
                    if ch == b"[":
                        # an array with a bad element: frame its elements one by one
                        yield from _frame(
                            data,
                            ctx,
                            pos + 1,
                            mm.start() + 1,
                            line,
                            _indent_of_first(data, pos + 1, mm.start()),
                            in_array=True,
                        )
                        line += data.count(b"\n", pos, mm.end())
                        pos = mm.end()
                        continue
                    where = f"array element at byte {pos}" if in_array else "value"
                    ctx.issue(
                        "json",
                        f"invalid JSON {where} ({exc}) starting {snippet(data[pos : min(n, pos + 200)])}"
                        + ("; the other elements were loaded" if in_array else ""),
                        line=line,
                        offset=pos,
                        expected="a complete JSON object",
                    )
                else:
                    yield value, line, raw
                line += data.count(b"\n", pos, mm.end())
                pos = mm.end()
            else:
                # no closing line found: an unterminated value (a truncated file)
                nxt = _next_record_start(data, eol + 1, indent, n)
                ctx.issue(
                    "json",
                    f"invalid or unterminated JSON value starting {snippet(data[pos : min(n, pos + 200)])}",
                    line=line,
                    offset=pos,
                    expected="a complete JSON object",
                )
                line += data.count(b"\n", pos, nxt)
                pos = nxt
            continue
        # stray text up to the end of the line
        word = first.strip()
        if in_array and word in (b",", b"]", b"],"):
            pass  # separators of an array whose elements are framed one by one
        elif word in KNOWN_STRAY:
            ctx.issue(
                "stray",
                f"ignored the stray line {word.decode()!r} (printed by wrangler 3.35-4.24.3 on exit)",
                line=line,
                severity="info",
            )
        else:
            ctx.issue(
                "json",
                f"not JSON: {snippet(first)}",
                line=line,
                offset=pos,
                expected="a JSON object or array",
            )
        line += 1
        pos = eol + 1


def _indent_of_first(data: bytes, pos: int, end: int) -> bytes:
    """The indentation of the first value after ``pos`` (the elements of a pretty array)."""
    m = re.compile(rb"[^ \t\r\n]").search(data, pos, end)
    if m is None:
        return b""
    bol = data.rfind(b"\n", pos, m.start())
    if bol < 0:
        return b""  # on the line of the opening bracket
    ind = data[bol + 1 : m.start()]
    return ind if not ind.strip() else b""


_TOKENS = re.compile(rb'"(?:[^"\\\n]|\\.)*"|[\[\]{},]')


def _split_array_line(raw: bytes) -> list[tuple[int, int]] | None:
    """The ``(start, end)`` of each element of a one-line JSON array, found by its brackets, commas
    and strings; ``None`` when the brackets do not balance (then nothing can be framed)."""
    depth = 0
    parts: list[tuple[int, int]] = []
    start = 1
    for t in _TOKENS.finditer(raw):
        c = t.group()
        if c in (b"[", b"{"):
            depth += 1
        elif c in (b"]", b"}"):
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                if t.end() != len(raw):
                    return None
                if raw[start : t.start()].strip():
                    parts.append((start, t.start()))
                return parts
        elif c == b"," and depth == 1:
            parts.append((start, t.start()))
            start = t.end()
    return None


def _salvage_elements(
    data: bytes, ctx: FileContext, pos: int, parts: list[tuple[int, int]], line: int
) -> Iterator[tuple[Any, int, bytes]]:
    for a, b in parts:
        raw = data[pos + a : pos + b].strip()
        off = pos + a + (len(data[pos + a : pos + b]) - len(data[pos + a : pos + b].lstrip()))
        try:
            value = _json_decode(raw)
        except ValueError as exc:  # msgspec.DecodeError, invalid UTF-8
            ctx.issue(
                "json",
                f"invalid JSON array element at byte {off} ({exc}) {snippet(raw)}; "
                "the other elements were loaded",
                line=line,
                offset=off,
                expected="a JSON value",
            )
            continue
        yield value, line, raw


def _next_record_start(data: bytes, pos: int, indent: bytes = b"", end: int | None = None) -> int:
    """The start of the next line that begins a value (``{`` or ``[`` after ``indent``), or ``end``."""
    end = len(data) if end is None else end
    m = re.compile(rb"^" + re.escape(indent) + rb"[\{\[]", re.M).search(data, pos, end)
    return m.start() + len(indent) if m else end
