"""Shared helpers of the collect tests (imported by the test modules)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from _collect_contract import validate_request

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN = "cfut_Zq8sExampleTokenValue_9f3b1c7d2e"  # a fake token; tests scan output for it


class Recorder:
    """An httpx transport that checks every request against the OpenAPI subset and records it."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response], *, validate: bool = True) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.validate = validate

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.validate:
            validate_request(request)
        return self.handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def ok(result: object, **extra: object) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "errors": [], "messages": [], "result": result, **extra}
    )


def fail(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        },
        headers=headers,
    )
