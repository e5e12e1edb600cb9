"""``edgeinvestigate lab run``: an incident on the real Workers runtime, investigated and repaired.

The steps (each one logged to the console and recorded in ``summary.json``):

1. ``npm ci`` in ``lab/`` (when the lockfile changed), then start the sandbox (the Queues REST API
   the lab's DLQ lives in), the collector (Tail Worker POSTs -> TraceItem JSONL) and one
   ``wrangler dev`` with the four lab Workers, version ``v41``.
2. Baseline traffic on the good version, with everyday failures (transient blips that recover,
   invalid jobs that are dead-lettered, two jobs that time out on every delivery).
3. A poison message sent alone (it crashes the handler; the runtime retries it, then moves it).
4. The bad deploy ``v42`` (``EMAIL_RENDERER=v2``): traffic in which every EMAIL_DELIVERY job
   fails, and a transient WEBHOOK_PROCESSING outage that recovers through retries.
5. The fix ``v43`` and a little recovery traffic.
6. Collect the evidence bundle (TraceItems + the DLQ over the Queues API), analyze, write the
   incident report.
7. Plan and run a replay of the top cluster (the bad deploy's EMAIL_DELIVERY jobs) into the retry
   queue, which the sandbox forwards to the producer: the replay re-enters the real runtime.
8. Wait until the runtime's telemetry shows every replayed job succeeded, collect again and verify
   (nothing lost, no replayed job back in the DLQ).

Every process is stopped by its pid in a ``finally``, on success, failure or Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import ConfigError, EdgeInvestigateError
from edgeinvestigate.lab._driver import Driver
from edgeinvestigate.lab._procs import ProcessSet
from edgeinvestigate.lab._runtime import Deploy, WranglerRuntime, ensure_node_modules, find_lab_dir
from edgeinvestigate.lab._services import (
    ACCOUNT_ID,
    DLQ_QUEUE,
    RETRY_QUEUE,
    create_queues,
    start_collector,
    start_runtime,
    start_sandbox,
)
from edgeinvestigate.lab._traffic import (
    Job,
    baseline_jobs,
    incident_jobs,
    poison_job,
    recovery_jobs,
    scheduled_job,
)
from edgeinvestigate.lab._watch import TraceWatcher

__all__ = ["BAD", "FIXED", "GOOD", "LabOptions", "LabResult", "run_lab"]

log = logging.getLogger(__name__)

GOOD = Deploy("v41", "v1")
BAD = Deploy("v42", "v2")
FIXED = Deploy("v43", "v1")


@dataclass
class LabOptions:
    """How to run the lab. Sizes are jobs per phase; the defaults take about two minutes."""

    out_dir: Path | None = None
    state_dir: Path | None = None
    lab_dir: Path | None = None
    keep_state: bool = False
    npm: str = "auto"
    seed: int = 8
    baseline: int = 120
    incident: int = 160
    recovery: int = 40
    outage_seconds: float = 3.0
    rate: float = 80.0
    settle_timeout: float = 90.0
    report: bool = True
    replay: bool = True


@dataclass
class LabResult:
    """What a run produced (all paths are inside ``out_dir``)."""

    out_dir: Path
    trace_file: Path
    bundle: Path | None = None
    bundle_after: Path | None = None
    report: Path | None = None
    plan: Path | None = None
    summary_file: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    ok: bool = False


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Run:
    def __init__(self, opts: LabOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.say = say
        self.lab_dir = find_lab_dir(opts.lab_dir)
        self.out = (Path(opts.out_dir) if opts.out_dir else self.lab_dir / ".state" / "last-run").resolve()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.state = (
            Path(opts.state_dir).resolve()
            if opts.state_dir
            else (self.lab_dir / ".state" / f"run-{stamp}").resolve()
        )
        self.trace = self.out / "traceitems" / "traceitems.jsonl"
        self.rng = random.Random(opts.seed)
        self.timeline: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.summary: dict[str, Any] = {"started_at": _iso_now(), "state_dir": str(self.state), "steps": {}}
        self.result = LabResult(out_dir=self.out, trace_file=self.trace)

    # -- bookkeeping -------------------------------------------------------------------------
    @contextmanager
    def step(self, name: str, text: str) -> Iterator[dict[str, Any]]:
        self.say(f"[lab] {text}")
        rec: dict[str, Any] = {"started_at": _iso_now()}
        self.summary["steps"][name] = rec
        t0 = time.monotonic()
        try:
            yield rec
        finally:
            rec["seconds"] = round(time.monotonic() - t0, 2)

    def phase(self, name: str, deploy: Deploy, jobs: list[Job]) -> None:
        self.timeline.append({"phase": name, "deploy": deploy.version, "at": _iso_now(), "jobs": len(jobs)})
        for job in jobs:
            self.jobs[job.job_id] = job

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> LabResult:
        if self.out.exists() and any(self.out.iterdir()):
            if not (self.out / "summary.json").is_file():
                raise ConfigError(
                    f"{self.out} is not empty and holds no earlier lab run (summary.json); "
                    "the lab empties its output folder first",
                    hint="pick an empty or new folder with --out",
                )
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        ok = False
        try:
            with ExitStack() as stack:
                procs = stack.enter_context(ProcessSet(self.state / "logs"))
                self._run(procs, stack)
                ok = True
        except BaseException as exc:
            self.summary["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            # the stack has unwound: every process (sandbox, collector, wrangler, workerd) is stopped
            self.summary["finished_at"] = _iso_now()
            self.summary["ok"] = ok
            self.result.ok = ok
            self._write_summary()
            if ok and not self.opts.keep_state:
                shutil.rmtree(self.state, ignore_errors=True)
            else:
                self.say(f"[lab] state kept in {self.state} (logs in {self.state / 'logs'})")
        return self.result

    def _write_summary(self) -> None:
        self.summary["timeline"] = self.timeline
        path = self.out / "summary.json"
        path.write_text(json.dumps(self.summary, indent=2, default=str) + "\n", encoding="utf-8")
        self.result.summary = self.summary
        self.result.summary_file = path

    def _run(self, procs: ProcessSet, stack: ExitStack) -> None:
        with self.step("npm", "npm ci in lab/ (when the lockfile changed)") as rec:
            rec["ran"] = ensure_node_modules(
                self.lab_dir, mode=self.opts.npm, log_path=self.state / "logs" / "npm.log"
            )
        with self.step("start", "starting the sandbox, the collector and wrangler dev") as rec:
            self.sandbox = start_sandbox(self.state / "sandbox", stack)
            rec["sandbox_pid"] = self.sandbox.pid
            create_queues(self.sandbox)
            collector, collector_url = start_collector(procs, self.state, self.trace)
            rec["collector"] = {"url": collector_url, "pid": collector.pid}
            runtime = start_runtime(self.lab_dir, self.state, procs, self.sandbox, collector_url, GOOD)
            rec["producer_url"] = runtime.url
        watcher = TraceWatcher(self.trace)
        self.driver = Driver(
            runtime.url,
            watcher,
            self.say,
            processes=lambda: [p for p in (collector, runtime.proc) if p is not None],
        )
        self._baseline()
        self._poison()
        self._bad_deploy(runtime)
        self._fix(runtime)
        self._dlq_arrival()
        self._investigate_and_replay(self.driver, watcher)

    # -- the incident ----------------------------------------------------------------------
    def _settle(self, jobs: list[Job], what: str) -> float:
        """Seconds until every job of ``jobs`` reached its end in the runtime's telemetry."""
        waited = self.driver.wait_settled(
            [j.job_id for j in jobs], timeout=self.opts.settle_timeout, what=what
        )
        return round(waited, 2)

    def _deployed(self, deploy: Deploy) -> None:
        self.timeline.append({"phase": "deploy", "deploy": deploy.version, "at": _iso_now(), "jobs": 0})

    def _baseline(self) -> None:
        opts, driver = self.opts, self.driver
        with self.step("baseline", f"baseline traffic on {GOOD.version}: {opts.baseline} jobs") as rec:
            jobs = baseline_jobs(opts.baseline, self.rng)
            # the daily report, through the scheduled queue (Cron Trigger)
            cron_ms = int(time.time() // 60 * 60_000)
            cron_job = scheduled_job(cron_ms)
            self.phase("baseline", GOOD, [*jobs, cron_job])
            driver.send(jobs, rate=opts.rate)
            driver.trigger_cron("0 6 * * *", cron_ms)
            rec["settled_after_s"] = self._settle([*jobs, cron_job], "the baseline jobs")

    def _poison(self) -> None:
        with self.step("poison", "a poison message, alone (it crashes the queue handler)") as rec:
            job = poison_job(self.rng)
            self.phase("poison", GOOD, [job])
            self.driver.send([job])
            rec["settled_after_s"] = self._settle([job], "the poison message")

    def _bad_deploy(self, runtime: WranglerRuntime) -> None:
        opts, driver = self.opts, self.driver
        with self.step("bad_deploy", f"deploying {BAD.version} (the bad version: EMAIL_RENDERER=v2)") as rec:
            runtime.restart(BAD)
            self._deployed(BAD)
            jobs = incident_jobs(opts.incident, self.rng)
            self.phase("incident", BAD, jobs)
            half = len(jobs) // 2
            driver.send(jobs[:half], rate=opts.rate)
            rec["outage"] = driver.outage(
                "WEBHOOK_PROCESSING", opts.outage_seconds, "partner endpoint partner.example.com is down"
            )
            self.timeline.append(
                {"phase": "outage", "deploy": BAD.version, "at": _iso_now(), "type": "WEBHOOK_PROCESSING"}
            )
            driver.send(jobs[half:], rate=opts.rate)
            rec["settled_after_s"] = self._settle(jobs, "the incident jobs")

    def _fix(self, runtime: WranglerRuntime) -> None:
        with self.step("fix", f"fixing: deploying {FIXED.version} (EMAIL_RENDERER=v1)") as rec:
            runtime.restart(FIXED)
            self._deployed(FIXED)
            jobs = recovery_jobs(self.opts.recovery, self.rng)
            self.phase("recovery", FIXED, jobs)
            self.driver.send(jobs, rate=self.opts.rate)
            rec["settled_after_s"] = self._settle(jobs, "the recovery jobs")

    def _dlq_arrival(self) -> None:
        """Wait until the sandbox DLQ holds every job expected there; record the jobs in the summary."""
        expected_dlq = sorted(j.job_id for j in self.jobs.values() if j.expect != "succeed")
        with self.step("dlq_arrival", "waiting until the sandbox DLQ holds every dead-lettered job") as rec:
            self.driver.wait_for(
                lambda: self._dlq_count() >= len(expected_dlq),
                timeout=self.opts.settle_timeout,
                what=f"{len(expected_dlq)} messages in the sandbox {DLQ_QUEUE}",
                detail=lambda: f"it holds {self._dlq_count()}",
            )
            rec["expected"] = len(expected_dlq)
        self.summary["jobs"] = {
            "sent": len(self.jobs),
            "by_expectation": dict(Counter(j.expect for j in self.jobs.values())),
            "expected_in_dlq": expected_dlq,
            "expected_envelope": {
                j.job_id: j.expect.removeprefix("dlq-") for j in self.jobs.values() if j.expect != "succeed"
            },
            "all": sorted(self.jobs),
        }

    # -- the investigation -----------------------------------------------------------------
    def _dlq_count(self) -> int:
        q = self.sandbox.queue_state(ACCOUNT_ID, DLQ_QUEUE)
        return len(q.get("messages") or [])

    def _client(self) -> Any:
        from edgeinvestigate.cloudflare.client import CloudflareClient

        return CloudflareClient(ACCOUNT_ID, self.sandbox.secret, api_url=self.sandbox.url)

    def _collect(self, name: str) -> Any:
        """TraceItems (edgeinvestigate.load) + the DLQ (peek over the Queues API) -> a saved bundle."""
        from edgeinvestigate.evidence.bundle import load
        from edgeinvestigate.sources.api.dlq import load_dlq

        self.driver.watcher.poll()
        ev = load([self.trace])
        with self._client() as client:
            dlq = load_dlq(client, DLQ_QUEUE, mode="peek")
            # the raw messages too (peek-shaped, as the API returned them): evidence anyone can reload
            raw = client.peek(client.queue_id(DLQ_QUEUE), batch_size=100)
        ev = ev.with_dlq(dlq)
        path = self.out / name
        ev.save(path, overwrite=True)
        dlq_file = self.out / "dlq" / f"{name}-messages.json"
        dlq_file.parent.mkdir(parents=True, exist_ok=True)
        dlq_file.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
        return ev, path

    def _analyze(self, ev: Any) -> dict[str, Any]:
        """Cluster and analyze; the top-ranked hypothesis, with its clusters' templates.

        If the analysis itself fails, the run goes on (the replay then targets the cluster with
        the most DLQ messages) and the summary says so: the "top finding" check fails with the
        analysis error, while the rest of the lab still shows what it can.
        """
        from edgeinvestigate.analysis.clustering import cluster
        from edgeinvestigate.analysis.rca import analyze

        clusters = cluster(ev)
        table = clusters.table
        top: dict[str, Any] | None = None
        error = ""
        try:
            findings = analyze(ev, clusters=clusters)
        except Exception as exc:
            log.exception("the analysis failed on the lab's telemetry")
            error = f"{type(exc).__name__}: {exc}"
        else:
            (self.out / "findings.json").write_text(findings.model_dump_json(indent=2), encoding="utf-8")
            top = _top_finding(findings)
            if top is None:
                error = "the analysis ranked no hypothesis"
        if top is None:
            self.say(f"[lab] the analysis failed: {error}; replaying the largest DLQ cluster instead")
            by_dlq = table.sort_values(["n_dlq_messages", "count"], ascending=False, kind="stable")
            top = {
                "rank": None,
                "kind": None,
                "title": None,
                "analysis_error": error,
                "cluster_ids": [str(by_dlq["cluster_id"].iloc[0])],
                "job_types": [str(t) for t in by_dlq["job_types"].iloc[0]],
            }
        ids = [str(c) for c in top.get("cluster_ids") or []]
        rows = table[table["cluster_id"].astype(str).isin(ids)]
        top["clusters"] = [
            {
                "cluster_id": str(r["cluster_id"]),
                "template": str(r["template"]),
                "count": int(r["count"]),
                "n_dlq_messages": int(r["n_dlq_messages"]),
                "examples": [str(x) for x in list(r["examples"])[:2]],
            }
            for _, r in rows.iterrows()
        ]
        return top

    def _investigate_and_replay(self, driver: Driver, watcher: TraceWatcher) -> None:
        opts = self.opts
        with self.step("collect", "collecting the evidence bundle (TraceItems + DLQ)") as rec:
            ev, bundle = self._collect("bundle")
            self.result.bundle = bundle
            rec.update(
                bundle=str(bundle),
                invocations=len(ev.invocations),
                logs=len(ev.logs),
                exceptions=len(ev.exceptions),
                dlq=len(ev.dlq),
            )

        with self.step("analyze", "clustering and ranking root causes") as rec:
            top = self._analyze(ev)
            rec["top"] = top
            self.top = top

        if opts.report:
            with self.step("report", "writing the incident report") as rec:
                self._report(
                    rec, bundle, "report", {"title": "Lab incident: EMAIL_DELIVERY after deploy v42"}
                )

        if not opts.replay:
            return
        with self.step("replay", "planning and running a replay of the top cluster") as rec:
            from edgeinvestigate.replay import plan_replay, run_replay

            cluster_ids = [c["cluster_id"] for c in self.top.get("clusters") or [] if c["n_dlq_messages"] > 0]
            if not cluster_ids:
                raise EdgeInvestigateError(
                    f"the top finding ({self.top.get('title')}) has no cluster with DLQ messages to replay",
                    hint="see findings.json in the output folder",
                )
            rec["clusters"] = cluster_ids
            plan = plan_replay(
                ev,
                DLQ_QUEUE,
                RETRY_QUEUE,
                clusters=cluster_ids,
                allow_queues=[RETRY_QUEUE],
                bundle=str(bundle),
            )
            plan_path = plan.save(self.out / "replay-plan.json", overwrite=True)
            self.result.plan = plan_path
            rec["plan"] = {"path": str(plan_path), "messages": len(plan.messages), "plan_id": plan.plan_id}
            with self._client() as client:
                result = run_replay(
                    plan_path, client, allow_queues=[RETRY_QUEUE], say=lambda t: self.say(f"[replay] {t}")
                )
            rec["run"] = {"outcome": result.outcome, "counts": dict(result.counts)}
            replayed_jobs = sorted({str(m.job_id) for m in plan.messages if m.job_id})
            replay_ids = {m.replay_id for m in plan.messages}
            rec["replayed_jobs"] = replayed_jobs

        with self.step("replay_settled", "waiting for the replayed jobs in the runtime's telemetry") as rec:

            def replayed_ok() -> bool:
                return all(
                    any(
                        e.event == "job_succeeded" and e.fields.get("replayId") in replay_ids
                        for e in watcher.by_job.get(j, [])
                    )
                    for j in replayed_jobs
                )

            rec["seconds"] = driver.wait_for(
                replayed_ok,
                timeout=opts.settle_timeout,
                what=f"{len(replayed_jobs)} replayed jobs to succeed",
                detail=lambda: ", ".join(
                    f"{j}: {watcher.last_event(j)}" for j in replayed_jobs if not replayed_ok()
                )[:800],
            )

        with self.step("verify", "collecting again and verifying the replay") as rec:
            from edgeinvestigate.replay import verify_replay

            ev2, bundle2 = self._collect("bundle-after-replay")
            self.result.bundle_after = bundle2
            report = verify_replay(plan_path, ev2)
            rec["verify"] = report.to_dict()
            (self.out / "replay-verify.json").write_text(
                json.dumps(report.to_dict(), indent=2), encoding="utf-8"
            )

        if opts.report:
            with self.step("report_after_replay", "writing the report again, with the replay") as rec:
                params = {
                    "title": "Lab incident: after the fix (v43) and the replay",
                    "replay_plan": str(plan_path),
                }
                self._report(rec, bundle2, "report-after-replay", params)

    def _report(self, rec: dict[str, Any], bundle: Path, name: str, params: dict[str, Any]) -> None:
        """Write one incident report into ``out/<name>``.

        A failing report does not stop the lab (the replay still has to be shown): its check fails
        with the notebook's error instead.
        """
        from edgeinvestigate.report.runner import write_report

        try:
            run = write_report(bundle, self.out / name, parameters=params, progress=False)
        except Exception as exc:
            log.exception("the incident report could not be written")
            self.say(f"[lab] the report failed: {type(exc).__name__}: {exc}")
            rec.update(report=str(self.out / name), ok=False, error=f"{type(exc).__name__}: {exc}")
            return
        if name == "report":
            self.result.report = run.html
        rec.update(report=str(run.html), ok=run.ok, error=run.error, figures=run.n_figures)


def _top_finding(findings: Any) -> dict[str, Any] | None:
    """The rank-1 hypothesis of ``findings`` as plain JSON data, or None when there is none."""
    data = json.loads(findings.model_dump_json())
    items = data.get("hypotheses") or []
    if not items:
        return None
    top: dict[str, Any] = min(items, key=lambda h: h.get("rank", 0))
    return top


def run_lab(opts: LabOptions, *, say: Callable[[str], None] | None = None) -> LabResult:
    """Run the whole lab (see the module docstring); every started process is stopped at the end.

    Results go to ``opts.out_dir`` (default ``lab/.state/last-run``), which is emptied first.
    """
    speak = say or (lambda text: print(text, file=sys.stderr, flush=True))
    with _terminate_as_exit():
        return _Run(opts, speak).run()


class LabTerminated(SystemExit):
    """SIGTERM/SIGHUP arrived: unwind (stopping every child process), then exit 128 + signal."""


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception, so the ``finally`` that stops the children runs.

    (The children run in their own sessions and never see the signal themselves.)
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise LabTerminated(128 + signum)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
