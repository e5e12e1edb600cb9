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
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import (
    APIError,
    NotFoundError,
    RateLimitedError,
    ReplayError,
    ReplayRefusedError,
    ServerError,
)
from edgeinvestigate.replay._ledger import Ledger, default_ledger_path
from edgeinvestigate.replay._lock import RunLock
from edgeinvestigate.replay._plan import ReplayPlan, who
from edgeinvestigate.replay._ratelimit import Pacer, RequestBudget, ServerBudget
from edgeinvestigate.replay._registry import register_ledger
from edgeinvestigate.replay._result import RunResult
from edgeinvestigate.replay._targets import check_target

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["run_replay"]

PEEK_BATCH = 100
_RUNBOOK = "see runbooks/replay-failed-jobs.md"
#: the ledger's last_error of a pushed message whose original a peek of the DLQ's head did not show
NOT_AT_HEAD = (
    "pushed; the original was not in a peek of the DLQ's head (it is further back in the DLQ, or "
    "no longer in it): removal not confirmed"
)


class _Stop(Exception):
    """Internal: stop between batches (cancel, Ctrl-C)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass
class _Round:
    """One peek + purge of the DLQ's head: what it saw and what it removed."""

    peeked: bool = False  # False: the peek kept failing
    head: int = 0  # messages the peek returned
    others: int = 0  # of those, messages this plan is not removing now (unselected or not pushed)
    removed: int = 0  # originals settled by this round (purged, or known gone)


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


class _Runner:
    def __init__(
        self,
        plan: ReplayPlan,
        ledger: Ledger,
        client: CloudflareClient,
        *,
        rate: float,
        max_requests: int,
        budget_window_s: float,
        stop: threading.Event,
        progress: Any,
        max_attempts: int,
        max_backoff: float,
        say: Callable[[str], None],
        max_ambiguous_pushes: int = 3,
        max_call_attempts: int = 5,
    ) -> None:
        self.plan = plan
        self.ledger = ledger
        self.client = client
        self.stop = stop
        self.progress = progress
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.max_ambiguous_pushes = max_ambiguous_pushes
        self.max_call_attempts = max_call_attempts
        self.say = say
        self.pacer = Pacer(rate)
        last = ledger.last_push()
        if last is not None:  # the velocity holds across restarts too
            self.pacer.resume_after(time.time() - last[0], last[1])
        self.budget = RequestBudget(
            max_requests, budget_window_s, history=ledger.request_times(time.time() - budget_window_s)
        )
        self.server = ServerBudget(reserve=0)
        self.by_id = {m.message_id: m for m in plan.messages}
        self.run_id = 0
        self.source_id = ""
        self.target_id = ""
        self.result = RunResult(
            outcome="incomplete",
            plan_id=plan.plan_id,
            ledger=str(ledger.path),
            counts={},
            configured_rate=rate,
        )
        self._first_push: float | None = None
        self._last_push: float | None = None
        self._last_cancel_check = 0.0
        self._last_heartbeat = time.monotonic()
        self._finishing = False

    # -- waiting ---------------------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self._finishing:
            return  # a pushed batch is always followed through to the removal of its originals
        if self.stop.is_set():
            raise _Stop("interrupted")
        now = time.monotonic()
        if now - self._last_cancel_check >= 0.25:
            self._last_cancel_check = now
            if self.ledger.cancel_requested():
                raise _Stop("cancelled")

    def _sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Sleep, waking up for Ctrl-C and ``replay cancel`` (and beating the heart: a long wait is
        not a dead run). ``interruptible``: a stop ends even a batch being finished (the wait is
        between two requests, so the ledger is consistent)."""
        end = time.monotonic() + seconds
        while True:
            if interruptible and self.stop.is_set():
                raise _Stop("interrupted")
            self._check_stop()
            self._beat()
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.stop.is_set():  # finishing a batch after Ctrl-C: a plain sleep, not a busy loop
                time.sleep(min(left, 0.05))
            else:
                self.stop.wait(min(left, 0.25))

    def _beat(self, every: float = 10.0) -> None:
        if self.run_id and time.monotonic() - self._last_heartbeat >= every:
            self._last_heartbeat = time.monotonic()
            self.ledger.heartbeat(self.run_id)

    def _request_slot(self, kind: str, n_messages: int = 0) -> None:
        """Wait until the velocity and both budgets allow one more request."""
        while True:
            wait = max(
                self.pacer.delay() if n_messages else 0.0,
                self.budget.delay(1),
                self.server.delay(self.client.rate_limit),
            )
            if wait <= 0:
                return
            self._sleep(wait)

    def _note_request(self, kind: str) -> None:
        ts = self.budget.note()
        self.ledger.record_request(kind, self.run_id or None, ts)
        self.result.requests += 1

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.05), self.max_backoff)
        rl = self.client.rate_limit
        base = min(0.25 * (2**attempt), self.max_backoff)
        if rl.reset_s is not None and rl.remaining == 0:
            base = max(base, min(rl.reset_s, self.max_backoff))
        return base * (0.5 + random.random() / 2)

    # -- the run ---------------------------------------------------------------------------------
    def resolve_queues(self) -> None:
        plan = self.plan
        check_target(plan.source_queue, plan.target_queue, plan.allow_queues)
        ids = {}
        for role, name in (("source", plan.source_queue), ("target", plan.target_queue)):
            try:
                ids[role] = self._patient(functools.partial(self.client.queue_id, name))
            except NotFoundError as exc:
                raise ReplayRefusedError(
                    f"refusing to run: the {role} queue {name!r} does not exist in account "
                    f"{self.client.account_id} ({exc.message})",
                    hint="check the queue names in the plan and CLOUDFLARE_ACCOUNT_ID / --api-url",
                ) from exc
        if ids["source"] == ids["target"]:
            raise ReplayRefusedError(f"refusing to run: {plan.target_queue!r} and the DLQ are the same queue")
        self.source_id, self.target_id = ids["source"], ids["target"]

    def _patient(self, fn: Callable[[], Any]) -> Any:
        """A read that must succeed: wait out 429s, retry 5xx/timeouts up to ``max_attempts``.

        Every request it makes is counted against the budget (a lookup may page).
        """
        failures = 0
        while True:
            self._request_slot("lookup")
            before = self.client.requests_sent
            try:
                return fn()
            except RateLimitedError as exc:
                self.result.rate_limited += 1
                wait = self._backoff(failures, exc.retry_after)
            except ServerError:
                self.result.server_errors += 1
                failures += 1
                if failures >= self.max_attempts:
                    raise
                wait = self._backoff(failures)
            finally:
                for _ in range(max(1, self.client.requests_sent - before)):
                    self._note_request("lookup")
            self._sleep(wait)

    def run(self) -> RunResult:
        started = time.monotonic()
        try:
            for batch in self.ledger.pending_batches():
                self._check_stop()
                self._push_batch(batch)
                self._finishing = True
                try:
                    self._remove(self.ledger.ids_in(["pushed"], batch=batch))
                finally:
                    self._finishing = False
                self._beat(every=0.0)
                self._update_progress()
            self._sweep()
            counts = self.ledger.counts()
            self.result.outcome = "completed" if counts["settled"] == sum(counts.values()) else "incomplete"
        except _Stop as stop:
            self.result.outcome = stop.outcome
        finally:
            self.result.elapsed_s = time.monotonic() - started
            if self._first_push is not None and self._last_push is not None:
                # the last batch's own share of time is counted too, so a steady pace reads as `rate`
                last_n = self.result.messages_pushed / max(self.result.push_requests, 1)
                self.result.push_elapsed_s = (self._last_push - self._first_push) + last_n / self.pacer.rate
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

    def _push_batch(self, batch: int) -> None:
        ids = self.ledger.ids_in(["planned", "ambiguous", "pushing"], batch=batch)
        if not ids:
            return
        messages = [{"body": self.by_id[i].body, "content_type": "json"} for i in ids]
        attempt = 0
        unanswered = 0  # pushes of this batch in this run that may have been enqueued (no answer, 5xx)
        while True:
            self._request_slot("push", len(ids))
            ts = self.budget.note()
            self.ledger.start_push(ids, self.run_id, batch=batch, ts=ts)
            self.result.requests += 1
            try:
                self.client.push_batch(self.target_id, messages)
            except RateLimitedError as exc:
                # nothing was enqueued; a 429 storm is waited out (Ctrl-C or `replay cancel` end it)
                self.result.rate_limited += 1
                self.ledger.push_rejected(ids, self.run_id, exc.message, batch=batch, kind="rate_limited")
                self._sleep(self._backoff(min(attempt, 6), exc.retry_after))
                continue
            except ServerError as exc:
                self.result.server_errors += 1
                if _never_sent(exc):
                    # no connection was made: nothing can have been enqueued by this attempt
                    self.ledger.push_rejected(
                        ids, self.run_id, exc.message, batch=batch, kind="push_not_sent"
                    )
                    wait = self._backoff(attempt)
                else:
                    # a 5xx or a timeout after sending: it may have been enqueued
                    self.result.ambiguous_batches += 1
                    unanswered += 1
                    reason = (
                        f"HTTP {exc.status}" if exc.status else "no answer (timeout or dropped connection)"
                    )
                    self.ledger.push_ambiguous(ids, self.run_id, reason, batch=batch)
                    if unanswered >= self.max_ambiguous_pushes:
                        self._give_up_ambiguous(batch, ids, unanswered, reason)
                    wait = self._backoff(attempt)
                self.say(
                    f"retrying the push of batch {batch} in {wait:.1f}s ({exc.message}; "
                    f"{unanswered} of at most {self.max_ambiguous_pushes} unanswered pushes)"
                )
            except APIError as exc:
                self.ledger.push_rejected(ids, self.run_id, exc.message, batch=batch)
                raise ReplayError(
                    f"the API refused batch {batch} of plan {self.plan.plan_id} ({len(ids)} messages, first "
                    f"{ids[0]}): {exc.message}; nothing of this batch was enqueued and the ledger is "
                    "consistent",
                    hint=exc.hint or _RUNBOOK,
                ) from exc
            else:
                now = time.monotonic()
                self.pacer.sent(len(ids))
                self.ledger.push_confirmed(ids, self.run_id, batch=batch)
                self.result.messages_pushed += len(ids)
                self.result.push_requests += 1
                if self._first_push is None:
                    self._first_push = now
                self._last_push = now
                return
            attempt += 1
            if attempt >= self.max_attempts:
                raise ReplayError(
                    f"gave up on batch {batch} of plan {self.plan.plan_id} after {attempt} attempts "
                    f"({self.result.rate_limited} rate-limited, {self.result.server_errors} server errors); "
                    f"its messages are 'ambiguous' or 'planned' in the ledger, none is lost (up to "
                    f"{self.ledger.copies(ids)} copies of its {len(ids)} messages may be on the target)",
                    hint="run the same command again later: it resumes from the ledger",
                )
            self._sleep(wait)

    def _give_up_ambiguous(self, batch: int, ids: Sequence[str], unanswered: int, reason: str) -> None:
        """Stop re-sending a batch whose pushes keep ending without an answer: each of them may have
        been enqueued, so every re-send may add one more copy of every message on the target."""
        copies = self.ledger.copies(ids)
        self.ledger.event(
            self.run_id,
            "ambiguous_cap",
            batch=batch,
            n=len(ids),
            detail=f"{unanswered} pushes in a row without an answer ({reason}); up to {copies} copies of "
            f"{len(ids)} messages may be on the target",
        )
        raise ReplayError(
            f"stopped re-sending batch {batch} of plan {self.plan.plan_id} ({len(ids)} messages, first "
            f"{ids[0]}): {unanswered} pushes in a row got no answer ({reason}). The target queue "
            f"{self.plan.target_queue!r} may have accepted every attempt: up to {copies} copies of these "
            f"{len(ids)} messages may be on it (the sum of their push attempts), duplicates carrying the "
            "same idempotency keys (metadata.replay.id). Nothing is lost: the originals are still in the "
            f"DLQ {self.plan.source_queue!r}. Before resuming, check the backlog of "
            f"{self.plan.target_queue!r} "
            "(edgeinvestigate collect --dlq ... or the dashboard) and that its consumer dedupes on "
            "metadata.replay.id; `replay status` shows the copies sent",
            hint="when the target is healthy again, resume with: edgeinvestigate replay run PLAN "
            "--resend-ambiguous (each ambiguous batch is sent again, at most --max-ambiguous-pushes "
            "times); see runbooks/replay-failed-jobs.md",
        )

    # -- removing the originals ------------------------------------------------------------------
    def _remove(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        leased = [(i, self.by_id[i].lease_id) for i in ids if self.by_id[i].lease_id]
        fallback = [i for i in ids if not self.by_id[i].lease_id]
        if leased:
            fallback += self._ack([i for i, _ in leased], [lease for _, lease in leased if lease])
        if fallback:
            # the same peek can also find originals of earlier batches that were not at the head then
            known = set(fallback)
            earlier = [
                i for i in self.ledger.ids_in(["pushed"]) if i not in known and not self.by_id[i].lease_id
            ]
            self._peek_and_purge(fallback + earlier)

    def _sweep(self) -> None:
        """After the last batch: peek + purge the DLQ's head again and again while each round removes
        something, so originals further back than the first 100 move up and are removed in this run.

        Stops when every pushed original is settled, or when a round removes nothing (the head is full
        of messages this plan does not replay, or the peek/purge keeps failing). Each round is one
        peek and at most one purge, paced and counted against the request budget like every request.
        """
        left = self.ledger.ids_in(["pushed"])
        max_rounds = len(left) + 1  # a round that goes on removes at least one original
        while left and self.result.sweep_rounds < max_rounds:
            self._check_stop()  # between rounds nothing is in flight: a stop leaves the ledger consistent
            self._finishing = True
            try:
                rnd = self._peek_and_purge(left)
            finally:
                self._finishing = False
            self.result.sweep_rounds += 1
            self._update_progress()
            left = self.ledger.ids_in(["pushed"])
            if not rnd.removed:
                break
        if left:
            self.ledger.event(
                self.run_id,
                "removal_blocked",
                n=len(left),
                detail=f"{self.result.head_not_replayed} of {self.result.head_seen} messages at the head "
                "of the DLQ are not replayed by this plan",
            )

    def _call(self, kind: str, fn: Callable[[], Any]) -> Any:
        """Send one idempotent request (ack, peek, purge) with at most ``max_call_attempts`` tries
        (429s: at most ``max_attempts``); ``None`` when it keeps failing (the ledger keeps the message
        ``pushed``, a later run removes it). Each retry wait is said (one line), and a stop request
        (Ctrl-C, ``replay cancel``) ends the run during the wait: between two requests, where the
        ledger is consistent."""
        failures = limited = 0
        while True:
            self._request_slot(kind)
            self._note_request(kind)
            try:
                return fn()
            except RateLimitedError as exc:
                self.result.rate_limited += 1
                self.ledger.event(self.run_id, "rate_limited", detail=f"{kind}: {exc.message}")
                limited += 1
                if limited >= self.max_attempts:
                    return None
                wait = self._backoff(min(limited, 6), exc.retry_after)
                why = exc.message
            except ServerError as exc:
                self.result.server_errors += 1
                self.ledger.event(self.run_id, "server_error", detail=f"{kind}: {exc.message}")
                failures += 1
                if failures >= self.max_call_attempts:
                    self.say(f"{kind} failed {failures} times ({exc.message}); giving up on it for this run")
                    return None
                wait = self._backoff(failures)
                why = exc.message
            except APIError as exc:
                self.ledger.event(self.run_id, "remove_failed", detail=f"{kind}: {exc.message}")
                return None
            self.say(
                f"retrying {kind} in {wait:.1f}s ({why}; try {failures + limited + 1}, at most "
                f"{self.max_call_attempts} on errors)"
            )
            self._sleep(wait, interruptible=True)

    def _ack(self, ids: list[str], leases: list[str]) -> list[str]:
        """Ack the leases held since the snapshot; returns the ids that need the peek fallback."""
        self.ledger.mark_removal_attempt(ids, "ack")
        result = self._call("ack", lambda: self.client.ack(self.source_id, acks=leases))
        if result is None:
            return ids
        warnings = result.get("warnings") if isinstance(result, dict) else None
        warned = set(warnings) if isinstance(warnings, dict) else set()
        ack_count = result.get("ackCount", result.get("ack_count")) if isinstance(result, dict) else None
        if isinstance(ack_count, int) and ack_count < len(leases) - len(warned & set(leases)):
            # fewer acks than leases and no word on which: verify every one by peek
            self.ledger.event(self.run_id, "remove_failed", detail=f"ack: {ack_count} of {len(leases)} acked")
            return ids
        done = [i for i, lease in zip(ids, leases, strict=True) if lease not in warned]
        self.ledger.settle(done, self.run_id, "ack")
        return [i for i, lease in zip(ids, leases, strict=True) if lease in warned]

    def _peek_and_purge(self, ids: list[str]) -> _Round:
        """Peek the DLQ's head and purge every original of ``ids`` found there (one round)."""
        rnd = _Round()
        peeked = self._call("peek", lambda: self.client.peek(self.source_id, batch_size=PEEK_BATCH))
        if peeked is None:
            self.ledger.mark_still_in_dlq(ids, self.run_id, "peek failed")
            self.result.head_seen = self.result.head_not_replayed = 0
            return rnd
        msgs = peeked.get("messages") or [] if isinstance(peeked, dict) else []
        refs = {str(m.get("id")): m.get("ref") for m in msgs if isinstance(m, dict) and m.get("ref")}
        whole_queue = len(msgs) < PEEK_BATCH
        found = [i for i in ids if i in refs]
        missing = [i for i in ids if i not in refs]
        wanted = set(ids)
        rnd.peeked = True
        rnd.head = len(msgs)
        rnd.others = sum(1 for m in msgs if not (isinstance(m, dict) and str(m.get("id")) in wanted))
        self.result.head_seen, self.result.head_not_replayed = rnd.head, rnd.others
        before = self.ledger.counts()["settled"]
        if found:
            self.ledger.mark_removal_attempt(found, "purge")
            res = self._call(
                "purge", lambda: self.client.purge_refs(self.source_id, [str(refs[i]) for i in found])
            )
            if res is None:
                self.ledger.mark_still_in_dlq(found, self.run_id, "purge failed")
            else:
                warnings = res.get("warnings") if isinstance(res, dict) else None
                bad = {ref for ref, why in (warnings or {}).items() if "invalid" in str(why)}
                self.ledger.settle([i for i in found if refs[i] not in bad], self.run_id, "purge")
                refused = [i for i in found if refs[i] in bad]
                self.ledger.clear_removal_attempt(refused)  # nothing was deleted: never "absent" later
                self.ledger.mark_still_in_dlq(refused, self.run_id, "purge ref refused")
        if missing:
            # not at the head of the DLQ: gone if the peek saw the whole queue, or if we already sent
            # its removal in an earlier attempt whose answer was lost
            tried = self.ledger.removal_attempted(missing)
            gone = [i for i in missing if whole_queue or i in tried]
            self.ledger.settle(gone, self.run_id, "absent")
            rest = [i for i in missing if not (whole_queue or i in tried)]
            self.ledger.mark_still_in_dlq(rest, self.run_id, NOT_AT_HEAD)
        rnd.removed = self.ledger.counts()["settled"] - before
        return rnd


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
) -> RunResult:
    """Run (or resume) a replay plan against ``client``; returns what happened.

    Refuses a plan whose content hash does not match, or that a ledger says is complete. ``rate``
    and ``max_requests_per_5min`` default to the plan's (``budget_window_s`` is the budget's window,
    300 s like Cloudflare's). ``confirm`` is asked once before anything is sent (the CLI shows the
    plan and asks unless ``--yes``). ``stop`` is an event that ends the run after the in-flight
    batch, as Ctrl-C and ``replay cancel`` do.

    A batch whose pushes end without an answer (timeout, 5xx) ``max_ambiguous_pushes`` times in a
    row in one run may now exist that many times on the target: the run stops (``ReplayError``)
    and says so. A later run refuses to send such a batch again unless ``resend_ambiguous`` (the
    operator checked the target queue and its consumer's dedupe); it then keeps the same cap.
    """
    speak = say or (lambda text: print(text, file=sys.stderr))
    plan = ReplayPlan.load(plan_path)
    lpath = Path(ledger_path) if ledger_path else default_ledger_path(plan_path)
    r = float(rate if rate is not None else plan.rate)
    budget = int(max_requests_per_5min if max_requests_per_5min is not None else plan.max_requests_per_5min)
    if r <= 0 or budget <= 0:
        raise ReplayError("--rate and --max-requests-per-5min must be positive", hint=_RUNBOOK)
    if max_ambiguous_pushes < 1:
        raise ReplayError("--max-ambiguous-pushes must be at least 1", hint=_RUNBOOK)
    lock = RunLock(lpath)
    lock.acquire()
    ledger = Ledger.open(lpath)
    stop_event = stop or threading.Event()
    saved_attempts = client.max_attempts
    try:
        if ledger.get_meta("completed_at"):
            raise ReplayRefusedError(
                f"plan {plan.plan_id} was already completed (ledger {lpath}); running it again would "
                "replay nothing and a changed copy would duplicate",
                hint="check it with: edgeinvestigate replay status PLAN; make a new plan for new messages",
            )
        ledger.init_plan(
            plan_id=plan.plan_id,
            content_hash=plan.content_hash,
            plan_path=str(plan_path),
            rows=[(m.message_id, m.replay_id, m.batch, m.lease_id) for m in plan.messages],
        )
        runner = _Runner(
            plan,
            ledger,
            client,
            rate=r,
            max_requests=budget,
            budget_window_s=budget_window_s,
            stop=stop_event,
            progress=None,
            max_attempts=max_attempts,
            max_backoff=max_backoff,
            say=speak,
            max_ambiguous_pushes=max_ambiguous_pushes,
            max_call_attempts=max_call_attempts,
        )
        client.max_attempts = 1  # every request is counted against the budget and retried here
        runner.resolve_queues()
        _refuse_replayed_elsewhere(plan, Path(plan_path), ledger)
        warning = register_ledger(
            plan.bundle,
            plan_id=plan.plan_id,
            content_hash=plan.content_hash,
            plan_path=Path(plan_path),
            ledger_path=lpath,
        )
        if warning:
            runner.result.notes.append(warning)
        _refuse_capped(plan, ledger, resend_ambiguous, speak)
        if confirm is not None and not confirm(plan):
            raise ReplayError(
                "replay not confirmed; nothing was sent", hint="pass --yes to skip the question"
            )
        user = who()
        run_id = ledger.begin_run(
            user=user["user"], host=user["host"], argv=argv, rate=r, max_requests=budget
        )
        runner.run_id = run_id
        recovered = ledger.recover(run_id)
        if recovered:
            runner.result.notes.append(
                f"{recovered} messages were left 'pushing' by an interrupted run: re-sent with the same "
                "idempotency keys and counted as possible duplicates"
            )
        if ledger.cancel_requested():
            ledger.clear_cancel()
            ledger.event(run_id, "cancel_cleared", detail="a new run clears an earlier cancel request")
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
            with _graceful_interrupts(stop_event, speak):
                result = runner.run()
            outcome = result.outcome
        except KeyboardInterrupt:
            outcome = "interrupted"  # a second Ctrl-C: the ledger still says what may be in flight
            raise
        finally:
            if bar is not None:
                bar.close()
            ledger.end_run(run_id, outcome)
        if result.outcome == "completed":
            ledger.set_meta("completed_at", repr(time.time()))
        result.counts = ledger.counts()
        totals = ledger.totals()
        result.possible_duplicates = totals["possible_duplicates"]
        result.copies_sent = totals["push_attempts"]
        result.still_in_dlq = totals["still_in_dlq"]
        if result.still_in_dlq:
            result.notes.append(still_in_dlq_note(result, plan))
        return result
    finally:
        client.max_attempts = saved_attempts
        ledger.close()
        lock.release()


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


def _refuse_replayed_elsewhere(plan: ReplayPlan, plan_path: Path, ledger: Ledger) -> None:
    """Refuse to push messages that the ledger of another plan (registered in the plan's bundle, or
    next to the plan file) shows as already pushed: they would reach the consumer twice, under two
    different idempotency keys. Only messages this plan has not sent yet are checked."""
    from edgeinvestigate.replay._registry import find_prior_replays

    todo = ledger.ids_in(["planned"])
    prior = find_prior_replays(todo, bundle=plan.bundle, near=[plan_path], exclude=[ledger.path])
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


def _never_sent(exc: ServerError) -> bool:
    """A transport error raised before the request left (no connection): nothing was enqueued."""
    return exc.status is None and "could not connect" in exc.message


def still_in_dlq_note(result: RunResult, plan: ReplayPlan) -> str:
    """Say plainly how many pushed messages have an original whose removal is not confirmed, what is
    known about them, why, and what to do."""
    n, dlq = result.still_in_dlq, plan.source_queue
    if result.outcome in ("cancelled", "interrupted"):
        what = (
            f"{n} replayed messages were pushed (this plan will not push them again) but their originals "
            f"were not removed from the DLQ {dlq!r} yet, so the run is incomplete. "
        )
        why = "The run stopped before it could remove them. "
    elif result.head_seen == 0:
        what = (
            f"{n} replayed messages were pushed (this plan will not push them again) but the removal of "
            f"their originals from the DLQ {dlq!r} is not confirmed, so the run is incomplete "
            "(exit status 4). "
        )
        why = "The DLQ could not be peeked (see `edgeinvestigate replay status` for the errors). "
    else:
        what = (
            f"{n} replayed messages were pushed (this plan will not push them again) but the run could not "
            f"confirm that their originals left the DLQ {dlq!r}, so it is incomplete (exit status 4). "
        )
        why = (
            "Without a lease an original is removed by peek + purge, and a peek only sees the first "
            f"{PEEK_BATCH} messages of the queue; after {_rounds(result.sweep_rounds)} the head of the "
            f"DLQ holds {result.head_not_replayed} messages that this plan does not replay and none of "
            "these originals. So each original is either further back in the DLQ (out of reach) or no "
            "longer in it (removed by another replay, a purge or a consumer): a peek cannot tell which. "
        )
    todo = (
        "To finish: run `edgeinvestigate replay run PLAN` again later: each run peeks the head of the DLQ "
        "again and removes the originals it finds there (once the messages in front of them have been "
        "replayed or purged). To see whether they are still in the DLQ at all, collect it in snapshot "
        f"mode (edgeinvestigate collect --dlq {dlq} --dlq-mode snapshot --out BUNDLE). A later plan made "
        "next to this one, or from the same bundle, keeps these messages under the same idempotency keys "
        "and removes their originals (by ack when its bundle holds leases: collect with --dlq-mode "
        "snapshot --dlq-keep-leases). See runbooks/replay-failed-jobs.md (exit status 4)."
    )
    return what + why + todo


def _rounds(n: int) -> str:
    return f"{n} removal round" + ("" if n == 1 else "s")
