"""``edgeinvestigate collect --logpush s3://...``: a bundle from the window, --dry-run, one-line
errors, and no credential in any output (also with -vv)."""

from __future__ import annotations

import json

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main

from .conftest import PREFIX, SECRET, SINCE, TOKEN, UNTIL, URL

WINDOW = ["--since", "2026-11-27T00:00Z", "--until", "2026-11-27T01:00Z"]


def _run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_collect_from_s3_writes_the_window(aws_env, archive, tmp_path, capsys):
    out = tmp_path / "INC-9"
    code, stdout, stderr = _run(["-vv", "collect", "--logpush", URL, *WINDOW, "--out", str(out)], capsys)
    assert code == 0, stderr
    ev = ei.Evidence.open(out)
    disk = ei.load([archive.root], since=SINCE, until=UNTIL)
    assert len(ev.invocations) == len(disk.invocations)
    manifest = json.loads((out / "manifest.json").read_text())
    (arch,) = manifest["archives"]
    assert arch["url"] == URL
    assert arch["failed"] == []
    assert all(s["path"].startswith(URL) for s in manifest["sources"])
    assert f"{URL}: listed " in stdout
    assert f"12 files under {URL}20261127 [logpush]" in stdout
    assert "skipped" in stdout
    for text in (stdout, stderr, (out / "manifest.json").read_text()):
        assert SECRET not in text
        assert TOKEN not in text


def test_collect_positional_s3_url_and_margin(aws_env, archive, tmp_path, capsys):
    out = tmp_path / "b"
    code, _stdout, stderr = _run(
        ["collect", URL, *WINDOW, "--archive-margin", "0", "--out", str(out)], capsys
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["archives"][0]["margin_s"] == 0
    # without the margin the late batch (named after the window) is not read
    assert not any("1a7e1a7e" in p for p in manifest["archives"][0]["read"])


def test_dry_run_lists_objects_and_reads_nothing(aws_env, archive, tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, stderr = _run(
        ["collect", "--logpush", URL, *WINDOW, "--dry-run", "--out", str(out)], capsys
    )
    assert code == 0, stderr
    assert not out.exists()
    assert aws_env.log.gets() == []  # only listings
    assert f"{URL}20261127/20261127T003000Z_20261127T003500Z_badc0ffe.log.gz" in stdout
    assert "(name without times)" in stdout
    assert "dry run: would read" in stdout
    assert "nothing was read" in stdout
    sizes = sum(
        int(line.split()[0].replace(",", "")) for line in stdout.splitlines() if line.startswith("  ")
    )
    assert f"{sizes:,d} bytes" in stdout


def test_missing_window_exits_2_with_a_hint(aws_env, archive, tmp_path, capsys):
    code, _stdout, stderr = _run(
        ["collect", "--logpush", URL, "--since", "2026-11-27T00:00Z", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {URL} is a Logpush archive: reading it needs a time window")
    assert lines[1].startswith("hint: give both, e.g. --since")
    assert aws_env.log.requests() == []


@pytest.mark.parametrize(
    ("url", "code", "first"),
    [
        (
            "s3://no-such-bucket/workers/",
            1,
            "error: there is no bucket 'no-such-bucket' at http://127.0.0.1:",
        ),
        ("r2://logs/workers/", 2, "error: 'r2://logs/workers/': r2:// URLs are not read directly"),
    ],
)
def test_one_line_errors(aws_env, archive, tmp_path, capsys, url, code, first):
    rc, stdout, stderr = _run(
        ["-vv", "collect", "--logpush", url, *WINDOW, "--out", str(tmp_path / "x")], capsys
    )
    assert rc == code
    errors = [line for line in stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert errors[0].startswith(first)
    assert errors[1].startswith("hint: ")
    assert "runbooks/logpush-archives.md" in errors[1]
    assert SECRET not in stderr + stdout
    assert TOKEN not in stderr + stdout
    assert "Traceback" not in stderr


def test_strict_stops_at_the_truncated_object(aws_env, archive):
    with pytest.raises(ei.ParseError) as info:
        ei.load([URL], since=SINCE, until=UNTIL, strict=True)
    assert info.value.path.startswith(f"{URL}20261127/20261127T003000Z")
    assert PREFIX in info.value.path


def test_collect_lists_an_object_that_cannot_be_read(fault_proxy, archive, tmp_path, capsys):
    from .conftest import Fault

    fault_proxy.faults.append(Fault(match=PREFIX + "20261127/20261127T020100Z", times=99, code="SlowDown"))
    argv = ["collect", "--logpush", URL, "--since", "2026-11-27T02:02Z", "--until", "2026-11-27T02:03Z"]
    code, stdout, stderr = _run([*argv, "--archive-margin", "0", "--out", str(tmp_path / "x")], capsys)
    assert code == 0, stderr
    bad = f"{URL}20261127/20261127T020100Z_"
    assert f"error: {bad}" in stdout  # the summary's issue line
    assert "could not be read: GetObject" in stdout
    assert "still failed after 3 tries (HTTP 503 SlowDown)" in stdout
    note = next(line for line in stdout.splitlines() if line.startswith(f"note: {URL}: listed"))
    assert f"FAILED 1: {bad}" in note
    assert "warning: 1 records could not be loaded" in stderr
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["archives"][0]["failed"][0]["path"].startswith(bad)


def test_investigate_from_s3_reads_only_the_window(aws_env, archive, tmp_path, capsys):
    """`investigate s3://...`: the bundle of the window (the frames `collect` makes from the same objects
    on disk), its clusters and findings; only the objects the window needs are fetched."""
    out = tmp_path / "inv"
    code, stdout, stderr = _run(["investigate", URL, *WINDOW, "--no-report", "--out", str(out)], capsys)
    assert code == 0, stderr
    ev = ei.Evidence.open(out / "bundle")
    disk = ei.load([archive.root], since=SINCE, until=UNTIL)
    for name in ("invocations", "logs", "exceptions"):
        assert len(ev.frame(name)) == len(disk.frame(name)), name
    assert ev.derived("clusters") is not None  # clustered once, stored with the bundle
    findings = json.loads((out / "findings.json").read_text())
    assert "hypotheses" in findings
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    (arch,) = manifest["archives"]
    fetched = sorted(aws_env.log.gets())
    assert fetched, "nothing was fetched"
    assert fetched == sorted(f"{PREFIX}{key.removeprefix(URL)}" for key in arch["read"])
    assert f"bundle:   {out / 'bundle'}" in stdout
    assert f"findings: {out / 'findings.json'}" in stdout
    for text in (stdout, stderr, (out / "findings.json").read_text()):
        assert SECRET not in text
        assert TOKEN not in text


def test_investigate_dry_run_on_s3_writes_nothing(aws_env, archive, tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, stderr = _run(
        ["investigate", URL, *WINDOW, "--dry-run", "--no-report", "--out", str(out)], capsys
    )
    assert code == 0, stderr
    assert "dry run: would read" in stdout
    assert aws_env.log.gets() == []
    assert not (out / "bundle").exists()
    assert not (out / "findings.json").exists()
