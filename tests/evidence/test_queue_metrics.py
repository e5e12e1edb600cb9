"""Queue and Worker analytics against the sandbox as a real server: known operations in, exact numbers out.

Every query collect sends is checked against the schema subset (models/analytics.graphql) too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from _metrics_scenario import (
    EXPECTED_BACKLOG,
    EXPECTED_CONCURRENCY,
    EXPECTED_OPERATIONS,
    Ran,
    run_known_operations,
)

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import AuthError, ConfigError, GraphQLQueryError, LoadError, RateLimitedError
from edgeinvestigate.models.analytics import validate_query
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox

TOKEN = "metrics-suite-token-5c1e"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("metrics"), token=TOKEN, rate_limit="0") as box:
        yield box


@pytest.fixture
def account() -> str:
    return uuid.uuid4().hex


class Checked(CloudflareClient):
    """A client whose every GraphQL query is validated against the schema subset before it is sent."""

    sent: list[tuple[str, dict[str, Any]]]

    def graphql(self, query: str, variables: Any = None) -> dict[str, Any]:
        problems = validate_query(query, dict(variables or {}))
        assert problems == [], problems
        self.sent = [*getattr(self, "sent", []), (query, dict(variables or {}))]
        return super().graphql(query, variables)


@pytest.fixture
def client(sb: RunningSandbox, account: str) -> Iterator[Checked]:
    sb.graphql_settings(
        settings={"*": {"maxPageSize": 10_000, "maxDuration": 2_678_400}},
        error_style="status",
        analytics_read=True,
        rate_limit={"limit": 300, "window_s": 300},
    )
    with Checked(account, TOKEN, api_url=sb.url) as c:
        yield c


@pytest.fixture
def ran(sb: RunningSandbox, client: Checked, account: str) -> Ran:
    return run_known_operations(sb, client, account)


def _minute(ran: Ran, key: str) -> pd.Timestamp:
    return ran.minute_a if key == "a" else ran.minute_b


def _ops(df: pd.DataFrame) -> dict[tuple[Any, ...], tuple[int, int, float]]:
    out = {}
    for r in df.astype(object).where(df.notna(), None).to_dict(orient="records"):
        key = (r["ts"], r["queue"], r["action"], r["consumer_type"], r["outcome"])
        out[key] = (int(r["count"]), int(r["bytes"]), round(float(r["retries"]), 9))
    return out


def test_the_graphql_answer_counts_every_operation_in_its_minute(sb, client, ran, account) -> None:
    query = """query Ops($accountTag: string!, $queueId: string!, $start: Time!, $end: Time!) {
      viewer { accounts(filter: {accountTag: $accountTag}) {
        queueMessageOperationsAdaptiveGroups(limit: 100, orderBy: [datetimeMinute_ASC],
            filter: {queueId: $queueId, actionType: "DeleteMessage", outcome: "dlq",
                     datetime_geq: $start, datetime_lt: $end}) {
          count sum { bytes billableOperations } avg { retryCount lagTime } max { messageSize }
          dimensions { datetimeMinute outcome consumerType }
        }
        backlog: queueBacklogAdaptiveGroups(limit: 100, filter: {queueId: $queueId,
            datetime_geq: $start, datetime_lt: $end}) { avg { messages } dimensions { datetimeMinute } }
      } } }"""
    variables = {
        "accountTag": account,
        "queueId": ran.queue_id,
        "start": f"{ran.since:%Y-%m-%dT%H:%M:%SZ}",
        "end": f"{ran.until:%Y-%m-%dT%H:%M:%SZ}",
    }
    data = client.graphql(query, variables)["viewer"]["accounts"][0]
    [dlq] = data["queueMessageOperationsAdaptiveGroups"]
    assert dlq["dimensions"] == {
        "datetimeMinute": f"{ran.minute_b:%Y-%m-%dT%H:%M:%SZ}",
        "outcome": "dlq",
        "consumerType": "http",
    }
    assert dlq["count"] == 4
    assert dlq["sum"] == {"bytes": 28, "billableOperations": 4}
    assert dlq["avg"]["retryCount"] == 1.0
    assert dlq["max"] == {"messageSize": 7}
    assert dlq["avg"]["lagTime"] >= 60_000  # written in minute A, moved in minute B
    backlog = {g["dimensions"]["datetimeMinute"]: g["avg"]["messages"] for g in data["backlog"]}
    assert backlog == {
        f"{_minute(ran, k):%Y-%m-%dT%H:%M:%SZ}": v for (k, q), v in EXPECTED_BACKLOG.items() if q == "jobs"
    }
    counts = sb.admin.get(f"/__admin/accounts/{account}/queues/jobs/analytics").json()["result"]["minutes"]
    by_minute = {m["minute_ms"]: m for m in counts}
    b = by_minute[int(ran.minute_b.value // 1_000_000)]
    assert (b["delivered"], b["retried"], b["lease_expired"], b["dead_lettered"]) == (6, 4, 2, 4)


def test_collect_frames_match_the_operations_exactly(client, ran) -> None:
    ev = ei.load_queue_metrics(client, ["jobs", "jobs-dlq", ran.idle_id], ran.since, ran.until)
    expected = {
        (_minute(ran, m), q, a, c, o): (n, b, r) for (m, q, a, c, o), (n, b, r) in EXPECTED_OPERATIONS.items()
    }
    assert _ops(ev.frame("queue_operations")) == {k: (n, b, round(r, 9)) for k, (n, b, r) in expected.items()}
    backlog = ev.frame("queue_backlog")
    got = {(t, q): m for t, q, m in zip(backlog["ts"], backlog["queue"], backlog["messages"], strict=True)}
    assert got == {(_minute(ran, k), q): v for (k, q), v in EXPECTED_BACKLOG.items()}
    conc = ev.frame("queue_consumers")
    assert dict(zip(zip(conc["ts"], conc["queue"], strict=True), conc["concurrency"], strict=True)) == {
        (_minute(ran, k), q): v for (k, q), v in EXPECTED_CONCURRENCY.items()
    }
    # nothing happened after minute B and on the idle queue: no rows, never zeros
    assert ev.frame("queue_backlog")["ts"].max() == ran.minute_b
    assert "idle" not in set(backlog["queue"].astype(str))
    no_data = ev.manifest["queue_metrics"]["no_data"]
    assert {"frame": "queue_backlog", "queue": "idle"} in no_data
    assert any("No data for 'idle'" in n and "not zero" in n for n in ev.report.notes)
    assert any("estimates" in n for n in ev.report.notes)
    assert ev.manifest["queue_metrics"]["bucket_seconds"] == 60


def test_small_limits_split_the_window_and_give_the_same_frames(sb, client, ran) -> None:
    whole = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], ran.since, ran.until)
    sb.graphql_settings(settings={"*": {"maxDuration": 120, "maxPageSize": 20}})
    client.sent = []
    split = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], ran.since, ran.until)
    queries = [v for q, v in client.sent if "QueueMetrics" in q]
    assert len(queries) >= 5  # 10 minutes in chunks of at most 2
    assert all(
        pd.Timestamp(v["end"]) - pd.Timestamp(v["start"]) <= pd.Timedelta(seconds=120) for v in queries
    )
    for name in ("queue_backlog", "queue_operations", "queue_consumers"):
        pd.testing.assert_frame_equal(split.frame(name), whole.frame(name))


def test_a_full_page_is_split_and_asked_again(sb, client, ran) -> None:
    sb.graphql_settings(settings={"*": {"maxPageSize": 3}})
    client.sent = []
    ev = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], ran.since, ran.until)
    assert len(ev.frame("queue_operations")) == len(EXPECTED_OPERATIONS)
    # minute B alone holds 3 operation groups: one full page per one-minute chunk is reported
    assert ev.manifest["queue_metrics"].get("truncated")


def test_hourly_buckets_beyond_six_hours(client, ran) -> None:
    ev = ei.load_queue_metrics(client, ["jobs"], ran.since - pd.Timedelta(hours=7), ran.until)
    ops = ev.frame("queue_operations")
    assert ev.manifest["queue_metrics"]["bucket_seconds"] == 3600
    assert set(ops["ts"]) <= {ran.minute_a.floor("h"), ran.minute_b.floor("h")}
    reads = ops[(ops["action"] == "ReadMessage") & (ops["queue"] == "jobs")]
    assert int(reads["count"].sum()) == 4 + 6


def test_errors_of_both_styles_become_typed_errors(sb, client, account) -> None:
    bad = 'query Bad { viewer { accounts(filter: {accountTag: "x"}) { queuesBacklogAdaptiveGroups(limit: 1) { avg { messages } } } } }'  # noqa: E501
    for style in ("status", "200"):
        sb.graphql_settings(error_style=style)
        with pytest.raises(GraphQLQueryError) as info:
            CloudflareClient.graphql(client, bad)
        assert info.value.kind == "query"
        assert "unknown field" in info.value.message
        assert info.value.status == (400 if style == "status" else None)
        sb.graphql_settings(analytics_read=False)
        with pytest.raises(AuthError) as auth:
            ei.load_queue_metrics(client, ["jobs"], "-1h", None)
        assert "Account Analytics Read" in auth.value.hint
        sb.graphql_settings(analytics_read=True)
    sb.graphql_settings(error_style="status", settings={"*": {"maxDuration": 60}})
    q = """query R($a: string!, $s: Time!, $e: Time!) { viewer { accounts(filter: {accountTag: $a}) {
      queueBacklogAdaptiveGroups(limit: 10, filter: {datetime_geq: $s, datetime_lt: $e}) {
        avg { messages } } } } }"""
    with pytest.raises(GraphQLQueryError) as limit:
        client.graphql(q, {"a": account, "s": "2026-12-06T10:00:00Z", "e": "2026-12-06T12:00:00Z"})
    assert limit.value.kind == "limit"
    assert "time range is too large" in limit.value.message


def test_the_graphql_rate_limit_is_respected(sb, client, account) -> None:
    sb.graphql_settings(rate_limit={"limit": 2, "window_s": 300})
    q = (
        'query S { viewer { accounts(filter: {accountTag: "%s"}) {'
        " settings { workersInvocationsAdaptive { enabled } } } } }"
    )
    client.graphql(q % account)
    client.graphql(q % account)
    with pytest.raises(RateLimitedError) as info:  # the sandbox's 429 (Retry-After > max_retry_wait)
        client.graphql(q % account)
    assert "300 queries per 5 minutes" in info.value.hint
    # our own budget: with 2 allowed per 300 s the third query is not even sent
    sb.graphql_settings(rate_limit={"limit": 300, "window_s": 300})
    fresh = CloudflareClient(account, TOKEN, api_url=sb.url)
    fresh.graphql_budget.limit, fresh.graphql_budget.max_wait = 2, 10
    before = sb.graphql_settings()["queries"]
    fresh.graphql(q % account)
    fresh.graphql(q % account)
    with pytest.raises(RateLimitedError, match="not sent"):
        fresh.graphql(q % account)
    assert sb.graphql_settings()["queries"] == before + 2
    fresh.close()


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_collect_writes_the_frames_and_a_saved_answer_reads_back(
    sb, ran, account, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", account)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sb.url)
    out = tmp_path / "bundle"
    args = ["collect", "--queue-metrics", "jobs", "--queue-metrics", "jobs-dlq",
            "--worker-metrics", "jobs-consumer", "--since", ran.since.isoformat(),
            "--until", ran.until.isoformat(), "--out", str(out)]  # fmt: skip
    code, output = _cli(args, capsys)
    assert code == 0, output
    assert "queue operations rows" in output
    assert TOKEN not in output
    ev = ei.Evidence.open(out)
    assert set(ev.extra) == {"queue_backlog", "queue_operations", "queue_consumers", "worker_invocations"}
    assert len(ev.frame("queue_operations")) == len(EXPECTED_OPERATIONS)
    assert len(ev.frame("worker_invocations")) == 0
    assert "worker_invocations" in ev.extra
    # the same analytics as a saved GraphQL answer: collect --queue-metrics-file
    with CloudflareClient(account, TOKEN, api_url=sb.url) as c:
        answer = {"data": c.graphql(
            "query A($a: string!, $s: Time!, $e: Time!) { viewer { accounts(filter: {accountTag: $a}) {"
            " queueMessageOperationsAdaptiveGroups(limit: 100, filter: {datetime_geq: $s, datetime_lt: $e}) {"
            " count sum { bytes } avg { lagTime retryCount } dimensions { datetimeMinute queueId actionType"
            " consumerType outcome } } } } }",
            {"a": account, "s": f"{ran.since:%Y-%m-%dT%H:%M:%SZ}", "e": f"{ran.until:%Y-%m-%dT%H:%M:%SZ}"},
        ), "errors": None}  # fmt: skip
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    code, output = _cli(
        ["collect", "--queue-metrics-file", str(saved), "--out", str(tmp_path / "b2")], capsys
    )
    assert code == 0, output
    from_file = ei.Evidence.open(tmp_path / "b2").frame("queue_operations")
    assert int(from_file["count"].sum()) == sum(n for n, _, _ in EXPECTED_OPERATIONS.values())
    assert set(from_file["queue"].astype(str)) == {ran.queue_id, ran.dlq_id}  # no names in the file: ids


def test_failure_paths_say_what_to_do(tmp_path, capsys) -> None:
    code, output = _cli(["collect", "--queue-metrics", "jobs", "--out", str(tmp_path / "x")], capsys)
    assert code == 2
    assert "--since" in output
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": null, "errors": [{"message": "unknown field"}]}')
    from edgeinvestigate.evidence.queue_metrics import with_metrics_file

    with pytest.raises(LoadError, match="holds errors"):
        with_metrics_file(ei.Evidence.empty(), bad)
    with pytest.raises(ConfigError, match="no queue"):
        ei.load_queue_metrics(None, [], "-1h", None)  # type: ignore[arg-type]


def test_old_bundles_open_without_extra_frames(tmp_path) -> None:
    ev = ei.Evidence.empty()
    ev.save(tmp_path / "old")
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    assert set(manifest["frames"]) == {"invocations", "logs", "exceptions", "dlq"}
    back = ei.Evidence.open(tmp_path / "old")
    assert back.extra == {}
    assert len(back.frame("queue_backlog")) == 0
    (tmp_path / "old" / "manifest.json").write_text(
        json.dumps({**manifest, "frames": {**manifest["frames"], "queue_backlog": "../x.parquet"}})
    )
    with pytest.raises(ei.BundleError, match="plain file names"):
        ei.Evidence.open(tmp_path / "old")


def test_findings_name_the_dead_lettering_with_its_exact_numbers(client, ran) -> None:
    ev = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], ran.since, ran.until)
    findings = ei.analyze(ev)
    [dead] = [h for h in findings.hypotheses if h.kind == "dead_lettering"]
    assert dead.evidence["queue"] == "jobs"
    assert dead.evidence["dlq_messages"] == 4
    assert dead.evidence["peak_per_bucket"] == 4
    assert dead.evidence["start"] == ran.minute_b.isoformat()
    assert dead.evidence["failures_logged"] is None  # no telemetry in this bundle: unknown, not 0
    health = {h.queue: h for h in findings.queue_health}
    assert (health["jobs"].writes, health["jobs"].reads, health["jobs"].acked) == (6, 10, 2)
    assert health["jobs"].dead_lettered == 4
    assert health["jobs-dlq"].writes == 4
    assert health["jobs-dlq"].reads == 0
    assert "concurrency" in health["jobs-dlq"].no_data
    assert findings.queue_health == ei.Findings.model_validate_json(findings.model_dump_json()).queue_health


def test_a_consumer_that_stalls_without_errors_is_found_and_dates_the_detection(sb, client, account) -> None:
    sb.create_queue(account, "orders", consumer={"type": "http_pull", "max_retries": 3})
    now = sb.next_minute()
    start = pd.Timestamp(now - now % 60_000, unit="ms", tz="UTC")
    qid = client.queue_id("orders")
    for minute in range(7):
        client.push_batch(qid, [{"body": {"m": minute, "i": i}} for i in range(10)])
        if minute < 3:  # the consumer keeps up for three minutes, then stops pulling
            got = client.pull(qid, batch_size=10, visibility_timeout_ms=30_000)["messages"]
            client.ack(qid, acks=[m["lease_id"] for m in got])
        sb.advance_clock(60_000)
    ev = ei.load_queue_metrics(client, ["orders"], start, start + pd.Timedelta(minutes=8))
    findings = ei.analyze(ev)
    [stall] = [h for h in findings.hypotheses if h.kind == "consumer_stalled"]
    assert findings.hypotheses[0] is stall or findings.hypotheses[0].kind == "consumer_stalled"
    e = stall.evidence
    assert e["mode"] == "stalled"
    assert e["start"] == (start + pd.Timedelta(minutes=3)).isoformat()
    assert e["end"] == (start + pd.Timedelta(minutes=7)).isoformat()
    assert (e["reads_per_bucket_before"], e["reads_per_bucket_during"], e["writes_per_bucket_during"]) == (
        10.0,
        0.0,
        10.0,
    )
    # backlog samples: minute 3 (push, pull, ack) -> mean of 10, 10, 0; one push a minute after: 40 at the end
    assert e["backlog_start"] == round((10 + 10 + 0) / 3, 3)
    assert e["backlog_peak"] == 40.0
    assert e["concurrency_before"] == 1.0
    assert e["concurrency_during"] is None  # no pulls: no concurrency data, not zero
    assert e["errors_during"] == 0
    assert stall.confidence == "high"
    assert findings.incident.timeline.detection == (start + pd.Timedelta(minutes=3)).to_pydatetime()
    assert any("Detection is taken from the backlog" in n for n in findings.notes)
    assert not [h for h in findings.hypotheses if h.kind == "throughput_drop"]  # the stall explains it


def test_bundles_without_metrics_are_analysed_as_before() -> None:
    ev = ei.sample_bundle()
    findings = ei.analyze(ev)
    assert findings.queue_health == []
    assert not {h.kind for h in findings.hypotheses} & {
        "consumer_stalled",
        "dead_lettering",
        "throughput_drop",
    }


def test_worker_invocations_and_the_cpu_unit(sb, client, account) -> None:
    now = sb.next_minute()
    minute = pd.Timestamp(now - now % 60_000, unit="ms", tz="UTC")
    at = f"{minute:%Y-%m-%dT%H:%M:%SZ}"
    groups = [
        {"sum": {"requests": 40, "errors": 0, "subrequests": 12},
         "quantiles": {"cpuTimeP50": 206, "cpuTimeP99": 1850},
         "dimensions": {"datetimeMinute": at, "scriptName": "jobs-consumer", "status": "success"}},
        {"sum": {"requests": 3, "errors": 3, "subrequests": 0},
         "quantiles": {"cpuTimeP50": 30_000_000, "cpuTimeP99": 30_040_000},
         "dimensions": {"datetimeMinute": at, "scriptName": "jobs-consumer", "status": "exceededResources"}},
    ]  # fmt: skip
    loaded = sb.load_analytics(
        account, [{"data": {"viewer": {"accounts": [{"workersInvocationsAdaptive": groups}]}}}]
    )
    assert loaded["loaded"] == {"workersInvocationsAdaptive": 2}
    ev = ei.load_queue_metrics(client, [], minute - pd.Timedelta(minutes=5), minute + pd.Timedelta(minutes=5),
                               scripts=["jobs-consumer"])  # fmt: skip
    inv = ev.frame("worker_invocations").set_index("status")
    assert inv.loc["success", "requests"] == 40
    assert inv.loc["success", "subrequests"] == 12
    assert inv.loc["success", "cpu_p50_ms"] == 0.206  # microseconds in, milliseconds out
    assert inv.loc["exceededResources", "cpu_p99_ms"] == 30_040.0
    assert inv.loc["exceededResources", "errors"] == 3
    assert set(ev.extra) == {"worker_invocations"}


def test_the_budget_waits_for_a_free_slot_then_refuses_long_waits() -> None:
    from edgeinvestigate.cloudflare.graphql import GraphQLBudget

    now = [1000.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    budget = GraphQLBudget(3, 300.0, max_wait=60.0, clock=lambda: now[0])
    for step in (0.0, 100.0, 100.0):
        now[0] += step
        budget.take(sleep)
    assert budget.used == 3
    assert slept == []
    now[0] += 50.0  # 250 s after the first query: it leaves the window in 50 s
    budget.take(sleep)
    assert slept == [50.0]
    with pytest.raises(RateLimitedError, match="not sent") as info:
        budget.take(sleep)  # the next slot frees 100 s from now (the 2nd query leaves): over max_wait
    assert info.value.retry_after == 100.0
    assert budget.used == 3  # the refused query was not counted
