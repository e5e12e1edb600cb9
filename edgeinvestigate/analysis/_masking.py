"""Masking of the variable parts of error messages (the first step of clustering).

Every mask is one regular expression written in the common subset of RE2 (DuckDB, pyarrow) and
Python's ``re`` (with ``re.ASCII``), so the vectorised engine and the one-message explainer agree.
The masks are tried in the order of :data:`MASKS` at every position of the text (leftmost match
first, then the first mask in this order), so specific shapes (a UUID, a URL, an ISO timestamp) win
over the generic ones (a hex id, an integer) that would match a piece of them.

The list covers Sentry's message parameterisation (email, url, hostname, ip, uuid, sha1/md5/hex,
date, duration, float, int, quoted string, traceparent) and adds what Workers and Queues messages
carry: Cloudflare ray ids, ULID and prefixed ids (``job_01J...``, ``cus_3fa9...``, ``t_1234``),
epoch timestamps, RFC 7231 dates, IPv6, paths, sizes and base64 blobs. Two deliberate differences
from Sentry, because they merge different errors: booleans are not masked (``evaluated to true`` /
``evaluated to false``), and 3-digit numbers from 100 to 599 (HTTP statuses) are left to the
template step, which makes a slot variable only when it sees three or more different values.

Two ways to apply them:

* :func:`mask_keys` (vectorised): every variable part becomes ``<*>`` (IPv6 addresses ``<ipv6>``).
  This is the grouping key; it runs in DuckDB on all rows at once (both cores: the texts are handed
  over in several record batches), on the distinct raw texts only.
* :func:`mask_typed` (one message, Python): every variable part becomes ``<name>`` (``<uuid>``,
  ``<int>``...) and the steps are recorded; used for the readable template of each cluster and by
  ``Clusters.explain``.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "MASKS",
    "MAX_TEXT",
    "PLACEHOLDER",
    "Mask",
    "MaskStep",
    "combined_pattern",
    "mask_keys",
    "mask_typed",
    "normalise_placeholders",
]

#: the placeholder of the grouping key (and of normalised templates)
PLACEHOLDER: Final = "<*>"
#: texts are cut to this many characters before masking (a huge message is still one message)
MAX_TEXT: Final = 2000


@dataclass(frozen=True)
class Mask:
    """One kind of variable part: ``name`` (the typed placeholder is ``<name>``) and its pattern.

    ``pattern`` is used by the vectorised pass (RE2: no look-around, no capture groups, so RE2 can
    find matches with its DFA). ``py_pattern``, when set, is the same rule for Python's ``re`` with
    look-around instead of consumed context: RE2 has no look-behind, so "a quote not inside a word"
    is written ``(?:^|[^A-Za-z0-9_])'...'`` for RE2 (the context character is masked too, which
    changes nothing for grouping) and ``(?<![A-Za-z0-9_])'...'`` for Python.
    """

    name: str
    pattern: str
    description: str
    py_pattern: str | None = None
    #: the placeholder in the grouping key; masks with their own (``<ipv6>``) run in a pre-pass on
    #: the texts that contain ``guard``, so the key keeps what tells two templates apart
    key: str = PLACEHOLDER
    guard: str = ""

    @property
    def python(self) -> str:
        return self.py_pattern or self.pattern


_HEX = "[0-9a-fA-F]"

MASKS: Final[tuple[Mask, ...]] = (
    Mask(
        "traceparent",
        rf"\b{_HEX}{{2}}-{_HEX}{{32}}-{_HEX}{{16}}-{_HEX}{{2}}\b",
        "W3C traceparent 00-<trace id>-<span id>-<flags>",
    ),
    Mask("uuid", rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "UUID"),
    Mask("ray", r"\b[0-9a-f]{16}-[A-Z]{3}\b", "Cloudflare ray id (16 hex digits and a colo code)"),
    Mask(
        "url",
        r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>()\[\]{}]*[^\s\"'<>()\[\]{},;:.!?]",
        "URL with a scheme (the whole URL, query included)",
    ),
    Mask("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b", "email address"),
    Mask(
        "datetime",
        r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
        r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?",
        "ISO-8601 date or timestamp",
    ),
    Mask(
        "httpdate",
        r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\b",
        "RFC 7231 HTTP date",
    ),
    Mask("time", r"\b[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?\b", "time of day"),
    Mask("ipv4", r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?::[0-9]{1,5})?\b", "IPv4 address (and :port)"),
    Mask(
        "ipv6",
        rf"\[(?:{_HEX}{{0,4}}:){{2,7}}{_HEX}{{0,4}}\](?::[0-9]{{1,5}})?"
        rf"|\b(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}\b"
        rf"|\b(?:{_HEX}{{1,4}}:)+:(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}})*\b)?"
        rf"|::{_HEX}{{1,4}}(?::{_HEX}{{1,4}})*\b",
        "IPv6 address (and [address]:port); kept apart from IPv4 in the grouping key: `from <ipv4>`"
        " and `from <ipv6>` are different messages",
        key="<ipv6>",
        guard="::",
    ),
    Mask(
        "hostname",
        r"\b(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+"
        r"(?:com|net|org|io|dev|app|co|xyz|cloud|ai|me|info|biz|edu|gov|internal|local|localhost|example"
        r"|invalid|test|uk|de|fr|nl|jp|eu|us)\b",
        "host name with a common top-level domain",
    ),
    Mask(
        "base64",
        r"[+/]+[0-9+/]*[A-Za-z][A-Za-z0-9+/]{14,}={0,2}",
        "base64 blob that starts with + or / (before paths: it may hold several /)",
    ),
    Mask(
        "path",
        r"(?:\b[A-Za-z]:\\|/)(?:[A-Za-z0-9_.~%@+-]+[/\\])+[A-Za-z0-9_.~%@+-]*",
        "file or URL path with two or more segments",
    ),
    Mask("epoch", r"\b1[0-9]{9}(?:[0-9]{3}){0,3}\b", "epoch timestamp in s, ms, us or ns"),
    Mask("ulid", r"\b[0-9A-HJKMNP-TV-Z]{26}\b", "ULID"),
    Mask(
        "id",
        r"\b[A-Za-z]{1,8}_[0-9A-Za-z]*[0-9][0-9A-Za-z]*\b",
        "prefixed id with digits (job_01J..., cus_3fa9..., t_1234)",
    ),
    Mask(
        "hex",
        rf"\b0[xX]{_HEX}+\b|\b[0-9a-f]{{8,}}\b|\b[0-9A-F]{{8,}}\b",
        "hex id (8+ digits), 0x...",
        # readable masking: a run of decimal digits is an <int>, not a <hex>
        py_pattern=rf"\b0[xX]{_HEX}+\b|\b(?=[0-9]*[a-f])[0-9a-f]{{8,}}\b|\b(?=[0-9]*[A-F])[0-9A-F]{{8,}}\b",
    ),
    Mask(
        "base64",
        r"\b[0-9+/]*[A-Za-z][A-Za-z0-9+/]{14,}={0,2}",
        "base64 blob (15+ characters from its first letter)",
    ),
    Mask(
        "duration",
        r"\b[0-9]+(?:\.[0-9]+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)\b",
        "duration with a unit (250ms, 1.5s, 30 seconds)",
    ),
    Mask(
        "base64",
        r"\b[A-Za-z0-9+/]{8,}={1,2}\B",
        "padded base64 blob",
        py_pattern=r"\b[A-Za-z0-9+/]{8,}={1,2}(?!\S)",
    ),
    Mask("size", r"\b[0-9]+x[0-9]+\b", "dimensions (1920x1080)"),
    Mask("float", r"\b[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?\b", "decimal number"),
    Mask(
        "int",
        r"\b(?:[0-9]{1,2}|[06-9][0-9]{2}|[0-9]{4,})\b",
        "integer; in the grouping key except 100..599: a 3-digit number in that range is usually an"
        " HTTP status, which is left to the template step (a slot with 3+ different statuses becomes"
        " <*>; `status 200` and `status 404` stay apart)",
        py_pattern=r"\b[0-9]+\b",
    ),
    Mask(
        "quoted",
        r"\B(?:\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`)",
        "quoted string (\\B: the quote does not follow a letter, so `can't` is not one)",
    ),
)


@cache
def combined_pattern(masks: tuple[Mask, ...] = MASKS) -> str:
    """The one alternation of the vectorised pass (every mask a non-capturing alternative).

    Masks with their own key placeholder are in it too (as ``<*>``), for the texts their pre-pass
    skipped.
    """
    return "|".join(f"(?:{m.pattern})" for m in masks)


def _prepasses(masks: tuple[Mask, ...]) -> list[Mask]:
    return [m for m in masks if m.key != PLACEHOLDER]


@cache
def _typed_regex(masks: tuple[Mask, ...] = MASKS) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<m{i}>{m.python})" for i, m in enumerate(masks)), re.ASCII)


@dataclass(frozen=True)
class MaskStep:
    """One masked span of a message: which mask, what text, where."""

    mask: str
    text: str
    start: int
    end: int

    def describe(self) -> str:
        return f"{self.text!r} at {self.start}..{self.end} -> <{self.mask}>"


def mask_typed(text: str, masks: tuple[Mask, ...] = MASKS) -> tuple[str, list[MaskStep]]:
    """Mask one message with typed placeholders; returns the masked text and the steps taken."""
    text = text[:MAX_TEXT]
    rx = _typed_regex(masks)
    steps: list[MaskStep] = []

    def repl(m: re.Match[str]) -> str:
        for i, mask in enumerate(masks):
            if m.group(f"m{i}") is None:
                continue
            steps.append(MaskStep(mask.name, m.group(0), m.start(), m.end()))
            return f"<{mask.name}>"
        return m.group(0)  # pragma: no cover - one alternative always matched

    return rx.sub(repl, text), steps


_TYPED_PLACEHOLDER = re.compile(r"<[a-z0-9_*]+>")


def normalise_placeholders(template: str) -> str:
    """Every ``<name>`` placeholder becomes ``<*>``; runs of whitespace become one space."""
    return " ".join(_TYPED_PLACEHOLDER.sub(PLACEHOLDER, template).split())


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: texts per record batch handed to DuckDB (at least), and at most this many batches
_BATCH_ROWS: Final = 50_000
_MAX_BATCHES: Final = 8


#: the in-memory DuckDB database the masking queries run in, by process id: opening one costs more
#: than masking 10,000 texts, so it is opened once per process. A forked child opens its own and
#: leaves its parent's alone (closing it would wait for threads that are not in the child).
_DATABASE: dict[int, duckdb.DuckDBPyConnection] = {}
_DATABASE_LOCK: Final = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    import duckdb

    with _DATABASE_LOCK:
        con = _DATABASE.get(os.getpid())
        if con is None:
            con = _DATABASE[os.getpid()] = duckdb.connect(config={"threads": 2})
    return con


def _duckdb_keys(arr: pa.Array, masks: tuple[Mask, ...]) -> pa.Array:
    expr = "t"
    for m in _prepasses(masks):
        replaced = f"regexp_replace({expr}, {_sql_literal(m.pattern)}, {_sql_literal(m.key)}, 'g')"
        expr = f"CASE WHEN contains({expr}, {_sql_literal(m.guard)}) THEN {replaced} ELSE {expr} END"
    expr = f"regexp_replace({expr}, {_sql_literal(combined_pattern(masks))}, '{PLACEHOLDER}', 'g')"
    con = _database().cursor()  # a connection of its own: callers in several threads do not meet
    con.execute("SET enable_progress_bar = false")  # it would print on stdout after ~2 s
    # DuckDB scans an Arrow table one record batch per thread: one batch would use one core. The rows
    # come back in their order (preserve_insertion_order, the default).
    size = max(_BATCH_ROWS, -(-len(arr) // _MAX_BATCHES))
    batches = [pa.record_batch([arr.slice(i, size)], names=["t"]) for i in range(0, len(arr), size)]
    try:
        con.register("texts", pa.Table.from_batches(batches, pa.schema([("t", arr.type)])))
        result = con.sql(f"SELECT {expr} AS k FROM texts").to_arrow_table().column("k").combine_chunks()
    finally:
        con.close()
    return result.cast(pa.string())


def _arrow_keys(arr: pa.Array, masks: tuple[Mask, ...]) -> pa.Array:
    for m in _prepasses(masks):
        has = pc.match_substring(arr, m.guard)
        arr = pc.if_else(has, pc.replace_substring_regex(arr, m.pattern, m.key), arr)
    return pc.replace_substring_regex(arr, combined_pattern(masks), PLACEHOLDER)


def mask_keys(texts: pa.Array | pa.ChunkedArray, masks: tuple[Mask, ...] = MASKS) -> pa.Array:
    """Vectorised masking: every variable part of every text becomes ``<*>``.

    Texts are cut to :data:`MAX_TEXT` characters first. Nulls stay null. Large inputs run in DuckDB
    on two threads; small ones in pyarrow (same RE2 engine, no start-up cost).
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    if len(texts) == 0:
        return pa.array([], type=pa.string())
    longest = pc.max(pc.binary_length(texts)).as_py() or 0
    if longest > MAX_TEXT:  # bytes >= characters: only then can a text be too long
        texts = pc.utf8_slice_codeunits(texts, 0, MAX_TEXT)
    if len(texts) < 20_000:
        return _arrow_keys(texts, masks)
    return _duckdb_keys(texts, masks)
