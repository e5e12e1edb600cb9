"""The local Cloudflare API sandbox: Queues, Workers Logs telemetry query and live tails over HTTP.

``edgeinvestigate sandbox serve`` runs it; :func:`edgeinvestigate.sandbox.testing.running_sandbox` starts it
as a real subprocess for tests. The API and admin contract is in ARCHITECTURE.md (Sandbox).
Importing this package starts nothing.
"""

from __future__ import annotations

from edgeinvestigate.sandbox._context import SandboxConfig
from edgeinvestigate.sandbox.faults import FaultSpec, parse_faults

__all__ = ["FaultSpec", "SandboxConfig", "parse_faults"]
