"""Realistic ``QueueMessage.payload`` objects for the five job types.

Payloads are built only for the jobs that need one (DLQ messages and failing jobs whose error text
quotes the payload), each from its own seeded splitmix stream so a job's payload does not depend
on which other payloads were built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["JobPayloads", "context_of"]

_TEMPLATES = ["welcome", "order_shipped", "password_reset", "invoice_ready", "weekly_digest", "trial_ending"]
_LOCALES = ["en-US", "de-DE", "fr-FR", "ja-JP", "pt-BR", "es-ES"]
_FIRST = ["Ana", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Yuki", "Priya", "Jonas", "Elena"]
_LAST = ["Smith", "Garcia", "Müller", "Rossi", "Dubois", "Tanaka", "Kim", "Patel", "Silva", "Novak"]
_DOMAINS = ["example.com", "acme.io", "contoso.net", "globex.com", "initech.co", "example.org"]
_REPORTS = ["usage", "invoice-summary", "churn", "year-to-date", "seat-audit"]
_SOURCES = ["salesforce", "hubspot", "stripe", "zendesk", "netsuite"]
_EVENTS = ["invoice.paid", "invoice.failed", "customer.created", "subscription.updated", "order.fulfilled"]
_HOOK_HOSTS = ["hooks.acme.io", "api.contoso.net", "webhooks.hooli.xyz", "crm.initech.co", "erp.globex.com"]
_EXT = ["jpg", "png", "heic", "webp"]


_M64 = (1 << 64) - 1
_T = TypeVar("_T")


class _Rand:
    """A tiny splitmix64 stream: seeding is free, which matters for a million payloads."""

    __slots__ = ("x",)

    def __init__(self, seed: int) -> None:
        self.x = seed & _M64

    def next(self) -> int:
        self.x = (self.x + 0x9E3779B97F4A7C15) & _M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    def choice(self, seq: Sequence[_T]) -> _T:
        return seq[self.next() % len(seq)]

    def randint(self, a: int, b: int) -> int:
        return a + self.next() % (b - a + 1)

    def getrandbits(self, k: int) -> int:
        out, have = 0, 0
        while have < k:
            out = (out << 64) | self.next()
            have += 64
        return out >> (have - k)


def _hex(r: _Rand, k: int) -> str:
    return f"{r.getrandbits(4 * k):0{k}x}"


def _uuid(r: _Rand) -> str:
    h = _hex(r, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class JobPayloads:
    """Builds (and caches) the payload of job ``i``."""

    def __init__(
        self,
        seed: int,
        types: list[str],
        tenants: list[str],
        job_ids: list[str],
        produced_ms: list[int],
        poison: dict[int, tuple[str, str]],
    ) -> None:
        self.seed = seed
        self.types = types
        self.tenants = tenants
        self.job_ids = job_ids
        self.produced_ms = produced_ms
        self.poison = poison  # job index -> (field, bad value)
        self._cache: dict[int, dict[str, Any]] = {}

    def __call__(self, i: int) -> dict[str, Any]:
        p = self._cache.get(i)
        if p is None:
            p = self._build(i)
            self._cache[i] = p
        return p

    def _build(self, i: int) -> dict[str, Any]:
        r = _Rand((self.seed * 0x100000001B3) ^ (i * 0x9E3779B97F4A7C15))
        t = self.types[i]
        tenant = self.tenants[i]
        base: dict[str, Any] = {"jobId": self.job_ids[i], "tenantId": tenant}
        if t == "IMAGE_PROCESSING":
            img = _hex(r, 16)
            w = r.choice([320, 640, 1280, 1920])
            base.update(
                imageId=_uuid(r),
                source=f"https://images.internal.example.com/v1/objects/{tenant}/{img}.{r.choice(_EXT)}",
                operations=[
                    {"op": "resize", "width": w, "height": w * 3 // 4},
                    {"op": "format", "to": r.choice(["webp", "avif"])},
                ],
                callbackUrl=f"https://app.example.com/api/images/{img}/ready",
            )
        elif t == "EMAIL_DELIVERY":
            first, last = r.choice(_FIRST), r.choice(_LAST)
            email = (
                f"{first.lower()}.{last.lower().replace('ü', 'ue')}{r.randint(1, 99)}@{r.choice(_DOMAINS)}"
            )
            base.update(
                to=email,
                template=r.choice(_TEMPLATES),
                locale=r.choice(_LOCALES),
                data={
                    "name": f"{first} {last}",
                    "orderId": f"ord_{_hex(r, 10)}",
                    "amountCents": r.randint(500, 99900),
                },
            )
        elif t == "REPORT_GENERATION":
            base.update(
                reportId=_uuid(r),
                kind=r.choice(_REPORTS),
                period={"from": "2026-11-01", "to": "2026-11-26"},
                format=r.choice(["pdf", "csv"]),
                requestedBy=f"user_{_hex(r, 8)}",
            )
        elif t == "DATA_SYNC":
            base.update(
                syncId=_uuid(r),
                source=r.choice(_SOURCES),
                cursor=f"c_{_hex(r, 24)}",
                since="2026-11-26T00:00:00Z",
                batchSize=r.choice([100, 250, 500]),
                customerId=f"cus_{_hex(r, 14)}",
            )
        else:  # WEBHOOK_PROCESSING
            base.update(
                webhookId=f"wh_{_hex(r, 12)}",
                endpoint=f"https://{r.choice(_HOOK_HOSTS)}/webhooks/{_hex(r, 8)}",
                event=r.choice(_EVENTS),
                deliveryId=_uuid(r),
                payloadSha256=_hex(r, 64),
            )
        bad = self.poison.get(i)
        if bad is not None:
            base[bad[0]] = bad[1]
        return base


def context_of(payload: dict[str, Any]) -> dict[str, str]:
    """Template context values (``{job}``, ``{tenant}``, ``{email}``, ``{template}``, ``{url}``)."""
    ctx = {"job": str(payload.get("jobId", "")), "tenant": str(payload.get("tenantId", ""))}
    if "to" in payload:
        ctx["email"] = str(payload["to"])
    if "template" in payload:
        ctx["template"] = f'"{payload["template"]}"'
    for key in ("source", "endpoint"):
        if isinstance(payload.get(key), str) and str(payload[key]).startswith("https://"):
            ctx["url"] = str(payload[key])
    return ctx
