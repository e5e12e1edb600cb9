"""Cloudflare's GraphQL Analytics API, the part edgeinvestigate uses: datasets, units, the schema subset.

The schema subset (``analytics.graphql`` beside this file) is written once, from
``shared/reference/cloudflare-graphql-analytics.md``: the sandbox serves it and the tests validate the
client's queries against it (:func:`validate_query`). graphql-core is imported only when the schema is
first needed.

Units, in one place:

* ``quantiles { cpuTimeP50 cpuTimeP99 }`` of ``workersInvocationsAdaptive`` are **microseconds**
  (:data:`CPU_TIME_UNIT`). Cloudflare's pages do not name the unit; it is settled from the documented
  sample (``cpuTimeP50: 206`` for a Worker that only makes a subrequest: 206 µs, while "most Workers
  requests consume less than 1-2 milliseconds of CPU time" per the limits page) and from independent
  clients that read live data and divide by 1000 (the schema's own billing field is ``cpuTimeUs``).
  :func:`cpu_time_ms` converts; nothing else does.
* ``avg { lagTime }`` is milliseconds; ``sum { bytes }`` and ``avg { bytes }`` bytes.

Values of ``*Adaptive*`` datasets are estimates scaled from a sample (adaptive sampling): they are kept as
numbers as the API gives them, and reports say that they are estimates (:data:`ESTIMATE_NOTE`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, cast

import pyarrow as pa

if TYPE_CHECKING:
    from graphql import GraphQLSchema

__all__ = [
    "ACTIONS",
    "BACKLOG",
    "CONSUMERS",
    "CPU_TIME_UNIT",
    "DATASETS",
    "ESTIMATE_NOTE",
    "INVOCATIONS",
    "METRIC_CATEGORICAL",
    "METRIC_FRAMES",
    "OPERATIONS",
    "OUTCOMES",
    "QUEUE_DATASETS",
    "WORKER_STATUSES",
    "cpu_time_ms",
    "format_time",
    "parse_time_value",
    "schema",
    "schema_sdl",
    "validate_query",
]

BACKLOG: Final = "queueBacklogAdaptiveGroups"
CONSUMERS: Final = "queueConsumerMetricsAdaptiveGroups"
OPERATIONS: Final = "queueMessageOperationsAdaptiveGroups"
INVOCATIONS: Final = "workersInvocationsAdaptive"
QUEUE_DATASETS: Final = (BACKLOG, CONSUMERS, OPERATIONS)
DATASETS: Final = (*QUEUE_DATASETS, INVOCATIONS)

ACTIONS: Final = ("WriteMessage", "ReadMessage", "DeleteMessage")
OUTCOMES: Final = ("success", "dlq", "fail")
#: [WM]: errors are the last three; success and clientDisconnected are successes
WORKER_STATUSES: Final = (
    "success",
    "clientDisconnected",
    "scriptThrewException",
    "exceededResources",
    "internalError",
)

CPU_TIME_UNIT: Final = "us"
ESTIMATE_NOTE: Final = (
    "Queue and Worker analytics come from Cloudflare's adaptive-sampled datasets: the counts, bytes and "
    "averages are estimates scaled from a sample, not exact tallies (the same query can give slightly "
    "different numbers on another run)."
)

TS: Final = pa.timestamp("ms", tz="UTC")
#: the frames the analytics fill (columns and Arrow types; ``models.frames.conform`` casts to them)
METRIC_FRAMES: Final[dict[str, dict[str, pa.DataType]]] = {
    "queue_backlog": {"ts": TS, "queue": pa.string(), "messages": pa.float64(), "bytes": pa.float64()},
    "queue_operations": {
        "ts": TS,
        "queue": pa.string(),
        "action": pa.string(),
        "consumer_type": pa.string(),
        "outcome": pa.string(),
        "count": pa.int64(),
        "bytes": pa.int64(),
        "lag_ms": pa.float64(),
        "retries": pa.float64(),
    },
    "queue_consumers": {"ts": TS, "queue": pa.string(), "concurrency": pa.float64()},
    "worker_invocations": {
        "ts": TS,
        "script": pa.string(),
        "status": pa.string(),
        "requests": pa.int64(),
        "errors": pa.int64(),
        "subrequests": pa.int64(),
        "cpu_p50_ms": pa.float64(),
        "cpu_p99_ms": pa.float64(),
    },
}
METRIC_CATEGORICAL: Final[dict[str, tuple[str, ...]]] = {
    "queue_backlog": ("queue",),
    "queue_operations": ("queue", "action", "consumer_type", "outcome"),
    "queue_consumers": ("queue",),
    "worker_invocations": ("script", "status"),
}


def cpu_time_ms(value: Any) -> float | None:
    """A ``cpuTimeP50``/``cpuTimeP99`` value (microseconds, see the module docs) in milliseconds."""
    if value is None:
        return None
    return float(value) / 1000.0


_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$")


def parse_time_value(value: Any) -> datetime:
    """An RFC 3339 ``Time`` value (``2026-12-06T14:00:00Z``) as an aware UTC datetime; ValueError if not."""
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(f"Time must be an RFC 3339 string like 2026-12-06T14:00:00Z, got {value!r}")
    text = value.replace("Z", "+00:00")
    if "." in text:  # datetime.fromisoformat takes at most 6 fraction digits
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        frac = digits.group(0) if digits else ""
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def format_time(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, the form the API writes."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schema_sdl() -> str:
    """The SDL text of the schema subset."""
    return resources.files("edgeinvestigate.models").joinpath("analytics.graphql").read_text("utf-8")


def _parse_uint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"uint64 must be a whole number, got {value!r}")
    n = int(value)
    if n < 0:
        raise ValueError(f"uint64 must not be negative, got {value}")
    return n


def _parse_date(value: Any) -> date:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        raise ValueError(f"Date must be YYYY-MM-DD, got {value!r}")
    return date.fromisoformat(value)


def _serialize_time(value: Any) -> str:
    return format_time(value) if isinstance(value, datetime) else str(value)


@cache
def schema() -> GraphQLSchema:
    """The schema subset as a graphql-core schema, with parsing rules for its scalars."""
    from graphql import (
        FloatValueNode,
        IntValueNode,
        StringValueNode,
        build_schema,
        value_from_ast_untyped,
    )

    built = build_schema(schema_sdl())

    def literal(parse: Any, kinds: tuple[type, ...]) -> Any:
        def parse_literal(node: Any, variables: Any = None) -> Any:
            if not isinstance(node, kinds):
                raise ValueError(f"unexpected literal {type(node).__name__}")
            return parse(value_from_ast_untyped(cast(Any, node), variables))

        return parse_literal

    def as_str(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"string expected, got {v!r}")
        return v

    def as_float(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"number expected, got {v!r}")
        return float(v)

    rules: dict[str, tuple[Any, tuple[type, ...], Any]] = {
        "string": (as_str, (StringValueNode,), str),
        "Time": (parse_time_value, (StringValueNode,), _serialize_time),
        "Date": (_parse_date, (StringValueNode,), str),
        "uint64": (_parse_uint, (IntValueNode, StringValueNode), int),
        "float64": (as_float, (IntValueNode, FloatValueNode), float),
    }
    for name, (parse, kinds, serialize) in rules.items():
        scalar: Any = built.type_map[name]
        # graphql-core 3.2 reads parse_value / parse_literal / serialize; 3.3 the coerce_* names
        scalar.parse_value = scalar.coerce_input_value = parse
        scalar.parse_literal = scalar.coerce_input_literal = literal(parse, kinds)
        scalar.serialize = scalar.coerce_output_value = serialize
    return built


def validate_query(query: str, variables: dict[str, Any] | None = None, *, strict: bool = True) -> list[str]:
    """The problems graphql-core finds in ``query`` (and ``variables``) against the schema subset.

    An empty list means the query is valid. ``strict=False`` skips the rule that a variable's declared
    type must match where it is used (Cloudflare's own examples declare ``Date!`` for a ``Time`` filter;
    the sandbox accepts that, like the API presumably does).
    """
    from graphql import GraphQLError, parse, specified_rules, validate
    from graphql.execution.values import get_variable_values
    from graphql.validation import VariablesInAllowedPositionRule

    try:
        document = parse(query)
    except GraphQLError as exc:
        return [exc.message]
    rules = [r for r in specified_rules if strict or r is not VariablesInAllowedPositionRule]
    errors = [e.message for e in validate(schema(), document, rules)]
    if errors:
        return errors
    from graphql import OperationDefinitionNode

    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1:
        return [f"the document must hold exactly one operation, it holds {len(ops)}"]
    coerced = get_variable_values(schema(), ops[0].variable_definitions or [], variables or {})
    if isinstance(coerced, list):
        return [e.message for e in coerced]
    return []
