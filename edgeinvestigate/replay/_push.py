"""Pushing one batch of a plan to the target queue, with the ledger always ahead of the request.

``pushing`` is committed before the batch is sent and ``pushed`` once the API confirmed it. A 429
enqueued nothing: it is waited out and the batch sent again. A connection that was never made
enqueued nothing either. A 5xx or a timeout after sending may have enqueued the batch: it is marked
``ambiguous`` (possible duplicates) and re-sent with the same idempotency keys, at most
``max_ambiguous_pushes`` times in a row; then the run stops and says how many copies may exist.
Any other 4xx stops the run with the ledger consistent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from edgeinvestigate.errors import APIError, RateLimitedError, ReplayError, ServerError
from edgeinvestigate.replay._gate import RequestGate
from edgeinvestigate.replay._plan import PlanMessage, ReplayPlan

__all__ = ["Pusher"]

_RUNBOOK = "see runbooks/replay-failed-jobs.md"


class Pusher:
    """Pushes the batches of ``plan`` to the queue ``target_id`` through ``gate``."""

    def __init__(
        self,
        gate: RequestGate,
        plan: ReplayPlan,
        by_id: Mapping[str, PlanMessage],
        target_id: str,
        *,
        max_ambiguous_pushes: int,
    ) -> None:
        self.gate = gate
        self.plan = plan
        self.by_id = by_id
        self.target_id = target_id
        self.max_ambiguous_pushes = max_ambiguous_pushes
        self.ledger = gate.ledger
        self.client = gate.client
        self.result = gate.result
        #: when the first and the last batch of this run were confirmed (monotonic clock)
        self.first_push: float | None = None
        self.last_push: float | None = None

    def push_batch(self, batch: int) -> None:
        gate = self.gate
        ids = self.ledger.ids_in(["planned", "ambiguous", "pushing"], batch=batch)
        if not ids:
            return
        messages = [{"body": self.by_id[i].body, "content_type": "json"} for i in ids]
        attempt = 0
        unanswered = 0  # pushes of this batch in this run that may have been enqueued (no answer, 5xx)
        while True:
            gate.request_slot("push", len(ids))
            ts = gate.budget.note()
            self.ledger.start_push(ids, gate.run_id, batch=batch, ts=ts)
            self.result.requests += 1
            try:
                self.client.push_batch(self.target_id, messages)
            except RateLimitedError as exc:
                # nothing was enqueued; a 429 storm is waited out (Ctrl-C or `replay cancel` end it)
                self.result.rate_limited += 1
                self.ledger.push_rejected(ids, gate.run_id, exc.message, batch=batch, kind="rate_limited")
                gate.sleep(gate.backoff(min(attempt, 6), exc.retry_after))
                continue
            except ServerError as exc:
                self.result.server_errors += 1
                if _never_sent(exc):
                    # no connection was made: nothing can have been enqueued by this attempt
                    self.ledger.push_rejected(
                        ids, gate.run_id, exc.message, batch=batch, kind="push_not_sent"
                    )
                    wait = gate.backoff(attempt)
                else:
                    # a 5xx or a timeout after sending: it may have been enqueued
                    self.result.ambiguous_batches += 1
                    unanswered += 1
                    reason = (
                        f"HTTP {exc.status}" if exc.status else "no answer (timeout or dropped connection)"
                    )
                    self.ledger.push_ambiguous(ids, gate.run_id, reason, batch=batch)
                    if unanswered >= self.max_ambiguous_pushes:
                        self._give_up_ambiguous(batch, ids, unanswered, reason)
                    wait = gate.backoff(attempt)
                gate.say(
                    f"retrying the push of batch {batch} in {wait:.1f}s ({exc.message}; "
                    f"{unanswered} of at most {self.max_ambiguous_pushes} unanswered pushes)"
                )
            except APIError as exc:
                self.ledger.push_rejected(ids, gate.run_id, exc.message, batch=batch)
                raise ReplayError(
                    f"the API refused batch {batch} of plan {self.plan.plan_id} ({len(ids)} messages, first "
                    f"{ids[0]}): {exc.message}; nothing of this batch was enqueued and the ledger is "
                    "consistent",
                    hint=exc.hint or _RUNBOOK,
                ) from exc
            else:
                now = time.monotonic()
                gate.pacer.sent(len(ids))
                self.ledger.push_confirmed(ids, gate.run_id, batch=batch)
                self.result.messages_pushed += len(ids)
                self.result.push_requests += 1
                if self.first_push is None:
                    self.first_push = now
                self.last_push = now
                return
            attempt += 1
            if attempt >= gate.max_attempts:
                raise ReplayError(
                    f"gave up on batch {batch} of plan {self.plan.plan_id} after {attempt} attempts "
                    f"({self.result.rate_limited} rate-limited, {self.result.server_errors} server errors); "
                    f"its messages are 'ambiguous' or 'planned' in the ledger, none is lost (up to "
                    f"{self.ledger.copies(ids)} copies of its {len(ids)} messages may be on the target)",
                    hint="run the same command again later: it resumes from the ledger",
                )
            gate.sleep(wait)

    def _give_up_ambiguous(self, batch: int, ids: Sequence[str], unanswered: int, reason: str) -> None:
        """Stop re-sending a batch whose pushes keep ending without an answer: each of them may have
        been enqueued, so every re-send may add one more copy of every message on the target."""
        copies = self.ledger.copies(ids)
        self.ledger.event(
            self.gate.run_id,
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
            f"--allow-queue {self.plan.target_queue} --resend-ambiguous (each ambiguous batch is sent "
            "again, at most --max-ambiguous-pushes times); see runbooks/replay-failed-jobs.md",
        )


def _never_sent(exc: ServerError) -> bool:
    """A transport error raised before the request left (no connection): nothing was enqueued."""
    return exc.status is None and "could not connect" in exc.message
