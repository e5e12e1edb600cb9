"""Sending jobs to the producer's job API and waiting for the runtime to finish them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from edgeinvestigate._http import make_client
from edgeinvestigate.errors import EdgeInvestigateError
from edgeinvestigate.lab._procs import ManagedProcess
from edgeinvestigate.lab._traffic import Job
from edgeinvestigate.lab._watch import TraceWatcher

__all__ = ["Driver"]

BATCH = 10


class Driver:
    """Talks to ``jobs-producer`` (``POST /jobs``, ``PUT /admin/outage``) and follows the telemetry."""

    def __init__(
        self,
        url: str,
        watcher: TraceWatcher,
        say: Callable[[str], None],
        *,
        processes: Callable[[], Sequence[ManagedProcess]] = tuple,
    ) -> None:
        self.url = url
        self.watcher = watcher
        self.say = say
        self.processes = processes
        self.sent: dict[str, Job] = {}

    def _check_processes(self, what: str) -> None:
        """Fail at once (with the log's end) when a process the run needs has exited."""
        for proc in self.processes():
            if not proc.alive():
                raise EdgeInvestigateError(
                    f"{proc.name} (pid {proc.pid}) exited with code {proc.popen.returncode} while waiting "
                    f"for {what}; its log {proc.log_path} ends with:\n{proc.log_tail()}",
                    hint="see lab/README.md, section Troubleshooting",
                )

    def _client(self) -> httpx.Client:
        return make_client(self.url, timeout=10.0)

    def send(self, jobs: Sequence[Job], *, rate: float = 80.0) -> None:
        """POST ``jobs`` in batches of 10 at about ``rate`` jobs per second."""
        interval = BATCH / rate if rate > 0 else 0.0
        with self._client() as client:
            for start in range(0, len(jobs), BATCH):
                chunk = jobs[start : start + BATCH]
                t0 = time.monotonic()
                resp = client.post("/jobs", json={"jobs": [j.body for j in chunk]})
                if resp.status_code != 202:
                    raise EdgeInvestigateError(
                        f"the producer refused jobs {chunk[0].job_id}..{chunk[-1].job_id}: "
                        f"HTTP {resp.status_code} {resp.text[:500]}",
                        hint="see lab/README.md, section Troubleshooting",
                    )
                accepted = [j["jobId"] for j in resp.json().get("jobs", [])]
                if accepted != [j.job_id for j in chunk]:
                    raise EdgeInvestigateError(
                        f"the producer accepted {accepted} for {[j.job_id for j in chunk]}",
                    )
                for job in chunk:
                    self.sent[job.job_id] = job
                spare = interval - (time.monotonic() - t0)
                if spare > 0:
                    time.sleep(spare)

    def trigger_cron(self, cron: str, scheduled_ms: int) -> None:
        """Fire the producer's cron trigger once (wrangler dev's /cdn-cgi/handler/scheduled)."""
        with self._client() as client:
            resp = client.get("/cdn-cgi/handler/scheduled", params={"cron": cron, "time": str(scheduled_ms)})
            if resp.status_code != 200:
                raise EdgeInvestigateError(
                    f"the cron trigger {cron!r} failed: HTTP {resp.status_code} {resp.text[:300]}"
                )

    def outage(self, job_type: str, seconds: float, reason: str) -> dict[str, Any]:
        with self._client() as client:
            resp = client.put("/admin/outage", json={"type": job_type, "seconds": seconds, "reason": reason})
            if resp.status_code != 200:
                raise EdgeInvestigateError(
                    f"could not start the {job_type} outage: HTTP {resp.status_code} {resp.text}"
                )
            data: dict[str, Any] = resp.json()
            return data

    def wait_settled(self, job_ids: Sequence[str], *, timeout: float, what: str) -> float:
        """Wait until every job has a terminal event in the telemetry. Returns the seconds waited."""
        ids = list(job_ids)
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            self.watcher.poll()
            self._check_processes(what)
            pending = self.watcher.pending(ids)
            if not pending:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                shown = ", ".join(f"{j} (last: {self.watcher.last_event(j)})" for j in pending[:10])
                raise EdgeInvestigateError(
                    f"timed out after {timeout:.0f}s waiting for {what}: {len(pending)} of {len(ids)} jobs "
                    f"have no terminal event in the telemetry yet: {shown}",
                    hint="see lab/README.md, section Troubleshooting (the wrangler log is in the state dir)",
                )
            time.sleep(0.25)

    def wait_for(
        self, check: Callable[[], bool], *, timeout: float, what: str, detail: Callable[[], str] | None = None
    ) -> float:
        t0 = time.monotonic()
        while True:
            self.watcher.poll()
            self._check_processes(what)
            if check():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                extra = f": {detail()}" if detail else ""
                raise EdgeInvestigateError(
                    f"timed out after {timeout:.0f}s waiting for {what}{extra}",
                    hint="see lab/README.md, section Troubleshooting",
                )
            time.sleep(0.25)
