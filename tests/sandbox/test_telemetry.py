"""Workers Logs telemetry query over loaded events (reference C2), validated against the spec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.e2e

T0 = 1_795_000_000_000
QUERY = "/workers/observability/telemetry/query"


def q(**kw):
    body = {"queryId": "ad-hoc-test", "timeframe": {"from": T0, "to": T0 + 10**9}, "view": "events"}
    body.update(kw)
    return body


def test_events_paging_with_offset_cursor(api, sandbox, make_log_events):
    events = make_log_events(1500, T0, step_ms=100)  # 3,000 events
    sandbox.load_events(api.account, events)
    seen = []
    offset = None
    pages = 0
    while True:
        body = q(limit=1000) | ({"offset": offset, "offsetDirection": "next"} if offset else {})
        res = api.ok("POST", QUERY, body)
        assert res["events"]["count"] == 3000
        page = res["events"]["events"]
        if not page:
            break
        pages += 1
        seen.extend(page)
        offset = page[-1]["$metadata"]["id"]
    assert pages == 3
    assert len(seen) == 3000
    assert len({e["$metadata"]["id"] for e in seen}) == 3000
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert seen[0] == max(events, key=lambda e: (e["timestamp"], e["$metadata"]["id"]))
    # prev goes back
    second = api.ok("POST", QUERY, q(limit=1000, offset=seen[999]["$metadata"]["id"]))["events"]["events"]
    back = api.ok("POST", QUERY, q(limit=5, offset=second[0]["$metadata"]["id"], offsetDirection="prev"))
    assert back["events"]["events"] == seen[995:1000]
    res = api.ok("POST", QUERY, q(limit=3))
    assert {f["key"] for f in res["events"]["fields"]} >= {"$metadata.id", "$workers.scriptName", "jobId"}
    assert res["run"]["status"] == "COMPLETED"
    assert res["statistics"]["rows_read"] == 3000


def test_timeframe_and_limits(api, sandbox, make_log_events):
    sandbox.load_events(api.account, make_log_events(100, T0))
    res = api.ok("POST", QUERY, q(timeframe={"from": T0 + 10_000, "to": T0 + 19_999}, limit=2000))
    assert res["events"]["count"] == 20  # invocations 10..19, two lines each
    assert all(T0 + 10_000 <= e["timestamp"] <= T0 + 19_999 for e in res["events"]["events"])
    default = api.ok("POST", QUERY, q())
    assert len(default["events"]["events"]) == 50
    too_many = api.call("POST", QUERY, q(limit=2001), check_request=False)
    assert too_many.status_code == 400
    err = too_many.json()["errors"][0]
    assert err["message"] == "Bad Request"
    assert "2000" in err["detail"]
    missing = api.call("POST", QUERY, {"queryId": "x"}, check_request=False)
    assert missing.status_code == 400
    assert "timeframe" in missing.json()["errors"][0]["detail"]
    bad_offset = api.call("POST", QUERY, q(offset="01NOPE"))
    assert bad_offset.status_code == 400


def _filter(key, operation, value=None, type_="string"):
    leaf = {"key": key, "operation": operation, "type": type_}
    if value is not None:
        leaf["value"] = value
    return leaf


def test_filters_needle_and_groups(api, sandbox, make_log_events, versions):
    sandbox.load_events(api.account, make_log_events(200, T0, bad_from=100))

    def count(filters=None, **params):
        p = {"filters": filters or []} | params
        return api.ok("POST", QUERY, q(parameters=p, limit=2000))["events"]["count"]

    assert count() == 400
    assert count([_filter("$metadata.type", "eq", "cf-worker-event")]) == 200
    assert count([_filter("$workers.scriptVersion.id", "eq", versions["bad"])]) == 200
    # both lines of a failed invocation carry the outcome and the error
    assert count([_filter("$workers.outcome", "eq", "exception")]) == 100
    assert count([_filter("$metadata.level", "in", "error,warn")]) == 100
    assert count([_filter("$metadata.level", "not_in", "error")]) == 300
    assert count([_filter("$metadata.error", "exists")]) == 100
    assert count([_filter("$metadata.error", "is_null")]) == 300
    assert count([_filter("$metadata.message", "includes", "TypeError")]) == 50
    assert count([_filter("$metadata.message", "not_includes", "TypeError")]) == 350
    assert count([_filter("$metadata.message", "starts_with", "job done")]) == 150
    assert count([_filter("$metadata.message", "ends_with", "job-00199")]) == 1
    assert count([_filter("$metadata.message", "regex", r"job-0019\d$")]) == 10
    assert count([_filter("jobId", "eq", "job-00042")]) == 1  # a field of the structured source
    assert count([_filter("attempt", "gte", 3, "number")]) == 66
    assert count([_filter("$workers.wallTimeMs", ">", 17, "number")]) == 28
    assert count([_filter("$workers.truncated", "eq", False, "boolean")]) == 400
    assert (
        count([_filter("$metadata.level", "=", "error"), _filter("$metadata.type", "eq", "cf-worker")]) == 50
    )
    assert (
        count(
            [_filter("$metadata.level", "eq", "error"), _filter("type", "eq", "IMAGE_PROCESSING")],
            filterCombination="or",
        )
        == 200
    )
    group = {
        "kind": "group",
        "filterCombination": "or",
        "filters": [_filter("jobId", "eq", "job-00001"), _filter("jobId", "eq", "job-00003")],
    }
    assert count([group, _filter("$metadata.type", "eq", "cf-worker")]) == 2
    assert count(needle={"value": "typeerror"}) == 100
    assert count(needle={"value": "typeerror", "matchCase": True}) == 0
    assert count(needle={"value": r"job-0000[1-3]\b", "isRegex": True}) == 3
    assert count(datasets=["other"]) == 0
    bad = api.call("POST", QUERY, q(parameters={"filters": [_filter("$metadata.level", "regex", "(")]}))
    assert bad.status_code == 400
    assert "regex" in bad.json()["errors"][0]["detail"]


def test_calculations_error_counts_per_bucket_and_version(api, sandbox, make_log_events, versions):
    sandbox.load_events(api.account, make_log_events(120, T0, step_ms=1000, bad_from=60))
    body = {
        "queryId": "errors-by-version",
        "timeframe": {"from": T0, "to": T0 + 120_000},
        "view": "calculations",
        "granularity": 4,
        "parameters": {
            "calculations": [{"operator": "count", "alias": "errors"}],
            "filters": [
                _filter("$metadata.type", "eq", "cf-worker-event"),
                _filter("$metadata.error", "exists"),
            ],
            "groupBys": [{"type": "string", "value": "$workers.scriptVersion.id"}],
        },
    }
    res = api.ok("POST", QUERY, body)
    [calc] = res["calculations"]
    assert calc["calculation"] == "count"
    assert calc["alias"] == "errors"
    [agg] = calc["aggregates"]
    assert agg["value"] == 30
    assert agg["groups"] == [{"key": "$workers.scriptVersion.id", "value": versions["bad"]}]
    expected = [
        datetime.fromtimestamp((T0 + k * 30_000) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        for k in range(4)
    ]
    assert [s["time"] for s in calc["series"]] == expected
    per_bucket = [sum(d["value"] for d in s["data"]) for s in calc["series"]]
    assert per_bucket == [0, 0, 15, 15]
    assert calc["series"][2]["data"][0]["interval"] == 30
    # all invocations, by version, plus a numeric aggregate
    body["parameters"]["filters"] = [_filter("$metadata.type", "eq", "cf-worker-event")]
    body["parameters"]["calculations"] = [
        {"operator": "count"},
        {"operator": "max", "key": "$workers.wallTimeMs", "keyType": "number"},
    ]
    res = api.ok("POST", QUERY, body)
    counts = {a["groups"][0]["value"]: a["value"] for a in res["calculations"][0]["aggregates"]}
    assert counts == {versions["good"]: 60, versions["bad"]: 60}
    assert {a["value"] for a in res["calculations"][1]["aggregates"]} == {18}
    body["parameters"]["havings"] = [{"key": "count", "operation": "gt", "value": 100}]
    res = api.ok("POST", QUERY, body)
    assert res["calculations"][0]["aggregates"] == []


def test_invocations_view_and_bad_events_rejected(api, sandbox, make_log_events):
    sandbox.load_events(api.account, make_log_events(3, T0))
    res = api.ok("POST", QUERY, q(view="invocations"))
    assert sorted(res["invocations"]) == ["req-000000", "req-000001", "req-000002"]
    assert all(len(v) == 2 for v in res["invocations"].values())
    bad = sandbox.admin.post(
        f"/__admin/accounts/{api.account}/telemetry/events",
        json={"events": [{"timestamp": 1, "$metadata": {"id": "x"}}]},
    )
    assert bad.status_code == 400
    assert "events[0]" in bad.json()["errors"][0]["message"]
