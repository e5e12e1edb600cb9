"""The lab Workers' shared job model, tested with node's own test runner (no runtime needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgeinvestigate.lab import find_lab_dir


def test_job_model_unit_tests_pass() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the lab Workers' unit tests need Node.js >= 20.3")
    lab = find_lab_dir()
    result = subprocess.run(
        ["node", "--test", str(Path("test") / "jobs.test.js")],
        cwd=lab,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 5" in result.stdout
    assert "# fail 0" in result.stdout


def test_every_wrangler_config_is_offline_ready() -> None:
    """no_bundle in every config; queues wired as the design says."""
    import json

    lab = find_lab_dir()
    configs = {p.stem: json.loads(p.read_text()) for p in (lab / "wrangler").glob("*.json")}
    assert set(configs) == {"producer", "consumer", "dlq-consumer", "tail"}
    assert all(c["no_bundle"] is True for c in configs.values())
    consumers = configs["consumer"]["queues"]["consumers"]
    assert [c["queue"] for c in consumers] == ["jobs-immediate", "jobs-scheduled"]
    for consumer in consumers:
        assert consumer["dead_letter_queue"] == "jobs-dlq"
        assert consumer["max_retries"] == int(configs["consumer"]["vars"]["MAX_RETRIES"])
        assert configs["dlq-consumer"]["vars"]["SOURCE_MAX_RETRIES"] == str(consumer["max_retries"])
    assert configs["producer"]["triggers"]["crons"] == ["0 6 * * *"]
    for name in ("producer", "consumer", "dlq-consumer"):
        assert configs[name]["tail_consumers"] == [{"service": "jobs-tail"}]
    lock = json.loads((lab / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/wrangler"]["version"] == "4.86.0"
