"""Clusters a person can read: structured lines by their meaning (clustering._structured), an error
thrown and logged as one cluster (clustering._join), and no template of placeholders alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.clustering._grouping import BARE_PREFIX, is_bare
from edgeinvestigate.simulator import list_scenarios, simulate
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

from .conftest import T0, invocation, make_evidence

EVENTS = {
    "sync.rate_limited": "rate limit hit for tenant t_{i} on the partner API, backing off",
    "webhook.slow": "webhook to https://hooks.example.com/{i} took {i}00ms",
    "cache.miss_storm": None,  # no message field
}


def _structured_lines(n: int) -> list[dict[str, Any]]:
    lines = []
    for i in range(n):
        for event, msg in EVENTS.items():
            body: dict[str, Any] = {"event": event, "jobId": f"job_{i:04d}", "backoffMs": 1000 + i}
            if msg:
                body["msg"] = msg.format(i=i)
            lines.append({"invocation_id": f"inv-{i}", "ts": T0 + pd.Timedelta(seconds=i), "level": "warn",
                          "message": json.dumps(body)})  # fmt: skip
    return lines


def test_structured_lines_cluster_by_event_with_their_keys() -> None:
    cl = ei.cluster(make_evidence(logs=_structured_lines(30)))
    assert len(cl) == len(EVENTS)  # one cluster per event, not one template of bare placeholders
    templates = list(cl.table["template"])
    for event, msg in EVENTS.items():
        (tpl,) = [t for t in templates if t.startswith(f"{event}:")]
        assert "backoffMs: <*>" in tpl
        assert "jobId: <*>" in tpl
        assert "1061" not in tpl  # values are masked
        assert "job_0001" not in tpl
        if msg:
            assert msg.split()[0] in tpl  # the message field is templated, its words stay
    assert all(cl.table["count"] == 30)
    assert not any(is_bare(t) for t in templates)
    # the raw lines stay the examples; explain names the structure
    row = cl.table.iloc[0]
    assert row["examples"][0].startswith("{")
    why = cl.explain(row["examples"][0])
    assert why.cluster_id == row["cluster_id"]
    assert "structured line: event" in str(why)


def test_events_alike_in_every_field_but_their_name_stay_apart() -> None:
    """The template step never makes the event name a variable slot (it would, with 3+ names)."""
    logs = [
        {"invocation_id": f"inv-{i}", "ts": T0, "level": "warn",
         "message": json.dumps({"event": f"step.{i % 6}", "msg": f"took {i} ms for tenant t_{i}", "n": i})}
        for i in range(60)
    ]  # fmt: skip
    cl = ei.cluster(make_evidence(logs=logs))
    assert sorted(t.split(":")[0] for t in cl.table["template"]) == [f"step.{k}" for k in range(6)]
    assert all(cl.table["count"] == 10)


def test_structured_lines_from_workers_logs_cluster_by_event(tmp_path: Path) -> None:
    """Workers Logs keeps the logged object in ``source`` (loaded into ``args``)."""
    events = []
    for i, (event, msg) in enumerate([*EVENTS.items()] * 10):
        body: dict[str, Any] = {"event": event, "retryAfterSeconds": i}
        if msg:
            body["msg"] = msg.format(i=i)
        events.append(
            {"dataset": "cloudflare-workers", "timestamp": 1795788000000 + i * 1000, "source": body,
             "$metadata": {"id": f"01M8EMWJVXR2KW3HHQC65T{i:04d}", "requestId": f"req{i:013d}",
                           "level": "warn", "type": "cf-worker",
                           "message": msg.format(i=i) if msg else event},
             "$workers": {"scriptName": "jobs-consumer", "eventType": "queue", "requestId": f"req{i:013d}"}}
        )  # fmt: skip
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    cl = ei.cluster(ei.load([path], strict=True))
    assert sorted(t.split(":")[0] for t in cl.table["template"]) == sorted(EVENTS)
    # a long camelCase key is kept as a key, not masked as a base64 blob
    assert all("retryAfterSeconds: <*>" in t for t in cl.table["template"])


def test_an_error_thrown_and_logged_is_one_cluster() -> None:
    inv, logs, exc, dlq = [], [], [], []
    err = "Cannot read properties of undefined (reading 'displayName')"
    for i in range(20):
        ts = T0 + pd.Timedelta(seconds=10 * i)
        inv.append(invocation(i, ts, outcome="exception"))
        line = json.dumps({"event": "job.error", "jobId": f"job_{i}", "error": err})
        logs.append(
            {"invocation_id": f"inv-{i}", "ts": ts, "level": "error", "job_id": f"job_{i}", "message": line}
        )
        exc.append({"invocation_id": f"inv-{i}", "ts": ts, "name": "TypeError", "message": err,
                    "stack": f"TypeError: {err}\n    at render (worker.js:{10 + i}:5)"})  # fmt: skip
    dlq.append(
        {"message_id": "d1", "enqueued_at": T0, "job_id": "job_3", "envelope": "wrapped", "error": err}
    )
    alone = ei.cluster(make_evidence(inv, [], exc))
    both = ei.cluster(make_evidence(inv, logs, exc, dlq))
    assert len(both) == 1  # not two clusters of 20, one with the TypeError prefix and one without
    (row,) = both.table.to_dict(orient="records")
    assert row["cluster_id"] == alone.table["cluster_id"].iloc[0]  # the exception's id is kept
    assert row["template"].startswith("TypeError: ")
    assert row["sources"] == ["dlq", "exception", "log"]
    assert row["n_dlq_messages"] == 1
    logged = both.assign.index[both.assign["source"] == "log"][0]
    assert "by the invocations that threw it" in both.explain(int(logged)).rule


def test_a_logged_error_without_a_throw_keeps_its_own_cluster() -> None:
    logs = [
        {"invocation_id": f"inv-{i}", "ts": T0, "level": "error",
         "message": json.dumps({"event": "job.error", "error": "quota exhausted for tenant t_1"})}
        for i in range(4)
    ]  # fmt: skip
    exc = [{"invocation_id": "inv-0", "ts": T0, "name": "Error", "message": "quota exhausted for tenant t_1"}]
    cl = ei.cluster(make_evidence([invocation(i, T0) for i in range(4)], logs, exc))
    # one of four logged rows paired with a throw: below JOIN_SHARE, so two clusters
    assert len(cl) == 2


def test_bare_values_are_named_not_swallowed() -> None:
    logs = [
        {"invocation_id": "a", "ts": T0, "level": "error", "message": "0f8fad5b-d9cb-469f-a165-708677280012"},
        {"invocation_id": "b", "ts": T0, "level": "error", "message": "42"},
        {"invocation_id": "c", "ts": T0, "level": "error", "message": "upstream failed 42"},
    ]
    cl = ei.cluster(make_evidence(logs=logs))
    templates = set(cl.table["template"])
    assert "upstream failed <int>" in templates  # an ordinary text keeps its template
    bare = {t for t in templates if t.startswith(BARE_PREFIX)}
    assert bare == {f"{BARE_PREFIX} <uuid>", f"{BARE_PREFIX} <int>"}
    assert not any(is_bare(t) for t in templates)


@pytest.fixture(scope="module")
def every_scenario(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, ei.Clusters]]:
    out = []
    for name in list_scenarios():
        d = tmp_path_factory.mktemp(name)
        simulate(name, d, seed=2, invocations=1500, formats=("traceitems", "workers_logs", "dlq"))
        for rel in ("traceitems/traceitems.jsonl", "workers_logs/events.json"):
            ev = ei.load([d / rel], strict=True)
            ev = ev.with_dlq(dlq_frame_from_file(d / "dlq" / "messages.json"))
            out.append((f"{name}:{rel}", ei.cluster(ev)))
    return out


def test_no_template_is_placeholders_alone_in_any_scenario(
    every_scenario: list[tuple[str, ei.Clusters]],
) -> None:
    assert len(every_scenario) == 2 * len(list_scenarios())
    for name, cl in every_scenario:
        assert len(cl), name
        for tpl in [*cl.table["template"], *cl.assign["norm_template"].unique()]:
            assert not is_bare(str(tpl)), (name, tpl)
