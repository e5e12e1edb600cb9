"""The README's archive examples: each runs against the local S3 server, or is marked as one that
cannot run offline (``<!-- docs-test: not run offline: REASON -->`` on the line before its fence) and
is skipped with that reason. ``tests/test_docs.py`` checks the commands of every block either way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import PREFIX

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## Logpush archives in R2 or S3"
MARK = re.compile(r"^<!-- docs-test: not run offline: (?P<reason>.+?) -->$")
FENCE = re.compile(r"^```(?P<lang>\w*)$")


def _blocks() -> list[tuple[int, str, str, str | None]]:
    """``(line, lang, code, reason-not-run)`` of each fenced block of the archive section."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(SECTION)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    out, i = [], start
    while i < end:
        m = FENCE.match(lines[i])
        if m and m["lang"]:
            j = lines.index("```", i + 1)
            mark = MARK.match(lines[i - 1]) if i else None
            out.append((i + 1, m["lang"], "\n".join(lines[i + 1 : j]), mark["reason"] if mark else None))
            i = j
        i += 1
    return out


BLOCKS = _blocks()


def test_the_section_has_runnable_and_marked_examples():
    assert any(reason is None and lang == "python" for _, lang, _, reason in BLOCKS)
    assert any("duckdb" in code and reason for _, _, code, reason in BLOCKS)
    for line, lang, _, reason in BLOCKS:
        assert reason is not None or lang == "python", f"README.md:{line}: a {lang} block must be marked"


@pytest.fixture
def readme_bucket(aws_env, archive):
    s3 = aws_env.client()
    if "logs-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="logs-bucket")
        for key in archive.keys:
            s3.put_object(Bucket="logs-bucket", Key=PREFIX + key, Body=archive.path(key).read_bytes())
    return aws_env


@pytest.mark.parametrize(
    ("line", "lang", "code", "reason"), BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS]
)
def test_readme_archive_example(line, lang, code, reason, request, capsys):
    if reason is not None:
        pytest.skip(f"README.md:{line}: not run offline: {reason}")
    request.getfixturevalue("readme_bucket")  # the server and the bucket only for blocks that run
    namespace: dict[str, object] = {}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "would read" in out
    assert "s3://logs-bucket/workers/: listed" in out
    archive = namespace["archive"]
    assert isinstance(archive, dict)
    assert archive["read"]
    assert not archive["failed"]
