"""The console lines of a run, sorted by (invocation, time).

Consumer lines follow the logging convention of :mod:`edgeinvestigate.models.frames`: one compact JSON
object per ``console.log`` (``batch.received`` per batch, then ``job.completed`` | ``job.retry``
(warn) | ``job.exhausted`` | ``job.dead_lettered`` (error) per processed delivery), plus benign
chatter; the producer logs ``jobs.enqueued`` per request and ``reports.scheduled`` per cron tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np

from edgeinvestigate.simulator._catalog import CHATTER
from edgeinvestigate.simulator._deliveries import Deliveries
from edgeinvestigate.simulator._production import Production
from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario
from edgeinvestigate.simulator._simulation import L_ERROR, L_LOG, L_WARN, LEVELS, OK, PERM, RETRY
from edgeinvestigate.simulator._templates import Templates, per_type_choice, pick_cum
from edgeinvestigate.simulator._texts import Texts
from edgeinvestigate.simulator._timeline import Timeline

__all__ = ["Logs", "log_lines"]

_ENC = msgspec.json.Encoder()


@dataclass
class Logs:
    """Log columns (``l_*``, as in :class:`~._simulation.Simulation`); ``l_off[i]:l_off[i+1]`` are
    invocation i's lines."""

    l_inv: np.ndarray
    l_ts: np.ndarray
    l_level: np.ndarray
    l_text: list[str]
    l_error: list[str | None]  # the error text of warn/error lines (structured error field or the line)
    l_tpl: np.ndarray  # true template of warn/error lines, -1 otherwise
    l_job: np.ndarray  # delivery index of job lines, -1 otherwise
    l_off: np.ndarray


@dataclass
class _Lines:
    """Lines collected group by group (``seq`` orders lines of one invocation at the same ms)."""

    inv: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    seq: list[np.ndarray] = field(default_factory=list)
    level: list[np.ndarray] = field(default_factory=list)
    tpl: list[np.ndarray] = field(default_factory=list)
    job: list[np.ndarray] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    err: list[str | None] = field(default_factory=list)

    def add(self, inv: np.ndarray, ts: np.ndarray, seq: int, level: np.ndarray, tpl: np.ndarray,
            job: np.ndarray, text: list[str], err: list[str | None]) -> None:  # fmt: skip
        self.inv.append(inv)
        self.ts.append(ts)
        self.seq.append(np.full(len(inv), seq, np.int64))
        self.level.append(level)
        self.tpl.append(tpl)
        self.job.append(job)
        self.text.extend(text)
        self.err.extend(err)

    def sorted(self, n_invocations: int) -> Logs:
        l_inv = np.concatenate(self.inv)
        l_ts = np.concatenate(self.ts).astype(np.int64)
        lo = np.lexsort((np.concatenate(self.seq), l_ts, l_inv))
        l_inv = l_inv[lo]
        lo_l = lo.tolist()
        return Logs(
            l_inv=l_inv,
            l_ts=l_ts[lo],
            l_level=np.concatenate(self.level)[lo],
            l_text=[self.text[k] for k in lo_l],
            l_error=[self.err[k] for k in lo_l],
            l_tpl=np.concatenate(self.tpl)[lo],
            l_job=np.concatenate(self.job)[lo],
            l_off=np.searchsorted(l_inv, np.arange(n_invocations + 1)),
        )


def log_lines(
    scenario: Scenario,
    jobs: Production,
    deliveries: Deliveries,
    tl: Timeline,
    templates: Templates,
    texts: Texts,
    d_error: list[str | None],
    rng: np.random.Generator,
) -> Logs:
    """Every line of the run: batch and job lines, chatter, producer lines."""
    lines = _Lines()
    _batch_received(lines, scenario, deliveries, tl, rng)
    d_inv = tl.c_rank[deliveries.d["inv"]]
    _job_lines(lines, scenario, jobs, deliveries, d_inv, d_error)
    _chatter(lines, scenario, jobs, deliveries, d_inv, templates, texts, rng)
    _producer_lines(lines, scenario, jobs, tl)
    return lines.sorted(len(tl.i_ts))


def _consts(n: int, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(level, tpl, job)`` columns of ``n`` plain log lines that are no job's and no error."""
    return np.full(n, level, np.int8), np.full(n, -1, np.int32), np.full(n, -1, np.int64)


def _batch_received(
    lines: _Lines, scenario: Scenario, deliveries: Deliveries, tl: Timeline, rng: np.random.Generator
) -> None:
    b = deliveries.b
    nc = len(b["ts"])
    qname = scenario.system.queue
    backlog = rng.poisson(np.maximum(b["size"] * 2, 1))
    texts = [
        f'{{"event":"batch.received","queue":"{qname}","size":{k},"backlog":{bl}}}'
        for k, bl in zip(b["size"].tolist(), backlog.tolist(), strict=True)
    ]
    lines.add(tl.c_rank, b["ts"] + 1, 0, *_consts(nc, L_LOG), texts, [None] * nc)


def _job_lines(
    lines: _Lines,
    scenario: Scenario,
    jobs: Production,
    deliveries: Deliveries,
    d_inv: np.ndarray,
    d_error: list[str | None],
) -> None:
    """One line per processed delivery, at its end."""
    s, d = scenario.system, deliveries.d
    silent = [k for k, inc in enumerate(scenario.incidents) if inc.kind == "silent_retries"]
    quiet = np.isin(d["cause"], silent) & (d["status"] == RETRY) if silent else False
    logged = np.flatnonzero(np.isin(d["status"], (OK, RETRY, PERM)) & ~quiet)
    sub = d["status"][logged]
    final = d["final"][logged]
    lv = np.full(len(logged), L_LOG, np.int8)
    lv[(sub == RETRY) & ~final] = L_WARN
    lv[(sub == RETRY) & final] = L_ERROR
    lv[sub == PERM] = L_ERROR
    jt_names = [JOB_TYPES[int(x)] for x in jobs.job_type[d["job"][logged]].tolist()]
    jobs_l = d["job"][logged].tolist()
    atts = d["att"][logged].tolist()
    durs = (d["end"] - d["start"])[logged].tolist()
    backoff = [
        int(min(s.backoff_base_s * s.backoff_factor ** (a - 1), s.backoff_max_s)) for a in range(1, 102)
    ]
    # compact JSON exactly as msgspec/JSON.stringify write it (ids and types need no escaping)
    dlq_j = _ENC.encode(s.dlq).decode()
    texts: list[str] = []
    errs: list[str | None] = []
    for k, (di, code, last) in enumerate(zip(logged.tolist(), sub.tolist(), final.tolist(), strict=True)):
        j = jobs_l[k]
        head = (
            f'"jobId":"{jobs.job_ids[j]}","type":"{jt_names[k]}","attempt":{atts[k]},'
            f'"messageId":"{jobs.msg_ids[j]}"'
        )
        if code == OK:
            texts.append(f'{{"event":"job.completed",{head},"durationMs":{durs[k]}}}')
            errs.append(None)
            continue
        err = d_error[di]
        err_j = _ENC.encode(err).decode()
        if code == RETRY and not last:
            texts.append(
                f'{{"event":"job.retry",{head},"error":{err_j},"delaySeconds":{backoff[atts[k] - 1]}}}'
            )
        elif code == RETRY:
            texts.append(f'{{"event":"job.exhausted",{head},"error":{err_j},"maxRetries":{s.max_retries}}}')
        else:
            texts.append(f'{{"event":"job.dead_lettered",{head},"error":{err_j},"dlq":{dlq_j}}}')
        errs.append(err)
    job_tpl = np.where(sub == OK, -1, d["tpl"][logged]).astype(np.int32)
    lines.add(d_inv[logged], d["end"][logged], 2, lv, job_tpl, logged.astype(np.int64), texts, errs)


def _chatter(
    lines: _Lines,
    scenario: Scenario,
    jobs: Production,
    deliveries: Deliveries,
    d_inv: np.ndarray,
    templates: Templates,
    texts: Texts,
    rng: np.random.Generator,
) -> None:
    """Benign lines (some warn) while a delivery is processed."""
    d = deliveries.d
    proc = np.flatnonzero(np.isin(d["status"], (OK, RETRY, PERM)))
    n_ch = rng.poisson(0.45 * scenario.noise, len(proc))
    if not n_ch.sum():
        return
    ch_d = np.repeat(proc, n_ch)
    ch_type = jobs.job_type[d["job"][ch_d]]
    ch_idx, ch_cum = per_type_choice(list(CHATTER), list(range(len(CHATTER))), [c.weight for c in CHATTER])
    ch_local = np.zeros(len(ch_d), np.int32)
    for ti in range(len(JOB_TYPES)):
        m = ch_type == ti
        if m.any():
            ch_local[m] = ch_idx[ti][pick_cum(ch_cum[ti], rng.random(int(m.sum())))]
    ch_tpl = np.array(templates.chatter, dtype=np.int32)[ch_local]
    frac = rng.random(len(ch_d))
    ch_ts = d["start"][ch_d] + (frac * (d["end"][ch_d] - d["start"][ch_d])).astype(np.int64)
    ch_level = np.array([LEVELS.index(CHATTER[k].level) for k in ch_local.tolist()], np.int8)
    ch_str = [str(x) for x in texts.render(ch_tpl, d["job"][ch_d])]
    warn = ch_level >= L_WARN
    ch_err = [x if w else None for x, w in zip(ch_str, warn.tolist(), strict=True)]
    tpl = np.where(warn, ch_tpl, -1).astype(np.int32)
    lines.add(d_inv[ch_d], ch_ts, 1, ch_level, tpl, np.full(len(ch_d), -1, np.int64), ch_str, ch_err)


def _producer_lines(lines: _Lines, scenario: Scenario, jobs: Production, tl: Timeline) -> None:
    qname = scenario.system.queue
    texts = []
    for k in range(len(jobs.p_ts)):
        if jobs.p_trigger[k] == 1:
            line = {
                "event": "jobs.enqueued",
                "queue": qname,
                "type": JOB_TYPES[int(jobs.p_type[k])],
                "count": int(jobs.p_count[k]),
                "tenantId": jobs.tenants[int(jobs.p_tenant[k])],
            }
        else:
            line = {
                "event": "reports.scheduled",
                "queue": qname,
                "cron": scenario.traffic.report_cron,
                "count": int(jobs.p_count[k]),
            }
        texts.append(_ENC.encode(line).decode())
    npi = len(jobs.p_ts)
    ts = jobs.p_ts + 1 + jobs.p_count * 3
    lines.add(tl.p_rank, ts, 0, *_consts(npi, L_LOG), texts, [None] * npi)
