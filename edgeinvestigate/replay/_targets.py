"""The target queue of a replay and its speed: the allow-list, the refusals, the highest rate.

The allow-list is given by the operator, never read from a plan: ``--allow-queue Q`` (repeatable),
the environment variable ``EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES=q1,q2``, or ``[replay] allow_queues``
in a TOML file read with ``--config FILE``. ``replay plan`` records the list it was given in the plan
(``allow_queues``) as a record of the review; ``replay run`` checks the target again against the
allow-list of the run, so a plan edited to point elsewhere is refused before any request.

Refused as targets: the DLQ itself, another dead-letter queue of the bundle, a queue not allowed.
A rate (messages/s) is refused when the request budget cannot carry it: each push request carries
at most 100 messages, so ``budget / window * 100`` messages/s is the most any budget allows.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay._rewrite import MAX_BATCH_MESSAGES

__all__ = [
    "ALLOW_ENV",
    "check_rate",
    "check_target",
    "load_allow_list",
    "max_rate",
    "runtime_allow_list",
]

#: the environment variable that allows target queues (comma-separated names)
ALLOW_ENV = "EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES"


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
    if not isinstance(section, dict):
        raise ConfigError(f"{p}: [replay] must be a table", hint='write: [replay]\nallow_queues = ["jobs"]')
    queues = section.get("allow_queues", section.get("allowed_targets", []))
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise ConfigError(
            f"{p}: [replay] allow_queues must be a list of queue names",
            hint='write: [replay]\nallow_queues = ["jobs"]',
        )
    return queues


def runtime_allow_list(
    allow_queues: Iterable[str] = (),
    config: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The target queues the operator allows now: the flags, ``EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES``
    (comma-separated) and the config file, together."""
    env = os.environ if environ is None else environ
    from_env = [q.strip() for q in env.get(ALLOW_ENV, "").split(",") if q.strip()]
    return sorted({*allow_queues, *from_env, *load_allow_list(config)})


def how_to_allow(target: str) -> str:
    """The three ways to allow ``target``, for a hint."""
    return (
        f"after checking the name, allow it in one of three ways: --allow-queue {target} (repeatable), "
        f"{ALLOW_ENV}={target} in the environment (comma-separated), or --config FILE with "
        f'[replay] allow_queues = ["{target}"]'
    )


def check_target(
    source: str, target: str, allow: Iterable[str], *, dlq_names: Iterable[str] = (), at_run: bool = False
) -> None:
    """Refuse a target that is the DLQ itself, another DLQ, or not in the allow-list.

    ``at_run``: the check of ``replay run`` (the message says that the plan's own list does not count).
    """
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
        when = (
            "; the allow-list of the run comes from the operator, not from the plan file (its "
            "allow_queues is a record of the review). Nothing was sent"
            if at_run
            else ""
        )
        raise ReplayRefusedError(
            f"refusing to replay into {target!r}: it is not in the allow-list of target queues "
            f"(allowed: {shown}){when}",
            hint=how_to_allow(target),
        )


def max_rate(max_requests: int, window_s: float = 300.0) -> float:
    """The highest rate (messages/s) a request budget of ``max_requests`` per ``window_s`` can carry:
    every push request at its fullest (100 messages), no removal counted."""
    return max_requests / window_s * MAX_BATCH_MESSAGES


def check_rate(
    rate: float, max_requests: int, window_s: float = 300.0, *, source: str = "--rate", refuse: bool = False
) -> None:
    """Refuse a rate that is not positive or that the request budget cannot carry, naming the highest.

    ``refuse``: the rate comes from a plan file, not from an option (:class:`ReplayRefusedError`,
    exit status 3, instead of :class:`ConfigError`, exit status 2).
    """
    if not rate > 0 or max_requests <= 0:
        raise ConfigError(
            f"{source} {rate:g} and --max-requests-per-5min {max_requests} must be positive",
            hint="messages per second, e.g. --rate 50; the budget's default is 1200",
        )
    highest = max_rate(max_requests, window_s)
    if rate <= highest:
        return
    window = f"{window_s:g} s" if window_s != 300.0 else "5 min"
    message = (
        f"{source} {rate:g} messages/s is more than the request budget can carry: {max_requests} requests "
        f"per {window} is {max_requests / window_s:g} requests/s, and a push carries at most "
        f"{MAX_BATCH_MESSAGES} messages, so at most {highest:g} messages/s (removals from the DLQ take "
        "requests too: the real pace is lower)"
    )
    hint = (
        f"use --rate {highest:g} or less, or raise --max-requests-per-5min if the token's budget allows it "
        "(other tools share it); see runbooks/replay-failed-jobs.md"
    )
    if refuse:
        raise ReplayRefusedError(message + "; the plan file was edited? Nothing was sent", hint=hint)
    raise ConfigError(message, hint=hint)
