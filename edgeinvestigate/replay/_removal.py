"""Removing the originals of pushed messages from the DLQ, and saying why some could not be.

An original whose lease the bundle kept is removed by an ack. One without a lease is found by
peeking the head of the DLQ (a peek shows at most 100 messages) and purged by its ref; after the
last batch the run keeps peeking and purging while each round removes something, so originals
further back move up to the head. Only a head full of messages the plan does not replay stops it:
the run is then ``incomplete`` (exit status 4) and :func:`still_in_dlq_note` says why and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edgeinvestigate.replay._gate import RequestGate
from edgeinvestigate.replay._plan import PlanMessage, ReplayPlan
from edgeinvestigate.replay._result import RunResult

__all__ = ["PEEK_BATCH", "Removal", "still_in_dlq_note"]

PEEK_BATCH = 100
#: the ledger's last_error of a pushed message whose original a peek of the DLQ's head did not show
NOT_AT_HEAD = (
    "pushed; the original was not in a peek of the DLQ's head (it is further back in the DLQ, or "
    "no longer in it): removal not confirmed"
)


@dataclass
class _Round:
    """One peek + purge of the DLQ's head: what it saw and what it removed."""

    peeked: bool = False  # False: the peek kept failing
    head: int = 0  # messages the peek returned
    others: int = 0  # of those, messages this plan is not removing now (unselected or not pushed)
    removed: int = 0  # originals settled by this round (purged, or known gone)


class Removal:
    """Removes the originals of the messages of a plan from the DLQ ``source_id``, through ``gate``."""

    def __init__(self, gate: RequestGate, by_id: Mapping[str, PlanMessage], source_id: str) -> None:
        self.gate = gate
        self.by_id = by_id
        self.source_id = source_id
        self.ledger = gate.ledger
        self.client = gate.client
        self.result = gate.result

    def remove(self, ids: Sequence[str]) -> None:
        """Remove the originals of ``ids`` (just pushed): ack their leases, peek + purge the rest."""
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

    def sweep(self, on_round: Callable[[], None]) -> None:
        """After the last batch: peek + purge the DLQ's head again and again while each round removes
        something, so originals further back than the first 100 move up and are removed in this run.

        Stops when every pushed original is settled, or when a round removes nothing (the head is full
        of messages this plan does not replay, or the peek/purge keeps failing). Each round is one
        peek and at most one purge, paced and counted against the request budget like every request.
        """
        left = self.ledger.ids_in(["pushed"])
        max_rounds = len(left) + 1  # a round that goes on removes at least one original
        while left and self.result.sweep_rounds < max_rounds:
            self.gate.check_stop()  # between rounds nothing is in flight: a stop leaves the ledger consistent
            self.gate.finishing = True
            try:
                rnd = self._peek_and_purge(left)
            finally:
                self.gate.finishing = False
            self.result.sweep_rounds += 1
            on_round()
            left = self.ledger.ids_in(["pushed"])
            if not rnd.removed:
                break
        if left:
            self.ledger.event(
                self.gate.run_id,
                "removal_blocked",
                n=len(left),
                detail=f"{self.result.head_not_replayed} of {self.result.head_seen} messages at the head "
                "of the DLQ are not replayed by this plan",
            )

    def _ack(self, ids: list[str], leases: list[str]) -> list[str]:
        """Ack the leases held since the snapshot; returns the ids that need the peek fallback."""
        self.ledger.mark_removal_attempt(ids, "ack")
        result = self.gate.call("ack", lambda: self.client.ack(self.source_id, acks=leases))
        if result is None:
            return ids
        warnings = result.get("warnings") if isinstance(result, dict) else None
        warned = set(warnings) if isinstance(warnings, dict) else set()
        ack_count = result.get("ackCount", result.get("ack_count")) if isinstance(result, dict) else None
        if isinstance(ack_count, int) and ack_count < len(leases) - len(warned & set(leases)):
            # fewer acks than leases and no word on which: verify every one by peek
            self.ledger.event(
                self.gate.run_id, "remove_failed", detail=f"ack: {ack_count} of {len(leases)} acked"
            )
            return ids
        done = [i for i, lease in zip(ids, leases, strict=True) if lease not in warned]
        self.ledger.settle(done, self.gate.run_id, "ack")
        return [i for i, lease in zip(ids, leases, strict=True) if lease in warned]

    def _peek_and_purge(self, ids: list[str]) -> _Round:
        """Peek the DLQ's head and purge every original of ``ids`` found there (one round)."""
        rnd = _Round()
        peeked = self.gate.call("peek", lambda: self.client.peek(self.source_id, batch_size=PEEK_BATCH))
        if peeked is None:
            self.ledger.mark_still_in_dlq(ids, self.gate.run_id, "peek failed")
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
            res = self.gate.call(
                "purge", lambda: self.client.purge_refs(self.source_id, [str(refs[i]) for i in found])
            )
            if res is None:
                self.ledger.mark_still_in_dlq(found, self.gate.run_id, "purge failed")
            else:
                warnings = res.get("warnings") if isinstance(res, dict) else None
                bad = {ref for ref, why in (warnings or {}).items() if "invalid" in str(why)}
                self.ledger.settle([i for i in found if refs[i] not in bad], self.gate.run_id, "purge")
                refused = [i for i in found if refs[i] in bad]
                self.ledger.clear_removal_attempt(refused)  # nothing was deleted: never "absent" later
                self.ledger.mark_still_in_dlq(refused, self.gate.run_id, "purge ref refused")
        if missing:
            # not at the head of the DLQ: gone if the peek saw the whole queue, or if we already sent
            # its removal in an earlier attempt whose answer was lost
            tried = self.ledger.removal_attempted(missing)
            gone = [i for i in missing if whole_queue or i in tried]
            self.ledger.settle(gone, self.gate.run_id, "absent")
            rest = [i for i in missing if not (whole_queue or i in tried)]
            self.ledger.mark_still_in_dlq(rest, self.gate.run_id, NOT_AT_HEAD)
        rnd.removed = self.ledger.counts()["settled"] - before
        return rnd


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
        f"To finish: run `edgeinvestigate replay run PLAN --allow-queue {plan.target_queue}` again later: "
        "each run peeks the head of the DLQ "
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
