"""``edgeinvestigate demo``: the whole investigation loop on the bundled sample incident, offline.

Each step runs the same command an on-call engineer would type (in this process, through the
CLI), against a real local sandbox server started in a subprocess with a random token that is
passed through the environment and never printed:

1. start the sandbox (``edgeinvestigate sandbox serve``)
2. simulate the default incident into files and into the sandbox (``simulate default --sandbox``)
3. investigate (``investigate --to QUEUE``): collect Workers Logs and the DLQ through the API into
   a bundle (the DLQ as a snapshot whose leases are kept in the bundle, so the replay removes each
   original by ack), cluster, rank root causes, write the incident report and a draft replay plan
   of the clusters the fix made safe (the bad-deploy cluster fixed by the revert, transient outage
   clusters)
4. review that draft: the clusters picked and why
5. run it (``replay run``) and check the sandbox state: every job on the work queue, none left
   in the DLQ
6. the fixed consumer processes the replayed jobs: a simulated consumer Worker
   (``lab/_consumer.py``) pulls them from the work queue through the REST API, runs them
   with the scenario's job model as the version live now (the revert), acks them and writes its
   Workers Logs into the sandbox
7. collect again (the consumer's Workers Logs since the plan, the DLQ), verify the replay
   (``replay verify``: every replayed job must be seen succeeding, none back in the DLQ) and add
   it to the report
8. stop the sandbox and print where the report is

Everything goes to ``--out``: ``incident/`` (the simulator), ``bundle/``, ``report/``,
``findings.json`` and ``plan.json`` (what ``investigate`` writes), the replay ledger and
``verify.json`` next to the plan, ``evidence-after-replay/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from edgeinvestigate.errors import ConfigError, EdgeInvestigateError, SandboxError

__all__ = ["demo"]

SCENARIO = "default"
_LEASE_MS = 1_800_000
_TITLES = {"default": "bad deploy + image-service outage"}


@dataclass
class _Sandbox:
    url: str  # API base, ending in /client/v4
    root: str  # server root (admin endpoints live under /__admin/)
    pid: int


class _Steps:
    """Prints numbered steps with their duration; a failing step names itself."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.n += 1
        click.secho(f"\n[{self.n}/{self.total}] {title}", bold=True)
        t0 = time.monotonic()
        try:
            yield
        except BaseException:
            click.secho(f"[{self.n}/{self.total}] FAILED: {title}", fg="red", bold=True, err=True)
            raise
        click.secho(f"      done in {time.monotonic() - t0:.1f}s", fg="green")


def _run_cli(args: list[str], *, ok: tuple[int, ...] = (0,)) -> int:
    """Run one edgeinvestigate command in this process, echoing it first; return its exit status."""
    from edgeinvestigate.cli._main import cli

    shown = " ".join(a if " " not in a else repr(a) for a in args)
    click.secho(f"      $ edgeinvestigate {shown}", fg="cyan")
    try:
        result = cli.main(args=args, prog_name="edgeinvestigate", standalone_mode=False)
    except SystemExit as exc:  # a command that exits with a status of its own
        result = exc.code
    code = result if isinstance(result, int) else 0
    if code not in ok:
        raise EdgeInvestigateError(f"`edgeinvestigate {shown}` exited with status {code}")
    return code


@contextlib.contextmanager
def _sandbox(state_dir: Path, token: str) -> Iterator[_Sandbox]:
    """Start ``edgeinvestigate sandbox serve`` on a free 127.0.0.1 port; stop it by its pid."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / "ready.json"
    ready.unlink(missing_ok=True)
    log = (state_dir / "sandbox.log").open("wb")
    env = {**os.environ, "EDGEINVESTIGATE_SANDBOX_TOKEN": token}
    cmd = [sys.executable, "-m", "edgeinvestigate", "sandbox", "serve", "--host", "127.0.0.1", "--port", "0",
           "--state", str(state_dir), "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        info: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(
                    f"the sandbox exited with status {proc.returncode} before it was ready",
                    hint=f"see {state_dir / 'sandbox.log'}",
                )
            if ready.is_file():
                with contextlib.suppress(json.JSONDecodeError):
                    info = json.loads(ready.read_text())
                    break
            time.sleep(0.1)
        if info is None:
            raise SandboxError(
                "the sandbox did not become ready within 60 s", hint=f"see {state_dir / 'sandbox.log'}"
            )
        url = str(info.get("base") or info["url"])
        if not url.rstrip("/").endswith("/client/v4"):
            url = url.rstrip("/") + "/client/v4"
        root = url.rstrip("/")[: -len("/client/v4")]
        click.echo(f"      sandbox listening at {root} (pid {proc.pid}); token passed via the environment")
        yield _Sandbox(url=url, root=root, pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


def _ground_truth(incident: Path) -> dict[str, Any]:
    path = incident / "ground_truth.json"
    if not path.is_file():
        raise ConfigError(f"the simulator wrote no {path}", hint="edgeinvestigate simulate --help")
    truth: dict[str, Any] = json.loads(path.read_text())
    return truth


def _queues(truth: dict[str, Any]) -> tuple[str, str, str, str]:
    """(account id, work queue, dead-letter queue, consumer script) from the simulator's ground truth."""
    queues = truth.get("queues") or {}
    account = str(truth.get("account_id") or "")

    def name(*keys: str) -> str:
        for key in keys:
            value = queues.get(key) if isinstance(queues, dict) else None
            if isinstance(value, dict):
                value = value.get("name") or value.get("queue_name")
            if value:
                return str(value)
        return ""

    work = name("immediate", "main", "work", "jobs", "queue")
    dlq = name("dlq", "dead_letter", "dead_letter_queue")
    script = str(truth.get("consumer_script") or truth.get("script") or "")
    if not (account and work and dlq):
        raise ConfigError(
            "the simulator's ground_truth.json does not name the account, work queue and DLQ",
            hint="edgeinvestigate simulate --help",
        )
    return account, work, dlq, script


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    default="demo-output",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for everything the demo writes (incident files, bundle, report, replay plan).",
)
@click.option(
    "--seed", default=7, show_default=True, type=int, help="Simulator seed (same seed, same incident)."
)
@click.option(
    "--rate",
    default=200.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Replay speed in messages per second.",
)
@click.option(
    "--scenario",
    default=SCENARIO,
    show_default=True,
    help="Simulator scenario to investigate (`edgeinvestigate simulate --list`). The demo stops with an "
    "error when the findings leave no cluster safe to replay (e.g. poison-payload: nothing fixed them).",
)
def demo(out_dir: Path, seed: int, rate: float, scenario: str) -> None:
    """Run the whole pipeline on the bundled sample incident, offline, in about a minute.

    Simulates the default incident (a bad deploy breaking EMAIL_DELIVERY plus an image-service
    outage), starts the local sandbox API, investigates it through the API (`investigate`: evidence
    bundle, clusters, findings, incident report, draft replay plan), runs the replay of the clusters
    the fix made safe, verifies it, stops the sandbox and prints where the report is.
    """
    # `kill PID` must still stop the sandbox: turn SIGTERM into SystemExit so cleanup runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out = out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    incident, bundle, after = out / "incident", out / "bundle", out / "evidence-after-replay"
    report_dir, replay_dir = out / "report", out  # investigate writes plan.json into --out
    # A demo starts from scratch: an earlier run's bundles, ledger and sandbox state would mix in.
    for stale in (bundle, after, report_dir, out / "sandbox-state"):
        if stale.exists():
            shutil.rmtree(stale)
    for name in ("findings.json", "plan.json", "verify.json"):
        (out / name).unlink(missing_ok=True)
    for ledger in out.glob("plan.ledger.sqlite*"):
        ledger.unlink()
    token = secrets.token_urlsafe(24)
    steps = _Steps(total=8)
    click.secho(f"edgeinvestigate demo: everything goes to {out}", bold=True)
    sb: _Sandbox | None = None
    try:
        with contextlib.ExitStack() as stack:
            with steps.step("Start the local Cloudflare API sandbox"):
                sb = stack.enter_context(_sandbox(out / "sandbox-state", token))
            _main_steps(
                steps, stack, sb, token, scenario, seed, rate, incident, bundle, after, report_dir, replay_dir
            )
            steps.n += 1
            click.secho(f"\n[{steps.n}/{steps.total}] Stop the sandbox (pid {sb.pid})", bold=True)
    except BaseException:
        # the sandbox is stopped by now (the ExitStack above); say so and what is already written
        if sb is not None:
            click.secho(f"      sandbox (pid {sb.pid}) stopped after the failure", fg="yellow", err=True)
        if (report_dir / "incident-report.html").is_file():
            click.secho(
                f"The incident report written before the failure: {report_dir / 'incident-report.html'}",
                err=True,
            )
        raise
    click.secho("      sandbox stopped", fg="green")
    click.secho(f"\nThe incident report: {report_dir / 'incident-report.html'}", bold=True)
    click.echo(f"findings: {report_dir / 'findings.json'}   replay plan: {replay_dir / 'plan.json'}")
    click.echo(f"total {time.monotonic() - steps.started:.0f}s")


def _main_steps(
    steps: _Steps,
    stack: contextlib.ExitStack,
    sb: _Sandbox,
    token: str,
    scenario: str,
    seed: int,
    rate: float,
    incident: Path,
    bundle: Path,
    after: Path,
    report_dir: Path,
    replay_dir: Path,
) -> None:
    # The API token lives only in this process's environment (and the sandbox's); never on a command line.
    stack.enter_context(_env({"CLOUDFLARE_API_TOKEN": token, "CLOUDFLARE_API_BASE_URL": sb.url,
                              "EDGEINVESTIGATE_SANDBOX_TOKEN": token}))  # fmt: skip
    with steps.step(f"Simulate the '{scenario}' incident into files and into the sandbox"):
        _run_cli(["simulate", scenario, "--out", str(incident), "--seed", str(seed), "--sandbox", sb.root])
        truth = _ground_truth(incident)
        account, work_queue, dlq, script = _queues(truth)
        stack.enter_context(_env({"CLOUDFLARE_ACCOUNT_ID": account}))
        window = truth.get("window") or {}
    with steps.step("Investigate: collect through the API, cluster, rank, report, draft the replay"):
        # snapshot: peek sees only the first 100 messages; the sample DLQ holds several hundred.
        # --dlq-keep-leases stores each lease in the bundle, so `replay run` removes every replayed
        # original by ack in one run (the leases outlive the demo: 30 min).
        title = f"Demo: {_TITLES.get(scenario, scenario)}"
        args = ["investigate", "--dlq", dlq, "--dlq-mode", "snapshot", "--dlq-keep-leases",
                "--dlq-lease-ms", str(_LEASE_MS), "--to", work_queue, "--incident-id", "DEMO-1",
                "--title", title, "--out", str(bundle.parent)]  # fmt: skip
        if script:
            args[1:1] = ["--workers-logs", script]
        if window.get("start") and window.get("end"):
            args += ["--since", str(window["start"]), "--until", str(window["end"])]
        _run_cli(args)
        report_args = ["report", str(bundle), "--out", str(report_dir), "-p", "incident_id=DEMO-1",
                       "-p", f"title={title}"]  # fmt: skip
    with steps.step("Pick the clusters the fix made safe: review the draft replay plan"):
        plan = replay_dir / "plan.json"
        if not plan.is_file():
            raise EdgeInvestigateError(
                "no cluster with DLQ messages was judged safe to replay",
                hint="open the report and see runbooks/replay-failed-jobs.md",
            )
        from edgeinvestigate.replay import ReplayPlan

        draft = ReplayPlan.load(plan)
        for cid, n in sorted(draft.by_cluster.items()):
            click.echo(f"      cluster {cid}: {n} messages")
        click.echo(f"      {len(draft.messages)} messages to {draft.target_queue!r}; plan {draft.plan_id}")
    with steps.step(f"Run the replay at {rate:g} msg/s (ledger next to the plan)"):
        # With the leases kept in the bundle one run completes. Exit status 4 (incomplete: an
        # original still in the DLQ, e.g. a lease that ran out) is settled by running the same plan
        # again; the ledger makes sure nothing is pushed twice.
        runs = 0
        for runs in range(1, 4):  # noqa: B007 - `runs` is reported below
            run = ["replay", "run", str(plan), "--allow-queue", work_queue, "--rate", f"{rate:g}", "--yes"]
            if _run_cli(run, ok=(0, 4)) == 0:
                break
            click.echo("      not every original is out of the DLQ yet: running the same plan again (resume)")
        else:
            raise EdgeInvestigateError(
                "the replay did not complete after 3 runs", hint=f"edgeinvestigate replay status {plan}"
            )
        click.echo(f"      replay completed in {runs} run{'s' if runs > 1 else ''}")
        _run_cli(["replay", "status", str(plan)])
        _check_sandbox_state(sb, token, account, plan)
    with steps.step("The fixed consumer processes the replayed jobs"):
        _consume_replayed(sb, token, account, work_queue, script, truth)
    with steps.step("Collect again, verify the replay, add it to the report"):
        from edgeinvestigate.replay import ReplayPlan

        # the consumer's Workers Logs since the plan was made, and the DLQ by peek (a second
        # snapshot would push messages past the DLQ's max_retries)
        since = ReplayPlan.load(plan).created_at
        until = datetime.now(UTC) + timedelta(minutes=1)
        args = [
            "collect",
            "--dlq",
            dlq,
            "--since",
            since,
            "--until",
            f"{until:%Y-%m-%dT%H:%M:%SZ}",
            "--out",
            str(after),
        ]
        if script:
            args[1:1] = ["--workers-logs", script]
        _run_cli(args)
        _run_cli(["replay", "verify", str(plan), str(after)])
        _check_verified(sb, token, account, plan, after)
        _run_cli([*report_args, "-p", f"replay_plan={plan}", "--no-progress"])


def _consume_replayed(
    sb: _Sandbox, token: str, account: str, work_queue: str, script: str, truth: dict[str, Any]
) -> None:
    """Stand in for the consumer Worker (the sandbox runs no Workers): give the work queue an
    ``http_pull`` consumer, pull and process every replayed job as the version live now, ack it,
    and load the Workers Logs the Worker would have written into the sandbox."""
    from edgeinvestigate._http import Secret, make_client
    from edgeinvestigate.cloudflare.client import CloudflareClient
    from edgeinvestigate.lab._consumer import JobModel, consume, publish_events, use_http_pull
    from edgeinvestigate.simulator import load_scenario

    scenario = load_scenario(str(truth.get("scenario") or SCENARIO))
    model = JobModel(scenario)
    now_ms = int(time.time() * 1000)
    _, tag, message = model.live_version(now_ms)
    click.echo(f"      consumer version live now: {tag} ({message})")
    with CloudflareClient.from_env() as client, make_client(sb.root, token=Secret(token)) as admin:
        qid = client.queue_id(work_queue)
        consumers = client.list_consumers(qid)
        use_http_pull(admin, account, work_queue, consumer=consumers[0] if consumers else None)
        click.echo(f"      {work_queue!r} now has an http_pull consumer (the sandbox runs no Workers)")
        run = consume(client, work_queue, model, script=script or None)
        n = publish_events(admin, account, run.events)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(run.counts().items())) or "nothing"
    click.echo(
        f"      pulled {len(run.outcomes)} messages in {run.batches} batches: {counts}; "
        f"{n} Workers Logs events loaded into the sandbox"
    )
    if not run.outcomes:
        raise EdgeInvestigateError(
            f"the consumer found no messages on {work_queue!r}",
            hint="the replay should have pushed them there: edgeinvestigate replay status",
        )


def _check_verified(sb: _Sandbox, token: str, account: str, plan_path: Path, after: Path) -> None:
    """The loop is closed only when verify saw every replayed job succeed and none came back, and
    the sandbox agrees: the work queue is drained and no message of this replay is in the DLQ."""
    from edgeinvestigate._http import Secret, make_client
    from edgeinvestigate.replay import ReplayPlan, verify_replay

    plan = ReplayPlan.load(plan_path)
    report = verify_replay(plan_path, after)
    (plan_path.parent / "verify.json").write_text(json.dumps(report.to_dict(), indent=2))
    with make_client(sb.root, token=Secret(token)) as http:
        resp = http.get("/__admin/state")
        resp.raise_for_status()
        data = resp.json()
        queues = data.get("result", data)["accounts"][account]["queues"]
    on_work = sum(1 for m in queues[plan.target_queue]["messages"] if _replay_plan_of(m.get("body")))
    back = sum(
        1 for m in queues[plan.source_queue]["messages"] if _replay_plan_of(m.get("body")) == plan.plan_id
    )
    c = report.counts()
    click.echo(
        f"      verified: {c['succeeded']} of {c['replayed']} replayed jobs seen succeeding, "
        f"{c['back_in_dlq']} back in the DLQ; sandbox state: {on_work} replayed messages left on "
        f"{plan.target_queue!r}, {back} from this replay in {plan.source_queue!r}"
    )
    if c["succeeded"] != c["replayed"] or c["back_in_dlq"] or c["originals_still_in_dlq"] or on_work or back:
        raise EdgeInvestigateError(
            f"replay verification failed: {c['succeeded']} of {c['replayed']} succeeded, "
            f"{c['back_in_dlq']} back in the DLQ, {c['not_seen']} not seen, {on_work} unconsumed",
            hint=f"edgeinvestigate replay verify {plan_path} {after}",
        )


def _replay_plan_of(body: Any) -> str | None:
    """The ``metadata.replay.plan`` of a stored body, raw or wrapped in ``{original, error}``."""
    if not isinstance(body, dict):
        return None
    original = body.get("original")
    if isinstance(original, dict) and isinstance(original.get("body"), dict):
        body = original["body"]
    meta = body.get("metadata")
    block = meta.get("replay") if isinstance(meta, dict) else None
    plan = block.get("plan") if isinstance(block, dict) else None
    return str(plan) if plan else None


def _check_sandbox_state(sb: _Sandbox, token: str, account: str, plan_path: Path) -> None:
    """Prove it from the sandbox's own state: every planned message is on the target queue once
    or more with its idempotency key, and none of them is left in the DLQ."""
    from edgeinvestigate._http import Secret, make_client
    from edgeinvestigate.replay import ReplayPlan

    plan = ReplayPlan.load(plan_path)
    with make_client(sb.root, token=Secret(token)) as http:
        resp = http.get("/__admin/state")
        resp.raise_for_status()
        data = resp.json()
        queues = data.get("result", data)["accounts"][account]["queues"]
    keys: dict[str, int] = {}
    for msg in queues[plan.target_queue]["messages"]:
        body = msg.get("body")
        replay = body.get("metadata", {}).get("replay") if isinstance(body, dict) else None
        if isinstance(replay, dict) and replay.get("plan") == plan.plan_id:
            keys[str(replay.get("of"))] = keys.get(str(replay.get("of")), 0) + 1
    planned = {m.message_id for m in plan.messages}
    left = {str(m["id"]) for m in queues[plan.source_queue]["messages"]}
    missing, still = planned - set(keys), planned & left
    click.echo(
        f"      sandbox state: {plan.target_queue!r} holds {sum(keys.values())} replayed messages for "
        f"{len(keys)} of {len(planned)} planned jobs (each with metadata.replay.id); "
        f"{plan.source_queue!r} holds {len(left)} messages, {len(still)} of them replayed"
    )
    if missing or still:
        raise EdgeInvestigateError(
            f"replay check failed: {len(missing)} planned messages not on {plan.target_queue!r}, "
            f"{len(still)} still in {plan.source_queue!r}",
            hint=f"edgeinvestigate replay status {plan_path}",
        )


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
