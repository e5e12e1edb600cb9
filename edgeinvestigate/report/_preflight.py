"""Check a notebook's parameters against the bundle before a kernel starts.

Types and names are checked by :mod:`edgeinvestigate.report.params`; this module checks what only
the bundle can tell: that a ``cluster_id`` or the ``clusters`` to replay exist in it, that the
``job_types`` occur in it, and that a ``findings_file`` was made from it (:func:`saved_findings`).
A wrong id is refused with the close matches, before anything is written,
instead of a half-written report minutes later.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import NotebookParameterError
from edgeinvestigate.evidence.bundle import Evidence

if TYPE_CHECKING:
    from edgeinvestigate.models.findings import Findings

__all__ = ["check_against_bundle", "saved_findings"]

#: a findings.json's totals and the bundle manifest's row counts that must agree
_SAME_COUNTS = (("invocations", "invocations"), ("log_lines", "logs"), ("exceptions", "exceptions"))


def saved_findings(path: str, rows: dict[str, Any], *, since: str = "", until: str = "") -> Findings:
    """The findings in ``path`` (``analyze --format json``, or what ``investigate`` wrote) when they
    were made from a bundle with these row counts (``manifest["rows"]``) over the whole of it."""
    from pydantic import ValidationError

    from edgeinvestigate.models.findings import Findings

    hint = (
        "leave findings_file empty to analyse the bundle in the report, or give "
        "the bundle's own findings.json"
    )
    if since or until:
        raise NotebookParameterError(
            "findings_file holds the findings of the whole bundle: it cannot be used with since/until",
            hint=hint,
        )
    try:
        findings = Findings.model_validate_json(Path(path).read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        raise NotebookParameterError(
            f"findings_file {path} is not a findings.json: {exc}", hint=hint
        ) from exc
    off = [
        f"{ours} {findings.totals.get(ours)} != {rows.get(theirs)}"
        for ours, theirs in _SAME_COUNTS
        if findings.totals.get(ours) != rows.get(theirs)
    ]
    if off:
        raise NotebookParameterError(
            f"findings_file {path} was not made from this bundle ({', '.join(off)})", hint=hint
        )
    return findings


def _unknown(wanted: Iterable[str], known: set[str]) -> list[str]:
    return [w for w in wanted if w and w not in known]


def _suggest(names: list[str], known: set[str]) -> str:
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
        parts.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return ", ".join(parts)


def check_against_bundle(notebook: str, params: object, evidence: Evidence | None = None) -> None:
    """Refuse cluster ids and job types that the bundle does not hold (:class:`NotebookParameterError`)."""
    cluster_ids = [str(c) for c in getattr(params, "clusters", []) or []]
    one = str(getattr(params, "cluster_id", "") or "")
    if one:
        cluster_ids.append(one)
    job_types = [str(t) for t in getattr(params, "job_types", []) or []]
    findings_file = str(getattr(params, "findings_file", "") or "")
    if not cluster_ids and not job_types and not findings_file:
        return
    ev = evidence if evidence is not None else _open(str(getattr(params, "bundle", "") or ""))
    if findings_file:
        since, until = (str(getattr(params, k, "") or "") for k in ("since", "until"))
        saved_findings(findings_file, ev.manifest["rows"], since=since, until=until)
    problems: list[str] = []
    if cluster_ids:
        from edgeinvestigate.analysis.clustering import cluster

        known = set(cluster(ev).ids)
        if bad := _unknown(cluster_ids, known):
            problems.append(f"cluster id(s) not in the bundle: {_suggest(bad, known)}")
    if job_types:
        types: set[str] = set()
        for frame in (ev.dlq, ev.logs, ev.invocations):
            if "job_type" in frame.columns:
                types |= {str(t) for t in frame["job_type"].dropna().unique()}
        if bad := _unknown(job_types, types):
            problems.append(f"job type(s) not in the bundle: {_suggest(bad, types)}")
    if problems:
        raise NotebookParameterError(
            f"notebook {notebook!r} was not run: {'; '.join(problems)}",
            hint="`edgeinvestigate clusters BUNDLE` lists the bundle's cluster ids and job types",
        )


def _open(bundle: str) -> Evidence:
    if bundle:
        return Evidence.open(bundle)
    from edgeinvestigate.report.sample import sample_bundle

    return sample_bundle()
