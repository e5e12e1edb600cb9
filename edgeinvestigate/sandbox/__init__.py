"""The local Cloudflare API sandbox: Queues, Workers Logs telemetry query and live tails over HTTP.

``edgeinvestigate sandbox serve`` runs it; :func:`edgeinvestigate.sandbox.testing.running_sandbox` starts it
as a real subprocess for tests. The API and admin contract is in ARCHITECTURE.md (Sandbox).
Importing this package starts nothing.
"""

from __future__ import annotations

from ._context import SandboxConfig
from .faults import FaultSpec, parse_faults

__all__ = ["FaultSpec", "SandboxConfig", "parse_faults"]
