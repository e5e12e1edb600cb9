"""Credentials in telemetry never reach the bundle in clear text (unless --keep-secrets); DLQ bodies stay."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from edgeinvestigate.cli import main
from edgeinvestigate.evidence.bundle import Evidence

TOKEN = "Zt8kQ2mN4pR6sT0vW1xY3zA5bC7dE9fG1hJ3kL5m"  # 40 chars, mixed: a Cloudflare-style API token
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2JzIn0.c2lnbmF0dXJlLXZhbHVl"


def _record(ts_ms: int, message: str, url: str) -> dict[str, object]:
    """A Logpush workers_trace_events record shaped like the reference (queue trigger, one log line)."""
    return {
        "EventTimestampMs": ts_ms,
        "EventType": "queue",
        "Event": {"Queue": "jobs", "BatchSize": 1},
        "Exceptions": [],
        "Logs": [{"Level": "log", "Message": [message], "TimestampMs": ts_ms + 3}],
        "Outcome": "ok",
        "ScriptName": "jobs-consumer",
        "ScriptVersion": {"ID": "a5597bec-3305-56a1-bf6d-af1b95d64fc0"},
        "CPUTimeMs": 3,
        "WallTimeMs": 40,
        "Request": None,
        "Response": None,
        "Url": url,
    }


@pytest.fixture
def logpush(tmp_path: Path) -> Path:
    t0 = 1_795_788_440_000
    lines = [
        _record(t0, f"calling api with Authorization: Bearer {BEARER}", "https://api.example.net/x"),
        _record(t0 + 1000, f"retrying with token={TOKEN}", "https://api.example.net/y"),
        _record(t0 + 2000, "job.completed in 40 ms", "https://api.example.net/z"),
    ]
    path = tmp_path / "20261127" / "batch.log"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _all_text(bundle: Path) -> str:
    return "\n".join(pd.read_parquet(p).astype(str).to_csv() for p in bundle.glob("*.parquet"))


def test_collect_masks_credentials_in_the_telemetry(
    logpush: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    out = tmp_path / "bundle"
    assert main(["collect", "--logpush", str(logpush), "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    # two lines with a credential, each masked in both text columns (message and args)
    assert "masked credentials in the telemetry: 4 in logs" in printed
    text = _all_text(out)
    assert TOKEN not in text
    assert BEARER not in text
    assert "job.completed in 40 ms" in text  # ordinary lines untouched
    ev = Evidence.open(out)
    assert ev.manifest["secrets_masked"] == {"invocations": 0, "logs": 4, "exceptions": 0, "kept": False}
    assert any("[redacted]" in m or "[token]" in m or "[secret]" in m for m in ev.logs["message"])


def test_keep_secrets_keeps_them_with_a_warning(
    logpush: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    assert main(["collect", "--logpush", str(logpush), "--out", str(out), "--keep-secrets"]) in (0, None)
    assert "--keep-secrets" in capsys.readouterr().err
    assert BEARER in _all_text(out)
    assert Evidence.open(out).manifest["secrets_masked"] == {"kept": True}


def test_the_dlq_keeps_exact_bodies(tmp_path: Path) -> None:
    from edgeinvestigate.evidence.collect import collect

    body = {"type": "EMAIL_DELIVERY", "payload": {"apiKey": TOKEN, "to": "a@example.com"}}
    snapshot = tmp_path / "dlq.json"
    snapshot.write_text(
        json.dumps(
            {"queue": "jobs-dlq", "messages": [
                {"id": "m1", "timestamp": "2026-11-27T14:05:00Z", "attempts": 4, "body": body}
            ]}
        )
    )  # fmt: skip
    ev = collect(dlq_files=[snapshot])
    assert TOKEN in ev.dlq["payload"].iloc[0], "replay pushes the exact body: the DLQ frame keeps it"
