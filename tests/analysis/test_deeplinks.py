"""Deep links back to Cloudflare: request / ray ids from every source into the clusters' example
events (checked against the simulator's ground truth), and the dashboard URL (analysis.deeplinks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.deeplinks import (
    DASHBOARD,
    LINK_WINDOW,
    account_id_of,
    event_link,
    workers_logs_url,
)
from edgeinvestigate.simulator import simulate

FORMATS = {
    "workers_logs": "workers_logs/events.json",
    "logpush": "logpush",
    "traceitems": "traceitems/traceitems.jsonl",
    "tail": "tail/tail.json",
}


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("links")
    summary = simulate("default", out, seed=4, invocations=1200, formats=(*FORMATS, "dlq"))
    return out, json.loads(summary.ground_truth.read_text())


def test_workers_logs_example_events_carry_the_request_id_of_the_ground_truth(
    incident: tuple[Path, dict[str, Any]],
) -> None:
    out, truth = incident
    ev = ei.load([out / FORMATS["workers_logs"]], strict=True)
    assert ev.invocations["request_id"].notna().all()  # every Workers Logs event names its request
    request_of = {
        (pd.Timestamp(e["ts"]), e["text"]): e["request_id"] for e in truth["errors"] if e.get("request_id")
    }
    cl = ei.cluster(ev)
    checked = 0
    for events in cl.table["example_events"]:
        for e in events:
            if e["source"] != "log":
                continue
            assert e["request_id"] == request_of[(pd.Timestamp(e["ts"]), e["text"])]
            checked += 1
    assert checked >= len(cl) // 2


def test_ray_ids_agree_across_formats_and_only_fetch_invocations_have_one(
    incident: tuple[Path, dict[str, Any]],
) -> None:
    out, _truth = incident
    rays = {}
    for name, rel in FORMATS.items():
        inv = ei.load([out / rel], strict=True).invocations
        fetch = inv["trigger"].astype(str) == "fetch"
        assert inv.loc[fetch, "ray_id"].notna().all(), name
        assert inv.loc[~fetch, "ray_id"].isna().all(), name  # queue and cron invocations have none
        rays[name] = set(inv["ray_id"].dropna().astype(str))
        if name != "workers_logs":
            assert inv["request_id"].isna().all(), name  # only Workers Logs names the request
    assert rays["tail"] == rays["traceitems"] == rays["logpush"] == rays["workers_logs"]
    assert rays["logpush"]


def test_consumer_clusters_from_traces_have_no_id_and_no_link(incident: tuple[Path, dict[str, Any]]) -> None:
    out, truth = incident
    cl = ei.cluster(ei.load([out / FORMATS["traceitems"]], strict=True))
    consumer = [
        e for events in cl.table["example_events"] for e in events if e["script"] == truth["consumer_script"]
    ]
    assert consumer
    assert all(e["request_id"] is None and e["ray_id"] is None for e in consumer)
    assert all(event_link(e, truth["account_id"]) is None for e in consumer)


def test_the_dashboard_url_opens_the_event(incident: tuple[Path, dict[str, Any]]) -> None:
    out, truth = incident
    ev = ei.load([out / FORMATS["workers_logs"]], strict=True)
    event = ei.cluster(ev).table["example_events"].iloc[0][0]
    url = event_link(event, truth["account_id"])
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == DASHBOARD
    assert parts.path == (
        f"/{truth['account_id']}/workers/services/view/{event['script']}/production/observability/logs"
    )
    query = {k: json.loads(v[0]) for k, v in parse_qs(parts.query).items()}
    assert query["workers-observability-view"] == "events"
    assert query["filters"] == [
        {"key": "$metadata.requestId", "type": "string", "value": event["request_id"], "operation": "eq"}
    ]
    at = int(pd.Timestamp(event["ts"]).value // 1_000_000)
    window = int(LINK_WINDOW.total_seconds() * 1000)
    assert query["time"] == {"type": "absolute", "from": at - window, "to": at + window}


def test_a_ray_id_filters_on_the_ray_and_bad_parts_give_no_link() -> None:
    account = "0123456789abcdef0123456789abcdef"
    url = workers_logs_url(account, "jobs-api", ray_id="8c1e2f3a4b5c6d7e")
    assert url is not None
    assert '"key":"$metadata.rayId"' in unquote(url)
    assert "time=" not in url  # no time known: the dashboard's default range
    # the script is percent-encoded: it can never leave the path or the attribute
    odd = workers_logs_url(account, 'a"><script>/x', request_id="abc")
    assert odd is not None
    assert '"' not in odd
    assert "<" not in odd
    assert "/a%22%3E%3Cscript%3E%2Fx/production/" in odd
    assert workers_logs_url("not-an-account", "s", request_id="abc") is None
    assert workers_logs_url(account, "", request_id="abc") is None
    assert workers_logs_url(account, "s") is None
    assert workers_logs_url(account, "s", request_id='x" onclick="y') is None  # not an id
    assert workers_logs_url(account, "s", request_id="a" * 65) is None


def test_the_account_id_comes_from_the_parameter_then_the_bundle() -> None:
    mine, theirs = "a" * 32, "b" * 32
    assert account_id_of({"account_id": theirs}, mine) == mine
    assert account_id_of({"account_id": theirs}) == theirs
    assert account_id_of({"ground_truth": {"account_id": theirs}}) == theirs
    assert account_id_of({"account_id": "nope"}, "also nope") is None
    assert account_id_of(None) is None


def test_collect_records_the_account_id(tmp_path: Path) -> None:
    from edgeinvestigate.evidence.collect import collect

    class _Client:
        account_id = "c" * 32

    files = [Path(__file__).parent.parent / "data" / "workers_logs"]
    ev = collect(files, client=_Client())  # type: ignore[arg-type]
    assert ev.manifest["account_id"] == "c" * 32
    ev.save(tmp_path / "b")
    assert ei.Evidence.open(tmp_path / "b").manifest["account_id"] == "c" * 32
