"""The curated public API does not drift, and importing the package does nothing."""

from __future__ import annotations

import subprocess
import sys

import edgeinvestigate as ei

EXPECTED = {
    "APIError", "AuthError", "BundleError", "CloudflareClient", "Clusters", "ConfigError",
    "EdgeInvestigateError", "Evidence", "Findings", "LoadError", "LoadReport", "MissingExtraError",
    "NotFoundError", "NotebookError", "ParseError", "RateLimitedError", "ReplayError", "ReplayPlan",
    "ReplayRefusedError", "SOURCES", "SandboxError", "ServerError", "__version__", "analyze", "cluster",
    "load", "load_dlq", "load_queue_metrics", "load_workers_logs", "plan_replay", "register_source",
    "replay_status", "run_notebook", "run_replay", "sample_bundle", "simulate", "verify_replay",
    "write_report",
}  # fmt: skip


def test_all_is_the_curated_list() -> None:
    assert set(ei.__all__) == EXPECTED
    assert len(ei.__all__) == len(set(ei.__all__))


def test_every_public_name_resolves() -> None:
    missing = [name for name in ei.__all__ if getattr(ei, name, None) is None]
    assert missing == []


def test_errors_share_one_base() -> None:
    for name in ei.__all__:
        obj = getattr(ei, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ei.EdgeInvestigateError), name


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, sys\n"
        "before = set(sys.modules)\n"
        "import edgeinvestigate\n"
        "assert not logging.getLogger().handlers, 'logging configured at import'\n"
        "heavy = {'pandas', 'httpx', 'duckdb', 'papermill', 'plotly'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
