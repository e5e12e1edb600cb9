"""Deep links back to Cloudflare: open a cluster's example events in the dashboard's Workers Logs.

Which sources carry an id for an event (``../shared/reference/cloudflare-formats.md``; the loaders put
them in ``invocations.request_id`` / ``ray_id``, the clusters in each ``example_events`` entry):

============================  ===============================================  =====================
source                        request id                                       ray id
============================  ===============================================  =====================
Workers Logs (API, export)    ``$metadata.requestId`` (``$workers.requestId``)  ``$metadata.rayId``
                              on every line of every trigger                   (fetch only)
Logpush workers_trace_events  none                                             ``Event.RayID``
                                                                               (fetch only)
wrangler tail, TraceItems     none                                             ``cf-ray`` request
                                                                               header (fetch only)
============================  ===============================================  =====================

So the events of a queue consumer can be linked only when they come from Workers Logs; a DLQ
message has no id of its own.

The link needs the account id (:func:`account_id_of`: given, else the bundle's manifest, which
``collect`` fills from the API client) and the script (the event's ``script``).

**UNCONFIRMED URL format.** Cloudflare's documentation states only the account-wide Observability
page, ``https://dash.cloudflare.com/?to=/:account/workers-and-pages/observability`` (Workers docs,
"Query Builder"). The per-Worker path and its query parameters used here are not documented; they
come from public code that builds such links (a Worker's ``.../production/observability/logs``
with ``workers-observability-view``, ``filters`` and ``time`` as URL-encoded JSON)::

    https://dash.cloudflare.com/{account_id}/workers/services/view/{script}/production/observability/logs
        ?workers-observability-view="events"
        &filters=[{"key": "$metadata.requestId", "type": "string", "value": ID, "operation": "eq"}]
        &time={"type": "absolute", "from": MS, "to": MS}

A ray id filters on ``$metadata.rayId`` instead (also UNCONFIRMED). Should the dashboard change,
the link still opens the Worker's logs page; the ids are shown next to it in every table.

Every part of the URL is validated or percent-encoded here: the account id must be 32 hex digits,
ids 1-64 letters, digits and dashes, the script is percent-encoded. A report shows the result as an
``<a href>``: it is the only link a report builds, and never from log text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import pandas as pd

__all__ = [
    "DASHBOARD",
    "LINK_WINDOW",
    "account_id_of",
    "event_link",
    "valid_account_id",
    "workers_logs_url",
]

#: the dashboard's origin (the only host a link may point to)
DASHBOARD: Final = "https://dash.cloudflare.com"
#: the time range a link opens: this long before and after the event
LINK_WINDOW: Final = pd.Timedelta(minutes=10)

_ACCOUNT = re.compile(r"^[0-9a-f]{32}$")
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def valid_account_id(value: Any) -> str | None:
    """``value`` when it is a Cloudflare account id (32 lowercase hex digits), else None."""
    text = str(value or "").strip().lower()
    return text if _ACCOUNT.match(text) else None


def account_id_of(manifest: Mapping[str, Any] | None, given: str = "") -> str | None:
    """The account id for links: ``given``, else the bundle's (``manifest["account_id"]``, written by
    ``collect`` from its API client; a simulated bundle's ground truth), else None."""
    candidates: list[Any] = [given]
    m = manifest or {}
    candidates.append(m.get("account_id"))
    truth = m.get("ground_truth")
    if isinstance(truth, Mapping):
        candidates.append(truth.get("account_id"))
    return next((a for a in map(valid_account_id, candidates) if a), None)


def _param(value: Any) -> str:
    return quote(json.dumps(value, separators=(",", ":")), safe="")


def workers_logs_url(
    account_id: str,
    script: str,
    *,
    request_id: str | None = None,
    ray_id: str | None = None,
    at: Any = None,
    window: pd.Timedelta = LINK_WINDOW,
) -> str | None:
    """The dashboard URL of ``script``'s Workers Logs, filtered to one request (or ray) id and the
    time around ``at`` (see the module docs: UNCONFIRMED format). None when the account id, the
    script or the ids are missing or malformed."""
    account = valid_account_id(account_id)
    if not account or not script or not str(script).strip():
        return None
    key, value = (
        ("$metadata.requestId", request_id)
        if request_id and _ID.match(str(request_id))
        else ("$metadata.rayId", ray_id)
        if ray_id and _ID.match(str(ray_id))
        else (None, None)
    )
    if key is None:
        return None
    params = [
        ("workers-observability-view", _param("events")),
        ("filters", _param([{"key": key, "type": "string", "value": str(value), "operation": "eq"}])),
    ]
    when = pd.Timestamp(at) if at is not None and not pd.isna(at) else None
    if when is not None:
        when = when.tz_localize("UTC") if when.tzinfo is None else when
        lo, hi = (when - window).value // 1_000_000, (when + window).value // 1_000_000
        params.append(("time", _param({"type": "absolute", "from": int(lo), "to": int(hi)})))
    worker = quote(str(script).strip(), safe="")
    path = f"/{account}/workers/services/view/{worker}/production/observability/logs"
    return DASHBOARD + path + "?" + "&".join(f"{k}={v}" for k, v in params)


def event_link(event: Mapping[str, Any], account_id: str | None) -> str | None:
    """The dashboard URL of one example event (a ``Clusters.table`` ``example_events`` entry)."""
    if not account_id or not event.get("script"):
        return None
    return workers_logs_url(
        account_id,
        str(event["script"]),
        request_id=event.get("request_id"),
        ray_id=event.get("ray_id"),
        at=event.get("ts"),
    )
