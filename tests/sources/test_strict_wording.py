"""--strict errors say that the load stopped (nothing was skipped, nulled or written) and, for a
file read with the wrong format flag, name the right flag instead of "run without --strict"."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import ParseError

LENIENT = ("skipped", "loaded as null", "were loaded", "loaded with trigger")


def test_strict_wrong_flag_hints_the_right_one(tmp_path, data_dir, capsys):
    src = next(p for p in sorted((data_dir / "logpush/20261127").iterdir()) if p.name.endswith(".gz"))
    path = tmp_path / src.name
    shutil.copy(src, path)
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as info:
        main(["collect", "--strict", "--tail", str(path), "--out", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {path}:1: not a tail event")
    assert "(--strict: the load stopped here)" in err[0]
    assert not any(word in err[0] for word in LENIENT)
    assert err[1] == f"hint: this file looks like logpush data, not tail: load it with --logpush {path}"
    assert not out.exists()


@pytest.mark.parametrize(
    ("mangle", "phrase"),
    [
        (lambda rec: rec.update(scriptName=42), "field 'scriptName' is int '42'"),
        (lambda rec: rec.update(eventTimestamp="soon"), "field 'eventTimestamp' is not a time"),
    ],
)
def test_strict_messages_do_not_claim_a_lenient_outcome(tmp_path, data_dir, mangle, phrase):
    lines = (data_dir / "tail/tail.ndjson").read_text().splitlines()
    rec = json.loads(lines[3])
    mangle(rec)
    lines[3] = json.dumps(rec)
    path = tmp_path / "tail.ndjson"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError) as info:
        ei.load([(path, "tail")], strict=True)
    text = str(info.value)
    assert text.startswith(f"{path}:4: {phrase}")
    assert "(--strict: the load stopped here)" in text
    assert not any(word in text for word in LENIENT)
    assert "run without --strict" in text  # same format: how to see every bad record


def test_strict_truncated_gzip(tmp_path, data_dir):
    src = next(p for p in sorted((data_dir / "logpush/20261127").iterdir()) if p.name.endswith(".gz"))
    data = gzip.compress(gzip.decompress(src.read_bytes()) * 3)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(ParseError) as info:
        ei.load([(path, "logpush")], strict=True)
    text = str(info.value)
    assert "gzip stream ends early" in text
    assert "records before it were loaded" not in text
    assert "(--strict: the load stopped here)" in text
