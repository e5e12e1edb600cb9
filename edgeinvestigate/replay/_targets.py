"""The target queue of a replay: the allow-list (flags and ``[replay] allow_queues`` in a config file)
and the refusals (the DLQ itself, another dead-letter queue, a queue not allowed)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from edgeinvestigate.errors import ConfigError, ReplayRefusedError

__all__ = ["check_target", "load_allow_list"]


def load_allow_list(config: str | Path | None) -> list[str]:
    """Allowed target queues from a TOML config file: ``[replay] allow_queues = ["jobs", ...]``."""
    if config is None:
        return []
    p = Path(config)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {p}: {exc.strerror}", hint="check --config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}", hint="check --config") from exc
    section = data.get("replay", {})
    queues = section.get("allow_queues", section.get("allowed_targets", []))
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise ConfigError(
            f"{p}: [replay] allow_queues must be a list of queue names",
            hint='write: [replay]\nallow_queues = ["jobs"]',
        )
    return queues


def check_target(source: str, target: str, allow: Iterable[str], *, dlq_names: Iterable[str] = ()) -> None:
    """Refuse a target that is the DLQ itself, another DLQ, or not in the allow-list."""
    allowed = sorted(set(allow))
    if target == source:
        raise ReplayRefusedError(
            f"refusing to replay {source!r} into itself: the target queue is the DLQ the messages come from",
            hint="--to names the work queue the consumer reads, not the dead-letter queue",
        )
    if target in set(dlq_names):
        raise ReplayRefusedError(
            f"refusing to replay into {target!r}: it is a dead-letter queue in this bundle",
            hint="--to names the work queue the consumer reads",
        )
    if target not in allowed:
        shown = ", ".join(allowed) if allowed else "none"
        raise ReplayRefusedError(
            f"refusing to replay into {target!r}: it is not in the allow-list of target queues "
            f"(allowed: {shown})",
            hint="add --allow-queue "
            + target
            + " (or [replay] allow_queues in --config) after checking the name",
        )
