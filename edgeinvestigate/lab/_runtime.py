"""The real Workers runtime of the lab: ``npm ci`` and one ``wrangler dev`` with every Worker.

The Worker sources live in ``lab/workers/`` and their committed configs in ``lab/wrangler/``. For a run,
each config is rendered into the run's state folder with absolute paths and the run's values
(collector URL, sandbox URL, deploy variables); secrets (the sandbox token) go into a ``.dev.vars``
file beside the rendered config (mode 0600), never onto a command line. ``no_bundle`` is checked in
every config: without it wrangler injects middleware that changes what the runtime reports.

``wrangler dev`` runs offline: ``WRANGLER_SEND_METRICS=false``, ``CLOUDFLARE_CF_FETCH_ENABLED=false``,
``WRANGLER_HIDE_BANNER=true``, ``XDG_CONFIG_HOME`` and ``TMPDIR`` inside the state folder, a fresh
``--persist-to`` per lab run (kept across its deploys), ``--ip 127.0.0.1``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edgeinvestigate._http import Secret, make_client
from edgeinvestigate.errors import ConfigError, EdgeInvestigateError
from edgeinvestigate.lab._procs import ManagedProcess, ProcessSet, free_port, wait_until

__all__ = [
    "LAB_DIR",
    "WORKERS",
    "WRANGLER_VERSION",
    "Deploy",
    "WranglerRuntime",
    "ensure_node_modules",
    "find_lab_dir",
    "node_available",
    "offline_env",
    "render_configs",
]

log = logging.getLogger(__name__)

#: the wrangler the lab pins (the newest that runs on Node 20; see lab/README.md)
WRANGLER_VERSION = "4.86.0"
#: the Workers, in the order given to ``wrangler dev`` (the first one gets the HTTP port)
WORKERS = ("producer", "consumer", "dlq-consumer", "tail")
#: the lab folder of a source checkout (edgeinvestigate/_lab/ -> ../../lab)
LAB_DIR = Path(__file__).resolve().parents[2] / "lab"


def find_lab_dir(lab_dir: Path | None = None) -> Path:
    """The ``lab/`` folder (with ``package.json`` and ``workers/``), or a clear error."""
    path = Path(lab_dir) if lab_dir is not None else LAB_DIR
    if not (path / "package.json").is_file() or not (path / "wrangler").is_dir():
        raise ConfigError(
            f"{path} is not the edgeinvestigate lab folder (no package.json and wrangler/)",
            hint="run from a source checkout of edgeinvestigate, or pass --lab-dir PATH",
        )
    return path


def node_available() -> str | None:
    """Why the lab cannot run here (no node or npm), or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH; the lab needs Node.js >= 20.3 and npm"
    return None


def _lock_digest(lab_dir: Path) -> str:
    return hashlib.sha256((lab_dir / "package-lock.json").read_bytes()).hexdigest()


def ensure_node_modules(lab_dir: Path, *, mode: str = "auto", log_path: Path | None = None) -> bool:
    """Run ``npm ci`` in ``lab_dir`` (``mode``: ``always``, ``auto`` = when the lockfile changed, ``never``).

    Returns True when npm ran. The stamp ``node_modules/.edgeinvestigate-lock`` records the
    lockfile digest that was installed.
    """
    if mode not in ("always", "auto", "never"):
        raise ConfigError(f"--npm must be always, auto or never, got {mode!r}")
    stamp = lab_dir / "node_modules" / ".edgeinvestigate-lock"
    digest = _lock_digest(lab_dir)
    wrangler_bin = lab_dir / "node_modules" / ".bin" / "wrangler"
    if mode == "never" or (
        mode == "auto" and wrangler_bin.exists() and stamp.is_file() and stamp.read_text().strip() == digest
    ):
        if not wrangler_bin.exists():
            raise ConfigError(
                f"{wrangler_bin} is missing and --npm never was given",
                hint="run `npm ci` in lab/ or use --npm auto",
            )
        return False
    why = node_available()
    if why:
        raise ConfigError(why, hint="install Node.js 20 (see lab/README.md)")
    env = dict(os.environ) | {
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_update_notifier": "false",
    }
    log.info("npm ci in %s", lab_dir)
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=lab_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        raise EdgeInvestigateError(
            f"npm ci in {lab_dir} failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout)[-1500:]}",
            hint="check that the npm registry is reachable; see lab/README.md",
        )
    stamp.write_text(digest + "\n", encoding="utf-8")
    return True


def offline_env(state_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``wrangler dev``: offline, with config and temp files in ``state_dir``."""
    env = dict(base if base is not None else os.environ)
    for name in list(env):
        if name.startswith("CLOUDFLARE_") or name.startswith("CF_"):
            del env[name]  # never let the lab near a real account
    xdg = state_dir / "xdg"
    tmp = state_dir / "tmp"
    xdg.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "WRANGLER_SEND_METRICS": "false",
            "CLOUDFLARE_CF_FETCH_ENABLED": "false",
            "WRANGLER_HIDE_BANNER": "true",
            "XDG_CONFIG_HOME": str(xdg),
            "TMPDIR": str(tmp),
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
            "CI": "1",
        }
    )
    return env


@dataclass(frozen=True)
class Deploy:
    """One "version" of the consumer: the variables that differ between deploys."""

    version: str
    email_renderer: str = "v1"

    @property
    def bad(self) -> bool:
        return self.email_renderer != "v1"


@dataclass
class RuntimeSettings:
    """What the rendered configs need from the rest of the lab."""

    collector_url: str
    sandbox_url: str
    sandbox_token: Secret
    account_id: str
    dlq_name: str = "jobs-dlq"
    extra_vars: dict[str, dict[str, str]] = field(default_factory=dict)


def render_configs(lab_dir: Path, out_dir: Path, settings: RuntimeSettings, deploy: Deploy) -> list[Path]:
    """Render every Worker's ``wrangler.json`` into ``out_dir/<worker>/`` for one start.

    Paths become absolute; run values are merged into ``vars``; the sandbox token goes into
    ``.dev.vars`` (0600) beside the dlq-consumer's config. Returns the configs in start order.
    """
    paths = []
    for worker in WORKERS:
        src = lab_dir / "wrangler" / f"{worker}.json"
        try:
            config: dict[str, Any] = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the Worker config {src}: {exc}") from exc
        if config.get("no_bundle") is not True:
            raise ConfigError(
                f'{src} must set "no_bundle": true (wrangler otherwise injects middleware that changes '
                "outcomes and log lines)",
                hint="see lab/README.md",
            )
        config.pop("$schema", None)
        config["main"] = str((src.parent / config["main"]).resolve())
        config["base_dir"] = str((src.parent / config.get("base_dir", ".")).resolve())
        variables: dict[str, str] = dict(config.get("vars") or {})
        secrets: dict[str, str] = {}
        if worker == "consumer":
            variables["DEPLOY_VERSION"] = deploy.version
            variables["EMAIL_RENDERER"] = deploy.email_renderer
        elif worker == "dlq-consumer":
            variables["SANDBOX_URL"] = settings.sandbox_url.rstrip("/")
            variables["ACCOUNT_ID"] = settings.account_id
            variables["SANDBOX_DLQ"] = settings.dlq_name
            secrets["SANDBOX_TOKEN"] = settings.sandbox_token.reveal()
        elif worker == "tail":
            variables["COLLECTOR_URL"] = settings.collector_url
        variables.update(settings.extra_vars.get(worker, {}))
        if variables:
            config["vars"] = variables
        dest_dir = out_dir / worker
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / "wrangler.json"
        dest.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        dev_vars = dest_dir / ".dev.vars"
        if secrets:
            fd = os.open(dev_vars, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for key, value in secrets.items():
                    fh.write(f"{key}={json.dumps(value)}\n")
        elif dev_vars.exists():
            dev_vars.unlink()
        paths.append(dest)
    return paths


class WranglerRuntime:
    """One ``wrangler dev`` process running every lab Worker; restartable with another deploy."""

    def __init__(
        self,
        lab_dir: Path,
        state_dir: Path,
        procs: ProcessSet,
        settings: RuntimeSettings,
        *,
        port: int | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        self.lab_dir = lab_dir
        self.state_dir = state_dir
        self.procs = procs
        self.settings = settings
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.proc: ManagedProcess | None = None
        self.deploy: Deploy | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The producer's URL (the first Worker gets the HTTP port)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, deploy: Deploy) -> None:
        if self.proc is not None:
            raise EdgeInvestigateError("wrangler dev is already running; call restart()")
        persist = self.state_dir / "persist"
        if self.starts == 0 and persist.exists():
            # fresh for each lab run, so KV and config state never leak between runs; kept across the
            # restarts of one run, like KV across deploys in production
            shutil.rmtree(persist)
        self.starts += 1
        run_dir = self.state_dir / f"wrangler-{self.starts}-{deploy.version}"
        configs = render_configs(self.lab_dir, run_dir / "config", self.settings, deploy)
        wrangler = self.lab_dir / "node_modules" / ".bin" / "wrangler"
        argv = [str(wrangler), "dev"]
        for cfg in configs:
            argv += ["-c", str(cfg)]
        argv += [
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--inspector-port",
            str(free_port()),
            "--persist-to",
            str(persist),
            "--show-interactive-dev-session=false",
            "--log-level",
            "info",
        ]
        env = offline_env(self.state_dir)
        self.proc = self.procs.start(
            f"wrangler-{self.starts}-{deploy.version}", argv, env=env, cwd=self.lab_dir
        )
        self.deploy = deploy
        with make_client(self.url, timeout=2.0) as client:

            def ready() -> bool:
                try:
                    return client.get("/health").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(
                ready,
                timeout=self.ready_timeout,
                interval=0.25,
                what=f"wrangler dev on {self.url}",
                proc=self.proc,
            )
        log.info("wrangler dev ready on %s with deploy %s", self.url, deploy.version)

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def restart(self, deploy: Deploy) -> None:
        """A "deploy": stop wrangler dev and start it again with another consumer version."""
        self.stop()
        self.start(deploy)
