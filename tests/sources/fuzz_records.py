"""Structure-aware fuzzing of the file loaders (tail, TraceItems, Logpush, Workers Logs export, DLQ files).

A case is a file of real records (tests/data, shaped exactly like ../shared/reference/cloudflare-formats.md,
and DLQ messages shaped like its sections D1/D2/E) in one of the framings its format comes in, with
mutations a hostile or damaged file has: values of the wrong type, JSON nested 1,000 to 100,000 deep,
numbers beyond 64 bits or beyond a float, invalid UTF-8, raw and escaped NULs, dropped keys, strings past
the record cap, junk lines between records, a file cut at any byte, gzip.

:func:`check_case` loads the file and checks the contract: nothing but a
:class:`~edgeinvestigate.errors.ParseError` naming the file escapes (only a DLQ file that holds no message
at all may raise it when not strict), and every record is accounted for: each record (and junk line)
before the cut is either loaded or reported as skipped, one report entry each. Used by
``tests/sources/test_fuzz.py`` (a small run in ``make test``) and ``benchmarks/fuzz_loaders.py`` (10,000+
cases per loader).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hypothesis import strategies as st

import edgeinvestigate as ei
from edgeinvestigate.errors import ParseError
from edgeinvestigate.sources.api.dlq_frame import read_dlq_file
from edgeinvestigate.sources.files._context import ALL_FRAMES
from edgeinvestigate.sources.files._rows import record_id
from edgeinvestigate.sources.files._worker import load_one

DATA: Final = Path(__file__).resolve().parents[1] / "data"
LOADERS: Final = ("logpush", "tail", "traceitems", "workers_logs_export", "dlq")
#: the cap the cases run with: the default, or a small one that the long strings pass
CAPS: Final = (None, 4096)


# --- real records ------------------------------------------------------------------------------


def _values(text: bytes) -> list[Any]:
    """The JSON values of a file of NDJSON / pretty objects back to back / arrays."""
    dec = json.JSONDecoder()
    s = text.decode()
    out: list[Any] = []
    pos = 0
    while True:
        while pos < len(s) and s[pos] in " \t\r\n":
            pos += 1
        if pos >= len(s):
            return out
        try:
            value, pos = dec.raw_decode(s, pos)
        except json.JSONDecodeError:  # the stray "json" line of old wrangler versions
            pos = s.index("\n", pos) + 1
            continue
        out.extend(value if isinstance(value, list) else [value])


def _logpush() -> list[Any]:
    out = []
    for p in sorted((DATA / "logpush").rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            out.extend(_values(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))
    return out


def _trace() -> list[Any]:
    items = _values((DATA / "tail/tail-4space.json").read_bytes())
    for rec in _values((DATA / "traceitems/wrapped.jsonl").read_bytes()):
        items.extend(rec["events"])
    return [r for r in items if isinstance(r, dict) and "outcome" in r]


def _workers_logs() -> list[Any]:
    return _values((DATA / "workers_logs/dashboard-export.json").read_bytes()) + _values(
        (DATA / "workers_logs/api-events.ndjson").read_bytes()
    )


_JOB = {
    "type": "EMAIL_DELIVERY",
    "payload": {"jobId": "job_01HZX3", "to": "alice@example.org", "template": "receipt"},
    "metadata": {
        "attempts": 3,
        "originalTimestamp": "2026-11-27T14:02:11.482Z",
        "lastAttempt": "2026-11-27T14:05:40.001Z",
    },
}
_WRAPPED = {
    "original": {
        "id": "9f1c2d3e4b5a69788",
        "timestamp": "2026-11-27T14:02:11.482Z",
        "body": _JOB,
        "attempts": 4,
    },
    "error": "SMTP 421",
}


def _dlq() -> list[Any]:
    """DLQ messages as a peek/pull shows them (reference D1/D2) and as a Worker stores a runtime
    ``Message`` (reference E)."""
    plain = json.dumps(_JOB, separators=(",", ":"))
    peek = [
        {
            "id": "m-plain",
            "body": plain,
            "attempts": 1,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "json"},
        },
        {
            "id": "m-b64",
            "body": base64.b64encode(json.dumps(_WRAPPED).encode()).decode(),
            "attempts": 2,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "json", "CF-sourceMessageSource": "api"},
            "lease_id": "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0..lease",
        },
        {
            "id": "m-text",
            "body": "plain text job",
            "attempts": 1,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "text"},
        },
        {
            "id": "m-v8",
            "body": "/w9vIgR0eXBlIg==",
            "attempts": 1,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "v8"},
        },
    ]
    runtime = [
        {"messageId": "r-1", "timestamp": "2026-11-27T14:02:11.482Z", "body": _JOB, "attempts": 4},
        {"message_id": "r-2", "timestamp": 1795788131482, "body": "resend receipt 42", "attempts": 1},
        {"id": "r-3", "timestamp": "2026-11-27T14:03:00.000Z", "body": _WRAPPED, "attempts": 2},
    ]
    return peek + runtime


POOLS: Final[dict[str, list[Any]]] = {
    "logpush": _logpush(),
    "tail": _trace(),
    "traceitems": _trace(),
    "workers_logs_export": _workers_logs(),
    "dlq": _dlq(),
}

#: how each format's records are framed in its files
FRAMINGS: Final[dict[str, tuple[str, ...]]] = {
    "logpush": ("ndjson",),
    "tail": ("pretty4", "pretty2", "ndjson"),
    "traceitems": ("arrays", "wrapped", "array_pretty"),
    "workers_logs_export": ("concat_pretty2", "array_pretty2", "ndjson"),
    "dlq": ("queue_messages", "count_items", "array", "ndjson", "result_envelope"),
}
#: framings whose file is one JSON array of the records
_TOP_ARRAYS: Final = frozenset({"array_pretty", "array_pretty2", "array"})
#: framings whose records stand between lines of their own, where junk lines can go
_LINE_FRAMED: Final = frozenset({"ndjson", "pretty4", "pretty2", "arrays", "wrapped", "concat_pretty2"})


# --- hostile values ----------------------------------------------------------------------------


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


WRONG_TYPES: Final = (b"null", b"true", b"0", b"-1", b"1.5", b'""', b'"x"', b"{}", b'{"a":{"b":[]}}')
WRONG_TYPES_NOT_ROOT: Final = (b"[]", b'[1,"a",null]')  # as a whole record: zero or several records
HUGE_NUMBERS: Final = (
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"123456789012345678901234567890",
    b"1" + b"0" * 400,
    b"1" + b"0" * 4300,
    b"1e400",
    b"-1e400",
    b"1.7976931348623157e308",
    b"253402300800000",
    b"-1795788300000",
)
BAD_UTF8: Final = (b'"a\xffb"', b'"\xc3"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80x"', b'"\xc0\xaf"')
NULS: Final = (b'"a\x00b"', b'"a\\u0000b"', b'"\\u0000"')


@dataclass
class Case:
    """One fuzz case: the file to write and what is known about what it holds."""

    loader: str
    framing: str
    data: bytes
    starts: list[int]
    """byte offsets where each record (or junk line) starts: the ones before ``cut`` must each be
    loaded or reported"""
    cut: int | None = None
    gzip: bool = False
    gzip_cut: float | None = None
    """cut the gzip stream itself at this fraction of its length (a download that broke off)"""
    cap: int | None = None
    mutations: list[str] = field(default_factory=list)

    def content(self) -> bytes:
        data = self.data if self.cut is None else self.data[: self.cut]
        if not self.gzip:
            return data
        gz = gzip.compress(data, mtime=0)
        return gz if self.gzip_cut is None else gz[: max(10, int(self.gzip_cut * len(gz)))]

    def expected(self) -> int:
        end = len(self.data) if self.cut is None else self.cut
        n = sum(1 for s in self.starts if s < end)
        if not n and self.framing in _TOP_ARRAYS and end > len(self.data) - len(self.data.lstrip()):
            return 1  # the file was cut after the array's "[" but before its first record: one damaged value
        return n


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(rec: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = rec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = new
    return rec


@st.composite
def _mutated(draw: st.DrawFn, rec: Any, raws: dict[str, bytes], cap: int | None, done: list[str]) -> Any:
    """``rec`` with one mutation; raw JSON bytes stand in as sentinel strings (see :func:`_dumps`)."""
    path = draw(st.sampled_from(_paths(rec)))
    kind = draw(
        st.sampled_from(["wrong_type", "deep", "huge_number", "bad_utf8", "nul", "drop_key", "long_string"])
    )
    done.append(f"{kind}@{'.'.join(map(str, path)) or '<record>'}")
    if kind == "drop_key":
        if path:
            node = rec
            for k in path[:-1]:
                node = node[k]
            del node[path[-1]]
        return rec
    if kind == "wrong_type":
        raw = draw(st.sampled_from(WRONG_TYPES + (WRONG_TYPES_NOT_ROOT if path else ())))
    elif kind == "deep":
        raw = _deep(
            draw(st.sampled_from([900, 1000, 1100, 5000, 100_000])),
            draw(st.sampled_from(["array", "object"])),
        )
    elif kind == "huge_number":
        raw = draw(st.sampled_from(HUGE_NUMBERS))
    elif kind == "bad_utf8":
        raw = draw(st.sampled_from(BAD_UTF8))
    elif kind == "nul":
        raw = draw(st.sampled_from(NULS))
    else:  # a string past the record cap (the small one, or the default 8 MiB once in a while)
        sizes = [5000, 20_000] if cap else [5000] * 9 + [9_000_000]  # past the 8 MiB default: now and then
        size = draw(st.sampled_from(sizes))
        raw = b'"' + b"x" * size + b'"'
    key = f"\x01R{len(raws)}\x01"
    raws[key] = raw
    return _set(rec, path, key)


def _dumps(value: Any, raws: dict[str, bytes], indent: int | None = None) -> bytes:
    """JSON of ``value`` with each sentinel string replaced by its raw bytes."""
    text = json.dumps(value, indent=indent, separators=None if indent else (",", ":")).encode()
    for key, raw in raws.items():
        text = text.replace(json.dumps(key).encode(), raw)
    return text


def _runtime_shape(msg: Any) -> bool:
    return isinstance(msg, dict) and "timestamp_ms" not in msg and "metadata" not in msg


def _frame(
    loader: str, framing: str, recs: list[bytes], pretty: list[bytes], junk: dict[int, bytes]
) -> tuple[bytes, list[int]]:
    """The file: the records (``recs`` compact, ``pretty`` indented) framed as ``framing``, with
    ``junk[i]`` as a line before record ``i``; and where each record and junk line starts."""
    out = bytearray()
    starts: list[int] = []

    def add(piece: bytes) -> None:
        starts.append(len(out) + len(piece) - len(piece.lstrip()))  # where its first byte is
        out.extend(piece)

    if framing in _LINE_FRAMED:
        for i, (c, p) in enumerate(zip(recs, pretty, strict=True)):
            if i in junk:
                add(junk[i])
                out.extend(b"\n")
            if framing == "arrays":  # JSON.stringify(events) of one event: the line is the record
                add(b"[" + c + b"]\n")
            elif framing == "wrapped":
                starts.append(len(out))
                out.extend(b'{"receivedAt":"2026-11-27T14:05:00.000Z","events":[' + c + b"]}\n")
            else:
                add((p if framing.startswith(("pretty", "concat")) else c) + b"\n")
        return bytes(out), starts
    # one array of the records, bare or in a wrapper object (pretty, 2 spaces, like the simulator)
    head, tail = {
        "array_pretty": (b"[\n", b"\n]\n"),
        "array_pretty2": (b"[\n", b"\n]\n"),
        "array": (b"[", b"]\n"),
        "queue_messages": (b'{\n  "queue": "jobs-dlq",\n  "messages": [\n', b"\n  ]\n}\n"),
        "count_items": (b'{\n  "count": ' + str(len(recs)).encode() + b',\n  "items": [\n', b"\n  ]\n}\n"),
        "result_envelope": (
            b'{"success":true,"errors":[],"messages":[],"result":{"message_backlog_count":0,"messages":[',
            b"]}}\n",
        ),
    }[framing]
    out.extend(head)
    one_line = framing in ("array", "result_envelope")
    for i, (c, p) in enumerate(zip(recs, pretty, strict=True)):
        if i:
            out.extend(b"," if one_line else b",\n")
        add(c if one_line else b"\n".join(b"    " + ln for ln in p.split(b"\n")))
    out.extend(tail)
    return bytes(out), starts


@st.composite
def cases(draw: st.DrawFn, loader: str) -> Case:
    """One fuzz case of ``loader``'s format."""
    pool = POOLS[loader]
    framing = draw(st.sampled_from(FRAMINGS[loader]))
    cap = draw(st.sampled_from(CAPS))
    n = draw(st.integers(1, 6))
    recs = [copy.deepcopy(draw(st.sampled_from(pool))) for _ in range(n)]
    if framing == "count_items":  # a Worker's archive of the runtime Messages it saw
        recs = [r for r in recs if _runtime_shape(r)] or [copy.deepcopy(POOLS["dlq"][-1])]
    raws: dict[str, bytes] = {}
    done: list[str] = []
    for i in range(len(recs)):
        for _ in range(draw(st.integers(0, 2))):
            recs[i] = draw(_mutated(recs[i], raws, cap, done))
    indent = 2 if framing.endswith("2") or framing in ("queue_messages", "count_items") else 4
    compact = [_dumps(r, raws) for r in recs]
    pretty = [_dumps(r, raws, indent) for r in recs]
    junk: dict[int, bytes] = {}
    if framing in _LINE_FRAMED and draw(st.booleans()):
        junk[draw(st.integers(0, len(recs) - 1))] = draw(
            st.sampled_from(
                [
                    b"Connected to worker!",
                    b"\x00\x00\x00",
                    b"<html><body>502</body></html>",
                    b"\xff\xfe garbage",
                ]
            )
        )
    data, starts = _frame(loader, framing, compact, pretty, junk)
    cut = draw(st.one_of(st.none(), st.none(), st.integers(0, len(data))))
    compressed = draw(st.booleans())
    return Case(
        loader=loader,
        framing=framing,
        data=data,
        starts=starts,
        cut=cut,
        gzip=compressed,
        gzip_cut=draw(st.one_of(st.none(), st.none(), st.floats(0, 0.99))) if compressed else None,
        cap=cap,
        mutations=done + [f"junk line before record {i}" for i in junk],
    )


# --- the contract ------------------------------------------------------------------------------


@dataclass
class Outcome:
    records: int  # records in the file (before the cut)
    loaded: int
    skipped: int  # records reported as skipped (error entries)
    refused: bool = False  # a DLQ file with no message at all: a ParseError naming it


def _load(path: Path, loader: str, cap: int | None) -> Any:
    kw = {} if cap is None else {"max_record_bytes": cap}
    if loader == "dlq":
        return read_dlq_file(path, strict=False, **kw)
    return ei.load((path, loader), **kw)


def _strict_error(path: Path, loader: str, cap: int | None) -> str | None:
    """The error of a strict load (the loader alone: the frames were built by the lenient load)."""
    kw = {} if cap is None else {"max_record_bytes": cap}
    try:
        if loader == "dlq":
            read_dlq_file(path, strict=True, **kw)
            return None
        _tables, _report, err = load_one(path, loader, None, None, True, ALL_FRAMES, False, **kw)
    except ParseError as exc:
        return str(exc)
    if err is None:
        return None
    assert err[0] == "parse", err
    return str(err[1]["path"]) + ": " + str(err[1]["message"])


def check_case(case: Case, path: Path) -> Outcome:
    """Load ``case`` from ``path`` (lenient, then strict) and check the contract (AssertionError)."""
    path.write_bytes(case.content())
    expected = case.expected()
    refused: ParseError | None = None
    try:
        got = _load(path, case.loader, case.cap)
    except ParseError as exc:
        refused = exc
    if refused is not None:
        # only a DLQ file without a single message may be refused when not strict
        assert case.loader == "dlq", f"lenient {case.loader} load raised {refused}"
        assert str(path) in str(refused), refused
        return Outcome(expected, 0, 0, refused=True)
    if case.loader == "dlq":
        frame, rep = got
        loaded = len(frame)
        assert rep.records == loaded
    else:
        rep = got.report.files[0]
        loaded = rep.invocations if case.loader != "workers_logs_export" else rep.records
        assert rep.invocations == len(got.invocations)
        assert len(got.logs) == rep.logs
        assert len(got.exceptions) == rep.exceptions
    errors = [i for i in rep.issues if i.severity == "error"]
    assert rep.skipped == len(errors) or rep.n_issues > len(rep.issues)
    infos = sum(1 for i in rep.issues if i.kind == "tail-info")  # sampling notices: not invocations
    if case.gzip_cut is not None:  # what decompressed is read; the break itself is reported
        assert loaded + rep.skipped + infos <= expected + 1, rep.issues
        assert any(i.kind == "gzip" for i in rep.issues) or not case.content()[10:], rep.issues
        return Outcome(expected, loaded, rep.skipped)
    assert loaded + rep.skipped + infos == expected, (
        f"{case.loader}/{case.framing}: {expected} records before the cut, {loaded} loaded + "
        f"{rep.skipped} skipped + {infos} notices; mutations {case.mutations}; issues "
        f"{[(i.line, i.kind, i.message[:120]) for i in rep.issues]}"
    )
    if case.loader == "logpush" and not case.gzip:
        _check_logpush_lines(case, got, rep)
    # strict: the same file loads without a word, or stops with a ParseError naming it
    error = _strict_error(path, case.loader, case.cap)
    if error is None:
        assert rep.skipped == 0, rep.issues
        assert not [i for i in rep.issues if i.severity == "warning"], rep.issues
    else:
        assert str(path) in error, error
    return Outcome(expected, loaded, rep.skipped)


def _check_logpush_lines(case: Case, ev: Any, rep: Any) -> None:
    """Every Logpush line is an invocation (its id is the hash of the line) or a report entry."""
    ids = set(ev.invocations["invocation_id"].astype(str))
    reported = {i.line for i in rep.issues if i.severity == "error"}
    for n, line in enumerate(case.content().split(b"\n"), 1):
        if line.strip():
            assert record_id(line) in ids or n in reported, (n, line[:200], rep.issues)
