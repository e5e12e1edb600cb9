"""``simulate()``: run a scenario and write the same incident in every format."""

from __future__ import annotations

import gc
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from edgeinvestigate._http import Secret
from edgeinvestigate._time import is_relative_time, parse_time
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.simulator._engine import run
from edgeinvestigate.simulator._ground_truth import write_ground_truth
from edgeinvestigate.simulator._sandbox import load_into_sandbox, sandbox_token
from edgeinvestigate.simulator._scenario import Scenario, load_scenario
from edgeinvestigate.simulator._simulation import Simulation
from edgeinvestigate.simulator._write_analytics import write_analytics
from edgeinvestigate.simulator._write_dlq import write_dlq
from edgeinvestigate.simulator._write_logpush import write_logpush
from edgeinvestigate.simulator._write_tail import write_tail
from edgeinvestigate.simulator._write_traceitems import write_traceitems
from edgeinvestigate.simulator._write_workers_logs import write_workers_logs

__all__ = ["FORMATS", "LAYOUT", "SimulationSummary", "simulate"]

#: format name -> path inside the output folder
LAYOUT: dict[str, str] = {
    "tail": "tail/tail.json",
    "traceitems": "traceitems/traceitems.jsonl",
    "logpush": "logpush",
    "workers_logs": "workers_logs/events.json",
    "dlq": "dlq/messages.json",
    "analytics": "analytics/analytics.json",  # Queue and Worker analytics, the GraphQL response shape
}
FORMATS: tuple[str, ...] = tuple(LAYOUT)
#: format name -> writer of that format at ``out / LAYOUT[name]``
_WRITERS: dict[str, Callable[[Simulation, Path], int | list[Path]]] = {
    "tail": write_tail,
    "traceitems": write_traceitems,
    "logpush": write_logpush,
    "workers_logs": write_workers_logs,
    "dlq": write_dlq,
    "analytics": write_analytics,
}
_OURS = {"ground_truth.json", *(p.split("/")[0] for p in LAYOUT.values())}


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote. ``os.fspath(summary)`` is the output folder."""

    out: Path
    scenario: str
    seed: int
    invocations: int
    logs: int
    exceptions: int
    dlq_messages: int
    root_causes: list[str]
    files: dict[str, list[str]]
    seconds: float
    sandbox: dict[str, Any] | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.out)

    @property
    def ground_truth(self) -> Path:
        return self.out / "ground_truth.json"

    def __str__(self) -> str:
        lines = [
            f"simulated {self.scenario!r} (seed {self.seed}) into {self.out} in {self.seconds:.1f}s",
            f"  {self.invocations:,} invocations, {self.logs:,} log lines, {self.exceptions:,} exceptions, "
            f"{self.dlq_messages:,} DLQ messages",
            f"  root causes: {', '.join(self.root_causes) or '(none)'}",
        ]
        for name, paths in self.files.items():
            shown = (
                paths[0] if len(paths) == 1 else f"{len(paths)} files under {Path(paths[0]).parent.parent}"
            )
            lines.append(f"  {name:<13} {shown}")
        if self.sandbox:
            lines.append(
                f"  sandbox       {self.sandbox['url']}: {self.sandbox['dlq_loaded']:,} DLQ messages, "
                f"{self.sandbox['events_loaded']:,} Workers Logs events, "
                f"{self.sandbox.get('deployments_loaded', 0)} deployments loaded"
            )
            lines.append("  point the client at it (the token is the sandbox's own):")
            lines.append(f"    export CLOUDFLARE_API_BASE_URL={self.sandbox['url']}/client/v4")
            if self.sandbox.get("account_id"):
                lines.append(f"    export CLOUDFLARE_ACCOUNT_ID={self.sandbox['account_id']}")
        return "\n".join(lines)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while building millions of small containers (none of them form cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder", hint="pass a new or empty folder")
    if out.is_dir():
        present = {p.name for p in out.iterdir()}
        foreign = present - _OURS
        if foreign:
            raise ConfigError(
                f"--out {out} is not empty: it holds files the simulator did not write "
                f"({', '.join(sorted(foreign)[:5])})",
                hint="pass a new or empty folder; a folder with an earlier simulation is overwritten",
            )
        for name in present:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _size(scenario: Scenario, invocations: int | None, scale: float | None) -> int:
    if invocations is not None and scale is not None:
        raise ConfigError(
            "give either --invocations or --scale, not both", hint="edgeinvestigate simulate --help"
        )
    if invocations is not None:
        if invocations < 10:
            raise ConfigError(f"--invocations {invocations} is too small", hint="use at least 10")
        return int(invocations)
    if scale is not None:
        if scale <= 0:
            raise ConfigError(f"--scale {scale} must be positive", hint="e.g. --scale 10")
        return max(10, round(scenario.invocations * scale))
    return scenario.invocations


def snap_period_ms(scenario: Scenario) -> int:
    """The period of the scenario's wall-clock grid: the cron ticks, the consumer's batch windows and the
    Logpush uploads are aligned to the clock, so two starts a whole number of periods apart give the
    same counts (5 minutes for the shipped scenarios)."""
    parts = (
        60_000,
        scenario.traffic.report_cron_minutes * 60_000,
        max(1, round(scenario.system.batch_timeout_s * 1000)),
        scenario.system.logpush_interval_s * 1000,
    )
    return math.lcm(*parts)


def snap_start_ms(scenario: Scenario, ms: int) -> int:
    """A relative ``--start`` (``-2h``, ``now``) moved back to the last multiple of :func:`snap_period_ms`:
    the same scenario and seed then give the same counts whenever they run."""
    period = snap_period_ms(scenario)
    return ms - ms % period


def simulate(
    scenario: str | Path | Scenario = "default",
    out: str | os.PathLike[str] = "incident",
    *,
    seed: int = 0,
    invocations: int | None = None,
    scale: float | None = None,
    sandbox_url: str | None = None,
    formats: Iterable[str] | None = None,
    start: str | datetime | None = None,
    token: Secret | None = None,
    transport: httpx.BaseTransport | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Simulate ``scenario`` and write every format into ``out``.

    ``invocations`` (about that many) or ``scale`` (times the scenario's default size) set the size;
    ``formats`` picks a subset of :data:`FORMATS` (``ground_truth.json`` is always written).
    ``start`` moves the window (ISO-8601, epoch, ``now`` or ``-3h``; offsets in the scenario follow); a
    relative one is snapped back to the scenario's wall-clock period (:func:`snap_start_ms`, 5 minutes for
    the shipped scenarios), so the same seed gives the same counts whenever it runs. With
    ``sandbox_url`` the queues, the DLQ and the Workers Logs events are also loaded into a running
    sandbox (token from ``EDGEINVESTIGATE_SANDBOX_TOKEN`` or ``CLOUDFLARE_API_TOKEN``, or ``token``).
    The same scenario, size and seed always write the same files.
    """
    sc = load_scenario(scenario)
    if start is not None:
        when = parse_time(start, name="--start")
        if when is not None:
            ms = int(when.value // 1_000_000)
            if is_relative_time(start):
                ms = snap_start_ms(sc, ms)
            iso = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            sc = sc.model_copy(update={"start": iso})
    chosen = tuple(FORMATS if formats is None else formats)
    unknown = [f for f in chosen if f not in LAYOUT]
    if unknown:
        raise ConfigError(f"unknown formats {unknown}", hint=f"choose from {', '.join(FORMATS)}")
    if sandbox_url and token is None:
        token = sandbox_token()  # fail before the work, not after
    n = _size(sc, invocations, scale)
    outp = Path(out)
    _prepare(outp)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    with _gc_paused():
        say(f"simulating {sc.name} (~{n:,} invocations, seed {seed})")
        sim: Simulation = run(sc, seed=seed, invocations=n)
        files: dict[str, list[str]] = {}
        for fmt in FORMATS:
            if fmt not in chosen:
                continue
            path = outp / LAYOUT[fmt]
            say(f"writing {LAYOUT[fmt]}{'/' if fmt == 'logpush' else ''}")
            written = _WRITERS[fmt](sim, path)
            # the Logpush writer names the files it wrote; the others write the one file at ``path``
            files[fmt] = [str(p) for p in written] if isinstance(written, list) else [str(path)]
        say("writing ground_truth.json")
        gt = write_ground_truth(sim, outp / "ground_truth.json")
        files["ground_truth"] = [str(outp / "ground_truth.json")]
        loaded = None
        if sandbox_url:
            say(f"loading the DLQ and Workers Logs events into the sandbox at {sandbox_url}")
            loaded = load_into_sandbox(sim, sandbox_url, token=token, transport=transport)
            # the ground truth names the queue ids the sandbox gave out
            sim.queue_ids.update({k: v for k, v in loaded["queues"].items() if isinstance(v, str) and v})
            gt = write_ground_truth(sim, outp / "ground_truth.json")
    return SimulationSummary(
        out=outp,
        scenario=sc.name,
        seed=seed,
        invocations=sim.n_invocations,
        logs=len(sim.l_text),
        exceptions=len(sim.x_message),
        dlq_messages=len(sim.dlq),
        root_causes=[i.id for i in sc.incidents],
        files=files,
        seconds=time.perf_counter() - t0,
        sandbox=loaded,
        counts=gt["counts"],
    )
