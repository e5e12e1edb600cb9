"""The dlq-replay notebook with execute=True really replays, against the sandbox as a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli._main import main
from edgeinvestigate.report.runner import run_notebook
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "nb-replay-sandbox-token-0123456789"


def _state(sb: object, account: str) -> dict[str, list[dict[str, object]]]:
    resp = sb.admin.get("/__admin/state")  # type: ignore[attr-defined]
    resp.raise_for_status()
    data = resp.json()
    queues = data.get("result", data)["accounts"][account]["queues"]
    return {name: q["messages"] for name, q in queues.items()}


def test_execute_replays_into_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(tmp_path, token=TOKEN) as sb:
        monkeypatch.setenv("EDGEINVESTIGATE_SANDBOX_TOKEN", TOKEN)
        incident = tmp_path / "incident"
        code = main(["simulate", "default", "--seed", "7", "--out", str(incident), "--sandbox", sb.url, "-q"])
        assert code in (None, 0)
        truth = json.loads((incident / "ground_truth.json").read_text())
        account = truth["account_id"]
        ev = ei.load([incident / "traceitems" / "traceitems.jsonl"])
        ev = ev.with_dlq(dlq_frame_from_file(incident / "dlq" / "messages.json"))
        bundle = ev.save(tmp_path / "bundle")
        before = _state(sb, account)

        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", account)
        monkeypatch.delenv("EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES", raising=False)
        params = {"bundle": str(bundle), "to_queue": "jobs", "execute": True, "api_url": sb.url, "rate": 400}
        # the plan allows `jobs`, but the run's allow-list comes from the operator: without it, refused
        refused = run_notebook("dlq-replay", tmp_path / "refused", params, progress=False)
        assert not refused.ok
        assert "'jobs' is not in the allow-list of the run" in str(refused.error)
        assert "-p allow_queues=jobs" in str(refused.error)
        assert _state(sb, account) == before  # nothing was sent
        out = tmp_path / "report"
        run = run_notebook("dlq-replay", out, {**params, "allow_queues": "jobs"}, progress=False)
        assert run.ok, run.error
        replay = run.results["replay"]
        assert replay["result"]["outcome"] == "completed"
        assert replay["status"]["completed"] is True

        plan = json.loads((out / "replay-plan.json").read_text())
        planned = {m["message_id"] for m in plan["messages"]}
        assert planned
        after = _state(sb, account)
        pushed = {
            m["body"]["metadata"]["replay"]["of"]
            for m in after["jobs"]
            if isinstance(m["body"], dict) and "replay" in m["body"].get("metadata", {})
        }
        assert pushed == planned  # every selected message is on the target queue
        left = {str(m["id"]) for m in after["jobs-dlq"]}
        assert not (left & planned)  # and gone from the DLQ
        assert left == {str(m["id"]) for m in before["jobs-dlq"]} - planned  # the rest untouched
        page = run.html.read_text()
        assert "completed" in page
        assert TOKEN not in page
        assert TOKEN not in run.ipynb.read_text()
