"""load_workers_logs / workers_logs_counts against a paging telemetry endpoint (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from _helpers.api import ACCOUNT, SCRIPT, TOKEN, VERSION, FakeTelemetry, Recorder, ok, wl_events

from edgeinvestigate._http import Secret
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.workers_logs import load_workers_logs
from edgeinvestigate.sources.api.workers_logs import workers_logs_counts

START = 1_795_788_000_000  # 2026-11-27T14:00:00Z


def client_for(handler) -> tuple[CloudflareClient, Recorder]:
    rec = Recorder(handler)
    c = CloudflareClient(
        ACCOUNT,
        Secret(TOKEN),
        api_url="http://cf.test/client/v4",
        transport=rec.transport(),
        sleep=lambda s: None,
    )
    return c, rec


def test_pages_through_ten_thousand_events() -> None:
    events = wl_events(4600, START)  # 4600 invocations + 4600 log lines + 920 exception lines
    events += wl_events(500, START, script="other-worker")
    total = sum(1 for e in events if e["$workers"]["scriptName"] == SCRIPT)
    assert total > 10_000
    fake = FakeTelemetry(events)
    client, _ = client_for(fake)
    ev = load_workers_logs(client, SCRIPT, since=START - 1000, until=START + 4600 * 250 + 1000)
    assert all(b["view"] == "events" for b in fake.bodies)
    assert all(b["limit"] <= 2000 for b in fake.bodies)
    assert fake.bodies[0].get("offset") is None
    # every later page continues from the $metadata.id of the previous page's last event
    assert all(b["offsetDirection"] == "next" for b in fake.bodies[1:])
    assert len(fake.bodies) == -(-total // 2000) + (1 if total % 2000 == 0 else 0)
    assert len(ev.invocations) == 4600
    assert ev.invocations["cpu_ms"].astype(float).eq(7.0).all()
    assert ev.invocations["wall_ms"].astype(float).eq(40.0).all()
    assert set(ev.invocations["script"].astype(str)) == {SCRIPT}
    assert set(ev.invocations["script_version"].astype(str)) == {VERSION}
    assert int(ev.invocations["failed"].sum()) == 920
    assert len(ev.logs) >= 4600
    assert len(ev.exceptions) == 920
    assert ev.manifest["sources"][0]["events"] == total
    assert ev.manifest["sources"][0]["stopped"] == "exhausted"
    assert TOKEN not in json.dumps(ev.manifest)
    joined = ev.logs.dropna(subset=["job_id"])
    assert joined["job_id"].astype(str).str.startswith("job-").all()


def test_max_events_and_small_pages() -> None:
    fake = FakeTelemetry(wl_events(300, START))
    client, _ = client_for(fake)
    ev = load_workers_logs(client, SCRIPT, since=START - 1, until=START + 10**6, limit=100, max_events=250)
    assert [b["limit"] for b in fake.bodies] == [100, 100, 50]
    assert ev.manifest["sources"][0]["events"] == 250
    assert ev.manifest["sources"][0]["stopped"] == "max_events"


def test_a_server_that_ignores_offset_does_not_loop_forever() -> None:
    events = wl_events(1500, START)

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return ok({"run": {}, "statistics": {}, "events": {"events": events[: body["limit"]], "count": 0}})

    client, rec = client_for(handler)
    ev = load_workers_logs(client, SCRIPT, since=START, until=START + 10**7)
    assert len(rec.requests) == 2
    assert "no progress" in ev.manifest["sources"][0]["stopped"]
    assert ev.report.notes


def test_bad_arguments() -> None:
    client, rec = client_for(lambda r: ok({}))
    with pytest.raises(ConfigError):
        load_workers_logs(client, SCRIPT, limit=5000)
    with pytest.raises(ConfigError):
        load_workers_logs(client, SCRIPT, since="2026-11-27T15:00Z", until="2026-11-27T14:00Z")
    assert rec.requests == []


def test_counts_from_the_calculations_view() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        v2 = "0b7e5a44-9d2c-4f7e-8a1b-3c2d1e0f9a8b"
        series = [
            {
                "time": "2026-11-27 14:00:00",
                "data": [
                    {
                        "value": 3,
                        "count": 3,
                        "interval": 3600,
                        "sampleInterval": 1,
                        "groups": [{"key": "$workers.scriptVersion.id", "value": VERSION}],
                    },
                ],
            },
            {
                "time": "2026-11-27 15:00:00",
                "data": [
                    {
                        "value": 41,
                        "count": 41,
                        "interval": 3600,
                        "sampleInterval": 1,
                        "groups": [{"key": "$workers.scriptVersion.id", "value": v2}],
                    },
                    {
                        "value": 2,
                        "count": 2,
                        "interval": 3600,
                        "sampleInterval": 1,
                        "groups": [{"key": "$workers.scriptVersion.id", "value": VERSION}],
                    },
                ],
            },
        ]
        return ok(
            {
                "run": {},
                "statistics": {},
                "calculations": [
                    {"calculation": "count", "alias": "errors", "aggregates": [], "series": series}
                ],
            }
        )

    client, _ = client_for(handler)
    df = workers_logs_counts(
        client, SCRIPT, since="2026-11-20T00:00Z", until="2026-11-28T00:00Z", granularity=192
    )
    assert seen[0]["view"] == "calculations"
    assert seen[0]["granularity"] == 192
    assert list(df.columns) == ["ts", "script", "script_version", "errors"]
    assert df["errors"].tolist() == [3, 41, 2] or sorted(df["errors"].tolist()) == [2, 3, 41]
    assert df["ts"].iloc[0] == pd.Timestamp("2026-11-27T14:00:00Z")
    assert df.groupby("script_version")["errors"].sum().to_dict()[VERSION] == 5


def test_the_obsolete_data_envelope_is_tolerated() -> None:
    events = wl_events(3, START)

    def handler(request: httpx.Request) -> httpx.Response:
        # the ~2024 shape: {message, data: {events, queryRun, statistics}}
        return httpx.Response(
            200,
            json={"message": "Successful request", "data": {"events": {"events": events}, "statistics": {}}},
        )

    client = CloudflareClient(
        ACCOUNT, Secret(TOKEN), api_url="http://cf.test/client/v4", transport=httpx.MockTransport(handler)
    )
    ev = load_workers_logs(client, SCRIPT, since=START - 1, until=START + 10**6)
    assert len(ev.invocations) == 3
