"""Fast byte-level serialisation of the per-invocation records (the writers' hot path).

Building a dict per invocation and per log line costs more than everything else at a million
invocations, so the writers assemble compact JSON from pre-encoded fragments instead: every log text
is JSON-encoded once (``msgspec``), every fragment that does not vary is a constant. The output is
byte-identical to ``msgspec.json.encode`` of the dicts built by :mod:`._records` (tested), which
stay the readable reference of each shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np

from edgeinvestigate.simulator._logpush_record import CAP, logpush_record
from edgeinvestigate.simulator._records import request_of, view_at
from edgeinvestigate.simulator._simulation import LEVELS, Simulation

__all__ = ["logpush_lines", "trace_item_lines"]

_ENC = msgspec.json.Encoder()


class _Prepared:
    """Per-run encoded pieces shared by the writers."""

    def __init__(self, sim: Simulation) -> None:
        enc = _ENC.encode
        s = sim.scenario.system
        self.sim = sim
        self.ts = sim.i_ts.tolist()
        self.script = sim.i_script.tolist()
        self.trig = sim.i_trigger.tolist()
        self.ver = sim.i_version.tolist()
        self.cpu = sim.i_cpu.tolist()
        self.wall = sim.i_wall.tolist()
        self.batch = sim.i_batch.tolist()
        self.l_off = sim.l_off.tolist()
        self.x_off = sim.x_off.tolist()
        self.l_ts = sim.l_ts.tolist()
        self.level_names = [LEVELS[k] for k in sim.l_level.tolist()]
        self.text_json = [enc(t) for t in sim.l_text]
        self.text_len = np.fromiter((len(t) for t in sim.l_text), dtype=np.int64, count=len(sim.l_text))
        self.scripts = [enc(s.consumer_script), enc(s.producer_script)]
        versions = [*sim.versions, sim.producer_version]
        self.v_id = [enc({"id": v.id}) for v in versions]
        self.v_detail = [enc({"id": v.id, "tag": v.tag, "message": v.message}) for v in versions]
        self.v_logpush = [enc({"ID": v.id, "Message": v.message, "Tag": v.tag}) for v in versions]
        self.queue = enc(s.queue)
        self.cron = enc(sim.scenario.traffic.report_cron)
        self.outcomes = {o: enc(o) for o in set(sim.i_outcome)}
        self.status = sim.i_status.tolist()
        self.url = f"https://{s.producer_host}/v1/jobs"

    def version_index(self, i: int) -> int:
        return self.ver[i] if self.script[i] == 0 else len(self.sim.versions)


def _exc_trace(sim: Simulation, a: int, b: int) -> bytes:
    if a == b:
        return b"[]"
    items = [
        {
            "name": sim.x_name[k],
            "message": sim.x_message[k],
            "timestamp": int(sim.x_ts[k]),
            "stack": sim.x_stack[k],
        }
        for k in range(a, b)
    ]
    return _ENC.encode(items)


def _event_trace(p: _Prepared, i: int) -> bytes:
    trig = p.trig[i]
    if trig == 0:
        return b'{"queue":%b,"batchSize":%d}' % (p.queue, p.batch[i])
    if trig == 2:
        return b'{"cron":%b,"scheduledTime":%d}' % (p.cron, p.ts[i] - p.ts[i] % 60_000)
    sim = p.sim
    req = request_of(p.url, sim.i_client_ip[i], sim.i_request_id[i], sim.i_colo[i])
    return _ENC.encode({"request": req, "response": {"status": p.status[i]}})


def trace_item_lines(sim: Simulation, *, version_detail: bool = False) -> Iterator[bytes]:
    """Compact JSON of every invocation's TraceItem, in time order."""
    p = _Prepared(sim)
    versions = p.v_detail if version_detail else p.v_id
    frag = [
        b'{"message":[%b],"level":"%b","timestamp":%d}' % (tj, lv.encode(), ts)
        for tj, lv, ts in zip(p.text_json, p.level_names, p.l_ts, strict=True)
    ]
    for i in range(len(p.ts)):
        a, b = p.l_off[i], p.l_off[i + 1]
        yield (
            b'{"wallTime":%d,"cpuTime":%d,"truncated":false,"executionModel":"stateless","outcome":%b,'
            b'"scriptTags":[],"scriptVersion":%b,"scriptName":%b,"diagnosticsChannelEvents":[],'
            b'"exceptions":%b,"logs":[%b],"eventTimestamp":%d,"event":%b}'
            % (
                p.wall[i],
                p.cpu[i],
                p.outcomes[sim.i_outcome[i]],
                versions[p.version_index(i)],
                p.scripts[p.script[i]],
                _exc_trace(sim, p.x_off[i], p.x_off[i + 1]),
                b",".join(frag[a:b]),
                p.ts[i],
                _event_trace(p, i),
            )
        )


def logpush_lines(sim: Simulation) -> Iterator[tuple[int, bytes]]:
    """``(EventTimestampMs, NDJSON record)`` of every invocation, in time order."""
    p = _Prepared(sim)
    frag = [
        b'{"Level":"%b","Message":[%b],"TimestampMs":%d}' % (lv.encode(), tj, ts)
        for tj, lv, ts in zip(p.text_json, p.level_names, p.l_ts, strict=True)
    ]
    # characters of logs + exceptions per invocation, for Logpush's 16,384-character cap
    n = len(p.ts)
    log_chars = np.zeros(n, dtype=np.int64)
    if len(p.text_len):
        np.add.at(log_chars, sim.l_inv, p.text_len)
    exc_chars = np.zeros(n, dtype=np.int64)
    for k in range(len(sim.x_message)):
        exc_chars[sim.x_inv[k]] += len(sim.x_name[k]) + len(sim.x_message[k])
    over = set(np.flatnonzero(log_chars + exc_chars > CAP).tolist())
    url = _ENC.encode(p.url)
    event_type = [b'"queue"', b'"fetch"', b'"scheduled"']
    for i in range(n):
        if i in over:
            yield p.ts[i], _ENC.encode(logpush_record(view_at(sim, i)))
            continue
        trig = p.trig[i]
        if trig == 0:
            event = b'{"Queue":%b,"BatchSize":%d}' % (p.queue, p.batch[i])
        elif trig == 2:
            event = b'{"Cron":%b,"ScheduledTimeMs":%d}' % (p.cron, p.ts[i] - p.ts[i] % 60_000)
        else:
            event = b'{"RayID":%b,"Request":{"URL":%b,"Method":"POST"},"Response":{"Status":%d}}' % (
                _ENC.encode(sim.i_request_id[i]),
                url,
                p.status[i],
            )
        xa, xb = p.x_off[i], p.x_off[i + 1]
        exc = (
            _ENC.encode(
                [
                    {"Name": sim.x_name[k], "Message": sim.x_message[k], "TimestampMs": int(sim.x_ts[k])}
                    for k in range(xa, xb)
                ]
            )
            if xb > xa
            else b"[]"
        )
        a, b = p.l_off[i], p.l_off[i + 1]
        yield (
            p.ts[i],
            b'{"CPUTimeMs":%d,"DispatchNamespace":"","Entrypoint":"","Event":%b,"EventTimestampMs":%d,'
            b'"EventType":%b,"Exceptions":%b,"Logs":[%b],"Outcome":%b,"ScriptName":%b,"ScriptTags":[],'
            b'"ScriptVersion":%b,"WallTimeMs":%d}'
            % (
                p.cpu[i],
                event,
                p.ts[i],
                event_type[trig],
                exc,
                b",".join(frag[a:b]),
                p.outcomes[sim.i_outcome[i]],
                p.scripts[p.script[i]],
                p.v_logpush[p.version_index(i)],
                p.wall[i],
            ),
        )
