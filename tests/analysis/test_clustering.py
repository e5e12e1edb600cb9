"""cluster(): error rows from every frame, stable ids, DLQ joins, rules, explanations, edge cases."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import edgeinvestigate as ei
import edgeinvestigate.analysis._masking as masking
from edgeinvestigate.analysis.clustering import CLUSTER_COLUMNS, group_texts
from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.bundle import Evidence

from .conftest import T0, invocation, job_log, make_evidence


def _errors(n: int, template: str, start: int = 0, **kw: object) -> list[dict[str, object]]:
    return [
        {"invocation_id": f"inv-{start + i}", "ts": T0 + pd.Timedelta(seconds=start + i), "level": "error",
         "message": template.format(i=start + i), **kw}
        for i in range(n)
    ]  # fmt: skip


def test_empty_evidence() -> None:
    cl = ei.cluster(Evidence.empty())
    assert list(cl.table.columns) == list(CLUSTER_COLUMNS)
    assert len(cl) == 0
    assert cl.assign.empty
    assert cl.dlq.empty
    assert json.loads(cl.to_json()) == {"clusters": [], "redacted": False}
    findings = ei.analyze(Evidence.empty(), cl)
    assert findings.hypotheses == []
    assert findings.window is None
    text = findings.to_text()
    assert "no telemetry" in text
    assert "The bundle is empty" in text
    assert "No hypothesis stands out" not in text  # that would read as "all is well"
    assert findings.has_telemetry is False


def test_one_error() -> None:
    ev = make_evidence(
        invocations=[invocation(0, T0, outcome="exception")],
        exceptions=[{"invocation_id": "inv-0", "ts": T0, "name": "Error", "message": "boom 42"}],
    )
    cl = ei.cluster(ev)
    assert len(cl) == 1
    row = cl.table.iloc[0]
    assert row["count"] == 1
    assert row["share"] == 1.0
    assert row["template"] == "Error: boom <int>"
    assert row["outcomes"] == ["exception"]
    assert row["scripts"] == ["jobs-consumer"]
    assert row["examples"] == ["Error: boom 42"]


def test_million_identical_errors_take_the_dedup_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = masking.mask_keys

    def spy(texts, masks=masking.MASKS):  # type: ignore[no-untyped-def]
        seen.append(len(texts))
        return real(texts, masks)

    monkeypatch.setattr("edgeinvestigate.analysis.clustering._grouping.mask_keys", spy)
    g = group_texts(["Error: upstream 10.0.0.1:443 refused connection"] * 1_000_000)
    assert len(g.templates) == 1
    assert len(g.labels) == 1_000_000
    assert seen == [1]  # masked once, not a million times


def test_non_ascii_and_huge_messages() -> None:
    huge = "Fehler: Nutzlast zu groß " + "ä" * 300_000
    logs = _errors(3, "Zeitüberschreitung bei Anfrage {i} für Benutzer 名前 nach 30 Sekunden")
    logs += [{"invocation_id": "inv-9", "ts": T0, "level": "error", "message": huge}]
    cl = ei.cluster(make_evidence(logs=logs))
    templates = set(cl.table["template"])
    assert "Zeitüberschreitung bei Anfrage <int> für Benutzer 名前 nach <int> Sekunden" in templates
    big = cl.table[cl.table["template"].str.startswith("Fehler")].iloc[0]
    assert len(big["examples"][0]) <= 500


def test_structured_error_field_is_used_before_free_text() -> None:
    logs = [
        {"invocation_id": "a", "ts": T0, "level": "log", "job_id": "job_1", "job_type": "DATA_SYNC",
         "message": json.dumps({"event": "job_failed", "jobId": "job_1", "error": "quota exhausted for cus_1a2b3c"})},  # noqa: E501
        {"invocation_id": "b", "ts": T0, "level": "info", "message": "all good"},
        {"invocation_id": "c", "ts": T0, "level": "log",
         "args": json.dumps([{"event": "job_failed", "error": {"name": "TypeError", "message": "x is undefined"}}]),  # noqa: E501
         "message": "[object Object]"},
    ]  # fmt: skip
    cl = ei.cluster(make_evidence(logs=logs))
    assert set(cl.assign["text"]) == {"quota exhausted for cus_1a2b3c", "TypeError: x is undefined"}
    assert cl.table.set_index("template").loc["quota exhausted for <id>", "job_types"] == ["DATA_SYNC"]


def _mixed_logs(n: int) -> list[dict[str, object]]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        kind = i % 4
        text = [
            f"Upstream API https://sync.partner-api.com/v1/x/{rng.randrange(10**6)} responded 503 (request id "  # noqa: E501
            f"{rng.randrange(16**8):08x}-aaaa-4bbb-8ccc-{rng.randrange(16**12):012x})",
            f"tenant {rng.choice(['acme', 'globex', 'initech', 'hooli'])} over quota: {rng.randrange(1000)} calls",  # noqa: E501
            f"SMTP relay 10.0.{rng.randrange(255)}.{rng.randrange(255)}:25 connection reset after {rng.randrange(900)}ms",  # noqa: E501
            f"SMTP relay 10.0.{rng.randrange(255)}.{rng.randrange(255)}:25 connection refused after {rng.randrange(900)}ms",  # noqa: E501
        ][kind]
        out.append(
            {
                "invocation_id": f"inv-{i}",
                "ts": T0 + pd.Timedelta(seconds=i),
                "level": "error",
                "message": text,
            }
        )
    return out


def test_ids_are_stable_across_orderings_and_split_bundles() -> None:
    logs = _mixed_logs(400)
    whole = ei.cluster(make_evidence(logs=logs))
    shuffled = logs[:]
    random.Random(9).shuffle(shuffled)
    again = ei.cluster(make_evidence(logs=shuffled))
    first = ei.cluster(make_evidence(logs=logs[:200]))  # one bundle split in two time windows
    second = ei.cluster(make_evidence(logs=logs[200:]))
    ids = set(whole.table["cluster_id"])
    assert len(ids) == 4  # reset and refused are different errors
    assert set(again.table["cluster_id"]) == ids
    assert set(first.table["cluster_id"]) == ids == set(second.table["cluster_id"])
    by_template = dict(zip(whole.table["template"], whole.table["cluster_id"], strict=True))
    assert by_template == dict(zip(first.table["template"], first.table["cluster_id"], strict=True))


def test_stack_fingerprint_splits_and_log_lines_join(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    typeerr = cl.table[cl.table["template"].str.startswith("TypeError")].iloc[0]
    assert typeerr["fingerprint"] != ""
    assert typeerr["count"] == 15
    assert typeerr["script_versions"] == ["v2"]
    assert typeerr["job_types"] == ["IMAGE_PROCESSING"]
    assert typeerr["kind"] == "permanent"
    assert typeerr["kind_rule"] == "type-error"
    upstream = cl.table[cl.table["template"].str.startswith("Upstream")].iloc[0]
    assert upstream["kind"] == "transient"
    assert upstream["kind_rule"] == "http-5xx"
    assert upstream["sources"] == ["dlq", "log"]


def test_dlq_joins(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    joins = dict(zip(cl.dlq["message_id"], cl.dlq["cluster_join"], strict=True))
    assert joins == {"dlq-1": "envelope_error", "dlq-2": "job_id", "dlq-3": "type_time", "dlq-4": "none"}
    ids = dict(zip(cl.dlq["message_id"], cl.dlq["cluster_id"], strict=True))
    typeerr = cl.table[cl.table["template"].str.startswith("TypeError")]["cluster_id"].iloc[0]
    assert ids["dlq-2"] == ids["dlq-3"] == typeerr
    assert ids["dlq-4"] is None
    assert cl.table.set_index("cluster_id").loc[typeerr, "n_dlq_messages"] == 2


def test_explain(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    e = cl.explain("dlq-1")
    assert e.join == "envelope_error"
    assert e.cluster_id == cl.dlq.set_index("message_id").loc["dlq-1", "cluster_id"]
    assert any("<url>" in s for s in e.steps)
    assert any("<uuid>" in s for s in e.steps)
    text = str(e)
    assert "http-5xx" in text
    assert "template" in text
    e3 = cl.explain("dlq-3")
    assert e3.join == "type_time"
    assert "job type" in e3.rule
    e4 = cl.explain("dlq-4")
    assert e4.cluster_id is None
    assert "no error text" in e4.rule
    row = int(cl.assign.index[cl.assign["source"] == "exception"][0])
    er = cl.explain(row)
    assert er.fingerprint
    assert er.frames[0].startswith("resizeImage")
    new = cl.explain(
        "Upstream API https://other.example.com/a responded 503 Service Unavailable "
        "(request id 0f8fad5b-d9cb-469f-a165-70867728950e)"
    )
    assert new.cluster_id == e.cluster_id
    assert new.kind == "transient"
    other = cl.explain("something never seen before")
    assert other.cluster_id is None
    assert "no cluster" in other.rule
    with pytest.raises(ConfigError, match="error row 99999"):
        cl.explain(99999)


def test_redact_masks_examples(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence, redact=True)
    examples = [e for ex in cl.table["examples"] for e in ex]
    assert examples
    assert all("0f8fad5b" not in e and "partner-api" not in e for e in examples)
    assert json.loads(cl.to_json())["redacted"] is True


def test_get_unknown_cluster(small_evidence: Evidence) -> None:
    cl = ei.cluster(small_evidence)
    with pytest.raises(ConfigError, match="no cluster 'cnope'"):
        cl.get("cnope")


def test_fifty_thousand_distinct_errors_go_through_the_vectorised_path() -> None:
    logs = _mixed_logs(50_000)  # > 20,000 distinct texts: the DuckDB pass
    cl = ei.cluster(make_evidence(logs=logs))
    assert len(cl) == 4
    assert int(cl.table["count"].sum()) == 50_000


# --------------------------------------------------------------------------------------------
# DLQ joins: a job id belongs to a line only when unambiguous; the job's last error wins
# --------------------------------------------------------------------------------------------
def _batch_evidence(last_attempt: pd.Timestamp | None = None) -> Evidence:
    """Job A fails 503, 503, then times out and is dead-lettered raw; a later batch invocation that
    starts with job A's replay (same job id, new message) also logs a job-less warning."""
    t = T0
    logs = []
    for k, (level, err) in enumerate(
        [
            ("warn", "Upstream https://img.example.com/a responded 503 Service Unavailable"),
            ("warn", "Upstream https://img.example.com/a responded 503 Service Unavailable"),
            ("error", "fetch to https://img.example.com/a timed out after 3000ms"),
        ]
    ):
        ts = t + pd.Timedelta(seconds=120 * k)
        logs.append(
            job_log(f"inv-a{k}", ts, level, "job.retry" if level == "warn" else "job.exhausted", "job_A",
                     message_id="msg-A", attempt=k + 1, extra={"error": err})
        )  # fmt: skip
    # a batch of two jobs, 5 minutes later: its job-less line belongs to neither job
    tb = t + pd.Timedelta(minutes=20)
    logs.append(job_log("inv-b", tb, "log", "job.started", "job_A", message_id="msg-A2"))
    logs.append(job_log("inv-b", tb, "log", "job.started", "job_B", message_id="msg-B"))
    logs.append(
        {"invocation_id": "inv-b", "ts": tb, "level": "warn", "message": 'deprecated field "x" in payload'}
    )
    inv = [invocation(0, t, invocation_id="inv-a0"), invocation(1, t, invocation_id="inv-a1")]
    inv += [invocation(2, t, invocation_id="inv-a2"), invocation(3, tb, invocation_id="inv-b")]
    dlq = [{"message_id": "msg-A", "enqueued_at": t, "attempts": 0, "job_type": "WEBHOOK_PROCESSING",
            "job_id": "job_A", "envelope": "raw", "last_attempt": last_attempt}]  # fmt: skip
    return make_evidence(invocations=inv, logs=logs, dlq=dlq)


def test_batch_job_less_lines_are_not_attributed_and_last_error_wins() -> None:
    cl = ei.cluster(_batch_evidence())
    a = cl.assign
    warn = a[a["text"].str.startswith("deprecated")]
    assert warn["job_id"].isna().all()  # the batch held two jobs: no guess
    d = cl.dlq.set_index("message_id").loc["msg-A"]
    assert d["cluster_join"] == "job_id"
    timeout = a[a["text"].str.startswith("fetch to")]["cluster_id"].iloc[0]
    assert d["cluster_id"] == timeout  # the error that exhausted it, not the earlier 503s
    rule = cl.explain("msg-A").rule
    assert "msg-A" in rule
    assert "timed out" in rule
    assert "last error" in rule
    assert "deprecated" not in rule


def test_single_job_invocation_lines_keep_their_job() -> None:
    logs = [
        job_log("inv-1", T0, "log", "job.started", "job_S"),
        {"invocation_id": "inv-1", "ts": T0, "level": "error", "message": "KV write failed: SQLITE_BUSY"},
    ]
    cl = ei.cluster(make_evidence(invocations=[invocation(1, T0)], logs=logs))
    row = cl.assign[cl.assign["text"].str.startswith("KV write")].iloc[0]
    assert row["job_id"] == "job_S"


def test_dlq_join_stops_at_the_last_attempt() -> None:
    ev = _batch_evidence(last_attempt=T0 + pd.Timedelta(seconds=120))  # dead-lettered after the 2nd 503
    cl = ei.cluster(ev)
    d = cl.dlq.set_index("message_id").loc["msg-A"]
    upstream = cl.assign[cl.assign["text"].str.startswith("Upstream")]["cluster_id"].iloc[0]
    assert d["cluster_id"] == upstream
    assert "before its last attempt" in cl.explain("msg-A").rule


def test_dependency_outage_dlq_messages_join_the_outage_clusters(tmp_path: Path) -> None:
    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.simulator import simulate
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    summary = simulate("dependency-outage", tmp_path, seed=0, formats=("traceitems", "dlq"))
    ev = load([tmp_path / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(tmp_path / "dlq" / "messages.json"))
    truth = json.loads(summary.ground_truth.read_text())["root_causes"][0]
    cl = ei.cluster(ev)
    f = ei.analyze(ev, cl)
    assert f.top is not None
    assert f.top.kind == "dependency_outage"
    dlq = cl.dlq.set_index("message_id").loc[truth["dlq_message_ids"]]
    assert (dlq["cluster_join"] == "job_id").all()
    assert dlq["cluster_id"].isin(f.top.cluster_ids).all(), dlq["cluster_id"].value_counts()
    # and each one joins the last error its own message logged
    tel = cl.assign[cl.assign["source"] != "dlq"].sort_values("ts", kind="stable")
    last = tel.dropna(subset=["message_id"]).groupby("message_id")["cluster_id"].last()
    assert (dlq["cluster_id"] == last.reindex(dlq.index)).all()


# --------------------------------------------------------------------------------------------
# clusters count distinct DLQ jobs, and explain which error a DLQ message joined
# --------------------------------------------------------------------------------------------
def test_clusters_count_distinct_dlq_jobs(tmp_path: Path) -> None:
    err = "Invalid DATA_SYNC payload: cursor must be a string"
    dlq = [{"message_id": f"m{i}", "enqueued_at": T0 + pd.Timedelta(minutes=i), "attempts": 4,
            "job_type": "DATA_SYNC", "job_id": f"job_{i % 2}", "envelope": "wrapped", "error": err}
           for i in range(3)]  # fmt: skip
    ev = make_evidence(dlq=dlq)
    cl = ei.cluster(ev)
    rec = cl.records()[0]
    assert (rec["n_dlq_messages"], rec["n_dlq_jobs"]) == (3, 2)
    bundle = ev.save(tmp_path / "b")
    out = CliRunner().invoke(cli, ["clusters", str(bundle), "--format", "csv"]).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    assert (row["n_dlq_messages"], row["n_dlq_jobs"]) == ("3", "2")
    data = json.loads(CliRunner().invoke(cli, ["clusters", str(bundle), "--format", "json"]).stdout)
    assert data["clusters"][0]["n_dlq_jobs"] == 2


def test_clusters_cli_explain_tells_which_error_joined(tmp_path: Path) -> None:
    bundle = _batch_evidence().save(tmp_path / "batch")
    res = CliRunner().invoke(cli, ["clusters", str(bundle), "--explain", "msg-A"])
    assert res.exit_code == 0, res.output
    assert "join:      job_id" in res.stdout
    assert "its message id msg-A was logged with an error in that cluster" in res.stdout
    assert "timed out after 3000ms" in res.stdout
    assert "deprecated" not in res.stdout
