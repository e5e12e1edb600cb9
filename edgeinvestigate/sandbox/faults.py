"""Fault injection for the sandbox: what can go wrong between a client and Cloudflare.

A fault spec is a comma-separated list of ``key=value`` (``--faults`` or ``PUT /__admin/faults``)::

    latency=0.2,error_rate=0.05,burst429=10,drop=0.01,commit_timeout=0.05,seed=1

=================  ==========================================================================================
``latency``        seconds added before every API response (``latency_jitter`` adds a random 0..jitter)
``error_rate``     probability that a request is answered ``500`` (Cloudflare error body, code 10002)
                   before anything is applied
``error_burst``    the next N API requests are answered ``500``
``burst429``       the next N API requests are answered ``429`` with ``Retry-After: retry_after``
``retry_after``    seconds sent in ``Retry-After`` by ``burst429`` (default 1)
``drop``           probability that the connection is closed with no response, before anything is applied
``commit_timeout`` probability that a push / batch push is **applied** (committed to the store) and then
                   the client gets no answer: with ``commit_mode=delay`` (default) the response is held
                   ``commit_delay`` seconds (default 35, longer than edgeinvestigate's 30 s read timeout), so
                   the client sees ``httpx.ReadTimeout``; with ``commit_mode=drop`` the connection is closed
                   after the status line, so the client sees ``httpx.RemoteProtocolError``. Either way the
                   message(s) are in the queue: a client that retries creates duplicates.
``ops``            restrict the faults to these operations, joined with ``+`` (for example
                   ``ops=push+batch``); names: list_queues, get_queue, list_consumers, get_consumer,
                   update_consumer, push, batch, pull, ack, extend, peek, purge_refs, metrics, purge,
                   purge_status, telemetry_query, list_tails, create_tail, delete_tail, list_deployments,
                   create_deployment
``seed``           seed of the fault random generator (deterministic runs)
=================  ==========================================================================================

Faults apply to the Cloudflare API only, never to ``/__admin/`` or the tail WebSocket. The order of checks
per request: ``burst429``, ``error_burst``, ``drop``, ``error_rate``, latency, then the handler, then
``commit_timeout`` for pushes.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeinvestigate.errors import ConfigError

__all__ = ["OPERATIONS", "FaultInjector", "FaultSpec", "parse_faults"]

# Every Cloudflare API operation the sandbox serves, by the name ``ops=`` uses (the app's routes must
# match this tuple; tests/sandbox/test_cli_failures.py checks that).
OPERATIONS: tuple[str, ...] = (
    "list_queues",
    "get_queue",
    "list_consumers",
    "get_consumer",
    "update_consumer",
    "push",
    "batch",
    "pull",
    "ack",
    "extend",
    "peek",
    "purge_refs",
    "metrics",
    "purge",
    "purge_status",
    "telemetry_query",
    "list_tails",
    "create_tail",
    "delete_tail",
    "list_deployments",
    "create_deployment",
)

_FLOAT_KEYS = (
    "latency",
    "latency_jitter",
    "error_rate",
    "drop",
    "commit_timeout",
    "commit_delay",
    "retry_after",
)
_INT_KEYS = ("burst429", "error_burst", "seed")
_PROBABILITY_KEYS = ("error_rate", "drop", "commit_timeout")


@dataclass
class FaultSpec:
    latency: float = 0.0
    latency_jitter: float = 0.0
    error_rate: float = 0.0
    error_burst: int = 0
    burst429: int = 0
    retry_after: float = 1.0
    drop: float = 0.0
    commit_timeout: float = 0.0
    commit_mode: str = "delay"
    commit_delay: float = 35.0
    ops: list[str] = field(default_factory=list)
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_spec(self) -> str:
        """The spec string again (only non-default values)."""
        default = FaultSpec()
        parts = []
        for key, value in asdict(self).items():
            if value == getattr(default, key):
                continue
            parts.append(f"{key}={'+'.join(value) if key == 'ops' else value}")
        return ",".join(parts)


def parse_faults(spec: str | dict[str, Any] | None) -> FaultSpec:
    """Parse ``"latency=0.2,error_rate=0.05"`` (or a dict of the same keys) into a :class:`FaultSpec`."""
    out = FaultSpec()
    if not spec:
        return out
    items: list[tuple[str, Any]]
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"fault spec {spec!r}: {part!r} is not key=value",
                    hint="e.g. --faults 'latency=0.2,error_rate=0.05,seed=1'",
                )
            items.append((key.strip(), value.strip()))
    for key, value in items:
        try:
            if key in _FLOAT_KEYS:
                setattr(out, key, float(value))
            elif key in _INT_KEYS:
                setattr(out, key, int(value))
            elif key == "commit_mode":
                if value not in ("delay", "drop"):
                    raise ValueError("commit_mode must be 'delay' or 'drop'")
                out.commit_mode = str(value)
            elif key == "ops":
                ops = list(value) if isinstance(value, list) else [v for v in str(value).split("+") if v]
                unknown = [str(op) for op in ops if op not in OPERATIONS]
                if unknown:
                    raise ConfigError(
                        f"fault spec {spec!r}: unknown operation(s) {', '.join(map(repr, unknown))} in ops",
                        hint="join operation names with '+'; valid names: " + ", ".join(OPERATIONS),
                    )
                out.ops = [str(op) for op in ops]
            else:
                raise ValueError(f"unknown fault {key!r}")
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"fault spec {spec!r}: bad value for {key!r}: {exc}",
                hint="keys: latency, latency_jitter, error_rate, error_burst, burst429, retry_after, drop, "
                "commit_timeout, commit_mode, commit_delay, ops, seed",
            ) from exc
    for key in _PROBABILITY_KEYS:
        if not 0.0 <= getattr(out, key) <= 1.0:
            raise ConfigError(f"fault spec {spec!r}: {key} must be a probability between 0 and 1")
    for key in ("latency", "latency_jitter", "commit_delay", "retry_after", "burst429", "error_burst"):
        if getattr(out, key) < 0:
            raise ConfigError(f"fault spec {spec!r}: {key} must not be negative")
    return out


class FaultInjector:
    """Decides, per request, which fault (if any) applies. Counters for bursts live here."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self.set(spec or FaultSpec())

    def set(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._burst429_left = spec.burst429
        self._error_burst_left = spec.error_burst
        self.injected: dict[str, int] = {}

    def _count(self, name: str) -> str:
        self.injected[name] = self.injected.get(name, 0) + 1
        return name

    def applies(self, op: str) -> bool:
        return not self.spec.ops or op in self.spec.ops

    def before(self, op: str) -> str | None:
        """``"429"``, ``"500"``, ``"drop"`` or ``None``."""
        if not self.applies(op):
            return None
        if self._burst429_left > 0:
            self._burst429_left -= 1
            return self._count("429")
        if self._error_burst_left > 0:
            self._error_burst_left -= 1
            return self._count("500")
        if self.spec.drop and self._rng.random() < self.spec.drop:
            return self._count("drop")
        if self.spec.error_rate and self._rng.random() < self.spec.error_rate:
            return self._count("500")
        return None

    def latency(self, op: str) -> float:
        if not self.applies(op):
            return 0.0
        extra = self._rng.random() * self.spec.latency_jitter if self.spec.latency_jitter else 0.0
        return self.spec.latency + extra

    def commit_timeout(self, op: str) -> bool:
        if op not in ("push", "batch") or not self.applies(op) or not self.spec.commit_timeout:
            return False
        if self._rng.random() < self.spec.commit_timeout:
            self._count("commit_timeout")
            return True
        return False

    def status(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_spec(),
            "faults": self.spec.to_dict(),
            "injected": dict(self.injected),
            "burst429_left": self._burst429_left,
            "error_burst_left": self._error_burst_left,
        }
