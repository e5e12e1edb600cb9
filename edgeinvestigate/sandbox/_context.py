"""Everything one sandbox process holds: config, store, faults, rate limiter, tail hub."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from edgeinvestigate._http import Secret
from edgeinvestigate.sandbox._ratelimit import RateLimiter
from edgeinvestigate.sandbox._store import Store
from edgeinvestigate.sandbox._tail_hub import TailHub
from edgeinvestigate.sandbox.faults import FaultInjector, FaultSpec

__all__ = ["SandboxConfig", "SandboxContext"]


@dataclass
class SandboxConfig:
    """How to run a sandbox. ``token`` is required (a :class:`Secret`, never printed)."""

    token: Secret
    state_dir: Path | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    rate_limit: int = 1200
    rate_window_s: int = 300
    json_body_encoding: str = "plain"
    public_base: str = ""  # root URL once listening (for tail WebSocket URLs)


class SandboxContext:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir, default_json_encoding=config.json_body_encoding)
        self.faults = FaultInjector(config.faults)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window_s)
        self.tails = TailHub()

    def token_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.config.token.reveal().encode())

    def reset(self) -> None:
        self.store.reset()
        self.faults.set(FaultSpec())
        self.limiter.configure(self.config.rate_limit, self.config.rate_window_s)
        vars(self).pop("graphql", None)  # the /graphql settings and limiter (sandbox._graphql_api)
