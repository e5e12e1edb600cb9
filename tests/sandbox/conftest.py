"""Fixtures for the sandbox tests: one real sandbox process per module, fresh accounts per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeinvestigate.sandbox.contract import validate_exchange
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox

TOKEN = "sandbox-suite-token-9f3a"


class Api:
    """A thin test client: every response is validated against the OpenAPI subset."""

    def __init__(self, sb: RunningSandbox, account: str, *, timeout: float = 10.0) -> None:
        self.sb = sb
        self.account = account
        self.http = sb.client(timeout=timeout)
        self.checked = 0

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        validate: bool = True,
        check_request: bool = True,
        **kw: Any,
    ) -> httpx.Response:
        """Send a request; the response is checked against the spec unless ``validate=False``, and so
        is the request when it succeeded (``check_request=False`` where the spec is narrower than the API)."""
        url = f"/accounts/{self.account}{path}"
        resp = self.http.request(method, url, json=json, **kw)
        if validate:
            validate_exchange(resp, check_request=check_request and resp.status_code < 400)
            self.checked += 1
        return resp

    def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        resp = self.call(method, path, json, **kw)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["success"] is True
        return body["result"]

    def queue(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.sb.create_queue(self.account, name, **spec)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One sandbox process shared by the tests of this folder (each test uses its own account)."""
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), token=TOKEN, rate_limit="0") as sb:
        yield sb


@pytest.fixture
def account() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def api(sandbox: RunningSandbox, account: str) -> Iterator[Api]:
    client = Api(sandbox, account)
    yield client
    client.close()


@pytest.fixture
def tmp_sandbox_dir(tmp_path: Path) -> Path:
    return tmp_path


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(ms: int, n: int) -> str:
    """A ULID-like id like Workers Logs' ``$metadata.id`` (time prefix, then a counter)."""
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    tail = "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(16)))
    return head + tail


GOOD_VERSION = "4d9b3e0a-7c1f-4f2a-9a51-0d8a4c9e1b11"
BAD_VERSION = "b7e2c6d4-1a3f-4e5b-8c9d-2f6a7b8c9d0e"


def workers_log_events(
    n_invocations: int, start_ms: int, *, step_ms: int = 1000, bad_from: int | None = None
) -> list:
    """Workers Logs query-API events (reference C2) of a queue consumer: per invocation one
    ``cf-worker-event`` invocation line and one ``cf-worker`` console line; from invocation ``bad_from``
    on the new script version fails EMAIL_DELIVERY jobs with a TypeError."""
    events = []
    seq = 0
    for i in range(n_invocations):
        ts = start_ms + i * step_ms
        bad = bad_from is not None and i >= bad_from and i % 2 == 0
        version = BAD_VERSION if bad_from is not None and i >= bad_from else GOOD_VERSION
        request_id = f"req-{i:06d}"
        job_type = "EMAIL_DELIVERY" if i % 2 == 0 else "IMAGE_PROCESSING"
        workers = {
            "scriptName": "jobs-consumer",
            "eventType": "queue",
            "requestId": request_id,
            "outcome": "exception" if bad else "ok",
            "scriptVersion": {"id": version},
            "executionModel": "stateless",
            "truncated": False,
        }
        events.append(
            {
                "dataset": "cloudflare-workers",
                "timestamp": ts,
                "source": {"batchSize": 1, "queue": "jobs"},
                "$metadata": {
                    "id": ulid(ts, seq),
                    "requestId": request_id,
                    "service": "jobs-consumer",
                    "trigger": "queue jobs",
                    "type": "cf-worker-event",
                    "origin": "queue",
                    "level": "error" if bad else "info",
                    "startTime": ts,
                    "endTime": ts + 12,
                    **(
                        {"error": "TypeError: Cannot read properties of undefined (reading 'name')"}
                        if bad
                        else {}
                    ),
                },
                "$workers": workers
                | {
                    "wallTimeMs": 12 + i % 7,
                    "cpuTimeMs": 3 + i % 3,
                    "event": {"queue": "jobs", "batchSize": 1},
                },
            }
        )
        seq += 1
        message = (
            f"job failed: TypeError: Cannot read properties of undefined (reading 'name') job-{i:05d}"
            if bad
            else f"job done job-{i:05d}"
        )
        events.append(
            {
                "dataset": "cloudflare-workers",
                "timestamp": ts + 5,
                "source": {
                    "message": message,
                    "jobId": f"job-{i:05d}",
                    "type": job_type,
                    "attempt": 1 + i % 3,
                },
                "$metadata": {
                    "id": ulid(ts + 5, seq),
                    "requestId": request_id,
                    "service": "jobs-consumer",
                    "trigger": "queue jobs",
                    "type": "cf-worker",
                    "level": "error" if bad else "log",
                    "message": message,
                    **({"error": message} if bad else {}),
                },
                "$workers": workers,
            }
        )
        seq += 1
    return events


@pytest.fixture
def make_log_events():
    """``make_log_events(n_invocations, start_ms, step_ms=1000, bad_from=None)`` (see workers_log_events)."""
    return workers_log_events


@pytest.fixture
def versions() -> dict[str, str]:
    return {"good": GOOD_VERSION, "bad": BAD_VERSION}


@pytest.fixture
def clock(sandbox: RunningSandbox) -> Iterator[Any]:
    """``clock(ms)`` moves the shared sandbox's clock forward; it is moved back after the test."""
    moved = 0

    def advance(ms: int) -> None:
        nonlocal moved
        sandbox.admin.post("/__admin/clock", json={"advance_ms": ms}).raise_for_status()
        moved += ms

    yield advance
    if moved:
        sandbox.admin.post("/__admin/clock", json={"advance_ms": -moved}).raise_for_status()
