"""Issue 14 item 8: a record larger than ``max_record_bytes`` (default 8 MiB; ``--max-record-bytes``) is
skipped and reported without being held in memory: a huge line streams by, a gzip bomb is decompressed in
bounded pieces. Peak memory is measured by ``benchmarks/fuzz_loaders.py --hostile`` (a 200 MB line and a
1 MB gzip bomb stay far under 1 GB), not here."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.sources.files._context import MAX_RECORD_BYTES
from edgeinvestigate.sources.files._reading import SKIPPED_LINE, _LineBlocks

DATA = Path(__file__).resolve().parents[1] / "data"
CAP = 4096


def _lp_lines() -> list[bytes]:
    gz = DATA / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"
    return gzip.decompress(gz.read_bytes()).splitlines()


def _long_log(line: bytes, size: int) -> bytes:
    rec = json.loads(line)
    rec["Logs"] = [{"Level": "log", "Message": ["x" * size], "TimestampMs": rec["EventTimestampMs"] + 1}]
    return json.dumps(rec, separators=(",", ":")).encode()


def _bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes without a newline (about 1,000x smaller than its content)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    return b"".join([*(c.compress(chunk) for _ in range(size >> 20)), c.flush()])


@given(
    lines=st.lists(
        st.tuples(st.sampled_from([b"", b"[", b" [", b"{"]), st.integers(0, 3 * 64)), min_size=0, max_size=12
    ),
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    final_newline=st.booleans(),
)
def test_line_blocks_drop_exactly_the_lines_over_their_limit(lines, cuts, final_newline):
    cap = 64
    text = b"\n".join(head + b"a" * n for head, n in lines) + (b"\n" if final_newline and lines else b"")
    pieces, pos, k = [], 0, 0
    while pos < len(text):  # pieces of at most cap bytes, as the reader cuts them
        size = min(cuts[k % len(cuts)], cap)
        pieces.append(text[pos : pos + size])
        pos, k = pos + size, k + 1
    blocks = _LineBlocks(100, cap, True, containers=b"[", container_cap=2 * cap)
    got: list[bytes] = []
    for piece in pieces:
        for block, n in blocks.feed(piece):
            got.extend(
                [b"<%d>" % n]
                if block is SKIPPED_LINE
                else block.split(b"\n")[:-1]
                if block.endswith(b"\n")
                else block.split(b"\n")
            )
    for block, n in blocks.end():
        got.extend([b"<%d>" % n] if block is SKIPPED_LINE else block.split(b"\n"))
    want = []
    for line in text.split(b"\n")[: len(lines)]:
        limit = 2 * cap if line.lstrip()[:1] == b"[" else cap
        want.append(line if len(line) <= limit else b"<%d>" % len(line))
    assert [g for g in got if g != b""] == [w for w in want if w != b""]


def test_a_long_logpush_line_is_skipped_and_later_lines_keep_their_numbers(tmp_path):
    lines = _lp_lines()
    content = [lines[0], _long_log(lines[0], 3 * CAP), lines[1], b'{"EventTimestampMs": oops}', lines[2]]
    for name, data in (
        ("p.log", b"\n".join(content) + b"\n"),
        ("p.log.gz", gzip.compress(b"\n".join(content))),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        ev = ei.load((path, "logpush"), max_record_bytes=CAP)
        issues = [(i.line, i.kind) for _, i in ev.report.issues()]
        assert issues == [(2, "size"), (4, "json")]
        assert len(ev.invocations) == 3
        assert f"record of {len(content[1]):,} bytes is larger than max_record_bytes (4,096); skipped" in (
            ev.report.issues()[0][1].message
        )
        # with the default cap it is an ordinary record
        assert len(ei.load((path, "logpush")).invocations) == 4


@pytest.mark.parametrize("loader", ["logpush", "tail", "traceitems", "workers_logs_export"])
def test_a_gzip_bomb_is_one_oversized_record(tmp_path, loader):
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(_bomb(64 << 20))  # 64 MiB of zeros in ~64 KB
    assert path.stat().st_size < 100_000
    ev = ei.load((path, loader), max_record_bytes=1 << 20)
    [(_, issue)] = [(p, i) for p, i in ev.report.issues() if i.kind == "size"]
    assert issue.line == 1
    assert issue.message.startswith("record of 67,108,864 bytes is larger than max_record_bytes (1,048,576)")
    assert len(ev.invocations) == 0


def test_a_pretty_record_over_the_cap_is_skipped_once(tmp_path):
    recs = [json.loads(x) for x in (DATA / "tail/tail.ndjson").read_text().splitlines()[:3]]
    big = dict(
        recs[1],
        logs=[
            {"message": [f"line {i}"], "level": "log", "timestamp": recs[1]["eventTimestamp"]}
            for i in range(200)
        ],
    )
    path = tmp_path / "tail.json"
    path.write_text("".join(json.dumps(r, indent=4) + "\n" for r in (recs[0], big, recs[2])))
    ev = ei.load((path, "tail"), max_record_bytes=CAP)
    assert len(ev.invocations) == 2
    [(_, issue)] = ev.report.issues()
    assert issue.kind == "size"
    assert issue.line == len(json.dumps(recs[0], indent=4).splitlines()) + 1  # where the big one starts
    # a long line inside a pretty record: the record is skipped (never loaded without that line), once
    long = dict(recs[1], scriptName="x" * (2 * CAP), entrypoint="y" * (2 * CAP))
    path.write_text("".join(json.dumps(r, indent=4) + "\n" for r in (recs[0], long, recs[2])))
    ev = ei.load((path, "tail"), max_record_bytes=CAP)
    assert len(ev.invocations) == 2
    [(_, issue)] = ev.report.issues()
    assert "record with a line of 8,2" in issue.message


@pytest.mark.parametrize("pretty", [True, False], ids=["pretty", "one-line"])
def test_an_array_over_the_cap_is_read_element_by_element(tmp_path, pretty):
    items = [json.loads(x)[0] for x in (DATA / "traceitems/arrays.jsonl").read_text().splitlines()]
    items = (items * 10)[:12]
    items[5] = dict(items[5], scriptName="x" * (2 * CAP))  # this one is over the cap
    path = tmp_path / "items.json"
    path.write_text(json.dumps(items, indent=2 if pretty else None))
    assert path.stat().st_size > 2 * CAP
    ev = ei.load((path, "traceitems"), max_record_bytes=CAP)
    assert len(ev.invocations) == 11
    [(_, issue)] = ev.report.issues()
    assert issue.kind == "size"


def test_collect_takes_the_cap_and_refuses_a_silly_one(tmp_path, capsys):
    lines = _lp_lines()
    src = tmp_path / "lp.log"
    src.write_bytes(b"\n".join([lines[0], _long_log(lines[0], 5000)]) + b"\n")
    main(["collect", "--logpush", str(src), "--out", str(tmp_path / "b"), "--max-record-bytes", "4096"])
    out = capsys.readouterr()
    assert f"error: {src}:2: record of " in out.out
    assert "1 records could not be loaded" in out.err
    with pytest.raises(SystemExit) as info:
        main(["collect", "--logpush", str(src), "--out", str(tmp_path / "c"), "--max-record-bytes", "10"])
    assert info.value.code == 2
    assert "--max-record-bytes" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="max_record_bytes must be positive"):
        ei.load(src, max_record_bytes=0)
    assert MAX_RECORD_BYTES == 8 * 1024 * 1024
    from edgeinvestigate.cli import _collect
    from edgeinvestigate.sources.api.dlq_frame import DLQ_FILE_SOURCE

    assert (_collect.MAX_RECORD_BYTES, _collect.DLQ_FILE_SOURCE) == (MAX_RECORD_BYTES, DLQ_FILE_SOURCE)
