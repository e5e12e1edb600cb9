"""The consumer side of a run: every delivery of every job, batch window by batch window.

The consumer Worker (``jobs-consumer``) receives batches (``batch_size`` at most, cut every
``batch_timeout_s``) and processes their messages one after the other: success (ack), transient
error (retry with exponential backoff), permanent error (``{original, error}`` to the DLQ, then ack).
An invocation killed by a limit leaves every message after the killer unprocessed; the runtime
retries them all. A message whose attempts exceed ``max_retries`` is moved raw to the DLQ.

Windows are simulated in time order; inside one window everything is vectorised with numpy. Retries
are scheduled into the window in which they become visible again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from edgeinvestigate.simulator._catalog import NOISE_ERRORS
from edgeinvestigate.simulator._production import Production
from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario
from edgeinvestigate.simulator._simulation import KILLED, OK, PERM, RETRY, SKIPPED
from edgeinvestigate.simulator._templates import Templates, per_type_choice, pick_cum

__all__ = ["Deliveries", "consume"]

_MU_MS = np.log(np.array([380.0, 140.0, 1800.0, 520.0, 230.0]))  # median processing time per type
_CPU_SHARE = np.array([0.35, 0.08, 0.7, 0.2, 0.05])  # cpu/wall per type
_BIG = np.iinfo(np.int64).max

_DELIVERY_COLUMNS = ("job", "att", "inv", "status", "tpl", "cause", "start", "end", "final")
_BATCH_COLUMNS = ("ts", "version", "size", "outcome_tpl", "cpu", "wall")


@dataclass
class Deliveries:
    """Columns of every delivery (``d``) and consumer invocation (``b``), and which deliveries reach
    the DLQ: wrapped by the consumer (permanent errors) or moved raw by the runtime (exhausted)."""

    d: dict[str, np.ndarray]  # job, att, inv (consumer invocation), status, tpl, cause, start, end, final
    b: dict[str, np.ndarray]  # ts, version, size, outcome_tpl, cpu, wall
    dlq_wrapped_idx: np.ndarray
    dlq_raw_idx: np.ndarray


def consume(
    scenario: Scenario, jobs: Production, templates: Templates, rng: np.random.Generator
) -> Deliveries:
    """Deliver every job of ``jobs`` until it succeeds, is dead-lettered or is moved to the DLQ."""
    return _Consumer(scenario, jobs, templates, rng).run()


class _Window:
    """The deliveries due in one batch window (in visibility order), cut into batches.

    Per delivery: ``jobs``, ``att`` (attempt), ``batch_of``, ``pos`` (in its batch), then, filled in
    by :class:`_Consumer` step by step, ``tpl``, ``cause``, ``kill``, ``status``, ``start``, ``end``.
    Per batch (``nb`` of them): ``bstart`` (its first delivery), ``inv_ts``, ``version``, ``bwall``,
    ``bcpu``, ``out_tpl``.
    """

    batch_of: np.ndarray
    nb: int
    bstart: np.ndarray
    pos: np.ndarray
    inv_ts: np.ndarray
    version: np.ndarray
    tpl: np.ndarray
    cause: np.ndarray
    kill: np.ndarray
    has_err: np.ndarray  # an error template before the kills skipped the rest of their batch
    status: np.ndarray
    skipped: np.ndarray
    first_kill: np.ndarray  # per batch: position of the first killed delivery, or _BIG
    has_kill: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bwall: np.ndarray
    bcpu: np.ndarray
    out_tpl: np.ndarray

    def __init__(self, jobs: np.ndarray, att: np.ndarray, vis: np.ndarray) -> None:
        o = np.argsort(vis, kind="stable")
        self.jobs, self.att = jobs[o], att[o]
        self.n = len(self.jobs)

    def cut(self, sizes: np.ndarray) -> None:
        """Batches of ``sizes`` messages: ``batch_of`` each delivery, ``pos`` inside its batch."""
        cs = np.cumsum(sizes)
        self.batch_of = np.searchsorted(cs, np.arange(self.n), side="right")
        self.nb = int(self.batch_of[-1]) + 1
        self.bstart = (cs - sizes)[: self.nb]
        self.pos = np.arange(self.n) - self.bstart[self.batch_of]


class _Consumer:
    """The consumer Worker and the queue's runtime over the whole run: windows in time order, each
    retry scheduled into the window in which it becomes visible again."""

    def __init__(
        self, scenario: Scenario, jobs: Production, templates: Templates, rng: np.random.Generator
    ) -> None:
        s = scenario.system
        self.sc, self.s, self.jobs, self.T, self.rng = scenario, s, jobs, templates, rng
        self.W = int(s.batch_timeout_s * 1000)
        self.max_att = s.max_retries + 1
        p_fill = (s.mean_batch_fill - 1) / (s.batch_size - 1) if s.batch_size > 1 else 0.0
        self.p_fill = min(max(p_fill, 0.0), 1.0)
        self.dep_ms = np.array(scenario.deployment_ms(), dtype=np.int64)
        self.windows = [scenario.incident_window(inc) for inc in scenario.incidents]
        #: consumer stalls: no batch is delivered in these [start, end) windows (epoch ms)
        self.stalls = [
            self.windows[k] for k, inc in enumerate(scenario.incidents) if inc.kind == "consumer_stall"
        ]
        self.dep_tags = [d.tag for d in scenario.deployments]
        self.noise_idx, self.noise_cum = per_type_choice(
            list(NOISE_ERRORS), templates.noise, [n.weight for n in NOISE_ERRORS]
        )
        self.noise_p = 0.025 * scenario.noise
        self.uncaught_p = min(1.0, scenario.uncaught_rate * scenario.noise)
        self.pending: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.heap: list[int] = []
        self.seen: set[int] = set()
        self.D: dict[str, list[np.ndarray]] = {k: [] for k in _DELIVERY_COLUMNS}
        self.B: dict[str, list[np.ndarray]] = {k: [] for k in _BATCH_COLUMNS}
        self.dlq_wrapped: list[np.ndarray] = []  # delivery indices
        self.dlq_raw: list[np.ndarray] = []
        self.n_inv = 0
        self.n_del = 0

    def run(self) -> Deliveries:
        init = self._first_deliveries()
        self.heap = sorted(init)
        heapq.heapify(self.heap)
        self.seen = set(self.heap)
        while self.heap:
            b = heapq.heappop(self.heap)
            self.seen.discard(b)
            if self.stalls and self._postpone(b, init):
                continue
            self._window(b, self._due(b, init))
        return Deliveries(
            d={k: np.concatenate(v) for k, v in self.D.items()},
            b={k: np.concatenate(v) for k, v in self.B.items()},
            dlq_wrapped_idx=np.concatenate(self.dlq_wrapped),
            dlq_raw_idx=np.concatenate(self.dlq_raw),
        )

    def _first_deliveries(self) -> dict[int, np.ndarray]:
        """Jobs by the window of their first delivery."""
        order = np.argsort(self.jobs.job_ts, kind="stable")
        init_bucket = self.jobs.job_ts[order] // self.W
        ub, starts = np.unique(init_bucket, return_index=True)
        ends = [*starts[1:].tolist(), len(order)]
        return {int(b): order[st:en] for b, st, en in zip(ub.tolist(), starts.tolist(), ends, strict=True)}

    def _due(self, b: int, init: dict[int, np.ndarray]) -> _Window:
        """First deliveries and retries that become visible in window ``b``."""
        parts_j, parts_a, parts_v = [], [], []
        if b in init:
            jj = init.pop(b)
            parts_j.append(jj)
            parts_a.append(np.ones(len(jj), np.int16))
            parts_v.append(self.jobs.job_ts[jj])
        for pj, pa, pv in self.pending.pop(b, []):
            parts_j.append(pj)
            parts_a.append(pa)
            parts_v.append(pv)
        return _Window(np.concatenate(parts_j), np.concatenate(parts_a), np.concatenate(parts_v))

    def _window(self, b: int, w: _Window) -> None:
        s, rng = self.s, self.rng
        w.cut(1 + rng.binomial(max(s.batch_size - 1, 0), self.p_fill, size=w.n))
        w.inv_ts = (b + 1) * self.W + np.arange(w.nb) * 3 + rng.integers(0, 400, w.nb)
        w.version = np.searchsorted(self.dep_ms, w.inv_ts, side="right") - 1
        self._errors(w)
        self._statuses(w)
        self._timing(w)
        self._outcomes(w)
        self._settle(w)

    def _postpone(self, b: int, init: dict[int, np.ndarray]) -> bool:
        """During a consumer stall, window ``b``'s deliveries wait for the first window after it."""
        at = (b + 1) * self.W
        end = next((e for a, e in self.stalls if a <= at < e), None)
        if end is None:
            return False
        resume = -(-end // self.W) - 1  # the first window whose batches start at or after the end
        w = self._due(b, init)
        vis = np.full(w.n, end, dtype=np.int64)
        self.pending.setdefault(resume, []).append((w.jobs, w.att.astype(np.int16), vis))
        if resume not in self.seen:
            heapq.heappush(self.heap, resume)
            self.seen.add(resume)
        return True

    def _errors(self, w: _Window) -> None:
        """The error template (or -1) and root cause of each delivery; ``kill`` for limit kills."""
        sc, rng, T, n = self.sc, self.rng, self.T, w.n
        t_ms = w.inv_ts[w.batch_of]
        jt = self.jobs.job_type[w.jobs]
        cause_j = self.jobs.job_cause[w.jobs]
        tpl = np.full(n, -1, dtype=np.int32)
        cause = np.full(n, -1, dtype=np.int32)
        kill = np.zeros(n, dtype=bool)
        for k, inc in enumerate(sc.incidents):
            a, e = self.windows[k]
            if inc.kind == "consumer_stall":
                continue  # no errors: the consumer just receives nothing (see _postpone)
            if inc.kind == "cpu_limits":
                m = cause_j == k
                kill |= m
            elif inc.kind == "poison_payload":
                m = (cause_j == k) & (tpl < 0)
            elif inc.kind == "bad_deploy":
                vi = self.dep_tags.index(inc.deployment or "")
                m = (
                    (jt == JOB_TYPES.index(inc.job_type))
                    & (w.version[w.batch_of] == vi)
                    & (tpl < 0)
                    & (rng.random(n) < inc.rate)
                )
            else:  # dependency_outage
                m = (
                    (jt == JOB_TYPES.index(inc.job_type))
                    & (t_ms >= a)
                    & (t_ms < e)
                    & (tpl < 0)
                    & (rng.random(n) < inc.rate)
                )
            cnt = int(m.sum())
            if cnt:
                choice = pick_cum(T.incident_w[k], rng.random(cnt))
                tpl[m] = np.array(T.incident_tpls[k], dtype=np.int32)[choice]
                cause[m] = k
        noisy = (tpl < 0) & (rng.random(n) < self.noise_p)
        for ti in range(len(JOB_TYPES)):
            m = noisy & (jt == ti)
            cnt = int(m.sum())
            if cnt:
                tpl[m] = self.noise_idx[ti][pick_cum(self.noise_cum[ti], rng.random(cnt))]
        w.tpl, w.cause, w.kill = tpl, cause, kill

    def _statuses(self, w: _Window) -> None:
        """Statuses: a kill skips the rest of its batch (collateral of the killer's root cause)."""
        status = np.full(w.n, OK, dtype=np.int8)
        has_err = w.has_err = w.tpl >= 0
        trans = np.zeros(w.n, dtype=bool)
        trans[has_err] = self.T.transient[w.tpl[has_err]]
        status[has_err & trans] = RETRY
        status[has_err & ~trans] = PERM
        status[w.kill] = KILLED

        killpos = np.where(w.kill, w.pos, _BIG)
        first_kill = np.minimum.reduceat(killpos, w.bstart)
        batch_cause = np.full(w.nb, -1, dtype=np.int32)
        has_kill = first_kill < _BIG
        if has_kill.any():
            killer = w.bstart[has_kill] + first_kill[has_kill]
            batch_cause[has_kill] = w.cause[killer]
        skipped = w.pos > first_kill[w.batch_of]
        status[skipped] = SKIPPED
        w.tpl[skipped] = -1
        w.cause[skipped] = batch_cause[w.batch_of][skipped]
        w.status, w.skipped, w.first_kill, w.has_kill = status, skipped, first_kill, has_kill

    def _timing(self, w: _Window) -> None:
        """Processing time of each delivery (one after the other), wall and CPU time of each batch."""
        rng = self.rng
        jt = self.jobs.job_type[w.jobs]
        killed_now = w.status == KILLED
        dur = np.exp(_MU_MS[jt] + 0.6 * rng.standard_normal(w.n))
        dur[w.has_err] *= 1.6
        dur = np.maximum(dur.astype(np.int64), 3)
        dur[killed_now] = 30_000 + rng.integers(0, 1500, int(killed_now.sum()))
        dur[w.skipped] = 0
        csd = np.cumsum(dur)
        before = csd - dur
        w.start = w.inv_ts[w.batch_of] + 2 + before - before[w.bstart][w.batch_of] + w.pos
        w.end = w.start + dur
        w.bwall = np.add.reduceat(dur, w.bstart) + 4 + rng.integers(0, 6, w.nb)
        cpu_each = (dur * _CPU_SHARE[jt]).astype(np.int64)
        w.bcpu = np.add.reduceat(cpu_each, w.bstart) + 1

    def _outcomes(self, w: _Window) -> None:
        """The batch outcome: the killer's template (exceededCpu/...) or an uncaught noise bug."""
        rng, T = self.rng, self.T
        out_tpl = np.full(w.nb, -1, dtype=np.int32)
        has_kill = w.has_kill
        if has_kill.any():
            killer = w.bstart[has_kill] + w.first_kill[has_kill]
            out_tpl[has_kill] = w.tpl[killer]
            is_cpu = np.array([T.info[int(x)].outcome == "exceededCpu" for x in w.tpl[killer]], dtype=bool)
            kidx = np.flatnonzero(has_kill)
            w.bcpu[kidx[is_cpu]] = 30_000 + rng.integers(0, 40, int(is_cpu.sum()))
        unc = (~has_kill) & (rng.random(w.nb) < self.uncaught_p)
        cu = int(unc.sum())
        if cu:
            out_tpl[unc] = np.array(T.uncaught, dtype=np.int32)[rng.integers(0, len(T.uncaught), cu)]
        w.out_tpl = out_tpl

    def _settle(self, w: _Window) -> None:
        """Schedule the retries, note the DLQ arrivals, append the window to the columns."""
        final = w.att >= self.max_att
        again = np.isin(w.status, (RETRY, KILLED, SKIPPED))
        retry_m = again & ~final
        if retry_m.any():
            self._schedule(w, retry_m)
        idx = self.n_del + np.arange(w.n)
        self.dlq_wrapped.append(idx[w.status == PERM])
        self.dlq_raw.append(idx[again & final])
        columns = (w.jobs, w.att, self.n_inv + w.batch_of, w.status, w.tpl, w.cause, w.start, w.end, final)
        for key, col in zip(_DELIVERY_COLUMNS, columns, strict=True):
            self.D[key].append(col)
        size = np.diff(np.append(w.bstart, w.n))
        batches = (w.inv_ts, w.version, size, w.out_tpl, w.bcpu, w.bwall)
        for key, col in zip(_BATCH_COLUMNS, batches, strict=True):
            self.B[key].append(col)
        self.n_inv += w.nb
        self.n_del += w.n

    def _schedule(self, w: _Window, retry_m: np.ndarray) -> None:
        """Retried deliveries become visible after their backoff (transient errors) or the queue's
        retry delay (a killed batch), in a later window."""
        s, rng = self.s, self.rng
        delay = np.where(
            w.status == RETRY,
            np.minimum(s.backoff_base_s * s.backoff_factor ** (w.att - 1.0), s.backoff_max_s)
            * (0.8 + 0.4 * rng.random(w.n)),
            s.retry_delay_s + rng.random(w.n),
        )
        b_end = w.inv_ts + w.bwall
        nvis = np.where(w.status == RETRY, w.end, b_end[w.batch_of]) + (delay * 1000).astype(np.int64)
        nvis = nvis[retry_m]
        nb_of = nvis // self.W
        nj, na = w.jobs[retry_m], (w.att[retry_m] + 1).astype(np.int16)
        for bb in np.unique(nb_of).tolist():
            sel = nb_of == bb
            self.pending.setdefault(bb, []).append((nj[sel], na[sel], nvis[sel]))
            if bb not in self.seen:
                heapq.heappush(self.heap, bb)
                self.seen.add(bb)
