"""A fake Cloudflare API for the client, capture and collect tests: ids, canned answers, transports that
check every request against the OpenAPI subset, Workers Logs and tail events."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from _helpers.contract import validate_request

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


# ---------------------------------------------------------------- Workers Logs events (reference C2)

SCRIPT = "jobs-consumer"
VERSION = "6d1f0a52-3c1e-4b8a-9a55-0f3f6c1e2b7d"


def _ulid(i: int) -> str:
    return f"01JD{i:022d}"


def wl_events(n_requests: int, start_ms: int, *, script: str = SCRIPT, step_ms: int = 250) -> list[dict]:
    """Query-API events: per request one ``cf-worker-event`` invocation line and one ``cf-worker`` log
    line (every 5th request fails with an uncaught exception line as well)."""
    out: list[dict] = []
    k = 0
    for i in range(n_requests):
        ts = start_ms + i * step_ms
        rid = f"8e{i:030x}"
        failed = i % 5 == 0
        job = {
            "event": "job.failed" if failed else "job.done",
            "jobId": f"job-{i:05d}",
            "type": "IMAGE_PROCESSING",
            "attempt": 1 + i % 3,
            "messageId": f"m{i:031x}",
        }
        out.append(
            {
                "dataset": "cloudflare-workers",
                "timestamp": ts + 1,
                "source": job,
                "$metadata": {
                    "id": _ulid(k),
                    "requestId": rid,
                    "service": script,
                    "type": "cf-worker",
                    "level": "error" if failed else "log",
                    "message": json.dumps(job),
                    "trigger": "queue",
                    "origin": "queue",
                },
                "$workers": {
                    "scriptName": script,
                    "eventType": "queue",
                    "requestId": rid,
                    "scriptVersion": {"id": VERSION},
                    "executionModel": "stateless",
                    "truncated": False,
                },
            }
        )
        k += 1
        if failed:
            exc = {
                "name": "Error",
                "message": f"Image too large: {3_000_000 + i} bytes",
                "stack": "Error: Image too large\n    at processImage (worker.js:41:11)",
                "timestamp": ts + 2,
            }
            out.append(
                {
                    "dataset": "cloudflare-workers",
                    "timestamp": ts + 2,
                    "source": {"message": exc["message"], "exception": exc},
                    "$metadata": {
                        "id": _ulid(k),
                        "requestId": rid,
                        "service": script,
                        "type": "cf-worker",
                        "level": "error",
                        "error": exc["message"],
                        "message": exc["message"],
                        "trigger": "queue",
                    },
                    "$workers": {
                        "scriptName": script,
                        "eventType": "queue",
                        "requestId": rid,
                        "scriptVersion": {"id": VERSION},
                    },
                }
            )
            k += 1
        out.append(
            {
                "dataset": "cloudflare-workers",
                "timestamp": ts,
                "source": {},
                "$metadata": {
                    "id": _ulid(k),
                    "requestId": rid,
                    "service": script,
                    "type": "cf-worker-event",
                    "trigger": "queue",
                    "origin": "queue",
                    "startTime": ts,
                    "endTime": ts + 40,
                    "duration": 40,
                },
                "$workers": {
                    "scriptName": script,
                    "eventType": "queue",
                    "requestId": rid,
                    "outcome": "exception" if failed else "ok",
                    "wallTimeMs": 40,
                    "cpuTimeMs": 7,
                    "scriptVersion": {"id": VERSION},
                    "executionModel": "stateless",
                    "truncated": False,
                    "event": {"queue": "jobs", "batchSize": 1},
                },
            }
        )
        k += 1
    return out


class FakeTelemetry:
    """A telemetry query endpoint with offset paging (newest first), used with httpx.MockTransport."""

    def __init__(self, events: list[dict]) -> None:
        self.events = sorted(events, key=lambda e: (-e["timestamp"], e["$metadata"]["id"]))
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        tf = body["timeframe"]
        script = next(
            f["value"] for f in body["parameters"]["filters"] if f.get("key") == "$workers.scriptName"
        )
        rows = [
            e
            for e in self.events
            if tf["from"] <= e["timestamp"] <= tf["to"] and e["$workers"]["scriptName"] == script
        ]
        start = 0
        if body.get("offset"):
            ids = [e["$metadata"]["id"] for e in rows]
            start = ids.index(body["offset"]) + 1
        page = rows[start : start + int(body.get("limit", 50))]
        result = {
            "run": {
                "id": "run-1",
                "accountId": ACCOUNT,
                "timeframe": tf,
                "status": "COMPLETED",
                "granularity": 0,
                "dry": True,
                "query": {"id": body["queryId"]},
                "statistics": {"elapsed": 0.01, "rows_read": len(rows), "bytes_read": 1},
            },
            "statistics": {"elapsed": 0.01, "rows_read": len(rows), "bytes_read": 1},
            "events": {"count": len(page), "events": page, "fields": [], "series": []},
        }
        return ok(result)


class ValidatingTransport(httpx.BaseTransport):
    """The real HTTP transport, checking every request (and 2xx/4xx response) against the OpenAPI subset."""

    def __init__(self, *, responses_per_path: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        # validating big responses (2000 telemetry events) is slow: optionally check only the first N per path
        self.responses_per_path = responses_per_path
        self._checked: dict[tuple[str, str], int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from _helpers.contract import validate_response

        request.read()
        validate_request(request)
        self.requests.append(request)
        response = self.inner.handle_request(request)
        response.read()
        key = (request.method, request.url.path)
        n = self._checked.get(key, 0)
        if response.headers.get("content-type", "").startswith("application/json") and (
            self.responses_per_path is None or n < self.responses_per_path
        ):
            validate_response(request, response)
            self._checked[key] = n + 1
        return response

    def close(self) -> None:
        self.inner.close()


def job(i: int, job_type: str = "IMAGE_PROCESSING", attempts: int = 3) -> dict:
    return {
        "type": job_type,
        "payload": {"jobId": f"job-{i:05d}", "imageUrl": f"https://img.example.com/{i}.png", "width": 2048},
        "metadata": {
            "attempts": attempts,
            "originalTimestamp": "2026-11-27T14:02:11.482Z",
            "lastAttempt": "2026-11-27T14:05:40.001Z",
        },
    }


def tail_event(i: int, *, outcome: str = "ok", script: str = SCRIPT) -> dict:
    """One tail WebSocket message (reference A2): a queue-consumer invocation."""
    ts = 1_795_788_131_000 + i * 1000
    ev = {
        "wallTime": 41,
        "cpuTime": 6,
        "truncated": False,
        "executionModel": "stateless",
        "outcome": outcome,
        "scriptTags": [],
        "scriptVersion": {"id": VERSION},
        "scriptName": script,
        "diagnosticsChannelEvents": [],
        "exceptions": [],
        "logs": [
            {
                "message": [
                    json.dumps(
                        {
                            "event": "job.start",
                            "jobId": f"job-{i:05d}",
                            "type": "IMAGE_PROCESSING",
                            "attempt": 1,
                        }
                    )
                ],
                "level": "log",
                "timestamp": ts + 1,
            }
        ],
        "eventTimestamp": ts,
        "event": {"queue": "jobs", "batchSize": 1},
    }
    if outcome != "ok":
        ev["exceptions"] = [
            {
                "name": "Error",
                "message": f"Image too large: {i}",
                "timestamp": ts + 2,
                "stack": "Error: Image too large\n    at processImage (worker.js:41:11)",
            }
        ]
    return ev
