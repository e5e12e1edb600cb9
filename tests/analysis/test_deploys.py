"""Deploy markers from more than ``script_version``: versions in structured log lines, and deploys
given by the user (``analyze(deployments=...)`` / ``analyze --deploy VERSION@TIME``).

The evidence is TraceItems shaped like local workerd's (``scriptName`` null, no ``scriptVersion``,
zero CPU/wall time, ``outcome: "ok"`` with the failure logged), loaded through the real loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import edgeinvestigate as ei
from edgeinvestigate.analysis.deploys import log_versions, parse_deployment, parse_deployments
from edgeinvestigate.cli import cli, main
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.evidence.bundle import Evidence

from .conftest import T0

BAD = "Cannot read properties of undefined (reading 'locale')"
TYPES = ("EMAIL_DELIVERY", "IMAGE_PROCESSING", "DATA_SYNC", "WEBHOOK_PROCESSING")


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.timestamp() * 1000)


def _trace_item(
    i: int, ts: pd.Timestamp, version_key: str | None, version: str, fails: bool
) -> dict[str, Any]:
    job_type = TYPES[i % len(TYPES)]
    base: dict[str, Any] = {
        "event": "job_started",
        "jobId": f"job-{i:04d}",
        "type": job_type,
        "attempt": 1,
        "messageId": f"{i:032x}",
        "queue": "jobs-immediate",
    }
    if version_key is not None:
        base[version_key] = version
    logs = [{"message": [json.dumps(base, separators=(",", ":"))], "level": "log", "timestamp": _ms(ts)}]
    if fails:
        failed = {**base, "event": "job_dead_lettered", "error": BAD, "errorName": "TypeError"}
        logs.append(
            {
                "message": [json.dumps(failed, separators=(",", ":"))],
                "level": "error",
                "timestamp": _ms(ts) + 5,
            }
        )
    return {
        "wallTime": 0,
        "cpuTime": 0,
        "truncated": False,
        "executionModel": "stateless",
        "outcome": "ok",
        "scriptName": None,
        "diagnosticsChannelEvents": [],
        "exceptions": [],
        "logs": logs,
        "eventTimestamp": _ms(ts),
        "event": {"queue": "jobs-immediate", "batchSize": 1},
    }


def _producer_item(i: int, ts: pd.Timestamp) -> dict[str, Any]:
    """The producer's fetch invocation, logging its own (never changing) version."""
    line = {
        "event": "job_enqueued",
        "jobId": f"job-{i:04d}",
        "type": TYPES[i % len(TYPES)],
        "version": "1.2.0",
    }
    return {
        "wallTime": 0,
        "cpuTime": 0,
        "truncated": False,
        "executionModel": "stateless",
        "outcome": "ok",
        "scriptName": None,
        "diagnosticsChannelEvents": [],
        "exceptions": [],
        "logs": [{"message": [json.dumps(line)], "level": "log", "timestamp": _ms(ts)}],
        "eventTimestamp": _ms(ts),
        "event": {
            "request": {"url": "http://127.0.0.1:8787/jobs", "method": "POST"},
            "response": {"status": 202},
        },
    }


def lab_like(tmp_path: Path, version_key: str | None = "deploy", producer: bool = False) -> Evidence:
    """60 minutes of one consumer: v41, then v42 from minute 20 (EMAIL_DELIVERY throws), then v43
    from minute 40 (fixed). One invocation every 15 s, one TraceItem array per line; with
    ``producer``, the producer's fetch invocations too (scriptName null as well)."""
    lines = []
    for i in range(240):
        ts = T0 + pd.Timedelta(seconds=15 * i)
        minute = i // 4
        version = "v41" if minute < 20 else "v42" if minute < 40 else "v43"
        fails = version == "v42" and TYPES[i % len(TYPES)] == "EMAIL_DELIVERY"
        if producer:
            lines.append(json.dumps([_producer_item(i, ts - pd.Timedelta(seconds=1))]))
        lines.append(json.dumps([_trace_item(i, ts, version_key, version, fails)]))
    path = tmp_path / "traceitems.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return ei.load([path], strict=True)


@pytest.mark.parametrize("key", ["deploy", "version", "scriptVersion", "script_version"])
def test_versions_from_log_fields_make_deploy_markers(tmp_path: Path, key: str) -> None:
    ev = lab_like(tmp_path, key)
    assert ev.invocations["script_version"].isna().all()  # like local workerd
    f = ei.analyze(ev)
    assert [(d.version, d.previous_version, d.source) for d in f.deploys] == [
        ("v42", "v41", "log_field"),
        ("v43", "v42", "log_field"),
    ]
    assert pd.Timestamp(f.deploys[0].at) == T0 + pd.Timedelta(minutes=20)
    assert f.deploy_sources == ["log_field"]
    assert f.notes == []
    top = f.top
    assert top is not None
    assert top.kind == "bad_deploy", f.to_text()
    assert top.deploy is not None
    assert top.deploy.version == "v42"
    assert top.job_types == ["EMAIL_DELIVERY"]
    assert top.evidence["share_on_version"] == 1.0
    assert top.evidence["stopped_with"] == "v43"
    assert "v42" in top.sentence
    assert "EMAIL_DELIVERY" in top.sentence
    # the cluster table names the version the failing lines ran
    table = ei.cluster(ev).table
    assert list(table.iloc[0]["script_versions"]) == ["v42"]


def test_unnamed_workers_are_told_apart_by_trigger_and_queue(tmp_path: Path) -> None:
    # producer (fetch, version 1.2.0) and consumer (queue, deploy v41..v43) both have scriptName null:
    # the producer's version is not a deploy of the consumer, nor the other way round
    f = ei.analyze(lab_like(tmp_path, producer=True))
    assert [(d.version, d.previous_version) for d in f.deploys] == [("v42", "v41"), ("v43", "v42")]
    assert f.top is not None
    assert f.top.deploy is not None
    assert f.top.deploy.version == "v42"


@pytest.mark.parametrize("engine", ["sql", "pandas"])
def test_deploys_of_unnamed_workers_name_no_script(engine: str, tmp_path: Path) -> None:
    # the key that tells unnamed Workers apart (trigger and queue) is not a script name
    f = ei.analyze(lab_like(tmp_path, producer=True), engine=engine)  # type: ignore[arg-type]
    assert [d.script for d in f.deploys] == [None, None]  # not "queue/jobs-immediate"


def test_log_versions_reads_objects_and_json_strings() -> None:
    logs = pd.DataFrame(
        {
            "invocation_id": ["a", "a", "b", "c", "d", "e"],
            "message": [
                "plain text mentioning deploy v9",  # not structured: ignored
                '{"event":"x","deploy":"v1"}',
                'job {"version":"2.0.1"}',  # several arguments: the object argument
                '{"scriptVersion":7}',
                '{"deploy":null,"version":"  "}',  # null and blank are no version
                '{"deploy":"v2"',  # broken JSON
            ],
            "args": [
                '["plain text mentioning deploy v9"]',
                '["{\\"event\\":\\"x\\",\\"deploy\\":\\"v1\\"}"]',
                '["job",{"version":"2.0.1"}]',
                None,
                None,
                '["{\\"deploy\\":\\"v2\\""]',
            ],
        }
    )
    got = log_versions(logs)
    assert dict(zip(got["invocation_id"], got["version"], strict=True)) == {"a": "v1", "b": "2.0.1", "c": "7"}


def test_given_deployments_when_the_data_has_no_versions(tmp_path: Path) -> None:
    ev = lab_like(tmp_path, version_key=None)
    f = ei.analyze(ev)
    assert f.deploys == []
    assert f.deploy_sources == []
    # without version data the finding must not claim that no deploy explains it
    top = f.top
    assert top is not None
    assert "no deploy explains it" not in top.sentence
    assert "no deploy information" in top.sentence
    assert "--deploy VERSION@TIME" in top.sentence
    assert "`deploy` field" in top.sentence
    assert any("no deploy information" in n for n in f.notes)
    assert "Note: The data has no deploy information" in f.to_text()

    at42, at43 = T0 + pd.Timedelta(minutes=20), T0 + pd.Timedelta(minutes=40)
    f = ei.analyze(ev, deployments=[("v42", "2026-11-27T14:20Z"), f"v43@{at43.isoformat()}"])
    assert [(d.version, d.previous_version, d.source) for d in f.deploys] == [
        ("v42", None, "given"),
        ("v43", "v42", "given"),
    ]
    assert pd.Timestamp(f.deploys[0].at) == at42
    assert f.deploys[0].invocations_after == 80  # minutes 20-40 at 4 a minute
    assert f.deploy_sources == ["given"]
    assert f.notes == []
    top = f.top
    assert top is not None
    assert top.kind == "bad_deploy", f.to_text()
    assert top.deploy is not None
    assert top.deploy.version == "v42"
    assert top.deploy.source == "given"
    assert top.job_types == ["EMAIL_DELIVERY"]
    assert top.evidence["stopped_with"] == "v43"


def test_a_given_deploy_replaces_the_observed_marker(tmp_path: Path) -> None:
    ev = lab_like(tmp_path)
    f = ei.analyze(ev, deployments=["v42@2026-11-27T14:19:30Z"])
    assert [(d.version, d.source) for d in f.deploys] == [("v42", "given"), ("v43", "log_field")]
    assert f.deploys[0].previous_version == "v41"
    assert f.deploys[0].invocations_after == 80  # invocations that ran v42
    assert f.deploy_sources == ["given", "log_field"]
    assert f.top is not None
    assert f.top.deploy is not None
    assert f.top.deploy.source == "given"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("v42", "has no '@TIME'"),
        ("@2026-11-27T14:05Z", "has no version"),
        ("v42@", "has no time"),
        ("v42@yesterday-ish", "cannot read the time"),
        (("v42",), "cannot read deployment"),
    ],
)
def test_bad_deployments_are_config_errors(value: Any, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_deployment(value)
    assert says in info.value.message
    assert "VERSION@TIME" in info.value.hint


def test_parse_deployments_forms_and_order() -> None:
    got = parse_deployments(
        [
            {"version": "b", "at": "2026-11-27T15:00:00+01:00"},
            ("a", pd.Timestamp("2026-11-27T13:00")),
            "user@host-v3@1795849556169",  # epoch ms; the version may hold an '@'
        ]
    )
    assert [(v, at.isoformat()) for v, at in got] == [
        ("a", "2026-11-27T13:00:00+00:00"),
        ("b", "2026-11-27T14:00:00+00:00"),
        ("user@host-v3", "2026-11-28T07:05:56.169000+00:00"),
    ]


def test_cli_deploy_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = lab_like(tmp_path, version_key=None).save(tmp_path / "bundle")
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "analyze",
            str(bundle),
            "--format",
            "json",
            "--deploy",
            "v42@2026-11-27T14:20Z",
            "--deploy",
            "v43@2026-11-27T14:40Z",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [(d["version"], d["source"]) for d in data["deploys"]] == [("v42", "given"), ("v43", "given")]
    assert data["hypotheses"][0]["kind"] == "bad_deploy"
    assert data["hypotheses"][0]["deploy"]["version"] == "v42"

    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(bundle), "--deploy", "v42"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "deployment 'v42' has no '@TIME'" in err
    assert "hint:" in err
    assert "VERSION@TIME" in err

    res = runner.invoke(cli, ["analyze", "--help"])
    assert "--deploy VERSION@TIME" in res.stdout


def test_timeline_marks_given_and_observed_deploys(tmp_path: Path) -> None:
    from edgeinvestigate.analysis import plots

    f = ei.analyze(lab_like(tmp_path), deployments=["v42@2026-11-27T14:20Z"])
    fig = plots.timeline(f)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.line.dash for s in lines) == ["dash", "dot"]  # v43 from the logs, v42 given
    hover = sorted(a.hovertext for a in fig.layout.annotations if a.text.startswith("deploy "))
    assert hover == ["v41 -> v42 (from given)", "v42 -> v43 (from log_field)"]
