"""Start a real sandbox process for tests, demos and the lab.

>>> with running_sandbox(tmp_path, token="t0ken") as sb:            # doctest: +SKIP
...     sb.create_queue("acct", "jobs-dlq", consumer={"type": "http_pull"})
...     r = sb.admin.get("/__admin/state")

The sandbox runs as ``python -m edgeinvestigate sandbox serve --port 0 --ready-file ...`` on 127.0.0.1;
the token is passed through the environment (never on the command line). The process is always killed
when the block exits, even on errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from edgeinvestigate._http import Secret, make_client
from edgeinvestigate.errors import SandboxError

__all__ = ["RunningSandbox", "running_sandbox"]

TOKEN_ENV = "EDGEINVESTIGATE_SANDBOX_TOKEN"  # noqa: S105 - a variable name, not a secret


class RunningSandbox:
    """A sandbox subprocess. ``url`` is the API base (``.../client/v4``), ``base`` the root URL."""

    def __init__(
        self,
        workdir: Path,
        *,
        token: str,
        faults: str | None = None,
        state_dir: Path | None = None,
        rate_limit: str | None = None,
        json_bodies: str | None = None,
        startup_timeout: float = 20.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._token = Secret(token)
        self.faults = faults
        self.state_dir = state_dir
        self.rate_limit = rate_limit
        self.json_bodies = json_bodies
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""
        self.base = ""
        self._admin: httpx.Client | None = None
        self._starts = 0
        self.log_path = self.workdir / "sandbox.log"

    def __repr__(self) -> str:
        return f"RunningSandbox(url={self.url!r}, pid={self.pid})"

    @property
    def token(self) -> str:
        return self._token.reveal()

    @property
    def secret(self) -> Secret:
        return self._token

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def admin(self) -> httpx.Client:
        """An httpx client on the root URL with the bearer token (for ``/__admin/...`` and raw API calls)."""
        if self._admin is None:
            raise SandboxError("the sandbox is not running", hint="use it inside `with running_sandbox(...)`")
        return self._admin

    def client(self, *, timeout: float | httpx.Timeout = 10.0, token: str | None = None) -> httpx.Client:
        """A new httpx client on the API base (``.../client/v4``); close it yourself."""
        secret = self._token if token is None else Secret(token)
        return make_client(self.url, token=secret, timeout=timeout)

    def start(self) -> None:
        self._starts += 1
        ready = self.workdir / f"sandbox-ready-{self._starts}.json"
        ready.unlink(missing_ok=True)
        port = self.port or 0  # a restart keeps the port, so clients keep their base URL
        args = [
            sys.executable,
            "-m",
            "edgeinvestigate",
            "sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ready-file",
            str(ready),
        ]
        if self.state_dir is not None:
            args += ["--state", str(self.state_dir)]
        if self.faults:
            args += ["--faults", self.faults]
        if self.rate_limit:
            args += ["--rate-limit", self.rate_limit]
        if self.json_bodies:
            args += ["--json-bodies", self.json_bodies]
        args += self.extra_args
        env = dict(os.environ)
        env[TOKEN_ENV] = self._token.reveal()
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise SandboxError(
                    f"the sandbox exited with status {self.proc.returncode} before it was ready: "
                    f"{self._log_tail()}",
                    hint=f"see {self.log_path}",
                )
            if time.monotonic() > deadline:
                self.kill()
                raise SandboxError(
                    f"the sandbox was not ready after {self.startup_timeout} s: {self._log_tail()}",
                    hint=f"see {self.log_path}",
                )
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.port, self.url, self.base = int(info["port"]), info["url"], info["base"]
        if self._admin is not None:
            self._admin.close()
        self._admin = make_client(self.base, token=self._token, timeout=30.0)

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-2000:].strip().replace(self._token.reveal(), "****")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process with ``sig`` (default SIGKILL, like a crash) and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), killing it if it does not exit."""
        self.kill(signal.SIGTERM)
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def restart(self, *, hard: bool = True) -> None:
        """Kill (``hard``: SIGKILL, else SIGTERM) and start again; with a state dir the port is kept."""
        self.kill(signal.SIGKILL if hard else signal.SIGTERM)
        self.start()

    # -- admin helpers --------------------------------------------------------------------------
    def _result(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise SandboxError(
                f"sandbox admin {response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response.json()["result"]

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._result(self.admin.get("/__admin/state"))
        return result

    def create_queue(self, account_id: str, queue_name: str, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            self.admin.post(f"/__admin/accounts/{account_id}/queues", json={"queue_name": queue_name, **spec})
        )
        return result

    def load_messages(
        self, account_id: str, queue_name: str, messages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            self.admin.post(
                f"/__admin/accounts/{account_id}/queues/{queue_name}/messages", json={"messages": messages}
            )
        )
        return result

    def load_events(self, account_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            self.admin.post(f"/__admin/accounts/{account_id}/telemetry/events", json={"events": events})
        )
        return result

    def set_faults(self, spec: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(self.admin.put("/__admin/faults", json={"spec": spec}))
        return result

    def advance_clock(self, ms: int) -> int:
        """Move the sandbox clock by ``ms`` (then it sweeps); returns the sandbox's ``now_ms``."""
        result: dict[str, Any] = self._result(self.admin.post("/__admin/clock", json={"advance_ms": ms}))
        return int(result["now_ms"])

    def next_minute(self, into_ms: int = 1000) -> int:
        """Move the clock to ``into_ms`` past the start of the next minute (analytics buckets)."""
        now = self.advance_clock(0)
        return self.advance_clock(60_000 - now % 60_000 + into_ms)

    def graphql_settings(self, **body: Any) -> dict[str, Any]:
        """``PUT /__admin/graphql`` (settings, error_style, analytics_read, rate_limit); returns them all."""
        result: dict[str, Any] = self._result(self.admin.put("/__admin/graphql", json=body))
        return result

    def load_analytics(
        self, account_id: str, responses: list[dict[str, Any]], queue_names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Load analytics in the GraphQL response shape (what ``simulate --sandbox`` does)."""
        body = {"responses": responses, "queue_names": queue_names or {}}
        result: dict[str, Any] = self._result(
            self.admin.post(f"/__admin/accounts/{account_id}/analytics", json=body)
        )
        return result

    def queue_state(self, account_id: str, queue_name: str) -> dict[str, Any]:
        queue: dict[str, Any] = self.state()["accounts"][account_id]["queues"][queue_name]
        return queue


@contextmanager
def running_sandbox(
    tmp_path: Path,
    *,
    token: str = "sandbox-test-token",  # noqa: S107 - a local test server's token
    faults: str | None = None,
    state_dir: Path | None = None,
    rate_limit: str | None = None,
    json_bodies: str | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[RunningSandbox]:
    """Start a sandbox subprocess on a free 127.0.0.1 port; always kill it on exit."""
    sb = RunningSandbox(
        Path(tmp_path) / "sandbox-proc",
        token=token,
        faults=faults,
        state_dir=state_dir,
        rate_limit=rate_limit,
        json_bodies=json_bodies,
        extra_args=extra_args,
    )
    try:
        sb.start()
        yield sb
    finally:
        sb.kill()
        sb.stop()
