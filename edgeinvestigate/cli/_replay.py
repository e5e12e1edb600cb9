"""``edgeinvestigate replay``: plan, run, status, cancel, verify and export a DLQ replay."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgeinvestigate.cli._term import fit_lines

__all__ = ["replay"]

RUNBOOK = "runbooks/replay-failed-jobs.md"
#: the environment variable that allows target queues at run time (see edgeinvestigate.replay._targets)
ALLOW_ENV = "EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES"

#: exit status of `replay run` per outcome
RUN_EXIT = {"completed": 0, "incomplete": 4, "cancelled": 5, "interrupted": 130}


def _load_evidence(path: str, from_queue: str | None) -> Any:
    """A bundle directory (Evidence.open) or a DLQ snapshot file (messages.json)."""
    p = Path(path)
    if p.is_dir():
        from edgeinvestigate.evidence.bundle import Evidence

        return Evidence.open(p)
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    return dlq_frame_from_file(p, queue=from_queue)


@click.group("replay")
def replay() -> None:
    """Plan, run, watch and verify a replay of dead-lettered messages.

    \b
    1. edgeinvestigate replay plan BUNDLE --from jobs-dlq --to jobs --allow-queue jobs --out plan.json
    2. review what it printed (and plan.json)
    3. edgeinvestigate replay run plan.json --allow-queue jobs
    4. edgeinvestigate replay status plan.json      (from another terminal)
    5. edgeinvestigate replay verify plan.json BUNDLE2   (after a later collection)

    Replay is at-least-once: every replayed body carries metadata.replay.id, the key consumers
    dedupe on. A DLQ message is removed only after its push was confirmed. See runbooks/replay-failed-jobs.md.
    """


def _check_not_run(out: Path) -> None:
    """A plan that was run is evidence: never overwrite it. A ledger that never ran (confirmation
    declined) belongs to the old plan and is removed with it."""
    from edgeinvestigate.errors import ReplayError
    from edgeinvestigate.replay import Ledger, default_ledger_path

    ledger = default_ledger_path(out)
    if not ledger.exists():
        return
    try:
        with Ledger.open(ledger, create=False) as led:
            ran = bool(led.runs())
    except ReplayError:
        ran = False
    if ran:
        raise click.UsageError(
            f"{out} was already run (its ledger {ledger} exists and is evidence); choose another --out"
        )
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(ledger) + suffix).unlink(missing_ok=True)


@replay.command("plan")
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--from", "from_queue", required=True, help="The dead-letter queue the messages are in.")
@click.option("--to", "to_queue", required=True, help="The queue to send them back to (must be allowed).")
@click.option(
    "--cluster", "clusters", multiple=True, help="Only messages of this error cluster id (repeatable)."
)
@click.option("--type", "types", multiple=True, help="Only this job type, e.g. EMAIL_DELIVERY (repeatable).")
@click.option(
    "--since", help="Only messages whose DLQ timestamp is at or after this time (ISO-8601, epoch, -2h)."
)
@click.option("--until", help="Only messages whose DLQ timestamp is before this time.")
@click.option("--id", "ids", multiple=True, help="Only this DLQ message id (repeatable).")
@click.option(
    "--where", help="A pandas query on the dlq frame, e.g. \"attempts >= 3 and job_type == 'DATA_SYNC'\"."
)
@click.option(
    "--patch",
    type=click.Path(exists=True, dir_okay=False),
    help="An RFC 7386 JSON merge patch (.json) or a Python file defining patch(message) -> message.",
)
@click.option(
    "--allow-queue",
    "allow_queues",
    multiple=True,
    help=f"A queue allowed as --to (repeatable; also {ALLOW_ENV}=q1,q2 or --config).",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="A TOML file with [replay] allow_queues = [...].",
)
@click.option("--rate", type=float, default=100.0, show_default=True, help="Planned velocity in messages/s.")
@click.option(
    "--max-requests-per-5min",
    type=int,
    default=1200,
    show_default=True,
    help="API request budget planned for (shared with other uses of the token).",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the plan (JSON).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--samples", type=int, default=3, show_default=True, help="Sample payloads to show.")
def plan_cmd(
    bundle: str,
    from_queue: str,
    to_queue: str,
    clusters: tuple[str, ...],
    types: tuple[str, ...],
    since: str | None,
    until: str | None,
    ids: tuple[str, ...],
    where: str | None,
    patch: str | None,
    allow_queues: tuple[str, ...],
    config: str | None,
    rate: float,
    max_requests_per_5min: int,
    out: str,
    force: bool,
    samples: int,
) -> None:
    """Select DLQ messages of BUNDLE to replay, show what would happen, and write the plan.

    BUNDLE is an evidence bundle directory or a DLQ snapshot file (messages.json). Nothing is sent.
    Messages that an earlier plan already replayed (its ledger is registered in BUNDLE by `replay
    run`, or lies next to --out) are excluded as already_replayed; a bundle that saw only part of
    the DLQ (a peek) is flagged with a WARNING.
    """
    from edgeinvestigate.replay import plan_replay

    if Path(out).exists() and not force:
        raise click.UsageError(f"{out} exists already; choose another --out or pass --force")
    _check_not_run(Path(out))
    ev = _load_evidence(bundle, from_queue)
    if clusters and hasattr(ev, "derived") and ev.derived("clusters") is None:
        from edgeinvestigate.cli._pipeline import note

        note("this bundle holds no stored clusters (an older release wrote it): clustering it in memory")
    plan = plan_replay(
        ev,
        from_queue,
        to_queue,
        clusters=clusters,
        types=types,
        since=since,
        until=until,
        ids=ids,
        where=where,
        patch=patch,
        allow_queues=allow_queues,
        config=config,
        rate=rate,
        max_requests_per_5min=max_requests_per_5min,
        bundle=str(Path(bundle).resolve()),
        near=out,
    )
    click.echo(fit_lines(plan.summary(samples=samples)))
    plan.save(out, overwrite=force)
    click.echo("")
    click.secho(f"wrote {out} (content hash {plan.content_hash[:16]}...)", bold=True)
    click.echo(
        f"review it, then run: edgeinvestigate replay run {out} --allow-queue {plan.target_queue} (or "
        f"{ALLOW_ENV}={plan.target_queue}, or --config FILE): the run checks the target against its own "
        "allow-list, not the plan's"
    )


def _can_ask() -> bool:
    """Whether a confirmation can be asked: stdin is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed
        return False


def _client(api_url: str | None, account_id: str | None, token_file: str | None, timeout: float) -> Any:
    from edgeinvestigate.cloudflare.client import CloudflareClient

    return CloudflareClient.from_env(
        api_url=api_url, account_id=account_id, token_file=token_file, timeout=timeout
    )


@replay.command("run")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option("--rate", type=float, help="Messages per second (default: the plan's).")
@click.option(
    "--max-requests-per-5min",
    type=int,
    help="API requests allowed in any 5 minutes (default: the plan's, 1200); the Ratelimit headers "
    "are also obeyed, since other tools share the token.",
)
@click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Ledger file (default: next to PLAN)."
)
@click.option(
    "--allow-queue",
    "allow_queues",
    multiple=True,
    help=f"A queue this run may push to (repeatable; also {ALLOW_ENV}=q1,q2 or --config). The plan's own "
    "allow_queues is a record of the review, not a permission.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="A TOML file with [replay] allow_queues = [...].",
)
@click.option(
    "--bundle",
    type=click.Path(exists=True),
    help="Where the plan's evidence bundle is now, if it was moved (its messages are checked against it).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@click.option("--api-url", help="API base URL (default: CLOUDFLARE_API_BASE_URL or Cloudflare's).")
@click.option("--account-id", help="Account id (default: CLOUDFLARE_ACCOUNT_ID).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Read the API token from this file instead of CLOUDFLARE_API_TOKEN.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="HTTP read timeout in seconds.")
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: when stderr is a terminal)."
)
@click.option(
    "--max-ambiguous-pushes",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Stop after this many pushes of one batch in a row got no answer (timeout, 5xx): each may have "
    "been enqueued, so each re-send may add one more copy on the target.",
)
@click.option(
    "--resend-ambiguous",
    is_flag=True,
    help="Send again the batches an earlier run stopped re-sending after unanswered pushes (check the "
    "target queue's backlog and its consumer's dedupe on metadata.replay.id first).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print the result as JSON; an error is printed as a JSON object {"error": {...}} on stdout too.',
)
def run_cmd(plan_path: str, as_json: bool, **options: Any) -> None:
    """Run (or resume) the replay PLAN: push in batches, then remove the originals from the DLQ.

    The target queue must be allowed now, by --allow-queue, EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES or
    --config (not by the plan file): otherwise the run is refused before any request (exit 3). So is
    a plan with a message that is not in the DLQ of its bundle, and a second run of the same plan on
    this machine (any copy of the file, any ledger). Without a terminal, --yes is required (exit 2).

    Safe to run again after a crash, Ctrl-C or kill -9: it resumes from the ledger and never re-sends
    a settled message. Ctrl-C finishes the batch in flight. Exit status: 0 completed, 4 incomplete
    (everything pushed, the removal of some originals not confirmed; the note says what is known and
    what to do, see runbooks/replay-failed-jobs.md), 5 cancelled, 130 interrupted. A plan some of whose
    messages another plan's ledger (registered in the bundle, or next to PLAN) shows as already pushed
    and removed from the DLQ is refused before anything is sent (exit 3): make a new plan, which
    excludes them.

    A batch whose pushes get no answer (timeout, 5xx) --max-ambiguous-pushes times in a row stops the
    run (exit 1): each such push may have been enqueued, and the message says how many copies may be
    on the target. A later run refuses that batch (exit 3) until --resend-ambiguous is given.
    """
    from edgeinvestigate.errors import EdgeInvestigateError

    try:
        _run(plan_path, as_json=as_json, **options)  # the options of the decorators above, by name
    except EdgeInvestigateError as exc:
        if not as_json:
            raise
        # --json: a script reads stdout; the error is one JSON object there (and the exit status)
        error = {
            "type": type(exc).__name__,
            "message": exc.message,
            "hint": exc.hint or None,
            "exit_code": exc.exit_code,
            "plan": plan_path,
        }
        click.echo(json.dumps({"outcome": "error", "error": error}, indent=2))
        sys.exit(exc.exit_code)


def _run(
    plan_path: str,
    *,
    rate: float | None,
    max_requests_per_5min: int | None,
    ledger_path: str | None,
    allow_queues: tuple[str, ...],
    config: str | None,
    bundle: str | None,
    yes: bool,
    api_url: str | None,
    account_id: str | None,
    token_file: str | None,
    timeout: float,
    progress: bool | None,
    max_ambiguous_pushes: int,
    resend_ambiguous: bool,
    as_json: bool,
) -> None:
    from edgeinvestigate.errors import ConfigError
    from edgeinvestigate.replay import ReplayPlan, run_replay

    if not yes and not _can_ask():
        raise ConfigError(
            f"replay run {plan_path}: there is no terminal to ask for confirmation on (stdin is not a "
            "terminal) and --yes was not given; nothing was sent",
            hint=f"review the plan (edgeinvestigate replay plan printed it), then pass --yes; see {RUNBOOK}",
        )
    ReplayPlan.load(plan_path)  # a tampered plan is refused before anything else
    client = _client(api_url, account_id, token_file, timeout)

    def confirm(plan: ReplayPlan) -> bool:
        if yes:
            return True
        review = plan.summary(samples=1, diffs=3, rate=rate, max_requests_per_5min=max_requests_per_5min)
        click.echo(fit_lines(review), err=True)
        return click.confirm(
            f"replay {len(plan.messages)} messages from {plan.source_queue!r} to {plan.target_queue!r}?",
            err=True,
        )

    show = sys.stderr.isatty() if progress is None else progress
    with client:
        result = run_replay(
            plan_path,
            client,
            rate=rate,
            max_requests_per_5min=max_requests_per_5min,
            ledger_path=ledger_path,
            allow_queues=allow_queues,
            config=config,
            bundle=bundle,
            progress=show,
            confirm=confirm,
            argv=sys.argv[1:],
            say=lambda text: click.echo(text, err=True),
            max_ambiguous_pushes=max_ambiguous_pushes,
            resend_ambiguous=resend_ambiguous,
        )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        c = result.counts
        click.echo(
            f"{result.outcome}: {c.get('settled', 0)}/{sum(c.values())} settled, "
            f"{result.messages_pushed} pushed in {result.push_requests} requests this run "
            f"({result.achieved_rate:.1f} msg/s), {result.rate_limited} 429s, "
            f"{result.ambiguous_batches} ambiguous batches, "
            f"{result.possible_duplicates} possible duplicates, "
            f"{result.copies_sent} copies sent in all"
        )
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    code = RUN_EXIT.get(result.outcome, 1)
    if code:
        sys.exit(code)


@replay.command("status")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Ledger file (default: next to PLAN)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(plan_path: str, ledger_path: str | None, as_json: bool) -> None:
    """Counts per state, rate, errors, ambiguous batches and ETA of a replay (works while it runs).

    Says "not running (crashed? ...)" as soon as the run's process is gone (same host; another host:
    after 120 s without a heartbeat), and "blocked: ..." instead of an ETA for a plan that cannot
    finish on its own (exit status 4).
    """
    from edgeinvestigate.replay import replay_status

    st = replay_status(plan_path, ledger_path=ledger_path)
    click.echo(json.dumps(st.to_dict(), indent=2) if as_json else st.render())


@replay.command("cancel")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Ledger file (default: next to PLAN)."
)
def cancel_cmd(plan_path: str, ledger_path: str | None) -> None:
    """Stop a running replay cleanly after its in-flight batch (resume later with replay run)."""
    from edgeinvestigate.replay import cancel_replay

    st = cancel_replay(plan_path, ledger_path=ledger_path)
    click.echo(
        f"cancel requested for replay {st.plan_id}"
        + ("; the run stops after its in-flight batch" if st.running else "; no run is going on now")
    )


@replay.command("verify")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.argument("bundle2", type=click.Path(exists=True))
@click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Ledger file (default: next to PLAN)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify_cmd(plan_path: str, bundle2: str, ledger_path: str | None, as_json: bool) -> None:
    """After a later collection BUNDLE2: replayed jobs back in the DLQ, succeeded, or not seen yet.

    Only the messages the plan's ledger shows as pushed are verified; a plan that has not run (no
    ledger, or nothing pushed) is refused with exit status 1.
    """
    from edgeinvestigate.replay import ReplayPlan, verify_replay

    plan = ReplayPlan.load(plan_path)
    ev2 = _load_evidence(bundle2, plan.source_queue)
    report = verify_replay(plan_path, ev2, ledger_path=ledger_path)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())


@replay.command("export")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="json",
    show_default=True,
    help="Output format.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False), help="Ledger file (default: next to PLAN)."
)
def export_cmd(plan_path: str, fmt: str, out: str | None, ledger_path: str | None) -> None:
    """Export the plan and ledger as postmortem evidence: who, when, which plan, per-message outcome."""
    from edgeinvestigate.replay import export_replay

    text = export_replay(plan_path, fmt, ledger_path=ledger_path)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
