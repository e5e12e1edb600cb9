"""Fast tests of the lab's plumbing: config rendering, offline environment, process stopping."""

from __future__ import annotations

import json
import shutil
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

from edgeinvestigate._http import Secret
from edgeinvestigate.errors import ConfigError, EdgeInvestigateError
from edgeinvestigate.lab import find_lab_dir
from edgeinvestigate.lab._procs import ProcessSet, wait_until
from edgeinvestigate.lab._runtime import WORKERS, Deploy, RuntimeSettings, offline_env, render_configs
from edgeinvestigate.lab._traffic import baseline_jobs, incident_jobs

TOKEN = "lab-sandbox-token-9f3c"  # a per-run token in real runs


def _settings() -> RuntimeSettings:
    return RuntimeSettings(
        collector_url="http://127.0.0.1:5001/",
        sandbox_url="http://127.0.0.1:5002/",
        sandbox_token=Secret(TOKEN),
        account_id="023e105f4ecef8ad9ca31a8372d0c353",
    )


def test_render_configs(tmp_path: Path) -> None:
    lab = find_lab_dir()
    paths = render_configs(lab, tmp_path, _settings(), Deploy("v42", "v2"))
    assert [p.parent.name for p in paths] == list(WORKERS)
    configs = {p.parent.name: json.loads(p.read_text()) for p in paths}
    for worker, cfg in configs.items():
        assert cfg["no_bundle"] is True
        assert Path(cfg["main"]).is_absolute()
        assert Path(cfg["main"]).is_file()
        assert Path(cfg["base_dir"]).is_dir()
        assert TOKEN not in json.dumps(cfg), worker  # the token is never in a config
    assert configs["consumer"]["vars"]["EMAIL_RENDERER"] == "v2"
    assert configs["consumer"]["vars"]["DEPLOY_VERSION"] == "v42"
    assert configs["tail"]["vars"]["COLLECTOR_URL"] == "http://127.0.0.1:5001/"
    assert configs["dlq-consumer"]["vars"]["SANDBOX_URL"] == "http://127.0.0.1:5002"
    dev_vars = tmp_path / "dlq-consumer" / ".dev.vars"
    assert dev_vars.read_text() == f'SANDBOX_TOKEN="{TOKEN}"\n'
    assert stat.S_IMODE(dev_vars.stat().st_mode) == 0o600
    assert not (tmp_path / "consumer" / ".dev.vars").exists()


def test_render_refuses_a_config_without_no_bundle(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(find_lab_dir() / "wrangler", lab / "wrangler")
    shutil.copytree(find_lab_dir() / "workers", lab / "workers")
    cfg = json.loads((lab / "wrangler" / "tail.json").read_text())
    del cfg["no_bundle"]
    (lab / "wrangler" / "tail.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"tail\.json must set \"no_bundle\": true"):
        render_configs(lab, tmp_path / "out", _settings(), Deploy("v41"))


def test_offline_env(tmp_path: Path) -> None:
    env = offline_env(tmp_path, {"PATH": "/usr/bin", "CLOUDFLARE_API_TOKEN": "real", "HOME": "/root"})
    assert env["WRANGLER_SEND_METRICS"] == "false"
    assert env["CLOUDFLARE_CF_FETCH_ENABLED"] == "false"
    assert env["WRANGLER_HIDE_BANNER"] == "true"
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "xdg")
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    assert "CLOUDFLARE_API_TOKEN" not in env  # never near a real account
    assert (tmp_path / "xdg").is_dir()


def test_process_set_stops_the_whole_group(tmp_path: Path) -> None:
    """A child that spawns a grandchild (like wrangler spawning workerd): both are stopped."""
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    with ProcessSet(tmp_path / "logs") as procs:
        proc = procs.start("parent", [sys.executable, "-c", script])
        wait_until(lambda: proc.log_path.read_text().strip() != "", timeout=10, what="the grandchild pid")
        grandchild = int(proc.log_path.read_text().split()[0])
        assert psutil.pid_exists(grandchild)
    # leaving the block stopped both, by pid and process group
    proc.popen.wait(timeout=5)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the grandchild survived"
        time.sleep(0.05)


def test_process_set_stops_children_when_the_run_fails(tmp_path: Path) -> None:
    started = []

    def failing_run() -> None:
        with ProcessSet(tmp_path / "logs") as procs:
            started.append(procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_run()
    assert started[0].popen.poll() is not None


def test_wait_until_names_the_dead_process(tmp_path: Path) -> None:
    with ProcessSet(tmp_path / "logs") as procs:
        proc = procs.start("crasher", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"])
        with pytest.raises(EdgeInvestigateError, match=r"(?s)crasher exited \(code 3\).*bad config"):
            wait_until(lambda: False, timeout=10, what="readiness", proc=proc)


def test_traffic_is_seeded_and_expectations_are_consistent() -> None:
    import random

    a = baseline_jobs(60, random.Random(1))
    b = baseline_jobs(60, random.Random(1))
    assert [j.body["payload"] for j in a] == [j.body["payload"] for j in b]
    assert {j.expect for j in a} == {"succeed", "dlq-wrapped", "dlq-raw"}
    assert len({j.job_id for j in a}) == 60
    incident = incident_jobs(100, random.Random(2))
    assert all((j.expect == "dlq-wrapped") == (j.type == "EMAIL_DELIVERY") for j in incident)
    assert all(j.body["payload"]["jobId"] == j.job_id for j in incident)


def test_sigterm_to_the_lab_stops_its_children(tmp_path: Path) -> None:
    """`timeout`, CI or a user sends SIGTERM to `lab run`: the children are still stopped."""
    import os
    import signal
    import subprocess

    script = f"""
import sys, time
from pathlib import Path
from edgeinvestigate.lab._procs import ProcessSet
from edgeinvestigate.lab._scenario import _terminate_as_exit
with _terminate_as_exit(), ProcessSet(Path({str(tmp_path)!r}) / "logs") as procs:
    p = procs.start("child", [sys.executable, "-c", "import time; time.sleep(600)"])
    print(p.pid, flush=True)
    time.sleep(600)
"""
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child)
        os.kill(parent.pid, signal.SIGTERM)
        assert parent.wait(timeout=20) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child survived SIGTERM of the lab"
        time.sleep(0.05)


def test_waiting_stops_at_once_when_the_runtime_dies(tmp_path: Path) -> None:
    from edgeinvestigate.lab._driver import Driver
    from edgeinvestigate.lab._watch import TraceWatcher

    with ProcessSet(tmp_path / "logs") as procs:
        dead = procs.start(
            "wrangler-1-v41", [sys.executable, "-c", "print('workerd crashed'); raise SystemExit(7)"]
        )
        dead.popen.wait(timeout=10)
        driver = Driver(
            "http://127.0.0.1:9", TraceWatcher(tmp_path / "t.jsonl"), print, processes=lambda: [dead]
        )
        t0 = time.monotonic()
        with pytest.raises(
            EdgeInvestigateError, match=r"(?s)wrangler-1-v41 \(pid \d+\) exited with code 7.*crashed"
        ):
            driver.wait_settled(["baseline-0000"], timeout=60, what="the baseline jobs")
        assert time.monotonic() - t0 < 5


def test_watcher_reads_only_complete_lines(tmp_path: Path) -> None:
    from edgeinvestigate.lab._watch import TraceWatcher

    real = (Path(__file__).parent / "data" / "workerd-2026-04-26-traceitems.jsonl").read_text().splitlines()
    path = tmp_path / "t.jsonl"
    watcher = TraceWatcher(path)
    assert watcher.poll() == 0  # no file yet
    path.write_text(real[0] + "\n" + real[1][:100])  # the second line is still being written
    assert watcher.poll() == 1
    with path.open("a") as fh:
        fh.write(real[1][100:] + "\n")
    assert watcher.poll() == 1
    assert watcher.lines == 2
