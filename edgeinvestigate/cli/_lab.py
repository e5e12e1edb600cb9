"""``edgeinvestigate lab``: the real-runtime lab (``lab/``) and its Tail Worker collector."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeinvestigate.errors import ConfigError, EdgeInvestigateError

__all__ = ["lab"]


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen must be HOST:PORT (port 0 picks a free one), got {value!r}")
    return host.strip("[]"), int(port)


@click.group()
def lab() -> None:
    """Run the job system of processing-architecture.md on the real Workers runtime (workerd).

    `lab run` (what `make lab` calls) drives an incident through real Workers, investigates it
    with edgeinvestigate and replays the failed jobs back into the runtime. See lab/README.md.
    """


@lab.command("run")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the results: TraceItems, evidence bundles, report, replay plan, summary.json "
    "(emptied first) [default: lab/.state/last-run].",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for runtime state, rendered configs and process logs [default: lab/.state/run-<time>].",
)
@click.option(
    "--keep-state/--no-keep-state",
    default=False,
    show_default=True,
    help="Keep the state folder after a successful run (it is always kept after a failure).",
)
@click.option(
    "--lab-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The lab folder with package.json and the Workers [default: lab/ of this checkout].",
)
@click.option(
    "--npm",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Run `npm ci` in the lab folder: when the lockfile changed (auto), every time, or never.",
)
@click.option("--seed", type=int, default=8, show_default=True, help="Seed of the generated traffic.")
@click.option(
    "--jobs",
    "scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Scale the number of jobs per phase (1.0 = 120 baseline, 160 incident, 40 recovery).",
)
@click.option("--no-report", is_flag=True, help="Skip the HTML incident report.")
@click.option("--no-replay", is_flag=True, help="Stop after the investigation (no replay).")
def run(
    out_dir: Path | None,
    state_dir: Path | None,
    keep_state: bool,
    lab_dir: Path | None,
    npm: str,
    seed: int,
    scale: float,
    no_report: bool,
    no_replay: bool,
) -> None:
    """Drive an incident on the real runtime, investigate it, replay the fix, verify it.

    Starts the sandbox, the collector and one `wrangler dev` with every lab Worker (offline),
    sends traffic, deploys a bad version, has a dependency outage, fixes the deploy, collects the
    evidence, writes the report, replays the top cluster into the runtime and checks that the
    replayed jobs succeeded. Every process it starts is stopped at the end, whatever happens.
    """
    from edgeinvestigate.lab import LabOptions, run_lab
    from edgeinvestigate.lab._checks import check_result

    if scale <= 0:
        raise ConfigError(f"--jobs must be positive, got {scale}")
    opts = LabOptions(
        out_dir=out_dir,
        state_dir=state_dir,
        lab_dir=lab_dir,
        keep_state=keep_state,
        npm=npm,
        seed=seed,
        baseline=max(40, round(120 * scale)),
        incident=max(20, round(160 * scale)),
        recovery=max(5, round(40 * scale)),
        report=not no_report,
        replay=not no_replay,
    )
    result = run_lab(opts)
    checks = check_result(result)
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.name}: {check.detail}")
    steps = result.summary.get("steps", {})
    top = steps.get("analyze", {}).get("top") or {}
    if top.get("sentence"):
        click.echo(f"\ntop finding: {top.get('title')}\n  {top['sentence']}")
    if result.report is not None:
        click.echo(f"incident report: {result.report}")
    if "replay" in steps:
        n = len(steps["replay"].get("replayed_jobs") or [])
        counts = (steps.get("verify", {}).get("verify") or {}).get("counts", {})
        click.echo(
            f"replay: {n} jobs re-entered the runtime through the sandbox's retry queue; "
            f"{counts.get('succeeded', 0)} seen succeeding, {counts.get('back_in_dlq', 0)} back in the DLQ"
        )
    click.echo(f"results in {result.out_dir} (summary.json)")
    if not all(c.ok for c in checks):
        raise EdgeInvestigateError(
            "the lab ran but some checks failed (see above and summary.json)",
            hint="see lab/README.md, section Troubleshooting",
        )


@lab.command("collector")
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT to listen on; port 0 picks a free one (written to --ready-file).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="TraceItem JSONL file to append to (one TraceItem array per line).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Write {"url", "pid", "out"} here once the collector accepts requests.',
)
@click.option("--backlog", type=int, default=256, show_default=True, help="Listen backlog of the socket.")
def collector(listen: str, out: Path, ready_file: Path | None, backlog: int) -> None:
    """Receive Tail Worker POSTs of TraceItem[] and append them to a TraceItem JSONL file.

    The same server as `edgeinvestigate collect --listen`; runs until Ctrl-C or SIGTERM.
    """
    from edgeinvestigate.capture.collector import serve_collector

    host, port = _listen(listen)
    serve_collector(host, port, out, ready_file=ready_file, backlog=backlog)


@lab.command("status")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
def status(out_dir: Path | None) -> None:
    """Check a finished lab run again (OUT_DIR/summary.json) [default: lab/.state/last-run]."""
    from edgeinvestigate.lab import LabResult, find_lab_dir
    from edgeinvestigate.lab._checks import check_result

    if out_dir is None:
        out_dir = find_lab_dir() / ".state" / "last-run"

    path = out_dir / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", hint="run `edgeinvestigate lab run --out DIR` first")
    summary = json.loads(path.read_text(encoding="utf-8"))
    result = LabResult(
        out_dir=out_dir,
        trace_file=out_dir / "traceitems" / "traceitems.jsonl",
        summary=summary,
        ok=bool(summary.get("ok")),
    )
    checks = check_result(result)
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        raise EdgeInvestigateError(
            f"the lab run in {out_dir} has failed checks", hint="see lab/README.md, Troubleshooting"
        )
