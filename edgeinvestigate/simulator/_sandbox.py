"""Load a simulated incident into a running sandbox through its admin API (``/__admin/``).

Creates the queues (``jobs`` and ``jobs-retry`` with the consumer Worker, the DLQ with an
``http_pull`` consumer), loads the DLQ messages with their ids, attempts, timestamps and exact body
bytes, the Workers Logs events, and the deployments of both Workers (the consumer's versions of the
scenario, so the sandbox's deployments API lists what ``wrangler deployments list`` would). The
token comes from ``EDGEINVESTIGATE_SANDBOX_TOKEN`` or ``CLOUDFLARE_API_TOKEN`` (or is passed as a
:class:`~edgeinvestigate._http.Secret`); HTTP goes through :func:`edgeinvestigate._http.make_client` only.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import httpx
import msgspec

from edgeinvestigate._http import Secret, make_client
from edgeinvestigate.errors import AuthError, ConfigError, SandboxError
from edgeinvestigate.simulator._simulation import Simulation
from edgeinvestigate.simulator._write_analytics import analytics_response
from edgeinvestigate.simulator._write_workers_logs import event_lines

__all__ = ["TOKEN_ENVS", "load_into_sandbox", "sandbox_token"]

TOKEN_ENVS = ("EDGEINVESTIGATE_SANDBOX_TOKEN", "CLOUDFLARE_API_TOKEN")
_MSG_CHUNK = 500
_EVENT_CHUNK = 2000
_T = TypeVar("_T")
_ENC = msgspec.json.Encoder()


def sandbox_token() -> Secret:
    """The sandbox bearer token from the environment."""
    for name in TOKEN_ENVS:
        value = os.environ.get(name)
        if value:
            return Secret(value)
    raise ConfigError(
        "no sandbox token: --sandbox needs the sandbox's bearer token in the environment",
        hint=f"export {TOKEN_ENVS[0]}=... (the token the sandbox was started with)",
    )


def _root(url: str) -> str:
    root = url.rstrip("/")
    for suffix in ("/client/v4", "/__admin"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    if not root.startswith(("http://", "https://")):
        raise ConfigError(
            f"--sandbox {url!r} is not an http(s) URL", hint="e.g. --sandbox http://127.0.0.1:8787"
        )
    return root


def _chunks(items: Iterable[_T], n: int) -> Iterator[list[_T]]:
    buf: list[_T] = []
    for it in items:
        buf.append(it)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


def _post(client: httpx.Client, path: str, payload: Any = None, *, raw: bytes | None = None) -> Any:
    content = raw if raw is not None else _ENC.encode(payload)
    try:
        r = client.post(path, content=content, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        raise SandboxError(
            f"cannot reach the sandbox at {client.base_url}{path}: {type(exc).__name__}",
            hint="start it with `edgeinvestigate sandbox serve` and pass its URL to --sandbox",
        ) from None
    if r.status_code in (401, 403):
        raise AuthError(
            f"the sandbox refused the token for POST {path} ({r.status_code})",
            status=r.status_code,
            method="POST",
            url=path,
            hint=f"set {TOKEN_ENVS[0]} to the token the sandbox was started with",
        )
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code >= 400 or not isinstance(data, dict) or not data.get("success"):
        errors = data.get("errors") if isinstance(data, dict) else None
        detail = (
            "; ".join(str(e.get("message", e)) for e in errors or [] if isinstance(e, dict)) or r.text[:200]
        )
        raise SandboxError(
            f"the sandbox rejected POST {path} with {r.status_code}: {detail}",
            hint="check that the sandbox version matches this edgeinvestigate (GET /__admin/state)",
        )
    return data.get("result")


def _deployments(sim: Simulation) -> dict[str, list[dict[str, Any]]]:
    """The deployment history of each Worker of the simulation, as the admin endpoint takes it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for v in [sim.producer_version, *sim.versions]:
        out.setdefault(v.script, []).append(
            {
                "version_id": v.id,
                "created_ms": v.at_ms,
                "message": f"{v.tag}: {v.message}" if v.message else v.tag,
            }
        )
    return out


def load_into_sandbox(
    sim: Simulation,
    url: str,
    *,
    token: Secret | None = None,
    transport: httpx.BaseTransport | None = None,
    events: bool = True,
) -> dict[str, Any]:
    """Create the queues, load the DLQ and the Workers Logs events; returns what was loaded."""
    s = sim.scenario.system
    acct = sim.account_id
    secret = token if token is not None else sandbox_token()
    out: dict[str, Any] = {
        "url": _root(url),
        "account_id": sim.account_id,
        "queues": {},
        "dlq_loaded": 0,
        "events_loaded": 0,
        "deployments_loaded": 0,
    }
    worker = {
        "type": "worker",
        "script_name": s.consumer_script,
        "max_retries": s.max_retries,
        "batch_size": s.batch_size,
        "max_wait_time_ms": int(s.batch_timeout_s * 1000),
        "retry_delay": s.retry_delay_s,
        "dead_letter_queue": s.dlq,
    }
    with make_client(_root(url), token=secret, transport=transport, timeout=60.0) as client:
        specs = [
            (s.queue, worker),
            (s.retry_queue, worker),
            (s.dlq, {"type": "http_pull", "max_retries": s.max_retries, "batch_size": 10,
                     "visibility_timeout_ms": 30_000, "dead_letter_queue": ""}),
        ]  # fmt: skip
        for name, consumer in specs:
            body: dict[str, Any] = {
                "queue_name": name,
                "consumer": consumer,
                "message_retention_period": s.message_retention_period,
            }
            if name == s.dlq:
                body["json_body_encoding"] = s.dlq_json_encoding
            q = _post(client, f"/__admin/accounts/{acct}/queues", body)
            out["queues"][name] = q.get("queue_id") if isinstance(q, dict) else None
        msgs = [
            {
                "id": m["id"],
                "body": base64.b64encode(_ENC.encode(m["body"])).decode("ascii"),
                "body_encoding": "base64",
                "content_type": "json",
                "timestamp_ms": m["timestamp_ms"],
                "attempts": m["attempts"],
            }
            for m in sim.dlq
        ]
        for chunk in _chunks(msgs, _MSG_CHUNK):
            res = _post(client, f"/__admin/accounts/{acct}/queues/{s.dlq}/messages", {"messages": chunk})
            out["dlq_loaded"] += int(res.get("loaded", len(chunk))) if isinstance(res, dict) else len(chunk)
        for script, versions in _deployments(sim).items():
            res = _post(
                client, f"/__admin/accounts/{acct}/scripts/{script}/deployments", {"deployments": versions}
            )
            out["deployments_loaded"] += int(res.get("loaded", 0)) if isinstance(res, dict) else 0
        if events:
            for lines in _chunks(event_lines(sim), _EVENT_CHUNK):
                raw = b'{"events":[' + b",".join(lines) + b"]}"
                res = _post(client, f"/__admin/accounts/{acct}/telemetry/events", raw=raw)
                out["events_loaded"] += (
                    int(res.get("loaded", len(chunk))) if isinstance(res, dict) else len(chunk)
                )
        # the Queue and Worker analytics, for /graphql (the sandbox maps our queue ids to its own by name)
        names = {sim.queue_ids[q]: q for q in (s.queue, s.dlq)}
        body = {"responses": [analytics_response(sim)], "queue_names": names}
        res = _post(client, f"/__admin/accounts/{acct}/analytics", body)
        out["analytics_loaded"] = res.get("loaded", {}) if isinstance(res, dict) else {}
    return out
