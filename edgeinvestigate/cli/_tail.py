"""``edgeinvestigate tail``: capture a Worker's live tail to NDJSON."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

__all__ = ["tail"]


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # same clean-up path as Ctrl-C: the tail is deleted


@click.command(
    "tail",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  edgeinvestigate tail jobs-consumer --out tail.ndjson --filter-outcome error\n\n"
        "  edgeinvestigate tail jobs-consumer --out tail.ndjson --search job-7f3a --duration 300\n\n"
        "  edgeinvestigate collect --tail tail.ndjson --out evidence/INC-125\n\n"
        "Secrets: the API token comes from CLOUDFLARE_API_TOKEN or --token-file, never from an option "
        "value. The token needs Workers Tail Read. At most 10 tails per Worker may be open at once "
        "(dashboard and wrangler sessions count)."
    ),
)
@click.argument("script")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="NDJSON file to append events to (one JSON object per line; read it with collect --tail).",
)
@click.option(
    "--filter-outcome",
    "outcomes",
    multiple=True,
    metavar="OUTCOME",
    help="Only invocations with this outcome (repeatable): error (= exception, exceededCpu, "
    "exceededMemory, unknown), ok, canceled, exceededCpu, ...",
)
@click.option(
    "--sampling-rate",
    type=float,
    help="Keep this fraction of events, between 0 and 1 (server-side sampling).",
)
@click.option("--search", help="Only events whose console output contains this text.")
@click.option(
    "--method", "methods", multiple=True, help="Only fetch requests with this HTTP method (repeatable)."
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    help="Only requests with this header, KEY or KEY:VALUE (repeatable).",
)
@click.option(
    "--ip", "client_ips", multiple=True, help="Only requests from this client IP, or 'self' (repeatable)."
)
@click.option("--version-id", help="Only events of this Worker version id.")
@click.option(
    "--debug-events", is_flag=True, help="Ask for events the filters would drop too (tail debug mode)."
)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--max-events", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--api-url", help="Cloudflare API base URL (default: CLOUDFLARE_API_BASE_URL or the real API).")
@click.option("--account-id", help="Cloudflare account id (default: CLOUDFLARE_ACCOUNT_ID).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the API token (default: CLOUDFLARE_API_TOKEN from the environment).",
)
def tail(
    script: str,
    out: Path,
    outcomes: tuple[str, ...],
    sampling_rate: float | None,
    search: str | None,
    methods: tuple[str, ...],
    headers: tuple[str, ...],
    client_ips: tuple[str, ...],
    version_id: str | None,
    debug_events: bool,
    duration: float | None,
    max_events: int | None,
    api_url: str | None,
    account_id: str | None,
    token_file: Path | None,
) -> None:
    """Capture the live tail of Worker SCRIPT into an NDJSON file.

    Creates a tail through the API, connects to its WebSocket (trace-v1), writes each event as one
    line as soon as it arrives, pings every 10 s, reconnects with a new tail after a lost connection
    (backoff 1-16 s, 5 attempts) and deletes the tail on exit, Ctrl-C included. Runs until Ctrl-C,
    --duration or --max-events.
    """
    from edgeinvestigate.capture.livetail import build_filters, capture_tail
    from edgeinvestigate.cloudflare.client import CloudflareClient

    filters = build_filters(
        outcomes=outcomes,
        sampling_rate=sampling_rate,
        search=search,
        methods=methods,
        headers=headers,
        client_ips=client_ips,
        version_id=version_id,
    )
    previous = signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C too, also when this process was started with SIGINT ignored (a background job of a shell
    # script): Python installs no handler of its own then, and the tail would never be deleted
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with CloudflareClient.from_env(
            api_url=api_url, account_id=account_id, token_file=token_file
        ) as client:
            click.echo(f"tailing {script} into {out} (Ctrl-C to stop)", err=True)
            result = capture_tail(
                client,
                script,
                out,
                filters=filters,
                debug=debug_events,
                duration=duration,
                max_events=max_events,
                return_on_interrupt=True,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    # result.warnings were logged as they happened (the CLI's warning handler showed them once)
    click.echo(result.summary())
    if result.stopped == "interrupted":
        raise SystemExit(130)
