"""Reading a Logpush archive in place from an S3-compatible server: the same frames as from disk,
only the window's objects fetched, the load report and manifest list every object."""

from __future__ import annotations

import sys
import threading
from datetime import timedelta

import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.sources.archive import name_range, plan_archive

from .conftest import CHALLENGE, CORRUPT, LATE, ODD, PLAIN, PREFIX, SINCE, UNTIL, URL

MARGIN = timedelta(minutes=10)


def _expected_keys(keys: list[str]) -> set[str]:
    """The objects a window needs, judged here from the names independently of the reader."""
    out = set()
    for key in keys:
        rng = name_range(key)
        if rng is None or (rng[1] >= SINCE - MARGIN and rng[0] <= UNTIL + MARGIN):
            out.add(key)
    return out


def _frames(ev: ei.Evidence) -> dict[str, pd.DataFrame]:
    return {
        "invocations": ev.invocations.drop(columns=["source_file"]).reset_index(drop=True),
        "logs": ev.logs.reset_index(drop=True),
        "exceptions": ev.exceptions.reset_index(drop=True),
    }


def test_window_equals_disk_and_fetches_only_the_window(aws_env, archive):
    ev = ei.load([URL], since=SINCE, until=UNTIL)
    disk = ei.load([archive.root], since=SINCE, until=UNTIL)
    assert len(ev.invocations) > 100
    for name, frame in _frames(ev).items():
        pd.testing.assert_frame_equal(frame, _frames(disk)[name], check_categorical=False)
    # the server's own log: only the window's objects were fetched, each once
    fetched = aws_env.log.gets()
    expected = _expected_keys(archive.keys)
    assert sorted(fetched) == sorted(PREFIX + k for k in expected)
    assert {CORRUPT, ODD, LATE, PLAIN} <= expected
    assert len(expected) < len(archive.keys) / 10
    # the day before, the window's day: nothing else was listed
    assert set(aws_env.log.list_prefixes()) == {f"{PREFIX}20261126/", f"{PREFIX}20261127/"}


def test_report_lists_objects_like_local_files(aws_env, archive):
    ev = ei.load([URL], since=SINCE, until=UNTIL)
    disk = ei.load([archive.root], since=SINCE, until=UNTIL)
    by_key = {f.path.split(PREFIX, 1)[1]: f for f in ev.report.files}
    local = {str(archive.path(k)): k for k in archive.keys}
    for f in disk.report.files:
        key = local[f.path]
        if key not in by_key:
            assert f.invocations == 0, f"{key} was skipped by name but holds window records"
            continue
        mine = by_key[key]
        assert mine.path == f"{URL}{key}"
        assert (mine.records, mine.invocations, mine.logs, mine.exceptions, mine.filtered, mine.skipped) == (
            f.records,
            f.invocations,
            f.logs,
            f.exceptions,
            f.filtered,
            f.skipped,
        )
        assert [i.message for i in mine.issues] == [i.message for i in f.issues]
        assert (mine.size, mine.sha256) == (f.size, f.sha256)
    corrupt = by_key[CORRUPT]
    # as for a local file: the cut last line, and the truncation with its byte offset
    assert sorted(i.kind for i in corrupt.issues) == ["gzip", "json"]
    assert any("the gzip stream ends early (truncated file" in i.message for i in corrupt.issues)
    assert corrupt.invocations > 0  # the records before the cut
    (arch,) = ev.manifest["archives"]
    assert arch["url"] == URL
    assert arch["listed"] == sum(1 for k in archive.keys if not k.startswith("20261128")) + 1
    assert sorted(arch["read"]) == sorted(f.path for f in ev.report.files)
    assert arch["ignored"] == [f"{URL}20261127/{CHALLENGE}"]
    assert len(arch["skipped_by_name"]) == arch["listed"] - len(arch["read"]) - 1
    assert arch["failed"] == []
    note = next(n for n in ev.report.notes if n.startswith(URL))
    assert f"read {len(arch['read'])} " in note
    assert f"skipped {len(arch['skipped_by_name'])} by name" in note


def test_dry_run_plan_reads_nothing(aws_env, archive):
    plan = plan_archive(URL, SINCE, UNTIL)
    assert {o.key for o in plan.selected} == {PREFIX + k for k in _expected_keys(archive.keys)}
    assert aws_env.log.gets() == []
    assert plan.selected_bytes == sum(
        archive.path(o.key[len(PREFIX) :]).stat().st_size for o in plan.selected
    )
    text = "\n".join(plan.lines())
    assert f"would read {len(plan.selected)} objects, {plan.selected_bytes:,d} bytes" in text


_WATCH = threading.local()
_WRITES: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and getattr(_WATCH, "on", False):
        path, mode = args[0], args[1]
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            _WRITES.append(f"{path} ({mode})")


sys.addaudithook(_audit)


def test_nothing_is_written_to_disk(aws_env, archive, monkeypatch):
    """The archive is streamed: no file is opened for writing while it is read (an audit hook on
    this thread and on every thread that reads an object)."""
    import edgeinvestigate.sources.archive._load as load_mod

    real = load_mod.load_object

    def watched(*a, **kw):
        _WATCH.on = True
        try:
            return real(*a, **kw)
        finally:
            _WATCH.on = False

    monkeypatch.setattr(load_mod, "load_object", watched)
    _WATCH.on = True
    try:
        ev = ei.load([URL], since=SINCE, until=UNTIL)
    finally:
        _WATCH.on = False
    assert len(ev.invocations) > 100
    assert _WRITES == []


def test_credentials_from_a_profile_in_the_shared_files(aws_env, archive, monkeypatch, tmp_path):
    """AWS_PROFILE + the shared credentials and config files (endpoint and region from the profile)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name)
    creds = tmp_path / "credentials"
    creds.write_text("[incident]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n")
    config = tmp_path / "config"
    config.write_text(f"[profile incident]\nregion = us-east-1\nendpoint_url = {aws_env.endpoint}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "incident")
    ev = ei.load([URL], since=SINCE, until=UNTIL)
    assert len(ev.invocations) > 100
    assert aws_env.log.gets()


def test_merged_bundles_keep_the_archive_listing(aws_env, archive):
    from pathlib import Path

    ev = ei.load([URL], since=SINCE, until=UNTIL)
    other = ei.load([Path(__file__).resolve().parents[2] / "data" / "logpush"])
    merged = ei.Evidence.merge([other, ev])
    assert merged.manifest["archives"] == ev.manifest["archives"]
    assert any(n.startswith(URL) for n in merged.report.notes)
