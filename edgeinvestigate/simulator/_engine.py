"""The simulation engine: producer, queue, consumer batches, retries, DLQ, over a time window.

The system is the one of ``processing-architecture.md``:

- a producer Worker (``jobs-api``) enqueues ``QueueMessage {type, payload, metadata}`` jobs on the
  immediate queue from HTTP requests (``POST /v1/jobs``) and, for reports, from a cron trigger;
- a consumer Worker (``jobs-consumer``) receives batches (``batch_size`` at most, cut every
  ``batch_timeout_s``), processes messages one after the other, ``ack()``s successes,
  ``retry({delaySeconds})``s transient errors with exponential backoff, sends permanent errors to the
  DLQ as ``{original, error}`` then acks; the runtime moves a message whose attempts exceed
  ``max_retries`` to the DLQ unchanged (raw body, same id and timestamp);
- an invocation killed by a limit (``exceededCpu``/``exceededWallTime``) leaves every message after
  the killer unprocessed and unacked: the runtime retries them all.

The simulation is time-stepped by batch window (vectorised with numpy inside a window, so a million
invocations take seconds). Error texts are rendered at the end, one template at a time.
"""

from __future__ import annotations

import hashlib
import heapq
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from edgeinvestigate.simulator._catalog import CHATTER, NOISE_ERRORS, UNCAUGHT
from edgeinvestigate.simulator._payloads import JobPayloads, context_of
from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario
from edgeinvestigate.simulator._values import Template, hex_ids, job_ids

__all__ = ["LEVELS", "Simulation", "TemplateInfo", "run"]

LEVELS = ("debug", "info", "log", "warn", "error")
L_DEBUG, L_INFO, L_LOG, L_WARN, L_ERROR = range(5)

# delivery status
OK, RETRY, PERM, KILLED, SKIPPED = range(5)
STATUS_NAMES = ("ok", "retry", "permanent", "killed", "skipped")

_MU_MS = np.log(np.array([380.0, 140.0, 1800.0, 520.0, 230.0]))  # median processing time per type
_CPU_SHARE = np.array([0.35, 0.08, 0.7, 0.2, 0.05])  # cpu/wall per type
_ENC = msgspec.json.Encoder()

_LIMIT_STACK = (
    "{name}: {message}\n    at generateReport (index.js:233:11)\n    at async Object.queue (index.js:71:9)"
)
_UNCAUGHT_STACK = (
    "{name}: {message}\n    at flushMetrics (index.js:412:17)\n    at async Object.queue (index.js:88:5)"
)


@dataclass(frozen=True)
class TemplateInfo:
    """A true message template of the run: id, ``<*>`` text, kind, and the root cause it belongs to."""

    id: str
    text: str
    kind: str  # transient | permanent | benign | limit
    source: str  # incident | noise | uncaught | chatter
    name: str = "Error"
    incident: str | None = None
    outcome: str | None = None


@dataclass
class Version:
    id: str
    tag: str
    message: str
    at_ms: int
    script: str


@dataclass
class Simulation:
    """Everything a writer needs: columnar arrays (numpy) and string lists, all index-aligned."""

    scenario: Scenario
    seed: int
    account_id: str
    queue_ids: dict[str, str]
    versions: list[Version]
    producer_version: Version
    templates: list[TemplateInfo]
    # jobs (one per produced message)
    job_type: np.ndarray
    job_ts: np.ndarray
    job_tenant: np.ndarray
    job_ids: list[str]
    msg_ids: list[str]
    tenants: list[str]
    payloads: JobPayloads
    job_cause: np.ndarray  # incident index flagged at production (poison / heavy), -1 otherwise
    # deliveries
    d_job: np.ndarray
    d_attempt: np.ndarray
    d_inv: np.ndarray
    d_status: np.ndarray
    d_tpl: np.ndarray
    d_cause: np.ndarray  # incident index responsible (incl. collateral of a kill), -1 otherwise
    d_start: np.ndarray
    d_end: np.ndarray
    d_final: np.ndarray
    d_error: list[str | None]
    # invocations (sorted by ts)
    i_ts: np.ndarray
    i_script: np.ndarray  # 0 consumer, 1 producer
    i_trigger: np.ndarray  # 0 queue, 1 fetch, 2 scheduled
    i_version: np.ndarray  # index into versions (consumer) or -1 (producer)
    i_outcome: list[str]
    i_cpu: np.ndarray
    i_wall: np.ndarray
    i_batch: np.ndarray
    i_status: np.ndarray  # fetch response status
    i_request_id: list[str]
    i_colo: list[str]
    i_client_ip: list[str]
    # logs, sorted by (invocation, ts); l_off[i]:l_off[i+1] are invocation i's
    l_inv: np.ndarray
    l_ts: np.ndarray
    l_level: np.ndarray
    l_text: list[str]
    l_error: list[str | None]  # the error text of warn/error lines (structured error field or the line)
    l_tpl: np.ndarray  # true template of warn/error lines, -1 otherwise
    l_job: np.ndarray  # delivery index of job lines, -1 otherwise
    l_off: np.ndarray
    # exceptions, sorted by invocation; x_off like l_off
    x_inv: np.ndarray
    x_ts: np.ndarray
    x_name: list[str]
    x_message: list[str]
    x_stack: list[str]
    x_tpl: np.ndarray
    x_off: np.ndarray
    # DLQ messages in arrival order
    dlq: list[dict[str, Any]] = field(default_factory=list)
    dlq_info: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_invocations(self) -> int:
        return len(self.i_ts)

    def queue_message(self, j: int) -> dict[str, Any]:
        """The ``QueueMessage`` body of job ``j`` as the producer sent it."""
        return {
            "type": JOB_TYPES[int(self.job_type[j])],
            "payload": self.payloads(j),
            "metadata": {"attempts": 0, "originalTimestamp": _iso(int(self.job_ts[j]))},
        }


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")) + "Z"


def _stable_hex(*parts: str, k: int = 32) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:k]


class _Templates:
    """The registry of every true template of a run (indices are what arrays store)."""

    def __init__(self, scenario: Scenario) -> None:
        self.info: list[TemplateInfo] = []
        self.spec: list[Template] = []
        self.incident_tpls: list[list[int]] = []
        self.incident_w: list[np.ndarray] = []
        for inc in scenario.incidents:
            idx = []
            for k, err in enumerate(inc.errors):
                tid = f"{inc.id}#{k + 1}"
                kind = (
                    "limit"
                    if inc.kind == "cpu_limits"
                    else ("transient" if inc.is_transient else "permanent")
                )
                t = Template(tid, err.template, kind=kind, name=err.name)
                outcome = err.outcome if inc.kind == "cpu_limits" else None
                idx.append(self._add(t, "incident", inc.id, outcome))
            self.incident_tpls.append(idx)
            w = np.array([e.weight for e in inc.errors], dtype=float)
            self.incident_w.append(np.cumsum(w / w.sum()))
        self.noise: list[int] = [self._add(n.template, "noise") for n in NOISE_ERRORS]
        self.uncaught: list[int] = [self._add(t, "uncaught") for t in UNCAUGHT]
        self.chatter: list[int] = [self._add(c.template, "chatter") for c in CHATTER]
        self.transient = np.array([i.kind == "transient" for i in self.info])

    def _add(self, t: Template, source: str, incident: str | None = None, outcome: str | None = None) -> int:
        self.info.append(
            TemplateInfo(t.id, t.text, t.kind, source, name=t.name, incident=incident, outcome=outcome)
        )
        self.spec.append(t)
        return len(self.info) - 1


def _per_type_choice(
    items: list[Any], tpl_idx: list[int], weights: list[float]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each job type: the global template indices that apply and their cumulative weights."""
    idx_by_type, cum_by_type = [], []
    for jt in JOB_TYPES:
        sel = [k for k, it in enumerate(items) if "*" in it.job_types or jt in it.job_types]
        w = np.array([weights[k] for k in sel], dtype=float)
        idx_by_type.append(np.array([tpl_idx[k] for k in sel], dtype=np.int32))
        cum_by_type.append(np.cumsum(w / w.sum()))
    return idx_by_type, cum_by_type


def _pick_cum(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def estimate_jobs(scenario: Scenario, invocations: int) -> int:
    """How many jobs give about ``invocations`` invocations in this scenario's window."""
    s = scenario.system
    mix = scenario.traffic.mix
    total = sum(mix.values())
    report_share = mix.get("REPORT_GENERATION", 0.0) / total
    minutes = scenario.duration_minutes
    n_cron = int(np.ceil(minutes / scenario.traffic.report_cron_minutes))
    n_buckets = max(1.0, minutes * 60.0 / s.batch_timeout_s)
    # consumer invocations per bucket from the batch chunking, for a delivery rate lam per bucket
    rng = np.random.default_rng(12345)
    p = (s.mean_batch_fill - 1) / (s.batch_size - 1) if s.batch_size > 1 else 0.0
    p = min(max(p, 0.0), 1.0)
    mean_size = 1 + max(s.batch_size - 1, 0) * p
    jobs = float(invocations) * 0.5
    for _ in range(8):
        lam = jobs * 1.1 / n_buckets
        if lam < 40:
            jpr = scenario.traffic.jobs_per_request
            nreq = rng.poisson(lam / jpr, 4000)
            counts = nreq + rng.poisson(nreq * (jpr - 1))
            sizes = 1 + rng.binomial(max(s.batch_size - 1, 0), p, size=(4000, 128))
            cs = np.cumsum(sizes, axis=1)
            per_bucket = ((cs < counts[:, None]).sum(axis=1) + (counts > 0)).mean()
        else:
            per_bucket = lam / mean_size + 0.5
        fetch = jobs * (1 - report_share) / scenario.traffic.jobs_per_request
        est = per_bucket * n_buckets + fetch + n_cron
        jobs = max(1.0, jobs * invocations / max(est, 1.0))
    return max(1, round(jobs))


def run(scenario: Scenario, seed: int = 0, invocations: int | None = None) -> Simulation:
    """Simulate ``scenario`` with about ``invocations`` invocations (default: the scenario's size)."""
    return _Run(scenario, seed, invocations or scenario.invocations).simulate()


class _Run:
    def __init__(self, scenario: Scenario, seed: int, invocations: int) -> None:
        self.sc = scenario
        self.sys = scenario.system
        self.seed = seed
        self.rng = np.random.default_rng([seed, 0x5EED])
        self.target = invocations
        self.T = _Templates(scenario)

    # ---------------------------------------------------------------- producer
    def _produce(self) -> None:
        sc, rng = self.sc, self.rng
        t0, t1 = sc.start_ms, sc.end_ms
        jobs_total = estimate_jobs(sc, self.target)
        mix_d: dict[str, float] = {str(k): v for k, v in sc.traffic.mix.items()}
        mix = np.array([mix_d.get(t, 0.0) for t in JOB_TYPES], dtype=float)
        mix = mix / mix.sum()
        r_idx = JOB_TYPES.index("REPORT_GENERATION")
        n_report = round(jobs_total * mix[r_idx])
        n_other = max(0, jobs_total - n_report)

        # tenants (Zipf-like popularity)
        n_ten = sc.traffic.tenants
        tenant_ids = sorted({int(v) for v in rng.choice(np.arange(1000, 9999), n_ten, replace=False)})
        self.tenants = [f"t_{v}" for v in tenant_ids]
        pop = 1.0 / np.arange(1, len(self.tenants) + 1) ** 1.1
        pop_cum = np.cumsum(pop / pop.sum())

        # HTTP requests: each enqueues k jobs of one type for one tenant
        other_mix = mix.copy()
        other_mix[r_idx] = 0.0
        other_cum = np.cumsum(other_mix / max(other_mix.sum(), 1e-12))
        jpr = sc.traffic.jobs_per_request
        n_req = max(1, round(n_other / jpr)) if n_other else 0
        req_ts = np.sort(rng.integers(t0, t1, n_req)) if n_req else np.zeros(0, dtype=np.int64)
        req_k = 1 + rng.poisson(jpr - 1, n_req)
        req_type = _pick_cum(other_cum, rng.random(n_req))
        req_tenant = _pick_cum(pop_cum, rng.random(n_req))

        # cron: REPORT_GENERATION jobs at every cron tick
        period = sc.traffic.report_cron_minutes * 60_000
        first_tick = -(-t0 // period) * period
        cron_ts = np.arange(first_tick, t1, period, dtype=np.int64)
        cron_ts = cron_ts + rng.integers(5, 900, len(cron_ts))
        cron_k = (
            rng.multinomial(n_report, np.full(len(cron_ts), 1.0 / len(cron_ts)))
            if len(cron_ts)
            else np.zeros(0, dtype=np.int64)
        )

        # producer invocations: fetch requests then cron ticks
        self.p_ts = np.concatenate([req_ts, cron_ts]).astype(np.int64)
        self.p_trigger = np.concatenate([np.ones(n_req, np.int8), np.full(len(cron_ts), 2, np.int8)])
        self.p_count = np.concatenate([req_k, cron_k]).astype(np.int64)
        self.p_type = np.concatenate([req_type, np.full(len(cron_ts), r_idx)]).astype(np.int8)
        self.p_tenant = np.concatenate([req_tenant, np.full(len(cron_ts), -1)]).astype(np.int32)

        n_p = len(self.p_ts)
        p_of_job = np.repeat(np.arange(n_p), self.p_count)
        J = len(p_of_job)
        within = np.arange(J) - np.repeat(np.cumsum(self.p_count) - self.p_count, self.p_count)
        self.job_ts = self.p_ts[p_of_job] + 2 + within * 3 + rng.integers(0, 3, J)
        self.job_type = self.p_type[p_of_job].astype(np.int8)
        ten = self.p_tenant[p_of_job].copy()
        cron_jobs = ten < 0
        ten[cron_jobs] = _pick_cum(pop_cum, rng.random(int(cron_jobs.sum())))
        self.job_tenant = ten.astype(np.int32)
        self.job_p = p_of_job
        self.msg_ids = hex_ids(rng, J, 32)
        self.job_ids = job_ids(rng, J, self.job_ts)

        # production-time root causes: poison payloads and heavy jobs
        self.job_cause = np.full(J, -1, dtype=np.int32)
        self.poison: dict[int, tuple[str, str]] = {}
        for k, inc in enumerate(sc.incidents):
            if inc.kind not in ("poison_payload", "cpu_limits"):
                continue
            a, b = sc.incident_window(inc)
            m = (
                (self.job_type == JOB_TYPES.index(inc.job_type))
                & (self.job_ts >= a)
                & (self.job_ts < b)
                & (rng.random(J) < inc.rate)
                & (self.job_cause < 0)
            )
            self.job_cause[m] = k
            if inc.kind == "poison_payload":
                vals = rng.integers(0, len(inc.bad_values), int(m.sum()))
                for j, v in zip(np.flatnonzero(m).tolist(), vals.tolist(), strict=True):
                    self.poison[j] = (inc.field or "", inc.bad_values[v])

    # ---------------------------------------------------------------- consumer
    def _consume(self) -> None:
        sc, s, rng, T = self.sc, self.sys, self.rng, self.T
        W = int(s.batch_timeout_s * 1000)
        max_att = s.max_retries + 1
        p_fill = (s.mean_batch_fill - 1) / (s.batch_size - 1) if s.batch_size > 1 else 0.0
        p_fill = min(max(p_fill, 0.0), 1.0)
        dep_ms = np.array(sc.deployment_ms(), dtype=np.int64)
        windows = [sc.incident_window(inc) for inc in sc.incidents]
        dep_tags = [d.tag for d in sc.deployments]

        noise_idx, noise_cum = _per_type_choice(list(NOISE_ERRORS), T.noise, [n.weight for n in NOISE_ERRORS])
        noise_p = 0.025 * sc.noise
        uncaught_p = min(1.0, sc.uncaught_rate * sc.noise)

        # initial deliveries, by bucket
        order = np.argsort(self.job_ts, kind="stable")
        init_bucket = self.job_ts[order] // W
        ub, starts = np.unique(init_bucket, return_index=True)
        init = {
            int(b): order[st:en]
            for b, st, en in zip(
                ub.tolist(), starts.tolist(), [*starts[1:].tolist(), len(order)], strict=True
            )
        }
        pending: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        buckets = set(init)

        D: dict[str, list[np.ndarray]] = {
            k: [] for k in ["job", "att", "inv", "status", "tpl", "cause", "start", "end", "final"]
        }
        B: dict[str, list[np.ndarray]] = {
            k: [] for k in ["ts", "version", "size", "outcome_tpl", "cpu", "wall"]
        }
        dlq_wrapped: list[np.ndarray] = []  # delivery indices
        dlq_raw: list[np.ndarray] = []
        n_inv = 0
        n_del = 0

        heap = sorted(buckets)
        heapq.heapify(heap)
        seen = set(heap)
        while heap:
            b = heapq.heappop(heap)
            seen.discard(b)
            parts_j, parts_a, parts_v = [], [], []
            if b in init:
                jj = init.pop(b)
                parts_j.append(jj)
                parts_a.append(np.ones(len(jj), np.int16))
                parts_v.append(self.job_ts[jj])
            for pj, pa, pv in pending.pop(b, []):
                parts_j.append(pj)
                parts_a.append(pa)
                parts_v.append(pv)
            jobs = np.concatenate(parts_j)
            att = np.concatenate(parts_a)
            vis = np.concatenate(parts_v)
            o = np.argsort(vis, kind="stable")
            jobs, att, vis = jobs[o], att[o], vis[o]
            n = len(jobs)

            sizes = 1 + rng.binomial(max(s.batch_size - 1, 0), p_fill, size=n)
            cs = np.cumsum(sizes)
            batch_of = np.searchsorted(cs, np.arange(n), side="right")
            nb = int(batch_of[-1]) + 1
            bstart = (cs - sizes)[:nb]
            pos = np.arange(n) - bstart[batch_of]
            inv_ts = (b + 1) * W + np.arange(nb) * 3 + rng.integers(0, 400, nb)
            version = np.searchsorted(dep_ms, inv_ts, side="right") - 1
            t_ms = inv_ts[batch_of]
            jt = self.job_type[jobs]
            cause_j = self.job_cause[jobs]

            tpl = np.full(n, -1, dtype=np.int32)
            cause = np.full(n, -1, dtype=np.int32)
            kill = np.zeros(n, dtype=bool)
            for k, inc in enumerate(sc.incidents):
                a, e = windows[k]
                if inc.kind == "cpu_limits":
                    m = cause_j == k
                    kill |= m
                elif inc.kind == "poison_payload":
                    m = (cause_j == k) & (tpl < 0)
                elif inc.kind == "bad_deploy":
                    vi = dep_tags.index(inc.deployment or "")
                    m = (
                        (jt == JOB_TYPES.index(inc.job_type))
                        & (version[batch_of] == vi)
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
                    choice = _pick_cum(T.incident_w[k], rng.random(cnt))
                    tpl[m] = np.array(T.incident_tpls[k], dtype=np.int32)[choice]
                    cause[m] = k
            noisy = (tpl < 0) & (rng.random(n) < noise_p)
            for ti in range(len(JOB_TYPES)):
                m = noisy & (jt == ti)
                cnt = int(m.sum())
                if cnt:
                    tpl[m] = noise_idx[ti][_pick_cum(noise_cum[ti], rng.random(cnt))]

            status = np.full(n, OK, dtype=np.int8)
            has_err = tpl >= 0
            trans = np.zeros(n, dtype=bool)
            trans[has_err] = T.transient[tpl[has_err]]
            status[has_err & trans] = RETRY
            status[has_err & ~trans] = PERM
            status[kill] = KILLED

            big = np.iinfo(np.int64).max
            killpos = np.where(kill, pos, big)
            first_kill = np.minimum.reduceat(killpos, bstart)
            batch_cause = np.full(nb, -1, dtype=np.int32)
            has_kill = first_kill < big
            if has_kill.any():
                killer = bstart[has_kill] + first_kill[has_kill]
                batch_cause[has_kill] = cause[killer]
            skipped = pos > first_kill[batch_of]
            status[skipped] = SKIPPED
            tpl[skipped] = -1
            cause[skipped] = batch_cause[batch_of][skipped]
            killed_now = status == KILLED

            dur = np.exp(_MU_MS[jt] + 0.6 * rng.standard_normal(n))
            dur[has_err] *= 1.6
            dur = np.maximum(dur.astype(np.int64), 3)
            dur[killed_now] = 30_000 + rng.integers(0, 1500, int(killed_now.sum()))
            dur[skipped] = 0
            csd = np.cumsum(dur)
            before = csd - dur
            start = inv_ts[batch_of] + 2 + before - before[bstart][batch_of] + pos
            end = start + dur

            bwall = np.add.reduceat(dur, bstart) + 4 + rng.integers(0, 6, nb)
            cpu_each = (dur * _CPU_SHARE[jt]).astype(np.int64)
            bcpu = np.add.reduceat(cpu_each, bstart) + 1
            # the batch outcome: the killer's template (exceededCpu/...) or an uncaught noise bug
            out_tpl = np.full(nb, -1, dtype=np.int32)
            if has_kill.any():
                killer = bstart[has_kill] + first_kill[has_kill]
                out_tpl[has_kill] = tpl[killer]
                is_cpu = np.array([T.info[int(x)].outcome == "exceededCpu" for x in tpl[killer]], dtype=bool)
                kidx = np.flatnonzero(has_kill)
                bcpu[kidx[is_cpu]] = 30_000 + rng.integers(0, 40, int(is_cpu.sum()))
            unc = (~has_kill) & (rng.random(nb) < uncaught_p)
            cu = int(unc.sum())
            if cu:
                out_tpl[unc] = np.array(T.uncaught, dtype=np.int32)[rng.integers(0, len(T.uncaught), cu)]

            final = att >= max_att
            again = np.isin(status, (RETRY, KILLED, SKIPPED))
            retry_m = again & ~final
            if retry_m.any():
                delay = np.where(
                    status == RETRY,
                    np.minimum(s.backoff_base_s * s.backoff_factor ** (att - 1.0), s.backoff_max_s)
                    * (0.8 + 0.4 * rng.random(n)),
                    s.retry_delay_s + rng.random(n),
                )
                b_end = inv_ts + bwall
                nvis = np.where(status == RETRY, end, b_end[batch_of]) + (delay * 1000).astype(np.int64)
                nvis = nvis[retry_m]
                nb_of = nvis // W
                nj, na = jobs[retry_m], (att[retry_m] + 1).astype(np.int16)
                for bb in np.unique(nb_of).tolist():
                    sel = nb_of == bb
                    pending.setdefault(bb, []).append((nj[sel], na[sel], nvis[sel]))
                    if bb not in seen:
                        heapq.heappush(heap, bb)
                        seen.add(bb)
            idx = n_del + np.arange(n)
            dlq_wrapped.append(idx[status == PERM])
            dlq_raw.append(idx[again & final])

            D["job"].append(jobs)
            D["att"].append(att)
            D["inv"].append(n_inv + batch_of)
            D["status"].append(status)
            D["tpl"].append(tpl)
            D["cause"].append(cause)
            D["start"].append(start)
            D["end"].append(end)
            D["final"].append(final)
            B["ts"].append(inv_ts)
            B["version"].append(version)
            B["size"].append(np.diff(np.append(bstart, n)))
            B["outcome_tpl"].append(out_tpl)
            B["cpu"].append(bcpu)
            B["wall"].append(bwall)
            n_inv += nb
            n_del += n

        self.d = {k: np.concatenate(v) for k, v in D.items()}
        self.b = {k: np.concatenate(v) for k, v in B.items()}
        self.dlq_wrapped_idx = np.concatenate(dlq_wrapped)
        self.dlq_raw_idx = np.concatenate(dlq_raw)

    # ---------------------------------------------------------------- texts
    def _payloads(self) -> JobPayloads:
        return JobPayloads(
            self.seed,
            [JOB_TYPES[int(t)] for t in self.job_type.tolist()],
            [self.tenants[int(t)] for t in self.job_tenant.tolist()],
            self.job_ids,
            self.job_ts.tolist(),
            self.poison,
        )

    def _render(self, tpl: np.ndarray, jobs: np.ndarray | None, payloads: JobPayloads) -> list[str | None]:
        """Texts of the given template indices (-1 -> None), with job context where known."""
        out: list[str | None] = [None] * len(tpl)
        if not len(tpl):
            return out
        for ti in np.unique(tpl[tpl >= 0]).tolist():
            where = np.flatnonzero(tpl == ti)
            t = self.T.spec[ti]
            ctx: dict[str, list[str]] = {}
            if jobs is not None:
                fields = set(t.fields)
                js = jobs[where].tolist()
                if "job" in fields:
                    ctx["job"] = [self.job_ids[j] for j in js]
                if "tenant" in fields:
                    ctx["tenant"] = [self.tenants[int(self.job_tenant[j])] for j in js]
                if "type" in fields:
                    ctx["type"] = [JOB_TYPES[int(self.job_type[j])] for j in js]
                if "bad" in fields:
                    ctx["bad"] = [f'"{self.poison.get(j, ("", ""))[1]}"' for j in js]
                need = fields & {"email", "template", "url"}
                if need:
                    ctxs = [context_of(payloads(j)) for j in js]
                    for f in need:
                        if all(f in c for c in ctxs):
                            ctx[f] = [c[f] for c in ctxs]
            texts = t.render(self.rng, len(where), ctx)
            for w, txt in zip(where.tolist(), texts, strict=True):
                out[w] = txt
        return out

    # ---------------------------------------------------------------- assemble
    def simulate(self) -> Simulation:
        sc, s, rng, T = self.sc, self.sys, self.rng, self.T
        self._produce()
        self._consume()
        payloads = self._payloads()
        d, b = self.d, self.b

        versions = [
            Version(
                dep.version_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgeinvestigate:{sc.name}:{dep.tag}")),
                dep.tag,
                dep.message,
                sc.at_ms(dep.at),
                s.consumer_script,
            )
            for dep in sc.deployments
        ]
        pv = Version(
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgeinvestigate:{sc.name}:producer")),
            "p57",
            "api: accept batch job submissions",
            sc.start_ms - 9 * 86_400_000,
            s.producer_script,
        )

        # ---- invocations: consumer batches + producer requests/cron, sorted by time
        nc, npi = len(b["ts"]), len(self.p_ts)
        ts_all = np.concatenate([b["ts"], self.p_ts])
        order = np.argsort(ts_all, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        c_rank, p_rank = rank[:nc], rank[nc:]
        N = nc + npi
        i_ts = ts_all[order]
        i_script = np.concatenate([np.zeros(nc, np.int8), np.ones(npi, np.int8)])[order]
        i_trigger = np.concatenate([np.zeros(nc, np.int8), self.p_trigger])[order]
        i_version = np.concatenate([b["version"], np.full(npi, -1)])[order]
        i_batch = np.concatenate([b["size"], np.zeros(npi, np.int64)])[order]
        p_wall = (8 + rng.lognormal(2.5, 0.6, npi) + 2 * self.p_count).astype(np.int64)
        p_cpu = np.maximum(1, (p_wall * 0.15).astype(np.int64))
        i_cpu = np.concatenate([b["cpu"], p_cpu])[order]
        i_wall = np.concatenate([b["wall"], p_wall])[order]
        out_tpl_c = b["outcome_tpl"]
        outcome_c = ["ok" if x < 0 else (T.info[x].outcome or "exception") for x in out_tpl_c.tolist()]
        outcomes = outcome_c + ["ok"] * npi
        i_outcome = [outcomes[k] for k in order.tolist()]
        i_status = np.concatenate([np.zeros(nc, np.int32), np.where(self.p_trigger == 1, 202, 0)])[order]
        i_request_id = hex_ids(rng, N, 16)
        colos = s.colos
        i_colo = [colos[k] for k in rng.integers(0, len(colos), N).tolist()]
        ips = rng.integers(1, 255, size=(N, 4)).tolist()
        i_client_ip = [f"{x[0]}.{x[1]}.{x[2]}.{x[3]}" for x in ips]

        # ---- delivery error texts
        d_inv = c_rank[d["inv"]]
        d_err_tpl = np.where(np.isin(d["status"], (RETRY, PERM, KILLED)), d["tpl"], -1)
        d_error = self._render(d_err_tpl, d["job"], payloads)

        # ---- logs
        L_inv: list[np.ndarray] = []
        L_ts: list[np.ndarray] = []
        L_seq: list[np.ndarray] = []
        L_level: list[np.ndarray] = []
        L_tpl: list[np.ndarray] = []
        L_job: list[np.ndarray] = []
        L_text: list[str] = []
        L_err: list[str | None] = []

        def add(inv: np.ndarray, ts: np.ndarray, seq: np.ndarray, level: np.ndarray, tpl: np.ndarray,
                job: np.ndarray, text: list[str], err: list[str | None]) -> None:  # fmt: skip
            L_inv.append(inv)
            L_ts.append(ts)
            L_seq.append(seq)
            L_level.append(level)
            L_tpl.append(tpl)
            L_job.append(job)
            L_text.extend(text)
            L_err.extend(err)

        # batch.received
        qname = s.queue
        backlog = rng.poisson(np.maximum(b["size"] * 2, 1))
        btexts = [
            f'{{"event":"batch.received","queue":"{qname}","size":{k},"backlog":{bl}}}'
            for k, bl in zip(b["size"].tolist(), backlog.tolist(), strict=True)
        ]
        add(c_rank, b["ts"] + 1, np.zeros(nc, np.int64), np.full(nc, L_LOG, np.int8),
            np.full(nc, -1, np.int32), np.full(nc, -1, np.int64), btexts, [None] * nc)  # fmt: skip

        # one line per processed delivery
        st = d["status"]
        logged = np.flatnonzero(np.isin(st, (OK, RETRY, PERM)))
        lv = np.full(len(logged), L_LOG, np.int8)
        sub = st[logged]
        final = d["final"][logged]
        lv[(sub == RETRY) & ~final] = L_WARN
        lv[(sub == RETRY) & final] = L_ERROR
        lv[sub == PERM] = L_ERROR
        texts: list[str] = []
        errs: list[str | None] = []
        jt_names = [JOB_TYPES[int(x)] for x in self.job_type[d["job"][logged]].tolist()]
        jobs_l = d["job"][logged].tolist()
        atts = d["att"][logged].tolist()
        durs = (d["end"] - d["start"])[logged].tolist()
        backoff = [
            int(min(s.backoff_base_s * s.backoff_factor ** (a - 1), s.backoff_max_s)) for a in range(1, 102)
        ]
        # compact JSON exactly as msgspec/JSON.stringify write it (ids and types need no escaping)
        dlq_j = _ENC.encode(s.dlq).decode()
        sub_l = sub.tolist()
        final_l = final.tolist()
        for k, di in enumerate(logged.tolist()):
            j = jobs_l[k]
            head = (
                f'"jobId":"{self.job_ids[j]}","type":"{jt_names[k]}","attempt":{atts[k]},'
                f'"messageId":"{self.msg_ids[j]}"'
            )
            code = sub_l[k]
            if code == OK:
                texts.append(f'{{"event":"job.completed",{head},"durationMs":{durs[k]}}}')
                errs.append(None)
                continue
            err = d_error[di]
            err_j = _ENC.encode(err).decode()
            if code == RETRY and not final_l[k]:
                texts.append(
                    f'{{"event":"job.retry",{head},"error":{err_j},"delaySeconds":{backoff[atts[k] - 1]}}}'
                )
            elif code == RETRY:
                texts.append(
                    f'{{"event":"job.exhausted",{head},"error":{err_j},"maxRetries":{s.max_retries}}}'
                )
            else:
                texts.append(f'{{"event":"job.dead_lettered",{head},"error":{err_j},"dlq":{dlq_j}}}')
            errs.append(err)
        job_tpl = np.where(sub == OK, -1, d["tpl"][logged]).astype(np.int32)
        seq2 = np.full(len(logged), 2, np.int64)
        add(d_inv[logged], d["end"][logged], seq2, lv, job_tpl, logged.astype(np.int64), texts, errs)

        # chatter
        proc = np.flatnonzero(np.isin(st, (OK, RETRY, PERM)))
        n_ch = rng.poisson(0.45 * sc.noise, len(proc))
        if n_ch.sum():
            ch_d = np.repeat(proc, n_ch)
            ch_type = self.job_type[d["job"][ch_d]]
            ch_idx, ch_cum = _per_type_choice(list(CHATTER), list(range(len(CHATTER))),
                                              [c.weight for c in CHATTER])  # fmt: skip
            ch_local = np.zeros(len(ch_d), np.int32)
            for ti in range(len(JOB_TYPES)):
                m = ch_type == ti
                if m.any():
                    ch_local[m] = ch_idx[ti][_pick_cum(ch_cum[ti], rng.random(int(m.sum())))]
            ch_tpl = np.array(T.chatter, dtype=np.int32)[ch_local]
            frac = rng.random(len(ch_d))
            ch_ts = d["start"][ch_d] + (frac * (d["end"][ch_d] - d["start"][ch_d])).astype(np.int64)
            ch_level = np.array([LEVELS.index(CHATTER[k].level) for k in ch_local.tolist()], np.int8)
            ch_text = self._render(ch_tpl, d["job"][ch_d], payloads)
            warn = ch_level >= L_WARN
            ch_str = [str(x) for x in ch_text]
            ch_err = [x if w else None for x, w in zip(ch_str, warn.tolist(), strict=True)]
            add(d_inv[ch_d], ch_ts, np.ones(len(ch_d), np.int64), ch_level,
                np.where(warn, ch_tpl, -1).astype(np.int32), np.full(len(ch_d), -1, np.int64),
                ch_str, ch_err)  # fmt: skip

        # producer lines
        p_texts = []
        for k in range(npi):
            if self.p_trigger[k] == 1:
                p_texts.append(
                    _ENC.encode({
                        "event": "jobs.enqueued", "queue": qname, "type": JOB_TYPES[int(self.p_type[k])],
                        "count": int(self.p_count[k]), "tenantId": self.tenants[int(self.p_tenant[k])],
                    }).decode()
                )  # fmt: skip
            else:
                p_texts.append(
                    _ENC.encode({
                        "event": "reports.scheduled", "queue": qname, "cron": sc.traffic.report_cron,
                        "count": int(self.p_count[k]),
                    }).decode()
                )  # fmt: skip
        add(p_rank, self.p_ts + 1 + self.p_count * 3, np.zeros(npi, np.int64), np.full(npi, L_LOG, np.int8),
            np.full(npi, -1, np.int32), np.full(npi, -1, np.int64), p_texts, [None] * npi)  # fmt: skip

        l_inv = np.concatenate(L_inv)
        l_ts = np.concatenate(L_ts).astype(np.int64)
        l_seq = np.concatenate(L_seq)
        lo = np.lexsort((l_seq, l_ts, l_inv))
        l_inv, l_ts = l_inv[lo], l_ts[lo]
        l_level = np.concatenate(L_level)[lo]
        l_tpl = np.concatenate(L_tpl)[lo]
        l_job = np.concatenate(L_job)[lo]
        lo_l = lo.tolist()
        l_text = [L_text[k] for k in lo_l]
        l_err = [L_err[k] for k in lo_l]
        l_off = np.searchsorted(l_inv, np.arange(N + 1))

        # ---- exceptions: the killer's limit error, or an uncaught bug at the end of the batch
        killer = np.flatnonzero(st == KILLED)
        x_inv_k = d_inv[killer]
        x_ts_k = d["end"][killer]
        x_tpl_k = d["tpl"][killer]
        x_msg_k = [d_error[i] or "" for i in killer.tolist()]
        unc_b = np.flatnonzero((out_tpl_c >= 0) & ~np.isin(np.arange(nc), d["inv"][killer]))
        x_inv_u = c_rank[unc_b]
        x_ts_u = b["ts"][unc_b] + b["wall"][unc_b]
        x_tpl_u = out_tpl_c[unc_b]
        x_msg_u = [str(x) for x in self._render(x_tpl_u, None, payloads)]
        x_inv = np.concatenate([x_inv_k, x_inv_u])
        xo = np.argsort(x_inv, kind="stable")
        x_inv = x_inv[xo]
        x_ts = np.concatenate([x_ts_k, x_ts_u]).astype(np.int64)[xo]
        x_tpl = np.concatenate([x_tpl_k, x_tpl_u]).astype(np.int32)[xo]
        msgs = x_msg_k + x_msg_u
        x_message = [msgs[k] for k in xo.tolist()]
        x_name = [T.info[int(t)].name for t in x_tpl.tolist()]
        x_stack = []
        for name, msg, t in zip(x_name, x_message, x_tpl.tolist(), strict=True):
            if T.info[t].source == "uncaught":
                x_stack.append(_UNCAUGHT_STACK.format(name=name, message=msg))
            else:
                x_stack.append(_LIMIT_STACK.format(name=name, message=msg))
        x_off = np.searchsorted(x_inv, np.arange(N + 1))

        sim = Simulation(
            scenario=sc,
            seed=self.seed,
            account_id=s.account_id,
            queue_ids={q: _stable_hex(s.account_id, q) for q in (s.queue, s.retry_queue, s.dlq)},
            versions=versions,
            producer_version=pv,
            templates=T.info,
            job_type=self.job_type,
            job_ts=self.job_ts,
            job_tenant=self.job_tenant,
            job_ids=self.job_ids,
            msg_ids=self.msg_ids,
            tenants=self.tenants,
            payloads=payloads,
            job_cause=self.job_cause,
            d_job=d["job"],
            d_attempt=d["att"],
            d_inv=d_inv,
            d_status=d["status"],
            d_tpl=d["tpl"],
            d_cause=d["cause"],
            d_start=d["start"],
            d_end=d["end"],
            d_final=d["final"],
            d_error=d_error,
            i_ts=i_ts,
            i_script=i_script,
            i_trigger=i_trigger,
            i_version=i_version,
            i_outcome=i_outcome,
            i_cpu=i_cpu,
            i_wall=i_wall,
            i_batch=i_batch,
            i_status=i_status,
            i_request_id=i_request_id,
            i_colo=i_colo,
            i_client_ip=i_client_ip,
            l_inv=l_inv,
            l_ts=l_ts,
            l_level=l_level,
            l_text=l_text,
            l_error=l_err,
            l_tpl=l_tpl,
            l_job=l_job,
            l_off=l_off,
            x_inv=x_inv,
            x_ts=x_ts,
            x_name=x_name,
            x_message=x_message,
            x_stack=x_stack,
            x_tpl=x_tpl,
            x_off=x_off,
        )
        self._dlq(sim, d_inv)
        return sim

    # ---------------------------------------------------------------- DLQ
    def _dlq(self, sim: Simulation, d_inv: np.ndarray) -> None:
        s, rng, d = self.sys, self.rng, self.d
        prior = np.array(s.dlq_prior_pulls, dtype=float)
        prior_cum = np.cumsum(prior / prior.sum())
        entries: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = []
        wrapped = self.dlq_wrapped_idx.tolist()
        new_ids = hex_ids(rng, len(wrapped), 32)
        for k, di in enumerate(wrapped):
            j = int(d["job"][di])
            sent = int(d["end"][di])
            att = int(d["att"][di])
            body = sim.queue_message(j)
            body["metadata"] = {**body["metadata"], "attempts": att, "lastAttempt": _iso(sent)}
            if s.dlq_envelope == "message":
                original: dict[str, Any] = {
                    "id": self.msg_ids[j],
                    "timestamp": _iso(int(self.job_ts[j])),
                    "body": body,
                    "attempts": att,
                }
            else:
                original = body
            env = {"original": original, "error": sim.d_error[di]}
            info = {
                "dlq_message_id": new_ids[k],
                "message_id": self.msg_ids[j],
                "job_id": self.job_ids[j],
                "job_type": JOB_TYPES[int(self.job_type[j])],
                "envelope": "wrapped",
                "arrived_ms": sent,
                "deliveries": att,
                "error": sim.d_error[di],
                "template_id": self.T.info[int(d["tpl"][di])].id,
                "root_cause": self._cause_id(int(d["cause"][di])),
            }
            entries.append((sent, 0, {"id": new_ids[k], "timestamp_ms": sent, "body": env}, info))
        for di in self.dlq_raw_idx.tolist():
            j = int(d["job"][di])
            inv = int(d_inv[di])
            arrived = int(sim.i_ts[inv] + sim.i_wall[inv]) + 1
            st = int(d["status"][di])
            tpl = int(d["tpl"][di])
            last_tpl = self.T.info[tpl].id if tpl >= 0 else None
            if st == SKIPPED:
                last_tpl = None
            info = {
                "dlq_message_id": self.msg_ids[j],
                "message_id": self.msg_ids[j],
                "job_id": self.job_ids[j],
                "job_type": JOB_TYPES[int(self.job_type[j])],
                "envelope": "raw",
                "arrived_ms": arrived,
                "deliveries": int(d["att"][di]),
                "error": None,
                "last_error": sim.d_error[di] if st != SKIPPED else None,
                "template_id": last_tpl,
                "last_status": STATUS_NAMES[st],
                "root_cause": self._cause_id(int(d["cause"][di])),
            }
            entries.append(
                (
                    arrived,
                    1,
                    {
                        "id": self.msg_ids[j],
                        "timestamp_ms": int(self.job_ts[j]),
                        "body": sim.queue_message(j),
                    },
                    info,
                )
            )
        entries.sort(key=lambda e: (e[0], e[1], e[2]["id"]))
        pulls = _pick_cum(prior_cum, rng.random(len(entries))).tolist()
        for (_, _, msg, info), p in zip(entries, pulls, strict=True):
            msg["attempts"] = int(p)
            info["dlq_attempts"] = int(p)
            sim.dlq.append(msg)
            sim.dlq_info.append(info)

    def _cause_id(self, k: int) -> str | None:
        return self.sc.incidents[k].id if k >= 0 else None
