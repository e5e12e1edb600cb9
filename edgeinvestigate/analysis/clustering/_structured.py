"""Structured log lines clustered by their meaning: the event name and the keys stay, the message
field is templated like free text, every other value is masked.

A JSON log line at warn/error level without an ``error`` field, such as
``{"event":"sync.rate_limited","msg":"rate limit hit for tenant t_42","backoffMs":1061}``, would
otherwise be masked key by key (every quoted key and value is a ``<*>``) into a template of bare
placeholders that swallows every other such line, whatever its event. Instead its *cluster text* is

    ``sync.rate_limited: rate limit hit for tenant <*> {backoffMs: <*>}``

built from three parts (:class:`StructuredLine`):

* the event name: the first string value of :data:`EVENT_KEYS`, kept verbatim (no mask runs on it,
  so ``webhookDeliveryFailed`` is not taken for a base64 blob);
* the message: the first string value of :data:`MESSAGE_KEYS`, masked and templated like any free
  text (its variable parts become ``<*>``);
* the other keys, sorted, each with its value masked (``key: <*>``): the same event logged with other
  fields is another shape of line.

Lines with an ``error`` field keep clustering by that field (see :mod:`._rows`), so a logged error
and the same error in a DLQ envelope share a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import msgspec
import pyarrow as pa

from edgeinvestigate.analysis._columns import json_decode, json_values
from edgeinvestigate.analysis._masking import MASKS, PLACEHOLDER, Mask, mask_keys, mask_typed

__all__ = [
    "EVENT_KEYS",
    "MAX_KEYS",
    "MESSAGE_KEYS",
    "StructuredLine",
    "structured_keys",
    "structured_line",
]

#: keys whose string value names what happened (kept verbatim), first found wins
EVENT_KEYS: Final = ("event", "evt", "eventName", "event_name", "eventType", "action")
#: keys whose string value is the human-readable message (templated like free text), first found wins
MESSAGE_KEYS: Final = ("msg", "message", "text", "reason", "description", "detail")
#: at most this many other keys are named in the cluster text (then ``…``)
MAX_KEYS: Final = 24
#: longest event name or key kept (a longer one is cut)
_MAX_NAME: Final = 80


@dataclass(frozen=True)
class StructuredLine:
    """The parts of a structured log line its cluster is made of."""

    event: str | None
    message: str | None
    keys: tuple[str, ...]

    def text(self, message: str | None) -> str:
        """The cluster text with ``message`` (masked or typed) in place of the message field."""
        parts: list[str] = []
        if self.event:
            parts.append(f"{self.event}:")
        if message:
            parts.append(" ".join(message.split()))
        if self.keys:
            shown = [f"{k}: {PLACEHOLDER}" for k in self.keys[:MAX_KEYS]]
            if len(self.keys) > MAX_KEYS:
                shown.append("…")
            parts.append("{" + ", ".join(shown) + "}")
        return " ".join(parts) or "{}"

    def typed(self, masks: tuple[Mask, ...] = MASKS) -> str:
        """The readable cluster text: the message with typed placeholders (``<int>``, ``<id>``)."""
        return self.text(mask_typed(self.message, masks)[0] if self.message else None)


def _name(value: str) -> str:
    name = " ".join(value.split())
    return name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"


@lru_cache(maxsize=4096)
def _key_names(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The other keys of a line, sorted and tidied (lines of one call site repeat the same keys)."""
    return tuple(sorted(_name(k) for k in keys))


def _object_of(text: str | None) -> dict[str, Any] | None:
    """The JSON object a structured log text holds: itself, or its one argument (an object or the JSON
    text of one)."""
    if not text:
        return None
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return None
    values = json_values(text)
    if len(values) != 1:  # several arguments: a text and an object is not one structured line
        return None
    value = values[0]
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json_decode(value)
        except (ValueError, msgspec.DecodeError):
            return None
    return value if isinstance(value, dict) else None


def structured_line(message: str | None, args: str | None) -> StructuredLine | None:
    """The parts of a structured log line (its message, else its one object argument), else None."""
    obj = _object_of(message) or _object_of(args)
    if not obj:
        return None
    event_key = next((k for k in EVENT_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    message_key = next((k for k in MESSAGE_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    keys = _key_names(tuple(str(k) for k in obj if k not in (event_key, message_key)))
    return StructuredLine(
        event=_name(obj[event_key]) if event_key else None,
        message=str(obj[message_key]) if message_key else None,
        keys=keys,
    )


def structured_keys(lines: Sequence[StructuredLine], masks: tuple[Mask, ...] = MASKS) -> list[str]:
    """The grouping key of each structured line: its cluster text with the message masked to ``<*>``
    (one vectorised masking pass over the distinct messages)."""
    distinct = sorted({s.message for s in lines if s.message})
    masked = dict(zip(distinct, mask_keys(pa.array(distinct, pa.string()), masks).to_pylist(), strict=True))
    return [s.text(masked.get(s.message) if s.message else None) for s in lines]
