"""What object names say, the margin, URLs, and an archive without {DATE} folders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.sources.archive import (
    ArchiveURL,
    name_range,
    parse_archive_url,
    parse_margin,
    plan_archive,
)

from .conftest import BUCKET, PREFIX, SINCE, UNTIL


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "w/20261127/20261127T120000Z_20261127T120030Z_ab12cd34.log.gz",
            ("2026-11-27T12:00:00", "2026-11-27T12:00:30"),
        ),
        ("20261127T1200_20261127T1205_x.log.gz", ("2026-11-27T12:00", "2026-11-27T12:05")),
        ("20261127T120000Z.log.gz", ("2026-11-27T12:00:00", "2026-11-27T12:05:00")),  # start only: + 5 min
        ("20261127T120000Z_00000001_ab.log.gz", ("2026-11-27T12:00:00", "2026-11-27T12:05:00")),
        ("late-batch.log.gz", None),
        ("20261399T120000Z_20261399T120500Z_x.log.gz", None),  # not a date
        ("20261127T120500Z_20261127T120000Z_x.log.gz", None),  # ends before it starts
        ("ownership-challenge.txt", None),
    ],
)
def test_name_range(key, expected):
    got = name_range(key)
    assert got == (None if expected is None else (_t(expected[0]), _t(expected[1])))


def test_margin():
    assert parse_margin(None) == timedelta(minutes=10)
    assert parse_margin("15m") == parse_margin("900s") == parse_margin("15") == timedelta(minutes=15)
    assert parse_margin("0") == timedelta(0)
    assert parse_margin("1h") == timedelta(hours=1)
    for bad in ("soon", "-5m", "30d"):
        with pytest.raises(ConfigError, match="--archive-margin"):
            parse_margin(bad)


def test_urls():
    assert parse_archive_url("s3://logs/workers") == ArchiveURL("logs", "workers/")
    assert parse_archive_url("S3://logs/") == ArchiveURL("logs", "")
    assert str(parse_archive_url("s3://logs//a/b/")) == "s3://logs/a/b/"
    for bad in ("s3://", "s3:///x", "s3://b/p?x-id=1", "gs://b/p"):
        with pytest.raises(ConfigError):
            parse_archive_url(bad)


def test_flat_archive_and_a_day_folder_given_as_the_url(aws_env, archive, s3_server):
    """Without {DATE} folders every object sits under the prefix: listed from the window's start on."""
    s3 = s3_server.client()
    keys = [k for k in archive.keys if k.startswith("20261127/") and "T0" in k]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key="flat/" + key.split("/", 1)[1], Body=archive.path(key).read_bytes())
    s3_server.log.clear()
    plan = plan_archive(f"s3://{BUCKET}/flat/", SINCE, UNTIL)
    assert plan.layout == "flat"
    day = plan_archive(f"s3://{BUCKET}/{PREFIX}20261127/", SINCE, UNTIL)
    assert day.layout == "flat"
    names = sorted(o.key.rsplit("/", 1)[1] for o in plan.selected)
    assert names == sorted(o.key.rsplit("/", 1)[1] for o in day.selected if "late-batch" not in o.key)
    assert names[0].startswith("20261127T000100Z")  # the batch across midnight is in 20261126/
    assert s3_server.log.gets() == []


def test_client_region_and_addressing(aws_env, monkeypatch):
    """An endpoint other than AWS without a region gets ``auto`` (R2) and path-style URLs; AWS
    itself keeps botocore's defaults. Creating a client sends nothing."""
    from edgeinvestigate.sources.archive._client import endpoint_of, make_s3_client

    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://0123abcd.r2.cloudflarestorage.com")
    r2 = make_s3_client()
    assert r2.meta.region_name == "auto"
    assert r2.meta.config.s3["addressing_style"] == "path"
    assert r2.meta.config.retries["total_max_attempts"] == 3  # AWS_MAX_ATTEMPTS of the test environment
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://user:pw@s3.example.test:9000")
    assert endpoint_of(make_s3_client()) == "https://s3.example.test:9000"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    aws = make_s3_client()
    assert aws.meta.endpoint_url.endswith(".amazonaws.com")
    assert (aws.meta.config.s3 or {}).get("addressing_style") != "path"
    assert aws.meta.config.retries["total_max_attempts"] == 6
