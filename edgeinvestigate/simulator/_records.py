"""One invocation of the simulation as the runtime's ``TraceItem`` (camelCase, cloudflare-formats A2/A4).

The tail and Tail Worker writers print these objects; the Logpush and Workers Logs writers read the
same per-invocation view (:class:`InvocationView`) and shape it their way, so every format carries
exactly the same invocations, logs and exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeinvestigate.simulator._simulation import LEVELS, Simulation, Version

__all__ = ["InvocationView", "invocations", "trace_item"]

TRIGGER_NAMES = ("queue", "fetch", "scheduled")
_COUNTRY = {"FRA": "DE", "AMS": "NL", "LHR": "GB", "CDG": "FR", "IAD": "US", "SJC": "US", "ORD": "US",
            "DFW": "US", "NRT": "JP", "SIN": "SG", "SYD": "AU", "GRU": "BR"}  # fmt: skip


@dataclass(slots=True)
class InvocationView:
    index: int
    ts: int
    script: str
    version: Version
    trigger: str  # queue | fetch | scheduled
    outcome: str
    cpu: int
    wall: int
    batch: int
    status: int
    request_id: str
    colo: str
    client_ip: str
    logs: list[tuple[int, str, str]]  # (ts, level, the console argument text)
    exceptions: list[tuple[int, str, str, str]]  # (ts, name, message, stack)
    queue: str
    url: str
    cron: str

    @property
    def ray_id(self) -> str:
        return self.request_id


def invocations(sim: Simulation) -> Iterator[InvocationView]:
    """Every invocation in time order."""
    s = sim.scenario.system
    cron = sim.scenario.traffic.report_cron
    url = f"https://{s.producer_host}/v1/jobs"
    ts = sim.i_ts.tolist()
    script = sim.i_script.tolist()
    trig = sim.i_trigger.tolist()
    ver = sim.i_version.tolist()
    cpu = sim.i_cpu.tolist()
    wall = sim.i_wall.tolist()
    batch = sim.i_batch.tolist()
    status = sim.i_status.tolist()
    l_off = sim.l_off.tolist()
    x_off = sim.x_off.tolist()
    l_ts = sim.l_ts.tolist()
    l_level = [LEVELS[k] for k in sim.l_level.tolist()]
    l_text = sim.l_text
    x_ts = sim.x_ts.tolist()
    for i in range(len(ts)):
        a, b = l_off[i], l_off[i + 1]
        xa, xb = x_off[i], x_off[i + 1]
        consumer = script[i] == 0
        yield InvocationView(
            index=i,
            ts=ts[i],
            script=s.consumer_script if consumer else s.producer_script,
            version=sim.versions[ver[i]] if consumer else sim.producer_version,
            trigger=TRIGGER_NAMES[trig[i]],
            outcome=sim.i_outcome[i],
            cpu=cpu[i],
            wall=wall[i],
            batch=batch[i],
            status=status[i],
            request_id=sim.i_request_id[i],
            colo=sim.i_colo[i],
            client_ip=sim.i_client_ip[i],
            logs=list(zip(l_ts[a:b], l_level[a:b], l_text[a:b], strict=True)),
            exceptions=[(x_ts[k], sim.x_name[k], sim.x_message[k], sim.x_stack[k]) for k in range(xa, xb)],
            queue=s.queue,
            url=url,
            cron=cron,
        )


def fetch_request(inv: InvocationView) -> dict[str, Any]:
    return request_of(inv.url, inv.client_ip, inv.request_id, inv.colo)


def request_of(url: str, client_ip: str, request_id: str, colo: str) -> dict[str, Any]:
    """The redacted ``event.request`` of a producer ``POST /v1/jobs``."""
    return {
        "url": url,
        "method": "POST",
        "headers": {
            "accept": "application/json",
            "authorization": "REDACTED",
            "cf-connecting-ip": client_ip,
            "cf-ray": f"{request_id}-{colo}",
            "content-type": "application/json",
            "user-agent": "acme-backend/2.14.1 (+https://acme.io)",
        },
        "cf": {
            "colo": colo,
            "country": _COUNTRY.get(colo, "US"),
            "asn": 16509,
            "httpProtocol": "HTTP/2",
            "tlsVersion": "TLSv1.3",
        },
    }


def view_at(sim: Simulation, i: int) -> InvocationView:
    """The view of invocation ``i`` alone (for the rare records the fast writers cannot build)."""
    s = sim.scenario.system
    a, b = int(sim.l_off[i]), int(sim.l_off[i + 1])
    xa, xb = int(sim.x_off[i]), int(sim.x_off[i + 1])
    consumer = int(sim.i_script[i]) == 0
    return InvocationView(
        index=i,
        ts=int(sim.i_ts[i]),
        script=s.consumer_script if consumer else s.producer_script,
        version=sim.versions[int(sim.i_version[i])] if consumer else sim.producer_version,
        trigger=TRIGGER_NAMES[int(sim.i_trigger[i])],
        outcome=sim.i_outcome[i],
        cpu=int(sim.i_cpu[i]),
        wall=int(sim.i_wall[i]),
        batch=int(sim.i_batch[i]),
        status=int(sim.i_status[i]),
        request_id=sim.i_request_id[i],
        colo=sim.i_colo[i],
        client_ip=sim.i_client_ip[i],
        logs=[(int(sim.l_ts[k]), LEVELS[int(sim.l_level[k])], sim.l_text[k]) for k in range(a, b)],
        exceptions=[
            (int(sim.x_ts[k]), sim.x_name[k], sim.x_message[k], sim.x_stack[k]) for k in range(xa, xb)
        ],
        queue=s.queue,
        url=f"https://{s.producer_host}/v1/jobs",
        cron=sim.scenario.traffic.report_cron,
    )


def trace_event(inv: InvocationView) -> dict[str, Any]:
    """The ``event`` of a TraceItem (A2 variants: queue, fetch, scheduled)."""
    if inv.trigger == "queue":
        return {"queue": inv.queue, "batchSize": inv.batch}
    if inv.trigger == "fetch":
        return {"request": fetch_request(inv), "response": {"status": inv.status}}
    return {"cron": inv.cron, "scheduledTime": inv.ts - (inv.ts % 60_000)}


def trace_item(inv: InvocationView, *, version_detail: bool = False) -> dict[str, Any]:
    """The TraceItem of one invocation, field order as in real ``wrangler tail`` captures.

    ``version_detail`` adds ``tag``/``message`` to ``scriptVersion`` (the TraceItem type has them;
    tail captures show only ``id``).
    """
    ver: dict[str, Any] = {"id": inv.version.id}
    if version_detail:
        ver["tag"] = inv.version.tag
        ver["message"] = inv.version.message
    return {
        "wallTime": inv.wall,
        "cpuTime": inv.cpu,
        "truncated": False,
        "executionModel": "stateless",
        "outcome": inv.outcome,
        "scriptTags": [],
        "scriptVersion": ver,
        "scriptName": inv.script,
        "diagnosticsChannelEvents": [],
        "exceptions": [
            {"name": name, "message": msg, "timestamp": ts, "stack": stack}
            for ts, name, msg, stack in inv.exceptions
        ],
        "logs": [{"message": [text], "level": level, "timestamp": ts} for ts, level, text in inv.logs],
        "eventTimestamp": inv.ts,
        "event": trace_event(inv),
    }
