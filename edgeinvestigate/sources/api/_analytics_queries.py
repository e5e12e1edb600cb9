"""The GraphQL Analytics queries collect sends (each validated against models/analytics.graphql in tests).

Only fields the reference documents are asked for (no ``sampleInterval``, no undocumented Workers sums).
Time filters are ``datetime_geq`` / ``datetime_lt`` on whole buckets, so adjacent chunks never count an
event twice; groups come ordered by time, one dataset per alias.
"""

from __future__ import annotations

from typing import Final

from edgeinvestigate.models.analytics import BACKLOG, CONSUMERS, INVOCATIONS, OPERATIONS

__all__ = ["SETTINGS_QUERY", "queue_query", "workers_query"]

SETTINGS_QUERY: Final = f"""query AnalyticsLimits($accountTag: string!) {{
  viewer {{ accounts(filter: {{accountTag: $accountTag}}) {{ settings {{
    {BACKLOG} {{ enabled maxDuration maxPageSize notOlderThan }}
    {CONSUMERS} {{ enabled maxDuration maxPageSize notOlderThan }}
    {OPERATIONS} {{ enabled maxDuration maxPageSize notOlderThan }}
    {INVOCATIONS} {{ enabled maxDuration maxPageSize notOlderThan }}
  }} }} }}
}}"""


def queue_query(bucket: str, limit: int, datasets: tuple[str, ...] = (BACKLOG, CONSUMERS, OPERATIONS)) -> str:
    """The three Queues datasets for ``$queueIds`` in ``[$start, $end)``, per ``bucket``
    (``datetimeMinute`` or ``datetimeHour``), at most ``limit`` groups each."""
    args = (
        f"limit: {int(limit)}, orderBy: [{bucket}_ASC], "
        "filter: {queueId_in: $queueIds, datetime_geq: $start, datetime_lt: $end}"
    )
    dims = f"dimensions {{ {bucket} queueId }}"
    blocks = {
        BACKLOG: f"backlog: {BACKLOG}({args}) {{ avg {{ messages bytes }} {dims} }}",
        CONSUMERS: f"consumers: {CONSUMERS}({args}) {{ avg {{ concurrency }} {dims} }}",
        OPERATIONS: (
            f"operations: {OPERATIONS}({args}) {{ count sum {{ bytes }} avg {{ lagTime retryCount }} "
            f"dimensions {{ {bucket} queueId actionType consumerType outcome }} }}"
        ),
    }
    body = "\n    ".join(blocks[d] for d in datasets)
    return (
        "query QueueMetrics($accountTag: string!, $queueIds: [string!], $start: Time!, $end: Time!) {\n"
        "  viewer { accounts(filter: {accountTag: $accountTag}) {\n"
        f"    {body}\n"
        "  } }\n}"
    )


def workers_query(bucket: str, limit: int) -> str:
    """``workersInvocationsAdaptive`` for ``$scripts`` in ``[$start, $end)`` per ``bucket``."""
    return (
        "query WorkerMetrics($accountTag: string!, $scripts: [string!], $start: Time!, $end: Time!) {\n"
        "  viewer { accounts(filter: {accountTag: $accountTag}) {\n"
        f"    invocations: {INVOCATIONS}(limit: {int(limit)}, orderBy: [{bucket}_ASC], "
        "filter: {scriptName_in: $scripts, datetime_geq: $start, datetime_lt: $end}) {\n"
        "      sum { requests errors subrequests } quantiles { cpuTimeP50 cpuTimeP99 }\n"
        f"      dimensions {{ {bucket} scriptName status }}\n"
        "    }\n"
        "  } }\n}"
    )
