"""Framing of JSON text: NDJSON, pretty-printed objects back to back, arrays, or a mix.

Damage costs only the damaged value: see :func:`iter_documents`.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import Any, Final

import msgspec

from edgeinvestigate.sources.files._context import FileContext, snippet

__all__ = [
    "DECODE_ERRORS",
    "KNOWN_STRAY",
    "array_elements",
    "iter_documents",
    "member_values",
    "why_not_json",
]

_json_decode = msgspec.json.Decoder().decode
#: what a value that did not decode is marked with
_BAD: Final = object()
#: what decoding a hostile value raises: msgspec.DecodeError (a ValueError; invalid UTF-8 too) and
#: RecursionError (JSON nested deeper than the decoder allows)
DECODE_ERRORS: Final = (ValueError, RecursionError)


def why_not_json(exc: BaseException) -> str:
    """The reason a value did not decode, for a report."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to decode"
    return str(exc)


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
    ctx.claim_oversized()  # blanked lines that were no part of a value: records of their own


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
                # a value on one line (NDJSON): the common case, framed here
                raw = first[:-1] if first.endswith(b",") else first
                big = len(raw) > ctx.max_record_bytes
                why = ""
                value = _BAD
                if not big:
                    try:
                        value = _json_decode(raw)
                    except DECODE_ERRORS as exc:  # msgspec.DecodeError, invalid UTF-8, deep nesting
                        why = f" ({why_not_json(exc)})"
                if value is not _BAD:
                    yield value, line, raw
                elif ch == b"[" and (parts := _split_array_line(raw)) is not None:
                    # an array with a bad element, or one too big to decode whole: element by element
                    yield from _salvage_elements(data, ctx, pos, parts, line)
                elif big:
                    ctx.oversized(len(raw), line=line, offset=pos)
                else:
                    ctx.issue(
                        "json",
                        f"invalid JSON array element at byte {pos}{why} {snippet(first)}; the other "
                        "elements were loaded"
                        if in_array
                        else f"invalid JSON record{why} {snippet(first)}",
                        line=line,
                        offset=pos,
                        expected="one JSON value per line (NDJSON) or pretty-printed JSON objects",
                    )
                line += 1
                pos = eol + 1
                continue
            pos, line = yield from _frame_lines(
                data, ctx, pos, n, eol, line, indent, closer, in_array=in_array
            )
            continue
        _stray(first, ctx, pos, line, in_array=in_array)
        line += 1
        pos = eol + 1


def _frame_lines(
    data: bytes,
    ctx: FileContext,
    pos: int,
    n: int,
    eol: int,
    line: int,
    indent: bytes,
    closer: bytes,
    *,
    in_array: bool,
) -> Generator[tuple[Any, int, bytes], None, tuple[int, int]]:
    """Frame one value that spans lines (it starts at ``pos``, its first line ends at ``eol``);
    returns the ``(pos, line)`` after it."""
    ch = data[pos : pos + 1]
    mm = _close_pattern(closer, indent, in_array).search(data, eol if eol < n else pos, n)
    if mm is None:
        # no closing line found: an unterminated value (a truncated file)
        nxt = _next_record_start(data, eol + 1, indent, n)
        if ch == b"[" and data[pos:eol].strip() == b"[" and data[eol:nxt].strip():
            # a pretty array cut short: its complete elements still count, the cut one is reported
            inner = _indent_of_first(data, pos + 1, nxt)
            yield from _frame(data, ctx, pos + 1, nxt, line, inner, in_array=True)
            ctx.issue(
                "json",
                "the JSON array starting here never closes (a truncated file?); its complete elements "
                "were loaded",
                line=line,
                offset=pos,
                expected="a complete JSON array",
                severity="warning",
            )
            return nxt, line + data.count(b"\n", pos, nxt)
        if ctx.claim_oversized(line, line + data.count(b"\n", pos, max(pos, nxt - 1)), offset=pos):
            return nxt, line + data.count(b"\n", pos, nxt)
        ctx.issue(
            "json",
            f"invalid or unterminated JSON value starting {snippet(data[pos : min(n, pos + 200)])}",
            line=line,
            offset=pos,
            expected="a complete JSON object",
        )
        return nxt, line + data.count(b"\n", pos, nxt)
    # In pretty output the first closing bracket in column 0 ends the top-level value.
    close_at = mm.start() + 1 + len(indent) + 1
    end_line = line + data.count(b"\n", pos, mm.end())  # the line after it
    last_line = line + data.count(b"\n", pos, close_at)
    blanked = ctx.blanked(line, last_line)  # a line of it was over the cap (and blanked)
    if blanked or close_at - pos > ctx.max_record_bytes:
        if ch == b"[":  # too big to decode whole, or missing a line: frame its elements one by one
            inner = _indent_of_first(data, pos + 1, mm.start())
            yield from _frame(data, ctx, pos + 1, mm.start() + 1, line, inner, in_array=True)
        elif not ctx.claim_oversized(line, last_line, offset=pos):
            ctx.oversized(close_at - pos, line=line, offset=pos)
        return mm.end(), end_line  # a value missing a line is never loaded
    raw = data[pos:close_at]
    try:
        value = _json_decode(raw)
    except DECODE_ERRORS as exc:  # msgspec.DecodeError, invalid UTF-8, deep nesting
        nxt = _next_record_start(data, eol + 1, indent, close_at)
        if ch == b"{" and nxt < close_at:
            # a value that starts inside this one: this one lost its closing bracket
            # (or has one too many); report it alone and go on with the next
            ctx.issue(
                "json",
                f"invalid JSON value ({why_not_json(exc)}; its closing {closer.decode()} is missing or "
                f"doubled) starting {snippet(data[pos : min(n, pos + 200)])}",
                line=line,
                offset=pos,
                expected="a complete JSON object",
            )
            return nxt, line + data.count(b"\n", pos, nxt)
        if ch == b"[":
            # an array with a bad element: frame its elements one by one
            inner = _indent_of_first(data, pos + 1, mm.start())
            yield from _frame(data, ctx, pos + 1, mm.start() + 1, line, inner, in_array=True)
            return mm.end(), line + data.count(b"\n", pos, mm.end())
        where = f"array element at byte {pos}" if in_array else "value"
        ctx.issue(
            "json",
            f"invalid JSON {where} ({why_not_json(exc)}) starting {snippet(data[pos : min(n, pos + 200)])}"
            + ("; the other elements were loaded" if in_array else ""),
            line=line,
            offset=pos,
            expected="a complete JSON object",
        )
    else:
        yield value, line, raw
    return mm.end(), end_line


def _stray(first: bytes, ctx: FileContext, pos: int, line: int, *, in_array: bool) -> None:
    """Report text between values (up to the end of its line): a known stray word, or not JSON."""
    word = first.strip()
    if in_array and word in (b",", b"]", b"],"):
        return  # separators of an array whose elements are framed one by one
    if word in KNOWN_STRAY:
        ctx.issue(
            "stray",
            f"ignored the stray line {word.decode()!r} (printed by wrangler 3.35-4.24.3 on exit)",
            line=line,
            severity="info",
        )
        return
    ctx.issue(
        "json",
        f"not JSON: {snippet(first)}",
        line=line,
        offset=pos,
        expected="a JSON object or array",
    )


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
        if len(raw) > ctx.max_record_bytes:
            ctx.oversized(len(raw), line=line, offset=off)
            continue
        try:
            value = _json_decode(raw)
        except DECODE_ERRORS as exc:  # msgspec.DecodeError, invalid UTF-8, deep nesting
            ctx.issue(
                "json",
                f"invalid JSON array element at byte {off} ({why_not_json(exc)}) {snippet(raw)}; "
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


#: the structure of JSON text without decoding it: strings (on one line), brackets, commas, colons
_SCAN = re.compile(rb'"(?:[^"\\\n]|\\.)*"|[\[\]{},:]')


def array_elements(data: bytes, start: int) -> tuple[list[tuple[int, int]], int | None]:
    """The ``(start, end)`` spans of the elements of the JSON array that opens at ``data[start]``,
    found from its brackets, commas and strings (no decoding and no recursion, so a damaged, huge
    or deeply nested element costs only itself), and the offset just past its closing bracket
    (``None`` when it never closes, as in a truncated file: the last span then runs to the end)."""
    depth = 0
    parts: list[tuple[int, int]] = []
    el = start + 1
    for t in _SCAN.finditer(data, start):
        c = t.group()
        if c in (b"[", b"{"):
            depth += 1
        elif c in (b"]", b"}"):
            depth -= 1
            if depth <= 0:
                if data[el : t.start()].strip():
                    parts.append((el, t.start()))
                return parts, t.end()
        elif c == b"," and depth == 1:
            parts.append((el, t.start()))
            el = t.end()
    if data[el:].strip():
        parts.append((el, len(data)))
    return parts, None


def member_values(data: bytes, start: int) -> tuple[dict[str, tuple[int, int]], int | None]:
    """The top-level members of the JSON object that opens at ``data[start]``: key -> ``(start,
    end)`` span of its value, found like :func:`array_elements` (without decoding the values), and
    the offset just past the object's closing brace (``None`` when it never closes)."""
    depth = 0
    members: dict[str, tuple[int, int]] = {}
    key: str | None = None
    value_at = -1
    last = b""
    for t in _SCAN.finditer(data, start):
        c = t.group()
        if depth == 1 and c == b":" and last[:1] == b'"' and key is None:
            try:
                k = _json_decode(last)
            except DECODE_ERRORS:
                k = None
            key, value_at = (k, t.end()) if isinstance(k, str) else (None, -1)
        elif depth == 1 and c == b"," and key is not None:
            members.setdefault(key, (value_at, t.start()))
            key = None
        if c in (b"[", b"{"):
            depth += 1
        elif c in (b"]", b"}"):
            depth -= 1
            if depth <= 0:
                if key is not None:
                    members.setdefault(key, (value_at, t.start()))
                return members, t.end()
        last = c
    if key is not None:
        members.setdefault(key, (value_at, len(data)))
    return members, None
