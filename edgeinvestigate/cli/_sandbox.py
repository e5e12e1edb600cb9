"""``edgeinvestigate sandbox``: run the local Cloudflare API sandbox."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from edgeinvestigate._http import Secret
from edgeinvestigate.errors import ConfigError, SandboxError

TOKEN_ENV = "EDGEINVESTIGATE_SANDBOX_TOKEN"  # noqa: S105 - a variable name, not a secret


def _token(token: str | None, token_file: Path | None) -> Secret:
    if token:
        return Secret(token)
    if token_file is not None:
        if not token_file.exists():
            # Never create directories here: a typo would serve a token nobody knows where to find.
            if not token_file.parent.is_dir():
                raise ConfigError(
                    f"cannot create the token file {token_file}: its directory {token_file.parent} "
                    "does not exist",
                    hint=f"create it first (mkdir -p {token_file.parent}), fix the path, or set {TOKEN_ENV}",
                )
            try:
                fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(24) + "\n")
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the token file {token_file}: {exc.strerror or exc}",
                    hint=f"choose a --token-file in a directory you can write, or set {TOKEN_ENV}",
                ) from exc
            click.echo(f"wrote a new random sandbox token to {token_file} (mode 600)", err=True)
        try:
            value = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the token file {token_file}: {exc.strerror or exc}",
                hint=f"fix its permissions, or set {TOKEN_ENV}",
            ) from exc
        if not value:
            raise ConfigError(
                f"token file {token_file} is empty", hint="delete it to have a new token generated"
            )
        return Secret(value)
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return Secret(env)
    raise ConfigError(
        "the sandbox needs a bearer token",
        hint=f"set {TOKEN_ENV}, or pass --token-file PATH (created with a random token if missing)",
    )


def _rate(spec: str) -> tuple[int, int]:
    limit, _, window = spec.partition("/")
    try:
        return int(limit), int(window or 300)
    except ValueError as exc:
        raise ConfigError(
            f"--rate-limit {spec!r} is not REQUESTS/SECONDS", hint="e.g. --rate-limit 1200/300"
        ) from exc


@click.group("sandbox")
def sandbox() -> None:
    """Run the local Cloudflare API sandbox (Queues, Workers Logs query, live tails, Worker deployments),
    and consume its queues like the consumer Worker it does not run (`sandbox consume QUEUE`).

    Point edgeinvestigate at it with CLOUDFLARE_API_BASE_URL=http://127.0.0.1:PORT/client/v4 (the
    bare http://127.0.0.1:PORT works too), CLOUDFLARE_API_TOKEN set to the sandbox token and
    CLOUDFLARE_ACCOUNT_ID set to the account `simulate --sandbox` loaded (account_id in
    DIR/ground_truth.json; 9a7806061c88ada191ed06f989cc3dac for the shipped scenarios). Admin
    endpoints live under /__admin/ (ARCHITECTURE.md).
    """


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8789, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep state in DIR/sandbox.sqlite3 so it survives restarts (default: in memory).",
)
@click.option(
    "--token",
    default=None,
    help=f"The bearer token clients must send (prefer the {TOKEN_ENV} environment variable; never printed).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the token from this file; a random token is written to it (mode 600) if it does not exist.",
)
@click.option(
    "--faults",
    default="",
    help="Fault spec, e.g. 'latency=0.2,error_rate=0.05,burst429=10,"
    "drop=0.01,commit_timeout=0.05,seed=1' (see edgeinvestigate.sandbox.faults).",
)
@click.option(
    "--rate-limit",
    "rate_limit",
    default="1200/300",
    show_default=True,
    help="Global API limit as REQUESTS/SECONDS (pull and ack are exempt); 0 disables it "
    "(responses then carry no Ratelimit headers).",
)
@click.option(
    "--json-bodies",
    type=click.Choice(["plain", "base64"]),
    default="plain",
    show_default=True,
    help="How pull/peek show json message bodies by default (per queue it can be overridden).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Write {"url", "base", "pid", "port"} as JSON to this file once listening.',
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn log level.",
)
def serve_cmd(
    host: str,
    port: int,
    state_dir: Path | None,
    token: str | None,
    token_file: Path | None,
    faults: str,
    rate_limit: str,
    json_bodies: str,
    ready_file: Path | None,
    log_level: str,
) -> None:
    """Serve the sandbox until interrupted."""
    from edgeinvestigate.sandbox._context import SandboxConfig
    from edgeinvestigate.sandbox.faults import parse_faults
    from edgeinvestigate.sandbox.server import serve
    from edgeinvestigate.simulator._scenario import DEFAULT_ACCOUNT_ID as SIMULATOR_ACCOUNT_ID

    limit, window = _rate(rate_limit)
    config = SandboxConfig(
        token=_token(token, token_file),
        state_dir=state_dir,
        faults=parse_faults(faults),
        rate_limit=limit,
        rate_window_s=window,
        json_body_encoding=json_bodies,
    )

    def exports(info: dict[str, object]) -> None:
        # printed once the port is bound, so --port 0 shows the port it picked
        click.echo(
            "point clients at this sandbox with:\n"
            f"  export CLOUDFLARE_API_BASE_URL={info['url']}\n"
            f"  export CLOUDFLARE_API_TOKEN=<the sandbox token, e.g. ${TOKEN_ENV}>\n"
            f"  export CLOUDFLARE_ACCOUNT_ID={SIMULATOR_ACCOUNT_ID}   "
            "# the account `simulate --sandbox` loads (see DIR/ground_truth.json)\n"
            f"then load an incident: edgeinvestigate simulate default --out DIR --start -2h "
            f"--sandbox {info['base']}",
            err=True,
        )

    serve(config, host=host, port=port, ready_file=ready_file, log_level=log_level, on_bound=exports)


@sandbox.command("consume")
@click.argument("queue")
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of deliveries that fail transiently (a flaky dependency): they are retried, and past the "
    "queue's max_retries they go to its dead letter queue.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after this many seconds (with --until-empty, whichever comes first).",
)
@click.option(
    "--until-empty/--keep-running",
    default=True,
    show_default=True,
    help="Stop once the queue holds no message (every one settled; delayed retries are waited for). "
    "--keep-running needs --duration.",
)
@click.option(
    "--scenario",
    default=None,
    help="The simulated job system whose incidents decide failures (`simulate --list`, or a .toml file); "
    "default: the shipped scenario whose consumer version the sandbox's deployments list as live (what "
    "`simulate --sandbox` loaded), else 'default'.",
)
@click.option(
    "--script",
    default=None,
    help="Worker name of the logs (default: the queue consumer's script, else jobs-consumer).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100),
    default=None,
    help="Messages per pull (default: the consumer's batch_size).",
)
@click.option(
    "--retry-delay",
    type=click.IntRange(0, 43_200),
    default=None,
    metavar="SECONDS",
    help="Delay of a retried delivery (default: the consumer's retry_delay).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="With --until-empty and no --duration: stop when messages remain but none became visible "
    "for this long.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the log ids.")
def consume_cmd(
    queue: str,
    failure_rate: float,
    duration: float | None,
    until_empty: bool,
    scenario: str | None,
    script: str | None,
    batch_size: int | None,
    retry_delay: int | None,
    idle_timeout: float,
    seed: int,
) -> None:
    """Consume QUEUE in the sandbox like the (fixed) consumer Worker would, and log it.

    The sandbox runs no Workers, so nothing consumes a work queue there: replayed jobs would wait
    forever. This pulls QUEUE through the Queues REST API (switching a Worker consumer to an http_pull
    one with the same max_retries and dead letter queue), runs each job as the version the sandbox's
    deployments API says is live (a rollback there counts), acks / retries / dead-letters it like the
    Worker, and writes the Worker's Workers Logs into the sandbox, where `collect --workers-logs` finds
    them. Uses CLOUDFLARE_API_BASE_URL, CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID; refuses anything
    but a sandbox.
    """
    from edgeinvestigate._http import make_client
    from edgeinvestigate.cloudflare.client import DEFAULT_API_URL, CloudflareClient
    from edgeinvestigate.lab._sandbox_consume import ConsumeOptions, run_consumer

    opts = ConsumeOptions(
        queue=queue,
        scenario=scenario,
        script=script,
        failure_rate=failure_rate,
        duration=duration,
        until_empty=until_empty,
        batch_size=batch_size,
        retry_delay=retry_delay,
        idle_timeout=idle_timeout,
        seed=seed,
    )
    with CloudflareClient.from_env() as client:
        if client.api_url.rstrip("/") == DEFAULT_API_URL:
            raise ConfigError(
                "`sandbox consume` drives the local sandbox, and CLOUDFLARE_API_BASE_URL is not set "
                "(the real Cloudflare API)",
                hint="export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:PORT/client/v4 "
                "(`sandbox serve` prints it)",
            )
        root = client.api_url.rstrip("/").removesuffix("/client/v4")
        token = Secret(os.environ.get("CLOUDFLARE_API_TOKEN", "").strip())  # from_env checked it is set
        with make_client(root, token=token, timeout=30.0) as admin:
            result = run_consumer(client, admin, opts, echo=lambda line: click.echo(line, err=True))
    click.echo(result.summary())
    if result.stopped == "idle":
        raise SandboxError(
            f"{result.left} message(s) are still on {queue!r} but none became visible for {idle_timeout:g} s",
            hint="is delivery paused (resume it), or are retries delayed longer? raise --idle-timeout, "
            "or give --duration SECONDS",
        )
