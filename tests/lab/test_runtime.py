"""``lab/_runtime.py``: the rendered Worker configs and the offline environment of ``wrangler dev``."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from edgeinvestigate._http import Secret
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.lab import find_lab_dir
from edgeinvestigate.lab._runtime import WORKERS, Deploy, RuntimeSettings, offline_env, render_configs

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
