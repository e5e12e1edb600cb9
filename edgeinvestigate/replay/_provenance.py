"""Where a plan's messages come from: the bundle's DLQ frame file, recorded at plan time and checked
at run time, so that a plan edited to carry a message the bundle never held is refused.

``replay plan`` records ``dlq_source = {file, sha256, queue}``: the DLQ frame file of the bundle
(``dlq.parquet``, not ``manifest.json``: frames derived later are added to the manifest and must
not invalidate a plan), or the DLQ snapshot file itself. ``replay run`` hashes that file again and
checks that every message id of the plan is a message of the source DLQ in it. A plan without
``dlq_source`` (made by an older release, or from a frame in memory) runs with a warning; its ids
are still checked when the bundle can be read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import ReplayRefusedError
from edgeinvestigate.replay._plan import RUNBOOK, ReplayPlan

__all__ = ["check_provenance", "dlq_file", "dlq_source"]


def dlq_file(bundle: str | Path | None) -> Path | None:
    """The file the bundle's DLQ frame is read from: ``dlq.parquet`` (or the name the manifest lists)
    in a bundle directory, the file itself for a DLQ snapshot; None when there is none."""
    if not bundle:
        return None
    p = Path(bundle)
    if p.is_file():
        return p
    if not p.is_dir():
        return None
    name = "dlq.parquet"
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
        listed = manifest.get("frames", {}).get("dlq") if isinstance(manifest, dict) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        listed = None
    if isinstance(listed, str) and listed and Path(listed).name == listed and listed not in (".", ".."):
        name = listed
    f = p / name
    return f if f.is_file() else None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _ids_in(path: Path, queue: str) -> set[str]:
    """The message ids of DLQ ``queue`` in a bundle's frame file or a snapshot file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = set(pq.read_schema(path).names)
        cols = ["message_id", *(["queue"] if "queue" in names else [])]
        table = pq.read_table(path, columns=cols).to_pydict()
        ids, queues = table["message_id"], table.get("queue")
        if queues is None or not any(queues):
            return {str(i) for i in ids if i is not None}
        return {str(i) for i, q in zip(ids, queues, strict=True) if i is not None and q == queue}
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    frame = dlq_frame_from_file(path, queue=queue)
    if "queue" in frame.columns and frame["queue"].notna().any():
        frame = frame[(frame["queue"].astype("string") == queue).fillna(False).to_numpy(dtype=bool)]
    return set(frame["message_id"].dropna().astype(str))


def dlq_source(bundle: str | Path | None, queue: str, message_ids: Iterable[str]) -> dict[str, Any] | None:
    """What a new plan records about its bundle's DLQ frame file; None when the bundle has no such
    file, or when the plan's messages are not all in it (the plan was made from another frame)."""
    path = dlq_file(bundle)
    if path is None:
        return None
    if not set(message_ids) <= _ids_in(path, queue):
        return None
    return {"file": path.name, "sha256": _sha256(path), "queue": queue}


def check_provenance(plan: ReplayPlan, bundle: str | Path | None = None) -> list[str]:
    """Refuse a plan whose messages are not all messages of its source DLQ in its bundle, or whose
    bundle's DLQ frame file changed; the warnings to show (an older plan, a bundle not found).

    ``bundle``: where the plan's bundle is now (``replay run --bundle``), default the plan's.
    """
    where = str(bundle or plan.bundle or "")
    recorded = plan.dlq_source
    path = dlq_file(where)
    if not recorded:
        what = (
            "the plan records no hash of its bundle's DLQ frame file (made by an older release of "
            "edgeinvestigate, or from a DLQ frame in memory)"
        )
        if path is None:
            return [
                f"{what}, and its bundle ({where or 'none named'}) cannot be read: its message ids were not "
                "checked against the DLQ they claim to come from. Make a new plan to have them checked"
            ]
        _check_ids(plan, path)
        return [f"{what}: its message ids were checked against {path}, but not that file's content"]
    file_name = str(recorded.get("file") or "")
    if path is None:
        raise ReplayRefusedError(
            f"refusing to run plan {plan.plan_id}: its bundle {where or '(none named)'} or the bundle's DLQ "
            f"frame file {file_name} cannot be found, so its messages cannot be checked against the DLQ "
            "they come from. Nothing was sent",
            hint="if the bundle was moved, pass its new place: edgeinvestigate replay run PLAN --bundle DIR",
        )
    actual = _sha256(path)
    if actual != recorded.get("sha256"):
        raise ReplayRefusedError(
            f"refusing to run plan {plan.plan_id}: the DLQ frame file {path} is not the one the plan was "
            f"made from (sha256 {actual[:16]}..., the plan says {str(recorded.get('sha256'))[:16]}...). "
            "Nothing was sent",
            hint="pass the plan's own bundle with --bundle DIR, or make a new plan from this bundle "
            f"(edgeinvestigate replay plan ...); {RUNBOOK}",
        )
    _check_ids(plan, path)
    return []


def _check_ids(plan: ReplayPlan, path: Path) -> None:
    known = _ids_in(path, plan.source_queue)
    foreign = [m.message_id for m in plan.messages if m.message_id not in known]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ReplayRefusedError(
            f"refusing to run plan {plan.plan_id}: {len(foreign)} of its {len(plan.messages)} messages are "
            f"not messages of the DLQ {plan.source_queue!r} in its bundle ({path}): {shown}. The plan file "
            "was edited (its content hash recomputed?); a replay sends only messages of the DLQ it was "
            "planned from. Nothing was sent",
            hint="make a new plan from the bundle (edgeinvestigate replay plan ... --out NEW.json); "
            + RUNBOOK,
        )
