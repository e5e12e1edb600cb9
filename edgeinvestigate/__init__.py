"""edgeinvestigate: find out why Cloudflare Queues + Workers jobs failed, and repair them.

>>> import edgeinvestigate as ei
>>> ev = ei.load(["tail.json", "logpush/20261127/"], since="2026-11-27T14:00Z")  # doctest: +SKIP
>>> clusters = ei.cluster(ev)                                                      # doctest: +SKIP
>>> findings = ei.analyze(ev)                                                      # doctest: +SKIP

Importing this package does nothing but define names: attributes are imported on first use,
no logging is configured, no network is touched and no configuration is read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    APIError,
    AuthError,
    BundleError,
    ConfigError,
    EdgeInvestigateError,
    LoadError,
    MissingExtraError,
    NotebookError,
    NotFoundError,
    ParseError,
    RateLimitedError,
    ReplayError,
    ReplayRefusedError,
    SandboxError,
    ServerError,
)

# public name -> module that defines it (imported lazily, on first attribute access)
_LAZY: dict[str, str] = {
    # loading and evidence bundles
    "load": "edgeinvestigate.evidence",
    "Evidence": "edgeinvestigate.evidence",
    "LoadReport": "edgeinvestigate.report_model",
    "SOURCES": "edgeinvestigate.sources",
    "register_source": "edgeinvestigate.sources",
    # Cloudflare API
    "CloudflareClient": "edgeinvestigate.cloudflare",
    "load_workers_logs": "edgeinvestigate.workers_logs",
    "load_dlq": "edgeinvestigate.dlq",
    # analysis
    "cluster": "edgeinvestigate.clustering",
    "Clusters": "edgeinvestigate.clustering",
    "analyze": "edgeinvestigate.analysis",
    "Findings": "edgeinvestigate.findings",
    # replay
    "plan_replay": "edgeinvestigate.replay",
    "run_replay": "edgeinvestigate.replay",
    "replay_status": "edgeinvestigate.replay",
    "verify_replay": "edgeinvestigate.replay",
    "ReplayPlan": "edgeinvestigate.replay",
    # simulator and sample incident
    "simulate": "edgeinvestigate.simulator",
    "sample_bundle": "edgeinvestigate.simulator",
    # notebooks and reports
    "run_notebook": "edgeinvestigate.notebooks",
    "write_report": "edgeinvestigate.notebooks",
}

__all__ = [
    "SOURCES",
    "APIError",
    "AuthError",
    "BundleError",
    "CloudflareClient",
    "Clusters",
    "ConfigError",
    "EdgeInvestigateError",
    "Evidence",
    "Findings",
    "LoadError",
    "LoadReport",
    "MissingExtraError",
    "NotFoundError",
    "NotebookError",
    "ParseError",
    "RateLimitedError",
    "ReplayError",
    "ReplayPlan",
    "ReplayRefusedError",
    "SandboxError",
    "ServerError",
    "__version__",
    "analyze",
    "cluster",
    "load",
    "load_dlq",
    "load_workers_logs",
    "plan_replay",
    "register_source",
    "replay_status",
    "run_notebook",
    "run_replay",
    "sample_bundle",
    "simulate",
    "verify_replay",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeinvestigate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from .analysis import analyze
    from .cloudflare import CloudflareClient
    from .clustering import Clusters, cluster
    from .dlq import load_dlq
    from .evidence import Evidence, load
    from .findings import Findings
    from .notebooks import run_notebook, write_report
    from .replay import ReplayPlan, plan_replay, replay_status, run_replay, verify_replay
    from .report_model import LoadReport
    from .simulator import sample_bundle, simulate
    from .sources import SOURCES, register_source
    from .workers_logs import load_workers_logs
