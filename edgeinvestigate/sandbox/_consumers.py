"""Queue consumers and names: what a consumer may hold, its defaults and ranges, and the name rules.

Two ways in: the admin API (``POST /__admin/accounts/{a}/queues`` with a ``consumer``, lenient: the
settings may sit at the top level of the spec) and the REST API (``PUT .../queues/{q}/consumers/{c}``,
strict, shaped like Cloudflare's ``mq_worker_consumer_request`` / ``mq_http_consumer_request``:
``{type, script_name?, dead_letter_queue?, settings: {...}}``).

The REST PUT **replaces** the consumer (Cloudflare's SDK: "Replaces a Queue consumer"): settings left
out take their defaults and a missing ``dead_letter_queue`` removes it. The consumer keeps its id and
``created_on``. Read the consumer first (``GET .../consumers/{c}``), change what you mean to change, and
send it all back.

Queue names follow Cloudflare's rule (as ``create-cloudflare`` in cloudflare/workers-sdk checks it):
lowercase letters, digits and dashes, 1-63 characters, no dash first or last. Worker script names may
also hold underscores.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edgeinvestigate.sandbox._envelope import SandboxHTTPError

__all__ = [
    "ADMIN_DEFAULTS",
    "API_RANGES",
    "check_queue_name",
    "check_script_name",
    "consumer_from_admin",
    "consumer_from_api",
]

_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SCRIPT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")

ADMIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "worker": {"batch_size": 10, "max_retries": 3, "max_wait_time_ms": 5000, "retry_delay": 0},
    "http_pull": {"batch_size": 5, "max_retries": 3, "retry_delay": 0, "visibility_timeout_ms": 30_000},
}
#: the settings each consumer type takes over REST, with their (low, high) bounds
API_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "worker": {
        "batch_size": (1, 100),
        "max_retries": (0, 100),
        "max_wait_time_ms": (0, 60_000),
        "retry_delay": (0, 43_200),
        "max_concurrency": (1, 250),
    },
    "http_pull": {
        "batch_size": (1, 100),
        "max_retries": (0, 100),
        "retry_delay": (0, 43_200),
        "visibility_timeout_ms": (1, 43_200_000),
    },
}


def check_queue_name(name: Any, what: str = "queue_name") -> str:
    """``name`` if it is a valid queue name, else a 400 saying the rule."""
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise SandboxHTTPError(
            "bad_request",
            f"{what} {name!r} is not a valid queue name: use 1-63 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit (e.g. 'jobs-dlq')",
        )
    return name


def check_script_name(name: Any, what: str = "script name") -> str:
    """``name`` if it is a valid Worker script name, else a 400 saying the rule."""
    if not isinstance(name, str) or not _SCRIPT_NAME.fullmatch(name):
        raise SandboxHTTPError(
            "bad_request",
            f"{what} {name!r} is not a valid Worker name: use 1-63 lowercase letters, digits, dashes and "
            "underscores, starting and ending with a letter or digit (e.g. 'jobs-consumer')",
        )
    return name


def _whole(d: dict[str, Any], key: str, default: int, lo: int, hi: int, where: str = "") -> int:
    value = d.get(key, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
        or not lo <= value <= hi
    ):
        raise SandboxHTTPError(
            "bad_request", f"{where}{key} must be a whole number from {lo} to {hi}, got {value!r}"
        )
    return int(value)


def _dlq(value: Any, queue_name: str | None, where: str) -> str:
    if value is None or value == "":
        return ""
    name = check_queue_name(value, f"{where}dead_letter_queue")
    if name == queue_name:
        raise SandboxHTTPError(
            "bad_request",
            f"{where}dead_letter_queue {name!r} is the queue itself; name another queue (e.g. '{name}-dlq')",
        )
    return name


def consumer_from_admin(spec: dict[str, Any], queue_name: str | None = None) -> dict[str, Any]:
    """The consumer object of an admin queue spec (settings may be given flat or under ``settings``)."""
    ctype = spec.get("type", "http_pull")
    if ctype not in ADMIN_DEFAULTS:
        raise SandboxHTTPError("bad_request", f"consumer.type must be 'worker' or 'http_pull', got {ctype!r}")
    given = dict(spec.get("settings") or {}) | {
        k: v for k, v in spec.items() if k not in ("type", "settings")
    }
    settings: dict[str, Any] = {}
    for key, default in ADMIN_DEFAULTS[ctype].items():
        hi = {"batch_size": 100, "max_retries": 100, "visibility_timeout_ms": 43_200_000}.get(key, 86_400_000)
        settings[key] = _whole(given, key, default, 0 if key != "batch_size" else 1, hi)
    if ctype == "worker" and given.get("max_concurrency") is not None:
        settings["max_concurrency"] = _whole(given, "max_concurrency", 250, 1, 250)
    if not isinstance(given.get("dead_letter_queue") or "", str):
        raise SandboxHTTPError("bad_request", "consumer.dead_letter_queue must be a queue name")
    dlq = _dlq(given.get("dead_letter_queue"), queue_name, "consumer.")
    out: dict[str, Any] = {"type": ctype, "dead_letter_queue": dlq, "settings": settings}
    if ctype == "worker":
        script = given.get("script_name") or given.get("script") or ""
        if not isinstance(script, str) or not script:
            raise SandboxHTTPError("bad_request", "a worker consumer needs consumer.script_name")
        out["script_name"] = script
    return out


_API_KEYS = ("type", "script_name", "dead_letter_queue", "settings")


def consumer_from_api(body: Any, queue_name: str) -> dict[str, Any]:
    """The consumer object of a REST ``PUT .../consumers/{id}`` body (replacement: defaults for the rest)."""
    if not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", "the request body must be a JSON object {type, settings, ...}")
    unknown = sorted(set(body) - set(_API_KEYS))
    if unknown:
        settings_keys = set(API_RANGES["worker"]) | set(API_RANGES["http_pull"])
        hint = " (settings such as max_retries go under 'settings')" if set(unknown) & settings_keys else ""
        raise SandboxHTTPError(
            "bad_request",
            f"unknown field(s) {', '.join(unknown)}; a consumer takes {', '.join(_API_KEYS)}{hint}",
        )
    ctype = body.get("type")
    if ctype not in API_RANGES:
        raise SandboxHTTPError("bad_request", f"type must be 'worker' or 'http_pull', got {ctype!r}")
    settings_in = body.get("settings") or {}
    if not isinstance(settings_in, dict):
        raise SandboxHTTPError("bad_request", "settings must be a JSON object")
    ranges = API_RANGES[ctype]
    unknown = sorted(set(settings_in) - set(ranges))
    if unknown:
        raise SandboxHTTPError(
            "bad_request",
            f"settings.{unknown[0]} is not a setting of a {ctype} consumer (it takes {', '.join(ranges)})",
        )
    settings: dict[str, Any] = {}
    for key, (lo, hi) in ranges.items():
        if key == "max_concurrency":
            if settings_in.get(key) is not None:
                settings[key] = _whole(settings_in, key, hi, lo, hi, "settings.")
            continue
        settings[key] = _whole(settings_in, key, ADMIN_DEFAULTS[ctype][key], lo, hi, "settings.")
    out: dict[str, Any] = {
        "type": ctype,
        "dead_letter_queue": _dlq(body.get("dead_letter_queue"), queue_name, ""),
        "settings": settings,
    }
    if ctype == "worker":
        out["script_name"] = check_script_name(body.get("script_name"), "script_name")
    return out
