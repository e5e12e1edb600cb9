"""Worker deployments over HTTP: Cloudflare's deployments API and the admin endpoint that loads them.

- ``GET /accounts/{a}/workers/scripts/{s}/deployments``: ``{"deployments": [...]}``, newest first (the
  first one serves traffic), those made by the sandbox clock's now. A script without deployments is a
  404 (10007), like an unknown Worker.
- ``POST /accounts/{a}/workers/scripts/{s}/deployments``: ``{"strategy": "percentage", "versions":
  [{"version_id", "percentage"}], "annotations"?: {"workers/message"}}`` deploys versions of the script
  (a rollback is a deployment of an older version). The sandbox has no version uploads: a version can be
  deployed when an earlier deployment of the script holds it. At most two versions, percentages adding
  up to 100.
- ``POST /__admin/accounts/{a}/scripts/{s}/deployments``: ``{"deployments": [{"version_id" | "versions",
  "created_on" (ISO-8601) | "created_ms", "message"?, "id"?, "source"?, "triggered_by"?,
  "author_email"?}]}`` replaces the script's history (what ``simulate --sandbox`` does).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request

from edgeinvestigate.sandbox._clock import iso
from edgeinvestigate.sandbox._consumers import check_script_name
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._deployments import known_versions
from edgeinvestigate.sandbox._endpoint import read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError

__all__ = ["DEPLOYMENT_ADMIN_ROUTES", "DEPLOYMENT_HANDLERS"]

_AUTHOR = "sandbox@example.com"


def _script(request: Request) -> tuple[str, str]:
    return request.path_params["account_id"], request.path_params["script_name"]


def _history(ctx: SandboxContext, account: str, script: str) -> list[dict[str, Any]]:
    found = ctx.store.deployments.of(account, script)
    if not found:
        raise SandboxHTTPError(
            "script_not_found",
            f"no Worker named {script!r} in account {account!r} (the sandbox knows the Workers whose "
            "deployments were loaded: `edgeinvestigate simulate ... --sandbox URL` loads them)",
        )
    return found


async def list_deployments(request: Request, ctx: SandboxContext) -> Any:
    account, script = _script(request)
    _history(ctx, account, script)
    # deployments dated after the sandbox clock (a simulated incident reaching into the future) are
    # not made yet
    return {"deployments": ctx.store.deployments.of(account, script, until_ms=ctx.store.clock.now_ms())}


def _versions(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise SandboxHTTPError(
            "bad_request", f"{where}versions must be a list of 1 or 2 {{version_id, percentage}}"
        )
    out: list[dict[str, Any]] = []
    total = 0.0
    for i, v in enumerate(value):
        pct = v.get("percentage") if isinstance(v, dict) else None
        vid = v.get("version_id") if isinstance(v, dict) else None
        if not isinstance(vid, str) or not vid:
            raise SandboxHTTPError("bad_request", f"{where}versions[{i}].version_id must be a version id")
        if (
            isinstance(pct, bool)
            or not isinstance(pct, int | float)
            or not math.isfinite(pct)
            or not 0 < pct <= 100
        ):
            raise SandboxHTTPError(
                "bad_request", f"{where}versions[{i}].percentage must be above 0 and at most 100"
            )
        out.append({"percentage": float(pct), "version_id": vid})
        total += float(pct)
    if abs(total - 100) > 1e-6:
        raise SandboxHTTPError("bad_request", f"{where}versions: the percentages must add up to 100")
    if len({v["version_id"] for v in out}) != len(out):
        raise SandboxHTTPError("bad_request", f"{where}versions: a version is listed twice")
    return out


async def create_deployment(request: Request, ctx: SandboxContext) -> Any:
    account, script = _script(request)
    history = _history(ctx, account, script)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", "the request body must be a JSON object {strategy, versions}")
    if body.get("strategy") != "percentage":
        raise SandboxHTTPError("bad_request", f"strategy must be 'percentage', got {body.get('strategy')!r}")
    versions = _versions(body.get("versions"), "")
    known = known_versions(history)
    for v in versions:
        if v["version_id"] not in known:
            raise SandboxHTTPError(
                "bad_request",
                f"version {v['version_id']!r} is not a version of {script!r}; deploy one of "
                f"{', '.join(sorted(known))} (GET .../workers/scripts/{script}/deployments lists them)",
            )
    annotations = body.get("annotations") or {}
    message = annotations.get("workers/message") if isinstance(annotations, dict) else None
    if message is not None and not isinstance(message, str):
        raise SandboxHTTPError("bad_request", "annotations.workers/message must be a string")
    now = ctx.store.clock.now_ms()
    deployment = _deployment(str(uuid.uuid4()), now, versions, message, "api", "deployment", _AUTHOR)
    ctx.store.deployments.add(account, script, now, deployment)
    return deployment


def _deployment(
    dep_id: str,
    created_ms: int,
    versions: list[dict[str, Any]],
    message: str | None,
    source: str,
    triggered_by: str,
    author: str,
) -> dict[str, Any]:
    annotations = {"workers/triggered_by": triggered_by}
    if message:
        annotations["workers/message"] = message[:1000]
    return {
        "id": dep_id,
        "created_on": iso(created_ms),
        "source": source,
        "strategy": "percentage",
        "versions": versions,
        "annotations": annotations,
        "author_email": author,
    }


def _created_ms(item: dict[str, Any], where: str) -> int:
    ms = item.get("created_ms")
    if ms is not None:
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise SandboxHTTPError("bad_request", f"{where}created_ms must be epoch milliseconds")
        return ms
    text = item.get("created_on")
    try:
        return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise SandboxHTTPError(
            "bad_request", f"{where}needs created_on (ISO-8601, e.g. 2026-11-27T14:45:00Z) or created_ms"
        ) from None


async def load_deployments(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = check_script_name(request.path_params["script_name"])
    body = await read_json(request)
    items = body.get("deployments") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise SandboxHTTPError(
            "bad_request", 'send {"deployments": [{version_id, created_on, message?}, ...]}'
        )
    loaded = []
    for i, item in enumerate(items):
        where = f"deployments[{i}]."
        if not isinstance(item, dict):
            raise SandboxHTTPError("bad_request", f"deployments[{i}] must be an object")
        raw_versions = item.get("versions")
        if raw_versions is None:
            raw_versions = [{"version_id": item.get("version_id"), "percentage": 100}]
        versions = _versions(raw_versions, where)
        ms = _created_ms(item, where)
        text: dict[str, str | None] = {}
        for key in ("id", "message", "source", "triggered_by", "author_email"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                raise SandboxHTTPError("bad_request", f"{where}{key} must be a string")
            text[key] = value
        seed = f"sandbox:{account}:{script}:{ms}:{versions}"
        dep_id = text["id"] or str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
        loaded.append(
            (
                ms,
                _deployment(
                    dep_id,
                    ms,
                    versions,
                    text["message"],
                    text["source"] or "wrangler",
                    text["triggered_by"] or "upload",
                    text["author_email"] or _AUTHOR,
                ),
            )
        )
    n = ctx.store.deployments.replace(account, script, loaded)
    return {"loaded": n, "script_name": script}


# op name -> (method, path under /client/v4/accounts/{account_id}/workers/scripts, handler)
DEPLOYMENT_HANDLERS: list[tuple[str, str, str, Any]] = [
    ("list_deployments", "GET", "/{script_name}/deployments", list_deployments),
    ("create_deployment", "POST", "/{script_name}/deployments", create_deployment),
]
DEPLOYMENT_ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/accounts/{account_id}/scripts/{script_name}/deployments", load_deployments),
]
