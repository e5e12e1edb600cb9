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


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
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
