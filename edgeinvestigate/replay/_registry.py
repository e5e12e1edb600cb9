"""Earlier replays of the same DLQ messages: found through their ledgers, so nothing is replayed twice.

A bundle can be planned from many times (one plan per cluster, a plan with one more selector...),
and each plan has its own idempotency keys, so a consumer could not tell a second replay of a job
from a new one. ``replay run`` therefore registers its ledger in the bundle it was planned from
(``BUNDLE/replays/PLAN_ID.json``; for a snapshot file ``FILE.replays/``), and both ``replay plan``
and ``replay run`` look up the ledgers registered there plus every ``*.ledger.sqlite`` next to the
plan file. A message an earlier ledger shows as confirmed pushed (``pushed`` or ``settled``) is not
replayed again; a message an earlier ledger only *planned* (or may have pushed: ``pushing`` /
``ambiguous``) is still replayed (at-least-once: the earlier plan may never be run again), with a
warning that both plans may send it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PriorReplays", "find_prior_replays", "register_ledger", "registry_dir"]

#: states in which an earlier ledger confirms the message was pushed to the target queue
CONFIRMED = ("pushed", "settled")
#: states in which an earlier plan has not (or not surely) pushed the message yet
UNCONFIRMED = ("planned", "pushing", "ambiguous")


def registry_dir(bundle: str | Path | None) -> Path | None:
    """Where the ledgers of plans made from ``bundle`` are registered (None without a bundle)."""
    if not bundle:
        return None
    p = Path(bundle)
    if p.is_dir():
        return p / "replays"
    if p.exists():
        return p.with_name(p.name + ".replays")
    return None


def register_ledger(
    bundle: str | Path | None, *, plan_id: str, content_hash: str, plan_path: Path, ledger_path: Path
) -> str | None:
    """Record in the bundle that ``plan_id`` runs with ``ledger_path``; returns a warning if it cannot."""
    reg = registry_dir(bundle)
    if reg is None:
        return None
    entry = {
        "plan_id": plan_id,
        "content_hash": content_hash,
        "plan": str(plan_path.resolve()),
        "ledger": str(ledger_path.resolve()),
        "registered_at": time.time(),
    }
    target = reg / f"{plan_id}.json"
    try:
        reg.mkdir(exist_ok=True)
        if target.exists():
            return None
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        return (
            f"could not register this replay in {reg} ({exc.strerror}): a later plan made from the same "
            "bundle in another directory will not know these messages were replayed"
        )
    return None


@dataclass
class _Prior:
    plan_id: str
    ledger: str
    state: str
    still_in_dlq: bool
    replay_id: str = ""


@dataclass
class PriorReplays:
    """What earlier ledgers say about a set of message ids."""

    ledgers: list[str] = field(default_factory=list)
    #: message id -> the earlier replay that confirmed pushing it
    confirmed: dict[str, _Prior] = field(default_factory=dict)
    #: message id -> an earlier plan that has it but has not confirmed pushing it
    unconfirmed: dict[str, _Prior] = field(default_factory=dict)

    @property
    def removed(self) -> dict[str, _Prior]:
        """Confirmed pushed by an earlier plan AND its original removed from the DLQ (settled)."""
        return {mid: p for mid, p in self.confirmed.items() if p.state == "settled"}

    @property
    def not_removed(self) -> dict[str, _Prior]:
        """Confirmed pushed by an earlier plan whose original is not confirmed removed (state pushed):
        the message may still sit in the DLQ, so a new plan keeps it, under the earlier replay id."""
        return {mid: p for mid, p in self.confirmed.items() if p.state != "settled"}

    def describe(self, mid: str) -> str:
        p = self.confirmed[mid]
        how = (
            "pushed, its original not yet removed from the DLQ (resume that plan to remove it)"
            if p.state == "pushed"
            else "pushed and removed from the DLQ"
        )
        return f"replayed by plan {p.plan_id} ({how}; ledger {p.ledger})"

    def by_plan(self, which: dict[str, _Prior]) -> list[tuple[str, str, int]]:
        """``(plan_id, ledger, count)`` per earlier plan, most first."""
        n = Counter((p.plan_id, p.ledger) for p in which.values())
        return [(pid, led, c) for (pid, led), c in n.most_common()]


def _candidates(
    bundle: str | Path | None, near: Iterable[str | Path], ledgers: Iterable[str | Path] = ()
) -> list[Path]:
    found: list[Path] = [Path(p) for p in ledgers]
    reg = registry_dir(bundle)
    if reg is not None and reg.is_dir():
        for entry in sorted(reg.glob("*.json")):
            try:
                doc = json.loads(entry.read_text(encoding="utf-8"))
                found.append(Path(str(doc["ledger"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    for p in near:
        d = Path(p).resolve().parent
        if d.is_dir():
            found.extend(sorted(d.glob("*.ledger.sqlite")))
    out: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        r = p.resolve()
        if r not in seen and r.is_file():
            seen.add(r)
            out.append(r)
    return out


def find_prior_replays(
    ids: Iterable[str],
    *,
    bundle: str | Path | None,
    near: Sequence[str | Path] = (),
    exclude: Sequence[str | Path] = (),
    ledgers: Sequence[str | Path] = (),
) -> PriorReplays:
    """Look ``ids`` up in the ledgers registered in ``bundle``, next to the ``near`` files, and in
    ``ledgers`` (those of earlier runs of the same plan, from its lock file).

    ``exclude`` names ledgers to skip (the plan's own). A ledger that cannot be read is skipped.
    """
    wanted = set(ids)
    skip = {Path(p).resolve() for p in exclude}
    result = PriorReplays()
    if not wanted:
        return result
    for path in _candidates(bundle, near, ledgers):
        if path in skip:
            continue
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        except sqlite3.Error:
            continue
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'plan_id'").fetchone()
            plan_id = str(row[0]) if row else path.stem
            rows = conn.execute("SELECT message_id, state, still_in_dlq, replay_id FROM messages").fetchall()
        except sqlite3.Error:
            continue
        finally:
            conn.close()
        result.ledgers.append(str(path))
        for mid, state, still, replay_id in rows:
            if mid not in wanted:
                continue
            prior = _Prior(plan_id, str(path), str(state), bool(still), str(replay_id or ""))
            if state in CONFIRMED:
                known = result.confirmed.get(mid)
                if known is None or (known.state != "settled" and state == "settled"):
                    result.confirmed[mid] = prior  # a removal confirmed by any plan wins
                result.unconfirmed.pop(mid, None)
            elif mid not in result.confirmed:
                result.unconfirmed.setdefault(mid, prior)
    return result
