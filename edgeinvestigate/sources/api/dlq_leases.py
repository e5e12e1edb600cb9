"""Leases of a DLQ snapshot: extending them, releasing them, and saving a message pulled too often.

Releasing is a retry with ``delay_seconds: 0``: the message is visible again at once, and the pull
counted as a delivery attempt. Requests go in chunks of 100 leases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from edgeinvestigate.errors import EdgeInvestigateError
from edgeinvestigate.sources.api.dlq_body import decode_body
from edgeinvestigate.sources.api.dlq_frame import as_int

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["MAX_VISIBILITY_MS", "extend_leases", "release_leases", "requeue"]

MAX_VISIBILITY_MS = 43_200_000  # 12 h, the API's limit
_CHUNK = 100


def requeue(
    client: CloudflareClient,
    queue: str,
    qid: str,
    message: Mapping[str, Any],
    max_retries: int,
    fate: str,
    warnings: list[str],
    *,
    checked: int,
) -> bool:
    """Save a message that a snapshot pulled past ``max_retries``: push its body back onto the queue
    (a new message), and only after the push is confirmed ack the pulled copy. False (nothing acked,
    the lease is kept) when the body cannot be sent through the REST API or the push fails.
    ``fate`` says what the consumer does with an exhausted message; ``checked``: the size of the
    head the snapshot peeked before pulling. What happened is added to ``warnings``."""
    mid = str(message.get("id"))
    attempts = as_int(message.get("attempts")) or 0
    metadata = message.get("metadata") if isinstance(message.get("metadata"), Mapping) else {}
    ctype = (metadata or {}).get("CF-Content-Type", message.get("content_type"))
    decoded = decode_body(message.get("body"), ctype if isinstance(ctype, str) else None)
    what = (
        f"message {mid} was pulled with attempts={attempts} > max_retries={max_retries} of the DLQ's "
        f"consumer (it was beyond the {checked}-message head checked before pulling)"
    )
    if decoded.has_value and decoded.content_type in ("json", "text", None):
        push_type: Literal["json", "text"] = "text" if decoded.content_type == "text" else "json"
        try:
            client.push(qid, decoded.value, push_type)
        except EdgeInvestigateError as exc:
            why = f"pushing its body back failed ({exc.message})"
        else:
            lease = message.get("lease_id")
            if lease:
                client.ack(qid, acks=[str(lease)])
            warnings.append(
                f"{what}: its body was pushed back onto {queue!r} as a new message and the pulled copy "
                f"acked, so it was not {fate}; the new copy has a new id and timestamp"
            )
            return True
    else:
        why = f"its {decoded.content_type or 'unknown'} body cannot be sent through the REST API"
    warnings.append(
        f"{what}, and {why}: its lease is kept for {MAX_VISIBILITY_MS // 3_600_000} h. Within that time "
        f"raise max_retries of {queue!r}'s pull consumer above {attempts} (dashboard, or `wrangler queues "
        f"consumer http remove {queue}` then `wrangler queues consumer http add {queue} --message-retries "
        f"{attempts + 10}`); then the message stays in the queue when the lease ends, otherwise it is {fate}"
    )
    return False


def _chunks(items: Sequence[str], n: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def extend_leases(
    client: CloudflareClient, qid: str, leases: Sequence[str], visibility_ms: int, warnings: list[str]
) -> None:
    """Extend leases to ``visibility_ms`` from now (not a delivery attempt); problems go to ``warnings``."""
    for chunk in _chunks(list(leases)):
        res = client.extend(qid, chunk, visibility_ms)
        for lease, why in (res.get("warnings") or {}).items():
            warnings.append(f"could not extend lease {lease[:12]}...: {why}")


def release_leases(
    client: CloudflareClient, queue_id: str, lease_ids: Sequence[str]
) -> tuple[int, list[str]]:
    """Release leased messages back to the queue at once (retry with ``delay_seconds: 0``).

    Returns (number released, warnings). Releasing counts the pull as a failed delivery attempt.
    """
    released = 0
    warnings: list[str] = []
    for chunk in _chunks(list(lease_ids)):
        res = client.ack(queue_id, acks=(), retries=[{"lease_id": lid, "delay_seconds": 0} for lid in chunk])
        released += as_int(res.get("retryCount")) or 0
        for lease, why in (res.get("warnings") or {}).items():
            warnings.append(f"release of lease {lease[:12]}...: {why}")
    return released, warnings
