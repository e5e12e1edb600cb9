"""The notes of :attr:`Findings.notes <edgeinvestigate.models.findings.Findings.notes>`: what the data
cannot tell, and what to collect."""

from __future__ import annotations

from typing import Final

import pandas as pd

from edgeinvestigate.analysis._columns import as_object

__all__ = ["COLLECT_TELEMETRY", "NO_DEPLOY_HOW", "NO_DEPLOY_INFO", "no_telemetry_note"]

#: how to give the analysis deploy information
NO_DEPLOY_HOW: Final = (
    "To tie errors to deploys, pass the deploys (edgeinvestigate analyze --deploy VERSION@TIME, "
    "or ei.analyze(ev, deployments=[(version, time)])) or log a `deploy` field (the version) in every "
    "structured log line."
)
#: what to collect when a bundle has no telemetry
COLLECT_TELEMETRY: Final = (
    "Collect the Workers' telemetry for the window too: `edgeinvestigate collect --workers-logs SCRIPT "
    "--since ... --until ...` (Workers Logs API), or `wrangler tail --format json` / Logpush files "
    "(`collect --tail FILE` / `--logpush DIR`), into the same bundle."
)
#: the note in :attr:`Findings.notes` when no version data exists at all
NO_DEPLOY_INFO: Final = (
    "The data has no deploy information (no script_version in the invocations, no deploy/version "
    "field in the logs, no deploys given), so no finding can tie errors to a deploy. " + NO_DEPLOY_HOW
)


def no_telemetry_note(dlq: pd.DataFrame) -> str:
    """The note for a bundle without telemetry: what its DLQ can and cannot tell, and what to collect."""
    if len(dlq) == 0:
        return (
            "The bundle is empty: no invocations, logs, exceptions or DLQ messages, so there is nothing "
            "to analyse. " + COLLECT_TELEMETRY + " Add the dead-letter queue with `--dlq QUEUE`."
        )
    raw = dlq[dlq["cluster_id"].isna()]
    parts = [
        f"The bundle has no telemetry (no invocations, logs or exceptions), only {len(dlq)} DLQ messages: "
        "the findings rank what their error texts and job types show (the timeline is when the messages "
        "were dead-lettered), and cannot tell which deploy ran, how many invocations failed or which "
        "failures never reached the DLQ."
    ]
    if len(raw):
        types = as_object(raw["job_type"]).fillna("unknown job type").value_counts()
        parts.append(
            f"{len(raw)} DLQ messages have no error text (raw bodies moved after max_retries) and so "
            "no cluster: " + ", ".join(f"{t} {int(n)}" for t, n in types.head(8).items()) + "."
        )
    parts.append(COLLECT_TELEMETRY)
    return " ".join(parts)
