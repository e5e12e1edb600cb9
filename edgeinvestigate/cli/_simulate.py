"""``edgeinvestigate simulate``: write a simulated incident in every telemetry format."""

from __future__ import annotations

from pathlib import Path

import click

from edgeinvestigate.errors import ConfigError

_FORMATS = ("tail", "traceitems", "logpush", "workers_logs", "dlq", "analytics")


@click.command(
    "simulate",
    help=(
        "Simulate an incident on a Queues + Workers job system and write the SAME incident as "
        "wrangler tail JSON (tail/tail.json), Tail Worker TraceItems (traceitems/traceitems.jsonl), "
        "Logpush workers_trace_events (logpush/YYYYMMDD/*.log.gz), Workers Logs events "
        "(workers_logs/events.json), the DLQ (dlq/messages.json) and ground_truth.json (root causes, "
        "affected ids, the true template of every error).\n\n"
        "SCENARIO is a shipped scenario name (see --list) or a path to a scenario .toml file."
    ),
)
@click.argument("scenario", required=False)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (new, empty, or holding an earlier simulation, which is replaced).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same files.")
@click.option("--scale", type=float, default=None, help="Size as a multiple of the scenario's default size.")
@click.option("--invocations", type=int, default=None, help="Size: about this many Worker invocations.")
@click.option(
    "--format",
    "formats",
    type=click.Choice(_FORMATS),
    multiple=True,
    help="Write only these formats (repeatable; default: all). ground_truth.json is always written.",
)
@click.option(
    "--start",
    metavar="TIME",
    default=None,
    help="Move the incident window to start at TIME (ISO-8601, epoch, 'now' or '-3h'); "
    "default: the scenario's start. A relative TIME is snapped back to a multiple of 5 minutes (the "
    "scenario's wall-clock period), so the same --seed gives the same counts whenever it runs.",
)
@click.option(
    "--sandbox",
    "sandbox_url",
    metavar="URL",
    default=None,
    help=(
        "Also load the queues, the DLQ and the Workers Logs events into the sandbox at URL "
        "(its root or .../client/v4). The token is read from EDGEINVESTIGATE_SANDBOX_TOKEN or "
        "CLOUDFLARE_API_TOKEN, never from the command line."
    ),
)
@click.option("--list", "list_", is_flag=True, help="List the shipped scenarios and exit.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def simulate(
    scenario: str | None,
    out: Path | None,
    seed: int,
    scale: float | None,
    invocations: int | None,
    formats: tuple[str, ...],
    start: str | None,
    sandbox_url: str | None,
    list_: bool,
    quiet: bool,
) -> None:
    from edgeinvestigate.simulator import list_scenarios
    from edgeinvestigate.simulator import simulate as run_simulation

    if list_:
        for name, description in list_scenarios().items():
            click.echo(f"{name:<18} {description}")
        return
    if not scenario:
        raise ConfigError("no SCENARIO given", hint="edgeinvestigate simulate --list shows the scenarios")
    if out is None:
        raise ConfigError(
            "--out DIR is required", hint=f"e.g. edgeinvestigate simulate {scenario} --out incident"
        )

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(f"  {msg}", err=True)

    summary = run_simulation(
        scenario,
        out,
        seed=seed,
        invocations=invocations,
        scale=scale,
        sandbox_url=sandbox_url,
        formats=formats or None,
        start=start,
        progress=progress,
    )
    if not quiet:
        click.echo(str(summary))
