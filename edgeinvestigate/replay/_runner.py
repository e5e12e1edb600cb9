"""Running a replay plan: push in batches at a controlled speed, then remove the originals.

The order per batch never changes: commit ``pushing`` in the ledger, push the batch, commit
``pushed`` once the API confirmed it, and only then remove the originals from the DLQ (ack their
lease, or peek + purge by ref) and commit ``settled``. Originals without a lease are found by
peeking the head of the DLQ (a peek shows at most 100 messages), so after the last batch the runner
keeps peeking and purging while each round removes something; only a head full of messages the plan
does not replay stops it (the run is then ``incomplete`` and says why).

A crash anywhere leaves the ledger saying what may have happened; the next run resumes from it
without re-sending settled messages and re-sends possibly-sent ones with the *same* idempotency
keys (they are counted as possible duplicates, never as lost).

Errors: 429 waits ``Retry-After`` (or the window reset) and retries; 5xx and timeouts mark the
batch ambiguous and retry with back-off, but only ``max_ambiguous_pushes`` times in a row (each such
push may have been enqueued: one more copy each): then the run stops and says how many copies may
exist, and a later run re-sends that batch only with ``resend_ambiguous``. Any other 4xx stops the
run with the ledger consistent. Removal requests (ack, peek, purge) are retried at most
``max_call_attempts`` times, one line said per retry wait, and a stop request ends such a wait.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import NotFoundError, ReplayError, ReplayRefusedError
from edgeinvestigate.replay._gate import RequestGate, Stop
from edgeinvestigate.replay._ledger import Ledger, default_ledger_path
from edgeinvestigate.replay._lock import PlanLock, RunLock
from edgeinvestigate.replay._plan import ReplayPlan, who
from edgeinvestigate.replay._provenance import check_provenance
from edgeinvestigate.replay._push import Pusher
from edgeinvestigate.replay._registry import find_prior_replays, register_ledger
from edgeinvestigate.replay._removal import Removal, still_in_dlq_note
from edgeinvestigate.replay._result import RunResult
from edgeinvestigate.replay._targets import check_rate, check_target, runtime_allow_list

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["run_replay", "run_until_settled"]

_RUNBOOK = "see runbooks/replay-failed-jobs.md"


def run_replay(
    plan_path: str | Path,
    client: CloudflareClient,
    *,
    rate: float | None = None,
    max_requests_per_5min: int | None = None,
    ledger_path: str | Path | None = None,
    progress: bool = False,
    confirm: Callable[[ReplayPlan], bool] | None = None,
    stop: threading.Event | None = None,
    argv: Sequence[str] = (),
    max_attempts: int = 30,
    max_backoff: float = 30.0,
    budget_window_s: float = 300.0,
    say: Callable[[str], None] | None = None,
    max_ambiguous_pushes: int = 3,
    resend_ambiguous: bool = False,
    max_call_attempts: int = 5,
    allow_queues: Sequence[str] = (),
    config: str | Path | None = None,
    bundle: str | Path | None = None,
) -> RunResult:
    """Run (or resume) a replay plan against ``client``; returns what happened.

    Refuses a plan whose content hash does not match, or that a ledger says is complete. ``rate``
    and ``max_requests_per_5min`` default to the plan's (``budget_window_s`` is the budget's window,
    300 s like Cloudflare's); a rate the budget cannot carry is refused. ``confirm`` is asked once
    before anything is sent (the CLI shows the plan and asks unless ``--yes``). ``stop`` is an event
    that ends the run after the in-flight batch, as Ctrl-C and ``replay cancel`` do.

    The target queue must be allowed by the operator now: ``allow_queues``, the environment variable
    ``EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES`` or ``[replay] allow_queues`` in ``config``; the plan's own
    ``allow_queues`` is a record, not a permission. Every message of the plan must be a message of
    the source DLQ in the plan's bundle (``bundle``: where it is now, when it was moved), whose DLQ
    frame file must be the one the plan was made from. Only one run of a plan (its id) at a time on
    this machine, whatever copy of the plan file or ledger (see :mod:`._lock`). All of this is
    checked before any request.

    A batch whose pushes end without an answer (timeout, 5xx) ``max_ambiguous_pushes`` times in a
    row in one run may now exist that many times on the target: the run stops (``ReplayError``)
    and says so. A later run refuses to send such a batch again unless ``resend_ambiguous`` (the
    operator checked the target queue and its consumer's dedupe); it then keeps the same cap.
    """
    speak = say or (lambda text: print(text, file=sys.stderr))
    plan = ReplayPlan.load(plan_path)
    lpath = Path(ledger_path) if ledger_path else default_ledger_path(plan_path)
    allowed = runtime_allow_list(allow_queues, config)
    check_target(plan.source_queue, plan.target_queue, allowed, at_run=True)
    r, budget = _limits(plan, rate, max_requests_per_5min, budget_window_s)
    if max_ambiguous_pushes < 1:
        raise ReplayError("--max-ambiguous-pushes must be at least 1", hint=_RUNBOOK)
    warnings = check_provenance(plan, bundle)
    if bundle:
        plan.bundle = str(Path(bundle).resolve())  # where later plans look for this run's ledger
    plan_lock = PlanLock(plan.plan_id, plan_path=Path(plan_path).resolve(), ledger_path=lpath.resolve())
    plan_lock.acquire()
    if plan_lock.note:
        warnings.append(plan_lock.note)
    for w in warnings:
        speak(f"warning: {w}")
    try:
        return _run_locked(
            plan, Path(plan_path), client, lpath, r, budget, warnings, allowed, plan_lock.earlier_ledgers,
            progress=progress, confirm=confirm, stop=stop, argv=argv, max_attempts=max_attempts,
            max_backoff=max_backoff, budget_window_s=budget_window_s, speak=speak,
            max_ambiguous_pushes=max_ambiguous_pushes, resend_ambiguous=resend_ambiguous,
            max_call_attempts=max_call_attempts,
        )  # fmt: skip
    finally:
        plan_lock.release()


def _limits(
    plan: ReplayPlan, rate: float | None, max_requests: int | None, window_s: float
) -> tuple[float, int]:
    """The rate and request budget of the run, refused when the budget cannot carry the rate (exit 3
    when both come from the plan file: only an edit makes such a plan)."""
    r = float(rate if rate is not None else plan.rate)
    budget = int(max_requests if max_requests is not None else plan.max_requests_per_5min)
    from_plan = rate is None and max_requests is None
    check_rate(
        r, budget, window_s, source="--rate" if rate is not None else "the plan's rate", refuse=from_plan
    )
    return r, budget


def _run_locked(
    plan: ReplayPlan,
    plan_path: Path,
    client: CloudflareClient,
    lpath: Path,
    r: float,
    budget: int,
    warnings: list[str],
    allowed: Sequence[str],
    earlier_ledgers: Sequence[str],
    *,
    progress: bool,
    confirm: Callable[[ReplayPlan], bool] | None,
    stop: threading.Event | None,
    argv: Sequence[str],
    max_attempts: int,
    max_backoff: float,
    budget_window_s: float,
    speak: Callable[[str], None],
    max_ambiguous_pushes: int,
    resend_ambiguous: bool,
    max_call_attempts: int,
) -> RunResult:
    """:func:`run_replay` once the plan lock is held: the ledger, the checks, the run."""
    lock = RunLock(lpath)
    lock.acquire()
    ledger = Ledger.open(lpath)
    saved_attempts = client.max_attempts
    try:
        _bind(plan, plan_path, ledger)
        result = RunResult(
            outcome="incomplete", plan_id=plan.plan_id, ledger=str(ledger.path), counts={}, configured_rate=r
        )
        result.notes.extend(warnings)
        gate = RequestGate(
            ledger, client, result, rate=r, max_requests=budget, budget_window_s=budget_window_s,
            stop=stop or threading.Event(), max_attempts=max_attempts, max_backoff=max_backoff,
            max_call_attempts=max_call_attempts, say=speak,
        )  # fmt: skip
        client.max_attempts = 1  # every request is counted against the budget and retried here
        source_id, target_id = _resolve_queues(plan, gate, allowed)
        runner = _Runner(plan, gate, source_id, target_id, max_ambiguous_pushes=max_ambiguous_pushes)
        _before_sending(plan, plan_path, ledger, result, resend_ambiguous, confirm, speak, earlier_ledgers)
        gate.run_id = _begin(ledger, result, argv, r, budget)
        result = _execute(runner, progress=progress)
        _finish(result, ledger, plan)
        return result
    finally:
        client.max_attempts = saved_attempts
        ledger.close()
        lock.release()


def run_until_settled(
    plan_path: str | Path, client: CloudflareClient, *, max_runs: int = 10, **options: Any
) -> RunResult:
    """Run a plan with :func:`run_replay` (``options`` are its keyword arguments), and run it again
    while a run ends ``incomplete`` (pushed messages whose originals are still in the DLQ), at most
    ``max_runs`` times in all. Each run resumes from the ledger, so nothing is pushed twice, and peeks
    the DLQ's head again for the originals left. Returns the result of the last run."""
    result = run_replay(plan_path, client, **options)
    for _ in range(max_runs - 1):
        if result.outcome != "incomplete":
            break
        result = run_replay(plan_path, client, **options)
    return result


class _Runner:
    """One run of a plan: each pending batch pushed, then its originals removed; then the sweep."""

    def __init__(
        self,
        plan: ReplayPlan,
        gate: RequestGate,
        source_id: str,
        target_id: str,
        *,
        max_ambiguous_pushes: int,
    ) -> None:
        self.plan = plan
        self.gate = gate
        self.ledger = gate.ledger
        self.result = gate.result
        self.progress: Any = None
        by_id = {m.message_id: m for m in plan.messages}
        self.pusher = Pusher(gate, plan, by_id, target_id, max_ambiguous_pushes=max_ambiguous_pushes)
        self.removal = Removal(gate, by_id, source_id)

    def run(self) -> RunResult:
        started = time.monotonic()
        try:
            for batch in self.ledger.pending_batches():
                self.gate.check_stop()
                self.pusher.push_batch(batch)
                self.gate.finishing = True
                try:
                    self.removal.remove(self.ledger.ids_in(["pushed"], batch=batch))
                finally:
                    self.gate.finishing = False
                self.gate.beat(every=0.0)
                self._update_progress()
            self.removal.sweep(self._update_progress)
            counts = self.ledger.counts()
            self.result.outcome = "completed" if counts["settled"] == sum(counts.values()) else "incomplete"
        except Stop as stop:
            self.result.outcome = stop.outcome
        finally:
            self.result.elapsed_s = time.monotonic() - started
            first, last = self.pusher.first_push, self.pusher.last_push
            if first is not None and last is not None:
                # the last batch's own share of time is counted too, so a steady pace reads as `rate`
                last_n = self.result.messages_pushed / max(self.result.push_requests, 1)
                self.result.push_elapsed_s = (last - first) + last_n / self.gate.pacer.rate
        return self.result

    def _update_progress(self) -> None:
        if self.progress is None:
            return
        settled = self.ledger.counts()["settled"]
        self.progress.n = settled
        self.progress.set_postfix(
            {
                "429s": self.result.rate_limited,
                "5xx": self.result.server_errors,
                "ambiguous": self.result.ambiguous_batches,
            },
            refresh=False,
        )
        self.progress.refresh()


def _bind(plan: ReplayPlan, plan_path: Path, ledger: Ledger) -> None:
    """Bind the ledger to the plan (its messages ``planned``), unless the plan was completed."""
    if ledger.get_meta("completed_at"):
        raise ReplayRefusedError(
            f"plan {plan.plan_id} was already completed (ledger {ledger.path}); running it again would "
            "replay nothing and a changed copy would duplicate",
            hint="check it with: edgeinvestigate replay status PLAN; make a new plan for new messages",
        )
    ledger.init_plan(
        plan_id=plan.plan_id,
        content_hash=plan.content_hash,
        plan_path=str(plan_path),
        rows=[(m.message_id, m.replay_id, m.batch, m.lease_id) for m in plan.messages],
    )


def _resolve_queues(plan: ReplayPlan, gate: RequestGate, allowed: Sequence[str]) -> tuple[str, str]:
    """The ids of the source (the DLQ) and target queues; refuses a missing queue, or the same one."""
    check_target(plan.source_queue, plan.target_queue, allowed, at_run=True)
    client = gate.client
    ids = {}
    for role, name in (("source", plan.source_queue), ("target", plan.target_queue)):
        try:
            ids[role] = gate.patient(functools.partial(client.queue_id, name))
        except NotFoundError as exc:
            raise ReplayRefusedError(
                f"refusing to run: the {role} queue {name!r} does not exist in account "
                f"{client.account_id} ({exc.message})",
                hint="check the queue names in the plan and CLOUDFLARE_ACCOUNT_ID / --api-url",
            ) from exc
    if ids["source"] == ids["target"]:
        raise ReplayRefusedError(f"refusing to run: {plan.target_queue!r} and the DLQ are the same queue")
    return ids["source"], ids["target"]


def _before_sending(
    plan: ReplayPlan,
    plan_path: Path,
    ledger: Ledger,
    result: RunResult,
    resend_ambiguous: bool,
    confirm: Callable[[ReplayPlan], bool] | None,
    say: Callable[[str], None],
    earlier_ledgers: Sequence[str] = (),
) -> None:
    """The last checks before anything is sent: messages other plans (or other copies of this one,
    with other ledgers) replayed, the registration of this ledger in the bundle, batches capped by an
    earlier run, and the operator's confirmation."""
    _refuse_replayed_elsewhere(plan, plan_path, ledger, earlier_ledgers)
    warning = register_ledger(
        plan.bundle,
        plan_id=plan.plan_id,
        content_hash=plan.content_hash,
        plan_path=plan_path,
        ledger_path=ledger.path,
    )
    if warning:
        result.notes.append(warning)
    _refuse_capped(plan, ledger, resend_ambiguous, say)
    if confirm is not None and not confirm(plan):
        raise ReplayError("replay not confirmed; nothing was sent", hint="pass --yes to skip the question")


def _begin(ledger: Ledger, result: RunResult, argv: Sequence[str], rate: float, max_requests: int) -> int:
    """Register the run in the ledger (who, where, how fast) and recover what a crash left; its id."""
    user = who()
    run_id = ledger.begin_run(
        user=user["user"], host=user["host"], argv=argv, rate=rate, max_requests=max_requests
    )
    recovered = ledger.recover(run_id)
    if recovered:
        result.notes.append(
            f"{recovered} messages were left 'pushing' by an interrupted run: re-sent with the same "
            "idempotency keys and counted as possible duplicates"
        )
    if ledger.cancel_requested():
        ledger.clear_cancel()
        ledger.event(run_id, "cancel_cleared", detail="a new run clears an earlier cancel request")
    return run_id


def _execute(runner: _Runner, *, progress: bool) -> RunResult:
    """The run under the Ctrl-C handler, with a progress bar if asked; its outcome goes in the ledger."""
    gate, ledger, plan = runner.gate, runner.ledger, runner.plan
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(plan.messages),
            initial=ledger.counts()["settled"],
            unit="msg",
            desc=f"replay {plan.plan_id[:8]}",
            dynamic_ncols=True,
        )
        runner.progress = bar
    outcome = "error"
    try:
        with _graceful_interrupts(gate.stop, gate.say):
            result = runner.run()
        outcome = result.outcome
    except KeyboardInterrupt:
        outcome = "interrupted"  # a second Ctrl-C: the ledger still says what may be in flight
        raise
    finally:
        if bar is not None:
            bar.close()
        ledger.end_run(gate.run_id, outcome)
    return result


def _finish(result: RunResult, ledger: Ledger, plan: ReplayPlan) -> None:
    """Mark a completed plan, and fill the result's totals from the ledger (all runs)."""
    if result.outcome == "completed":
        ledger.set_meta("completed_at", repr(time.time()))
    result.counts = ledger.counts()
    totals = ledger.totals()
    result.possible_duplicates = totals["possible_duplicates"]
    result.copies_sent = totals["push_attempts"]
    result.still_in_dlq = totals["still_in_dlq"]
    if result.still_in_dlq:
        result.notes.append(still_in_dlq_note(result, plan))


@contextmanager
def _graceful_interrupts(stop: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C / SIGTERM: finish the in-flight batch (or stop at the next retry wait of a failing
    request), then stop. Second Ctrl-C: stop at once (the ledger still says which batch may have been
    sent)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        say(
            "stopping after the in-flight batch, or at the next retry wait (Ctrl-C again to abort now; "
            "the ledger stays consistent)"
        )

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _refuse_capped(plan: ReplayPlan, ledger: Ledger, resend: bool, say: Callable[[str], None]) -> None:
    """A batch an earlier run stopped re-sending (too many unanswered pushes) is sent again only when
    the operator says so: each re-send may add one more copy of each of its messages."""
    capped = ledger.capped_batches()
    if not capped:
        return
    ids = [i for b in capped.values() for i in b]
    copies = ledger.copies(ids)
    batches = ", ".join(str(b) for b in capped)
    what = (
        f"{len(ids)} messages of plan {plan.plan_id} (batch {batches}) got no answer to their last pushes "
        f"and may already be on {plan.target_queue!r} up to {copies} times in all (same idempotency keys)"
    )
    if not resend:
        raise ReplayRefusedError(
            f"refusing to run: {what}; re-sending may add one more copy each time. Nothing was sent",
            hint=f"check the backlog of {plan.target_queue!r} and that its consumer dedupes on "
            "metadata.replay.id, then pass --resend-ambiguous; see runbooks/replay-failed-jobs.md",
        )
    say(f"warning: {what}; --resend-ambiguous: sending them again (at most --max-ambiguous-pushes times)")


def _refuse_replayed_elsewhere(
    plan: ReplayPlan, plan_path: Path, ledger: Ledger, earlier_ledgers: Sequence[str] = ()
) -> None:
    """Refuse to push messages that the ledger of another plan (registered in the plan's bundle, or
    next to the plan file), or of an earlier run of a copy of this plan, shows as already pushed:
    they would reach the consumer twice. Only messages this plan has not sent yet are checked."""
    todo = ledger.ids_in(["planned"])
    prior = find_prior_replays(
        todo, bundle=plan.bundle, near=[plan_path], exclude=[ledger.path], ledgers=earlier_ledgers
    )
    again = prior.not_removed  # pushed by another plan, original maybe still in the DLQ: sent again
    if again:
        ledger.flag_pushed_elsewhere(
            {
                mid: f"pushed before by plan {p.plan_id} (ledger {p.ledger}), same idempotency key"
                for mid, p in again.items()
            }
        )
    done = prior.removed  # pushed AND removed from the DLQ by another plan
    if not done:
        return
    per_plan = "; ".join(f"{n} by plan {pid} (ledger {led})" for pid, led, n in prior.by_plan(done))
    first = next(iter(done))
    raise ReplayRefusedError(
        f"refusing to run plan {plan.plan_id}: {len(done)} of its {len(todo)} messages not yet "
        f"sent were already replayed and removed from the DLQ by another plan ({per_plan}; e.g. {first}); "
        "pushing them again would send each of those jobs twice. Nothing was sent",
        hint="make a new plan from the same bundle (edgeinvestigate replay plan ... --out NEW.json): it "
        "excludes messages already replayed and lists them as already_replayed",
    )
