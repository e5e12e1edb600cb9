"""`sandbox serve` and `collect --listen` refuse bad arguments at start, with a clear one-line error.

A ready file that can never be written (a caller waiting on it would hang), a token file nobody can
find, an unknown fault operation, a corrupt state database and an impossible port each end the
process at once with exit status != 0, a message naming the input and what to do next.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.routing import Route

from edgeinvestigate._http import Secret
from edgeinvestigate.errors import ConfigError, SandboxError
from edgeinvestigate.sandbox._context import SandboxConfig
from edgeinvestigate.sandbox._database import DB_NAME
from edgeinvestigate.sandbox._endpoint import ApiEndpoint, MethodDispatch
from edgeinvestigate.sandbox._store import Store
from edgeinvestigate.sandbox.app import create_app
from edgeinvestigate.sandbox.faults import OPERATIONS, parse_faults

TOKEN_ENV = "EDGEINVESTIGATE_SANDBOX_TOKEN"


def cli(*args: str, cwd: Path, token: str | None = "cli-failures-token") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV and not k.startswith("CLOUDFLARE_")}
    if token is not None:
        env[TOKEN_ENV] = token
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a regression (serving anyway) fails here instead of hanging
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("hint: "), proc.stderr
    assert "listening on" not in proc.stderr
    return errors[0]


def test_ready_file_in_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    ready = tmp_path / "no" / "such" / "r.json"
    proc = cli("sandbox", "serve", "--port", "0", "--ready-file", str(ready), cwd=tmp_path)
    line = one_line_error(proc)
    assert str(ready) in line
    assert "does not exist" in line
    assert not ready.parent.exists()


def test_token_file_in_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    tok = tmp_path / "missing" / "tok"
    proc = cli("sandbox", "serve", "--port", "0", "--token-file", str(tok), cwd=tmp_path, token=None)
    line = one_line_error(proc)
    assert str(tok) in line
    assert not tok.parent.exists()  # no directory silently created
    assert TOKEN_ENV in proc.stderr  # the hint names the other way


def test_unknown_fault_operation_is_refused_listing_the_valid_ones(tmp_path: Path) -> None:
    proc = cli("sandbox", "serve", "--port", "0", "--faults", "ops=push+nosuchop", cwd=tmp_path)
    line = one_line_error(proc)
    assert "'nosuchop'" in line
    assert "'push'" not in line
    for op in OPERATIONS:
        assert op in proc.stderr
    with pytest.raises(ConfigError, match="nosuchop"):
        parse_faults({"ops": ["pull", "nosuchop"]})
    assert parse_faults("ops=push+batch").ops == ["push", "batch"]


def test_fault_operations_are_exactly_the_routes_the_sandbox_serves() -> None:
    app = create_app(SandboxConfig(token=Secret("t")))
    served = set()
    for route in app.routes:
        if isinstance(route, Route) and isinstance(route.app, MethodDispatch):
            served |= {e.op for e in route.app.by_method.values() if isinstance(e, ApiEndpoint)}
    app.state.ctx.store.close()
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_state_database_names_the_file_and_the_fix(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / DB_NAME
    if damage == "garbage":
        db.write_bytes(b"this is not sqlite at all\n" * 400)
    else:
        store = Store(state)
        store.close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        data = db.read_bytes()
        db.write_bytes(data[:100] + b"\xff" * (len(data) - 100))  # a valid header, broken pages
    proc = cli("sandbox", "serve", "--port", "0", "--state", str(state), cwd=tmp_path)
    line = one_line_error(proc)
    assert str(db) in line
    assert "move it away" in proc.stderr
    with pytest.raises(SandboxError, match="not a usable SQLite database"):
        Store(state)


def test_a_healthy_state_directory_still_opens(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.close()
    store = Store(tmp_path / "state")  # reopening is fine
    store.close()


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:65536"])
def test_collect_listen_port_out_of_range(tmp_path: Path, address: str) -> None:
    proc = cli("collect", "--listen", address, "--out", str(tmp_path / "t.jsonl"), cwd=tmp_path)
    line = one_line_error(proc)
    assert "between 0 and 65535" in line
    assert address in line


def test_serve_on_port_0_prints_the_exports_with_the_port_it_picked(tmp_path: Path) -> None:
    import json
    import time

    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeinvestigate", "sandbox", "serve", "--port", "0",
         "--state", str(tmp_path / "s"), "--token-file", str(tmp_path / "token"), "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ready.is_file(), "the sandbox did not start"
        info = json.loads(ready.read_text())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert info["port"] != 0
    assert f"export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:{info['port']}/client/v4" in err
    assert "export CLOUDFLARE_ACCOUNT_ID=" in err
    assert f"--sandbox http://127.0.0.1:{info['port']}" in err
