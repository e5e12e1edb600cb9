"""Error clustering: group thousands of error texts into a handful of named problems with stable ids.

>>> import edgeinvestigate as ei
>>> clusters = ei.cluster(ev)                           # doctest: +SKIP
>>> clusters.table[["cluster_id", "template", "count", "kind"]]   # doctest: +SKIP
>>> print(clusters.explain("msg-0042"))                 # doctest: +SKIP

What is clustered (one *error row* each):

* every exception (``name: message``; its stack adds a fingerprint of the in-app frames),
* every ``error`` and ``warn`` log line, and any log line whose structured JSON carries an
  ``error`` field (that field is used instead of the free text: ``{"event": "job_failed",
  "error": "..."}`` clusters by its ``error``),
* the ``error`` text of DLQ messages that were sent as ``{original, error}`` envelopes.

How (see :mod:`._masking` and :mod:`._templates`): mask the variable
parts of the *distinct* texts in one vectorised pass, deduplicate, run the template step on the
distinct masked strings, map back. The ``cluster_id`` is a hash of the normalised template (plus the
stack fingerprint), so it is identical across runs, machines, orderings and bundles. Log lines and
DLQ errors without a stack join the stack cluster of the same template (the most frequent one when
the same template is thrown from several places).

Which job an error row belongs to: the job id the line itself carries; for a line without one
(and for exceptions), the job of its invocation only when that invocation logged exactly one job
id. A queue batch invocation processes several jobs, so its job-less lines are not attributed to
any of them (guessing the first would join DLQ messages to errors of other jobs).

DLQ messages get a ``cluster_id`` and say how it was found (``cluster_join``):
``envelope_error`` (their own error text), ``job_id`` (the *last* error logged for the same job id
or message id before the message was dead-lettered, i.e. the failure that exhausted its retries;
the job's latest error when none is that early), ``type_time`` (the nearest error of the same job
type within :data:`TYPE_TIME_WINDOW`, a failure (exception or error line) before a warn line), or
``none``. The cluster table counts, per cluster, the DLQ
messages (``n_dlq_messages``) and the distinct job ids among them (``n_dlq_jobs``: equal to
``n_dlq_messages`` unless a job was dead-lettered more than once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis import triage
from edgeinvestigate.analysis._masking import MASKS, PLACEHOLDER, Mask, mask_keys, mask_typed
from edgeinvestigate.analysis._templates import (
    cluster_id_for,
    display_template,
    in_app_frames,
    merge_templates,
    stack_fingerprint,
    tokens,
)
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.models.frames import empty_frame

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "CLUSTER_COLUMNS",
    "TYPE_TIME_WINDOW",
    "Clusters",
    "Explanation",
    "Grouping",
    "cluster",
    "group_texts",
]

#: the columns of ``Clusters.table``, in order
CLUSTER_COLUMNS: Final = (
    "cluster_id",
    "template",
    "count",
    "share",
    "first_seen",
    "last_seen",
    "job_types",
    "scripts",
    "script_versions",
    "outcomes",
    "n_dlq_messages",
    "n_dlq_jobs",
    "examples",
    "kind",
    "kind_rule",
    "n_invocations",
    "sources",
    "fingerprint",
    "rule",
)

#: how far apart a DLQ message and an error of the same job type may be for a ``type_time`` join
TYPE_TIME_WINDOW: Final = pd.Timedelta(minutes=15)
#: how much later than a DLQ message's time (its last attempt, else its enqueue time) the error that
#: dead-lettered it may be logged (clocks and log timestamps of one event differ slightly)
DLQ_LOG_SKEW: Final = pd.Timedelta(seconds=60)
#: error-row levels that are failures (exceptions, error lines); ``warn`` rows are clustered but are
#: not failures (see :mod:`edgeinvestigate.analysis.rca`)
FAILURE_LEVELS: Final = ("exception", "error")
#: log levels whose free text is clustered (structured lines with an ``error`` field always are)
ERROR_LEVELS: Final = ("error", "warn")
EMPTY_TEXT: Final = "(empty error message)"
_DEDUP_SAMPLE: Final = 10_000


# --------------------------------------------------------------------------------------------
# the core: texts -> templates
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grouping:
    """The template of every text: ``labels[i]`` indexes ``templates`` (normalised, ``<*>``)."""

    labels: np.ndarray
    templates: list[str]
    keys: list[str]  # distinct masked strings
    key_labels: np.ndarray  # per text: index into keys
    key_template: np.ndarray  # per key: index into templates

    def ids(self, fingerprints: Sequence[str] | None = None) -> list[str]:
        """The stable id of every template (without fingerprints)."""
        return [cluster_id_for(t) for t in self.templates]


_DECODER = msgspec.json.Decoder()


def _json_decode(text: str | bytes) -> Any:
    """Parse JSON text (msgspec: several times faster than json on many small log lines)."""
    return _DECODER.decode(text.encode("utf-8") if isinstance(text, str) else text)


def _json_values(text: str | bytes) -> list[Any]:
    """The JSON value(s) of a structured log text: the items of an array, else the value itself;
    empty when the text is not JSON."""
    try:
        value = _json_decode(text)
    except (ValueError, msgspec.DecodeError):
        return []
    return value if isinstance(value, list) else [value]


def _as_string_array(texts: pa.Array | pa.ChunkedArray | Sequence[str | None] | pd.Series) -> pa.Array:
    if isinstance(texts, pd.Series):
        texts = pa.array(texts.astype(object).where(texts.notna(), None), type=pa.string())
    elif not isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = pa.array(texts, type=pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    return texts


def group_texts(
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None] | pd.Series,
    masks: tuple[Mask, ...] = MASKS,
) -> Grouping:
    """Mask, deduplicate and template ``texts``; every text gets a template (null/empty ones too).

    This is the whole clustering of plain messages, vectorised: the regex pass runs once per
    distinct raw text (when there are many repeats) and the template step once per distinct masked
    string.
    """
    arr = _as_string_array(texts)
    if arr.null_count or (len(arr) and (pc.min(pc.binary_length(arr)).as_py() or 0) == 0):
        arr = pc.if_else(pc.or_kleene(pc.is_null(arr), pc.equal(arr, "")), EMPTY_TEXT, arr)
    n = len(arr)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Grouping(empty, [], [], empty, empty)
    if n > _DEDUP_SAMPLE:
        step = max(1, n // _DEDUP_SAMPLE)
        sample = arr.take(pa.array(np.arange(0, n, step)))
        dedup_first = len(pc.unique(sample)) < 0.5 * len(sample)
    else:
        dedup_first = False
    if dedup_first:
        enc = pc.dictionary_encode(arr)
        raw_keys = mask_keys(enc.dictionary, masks)
        kenc = pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)[enc.indices.to_numpy(zero_copy_only=False)]
    else:
        kenc = pc.dictionary_encode(mask_keys(arr, masks))
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)
    keys: list[str] = kenc.dictionary.to_pylist()
    per_key = merge_templates(keys)
    templates = sorted(set(per_key))
    index = {t: i for i, t in enumerate(templates)}
    key_template = np.array([index[t] for t in per_key], dtype=np.int64)
    labels = key_template[key_labels]
    return Grouping(labels, templates, keys, key_labels.astype(np.int64), key_template)


# --------------------------------------------------------------------------------------------
# error rows from the evidence frames
# --------------------------------------------------------------------------------------------
def _obj(s: pd.Series) -> pd.Series:
    """A plain object-dtype copy (None for missing) of an arrow/categorical column."""
    out = s.astype(object)
    return out.where(out.notna(), None)


def _structured_error(message: str | None, args: str | None) -> str | None:
    """The ``error`` field of a structured log line (its message if it is an object), else None."""
    for text in (message, args):
        if not text or '"error"' not in text:
            continue
        for obj in _json_values(text):
            if isinstance(obj, str) and obj.lstrip().startswith("{"):
                try:
                    obj = _json_decode(obj)
                except (ValueError, msgspec.DecodeError):
                    continue
            if isinstance(obj, dict) and obj.get("error") not in (None, ""):
                err = obj["error"]
                if isinstance(err, dict):
                    name, msg = err.get("name"), err.get("message")
                    err = f"{name}: {msg}" if name and msg else (msg or json.dumps(err, sort_keys=True))
                return str(err)
    return None


def _exception_text(name: Any, message: Any) -> str:
    name = "" if name is None else str(name)
    message = "" if message is None else str(message)
    if not name or message.startswith(name):
        return message
    return f"{name}: {message}" if message else name


def _error_rows(ev: Evidence, levels: Sequence[str]) -> pd.DataFrame:
    """One row per clustered error: source, row, invocation_id, ts, text, stack, job fields."""
    cols = [
        "source",
        "row",
        "invocation_id",
        "ts",
        "level",
        "text",
        "stack",
        "job_id",
        "job_type",
        "message_id",
    ]
    parts: list[pd.DataFrame] = []
    exc = ev.exceptions
    if len(exc):
        parts.append(
            pd.DataFrame(
                {
                    "source": "exception",
                    "row": np.arange(len(exc)),
                    "invocation_id": _obj(exc["invocation_id"]).to_numpy(),
                    "ts": utc_series(exc["ts"]).to_numpy(),
                    "level": "exception",
                    "text": [
                        _exception_text(a, b)
                        for a, b in zip(_obj(exc["name"]), _obj(exc["message"]), strict=True)
                    ],
                    "stack": _obj(exc["stack"]).to_numpy(),
                    "job_id": None,
                    "job_type": None,
                    "message_id": None,
                }
            )
        )
    logs = ev.logs
    if len(logs):
        level = _obj(logs["level"]).fillna("").str.lower()
        message = _obj(logs["message"])
        args = _obj(logs["args"])
        maybe = (message.fillna("").str.contains('"error"', regex=False)) | (
            args.fillna("").str.contains('"error"', regex=False)
        )
        structured = pd.Series([None] * len(logs), index=logs.index, dtype=object)
        if maybe.any():
            idx = np.flatnonzero(maybe.to_numpy())
            structured.iloc[idx] = [
                _structured_error(m, a) for m, a in zip(message.iloc[idx], args.iloc[idx], strict=True)
            ]
        take = (level.isin(list(levels)) | structured.notna()).to_numpy()
        if take.any():
            text = structured.where(structured.notna(), message)
            parts.append(
                pd.DataFrame(
                    {
                        "source": "log",
                        "row": np.flatnonzero(take),
                        "invocation_id": _obj(logs["invocation_id"]).to_numpy()[take],
                        "ts": utc_series(logs["ts"]).to_numpy()[take],
                        "level": level.to_numpy()[take],
                        "text": text.to_numpy()[take],
                        "stack": None,
                        "job_id": _obj(logs["job_id"]).to_numpy()[take],
                        "job_type": _obj(logs["job_type"]).to_numpy()[take],
                        "message_id": _obj(logs["message_id"]).to_numpy()[take],
                    }
                )
            )
    dlq = ev.dlq
    if len(dlq):
        err = _obj(dlq["error"])
        take = err.notna().to_numpy()
        if take.any():
            parts.append(
                pd.DataFrame(
                    {
                        "source": "dlq",
                        "row": np.flatnonzero(take),
                        "invocation_id": None,
                        "ts": _dlq_time(dlq).to_numpy()[take],
                        "level": "dlq",
                        "text": err.to_numpy()[take],
                        "stack": None,
                        "job_id": _obj(dlq["job_id"]).to_numpy()[take],
                        "job_type": _obj(dlq["job_type"]).to_numpy()[take],
                        "message_id": _obj(dlq["message_id"]).to_numpy()[take],
                    }
                )
            )
    if not parts:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out["row"] = out["row"].astype(np.int64)
        out["ts"] = pd.Series(dtype="datetime64[ms, UTC]")
        return out
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out[cols]


def utc_series(s: pd.Series) -> pd.Series:
    """A timestamp column as numpy-backed ``datetime64[ns, UTC]`` without a trip through Python objects."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_timestamp(s.dtype.pyarrow_dtype):
        arr = s.array.__arrow_array__()
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        ns = arr.cast(pa.timestamp("ns", tz="UTC"))
        values = pd.DatetimeIndex(ns.to_pandas())
        return pd.Series(values, index=s.index, name=s.name)
    return pd.to_datetime(s.astype(object), utc=True)


def _dlq_time(dlq: pd.DataFrame) -> pd.Series:
    """When a DLQ message failed for the last time: ``last_attempt``, else ``enqueued_at``."""
    last = utc_series(dlq["last_attempt"])
    enq = utc_series(dlq["enqueued_at"])
    return last.where(last.notna(), enq)


def _invocation_context(ev: Evidence) -> pd.DataFrame:
    """Per invocation: script, version, outcome, the first job type its logs name, and its job id
    when its logs name exactly one (a batch invocation's job-less lines belong to no single job).

    ``script_version`` is the invocation's, else the version its structured log lines name (a
    ``deploy``/``version`` field; see :mod:`edgeinvestigate.analysis.deploys`)."""
    from edgeinvestigate.analysis.deploys import invocation_versions

    inv = ev.invocations
    base = pd.DataFrame(
        {
            "invocation_id": _obj(inv["invocation_id"]),
            "script": _obj(inv["script"]),
            "script_version": invocation_versions(inv, ev.logs)["version"].to_numpy(),
            "outcome": _obj(inv["outcome"]),
            "queue": _obj(inv["queue"]),
        }
    ).drop_duplicates("invocation_id")
    logs = ev.logs
    if len(logs):
        lj = pd.DataFrame(
            {
                "invocation_id": _obj(logs["invocation_id"]),
                "inv_job_id": _obj(logs["job_id"]),
                "inv_job_type": _obj(logs["job_type"]),
            }
        )
        jt = lj.dropna(subset=["inv_job_type"]).drop_duplicates("invocation_id")[
            ["invocation_id", "inv_job_type"]
        ]
        ids = lj.dropna(subset=["inv_job_id", "invocation_id"]).drop_duplicates(
            ["invocation_id", "inv_job_id"]
        )
        one = ids.groupby("invocation_id", sort=False)["inv_job_id"].transform("size") == 1
        ji = ids[one.to_numpy()][["invocation_id", "inv_job_id"]]
        base = base.merge(jt, on="invocation_id", how="outer").merge(ji, on="invocation_id", how="outer")
    else:
        base["inv_job_type"] = None
        base["inv_job_id"] = None
    return base


# --------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------
@dataclass
class Explanation:
    """Why a message is in its cluster: the masking steps, the template, and the rule."""

    text: str
    masked: str
    steps: list[str]
    template: str
    cluster_id: str | None
    rule: str
    kind: str = "unknown"
    kind_rule: str = ""
    fingerprint: str = ""
    frames: list[str] = field(default_factory=list)
    join: str | None = None
    message_id: str | None = None
    cluster_template: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "masked": self.masked,
            "steps": self.steps,
            "template": self.template,
            "cluster_id": self.cluster_id,
            "rule": self.rule,
            "kind": self.kind,
            "kind_rule": self.kind_rule,
            "fingerprint": self.fingerprint,
            "frames": self.frames,
            "join": self.join,
            "message_id": self.message_id,
            "cluster_template": self.cluster_template,
        }

    def __str__(self) -> str:
        lines = []
        if self.message_id:
            lines.append(f"DLQ message {self.message_id}")
        lines.append(f"message:   {self.text[:300]}")
        lines.append("masking:")
        lines.extend(f"  {s}" for s in self.steps or ["(nothing to mask)"])
        lines.append(f"masked:    {self.masked[:300]}")
        lines.append(f"template:  {self.template}  (normalised, hashed into the id)")
        if self.cluster_template:
            lines.append(f"cluster:   {self.cluster_template}")
        if self.fingerprint:
            lines.append(
                f"stack:     fingerprint {self.fingerprint} of in-app frames " + ", ".join(self.frames[:5])
            )
        if self.join:
            lines.append(f"join:      {self.join}")
        lines.append(f"id:        {self.cluster_id or '(none)'}")
        lines.append(f"because:   {self.rule}")
        if self.kind_rule:
            lines.append(
                f"kind:      {self.kind} ({triage.rule_description(self.kind_rule) or self.kind_rule})"
            )
        return "\n".join(lines)


@dataclass
class Clusters:
    """The clusters of one evidence bundle.

    ``table``: one row per cluster (:data:`CLUSTER_COLUMNS`), most frequent first.
    ``assign``: one row per error row (``source`` exception|log|dlq, ``row`` in that frame, ``ts``,
    ``text``, ``template``, ``cluster_id``, ``rule``, job and invocation fields).
    ``dlq``: the DLQ frame with ``cluster_id`` and ``cluster_join``.
    """

    table: pd.DataFrame
    assign: pd.DataFrame
    dlq: pd.DataFrame
    masks: tuple[Mask, ...] = MASKS
    rules: ClusterRules | None = None
    key_template: dict[str, str] = field(default_factory=dict)
    redacted: bool = False

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"<Clusters {len(self.table)} clusters of {len(self.assign)} error rows; "
            f"{len(self.dlq)} DLQ messages>"
        )

    @property
    def ids(self) -> list[str]:
        return list(self.table["cluster_id"])

    def get(self, cluster_id: str) -> dict[str, Any]:
        """One cluster as a dict; raises ConfigError naming the known ids if it does not exist."""
        hit = self.table[self.table["cluster_id"] == cluster_id]
        if hit.empty:
            known = ", ".join(self.ids[:10]) or "none"
            raise ConfigError(
                f"no cluster {cluster_id!r} in this bundle (clusters: {known})",
                hint="run `edgeinvestigate clusters BUNDLE` to list the cluster ids",
            )
        rec: dict[str, Any] = {str(k): v for k, v in hit.iloc[0].to_dict().items()}
        return rec

    # --- explanation -----------------------------------------------------------------------
    def template_of(self, text: str) -> tuple[str, str]:
        """The masked key and normalised template a new text would get with these clusters."""
        key = mask_keys(pa.array([text or EMPTY_TEXT]), self.masks)[0].as_py()
        if key in self.key_template:
            return key, self.key_template[key]
        toks = tokens(key)
        for known_key, tpl in sorted(self.key_template.items()):
            slots = tpl.split()
            if len(slots) == len(toks) and all(
                s in (PLACEHOLDER, t) for s, t in zip(slots, toks, strict=True)
            ):
                return key, tpl
            del known_key
        return key, " ".join(toks)

    def explain(self, message_or_row: str | int) -> Explanation:
        """Why a message is in its cluster.

        ``message_or_row`` is a DLQ ``message_id``, an index into :attr:`assign`, or any error text
        (which need not be in the bundle: it is masked and matched against these templates).
        """
        row: dict[str, Any] | None = None
        join = None
        message_id = None
        if isinstance(message_or_row, int | np.integer):
            if not 0 <= int(message_or_row) < len(self.assign):
                raise ConfigError(
                    f"error row {message_or_row} does not exist "
                    f"(this bundle has {len(self.assign)} error rows)",
                    hint="pass a DLQ message id, an error text, or a row number from Clusters.assign",
                )
            row = {str(k): v for k, v in self.assign.iloc[int(message_or_row)].to_dict().items()}
        elif len(self.dlq) and (self.dlq["message_id"].astype(object) == message_or_row).any():
            message_id = str(message_or_row)
            d = self.dlq[self.dlq["message_id"].astype(object) == message_or_row].iloc[0]
            join = str(d["cluster_join"])
            hits = self.assign[
                (self.assign["source"] == "dlq") & (self.assign["message_id"] == message_or_row)
            ]
            if len(hits):
                row = {str(k): v for k, v in hits.iloc[0].to_dict().items()}
            else:
                cid = d["cluster_id"]
                cid = None if pd.isna(cid) else str(cid)
                tpl = self.get(cid)["template"] if cid else ""
                why = {
                    "job_id": self._job_join_reason(d),
                    "type_time": (
                        f"an error of the same job type happened within {_minutes(TYPE_TIME_WINDOW)} "
                        "of its last attempt"
                    ),
                }.get(join, "it has no error text, no logged job id and no error of its job type nearby")
                return Explanation(
                    text="(no error text in the DLQ message)",
                    masked="",
                    steps=[],
                    template=tpl,
                    cluster_id=cid,
                    rule=f"DLQ join '{join}': {why}",
                    join=join,
                    message_id=message_id,
                )
        text = str(row["text"]) if row is not None else str(message_or_row)
        masked, steps = mask_typed(text, self.masks)
        _key, tpl = self.template_of(text)
        stack = row.get("stack") if row is not None else None
        fp = stack_fingerprint(stack) if isinstance(stack, str) else ""
        if row is not None:
            cid = str(row["cluster_id"])
            rule = str(row["rule"])
        else:
            cid, rule = self._match_template(tpl)
        kind, kind_rule, shown = "unknown", "", ""
        if cid and cid in set(self.table["cluster_id"]):
            rec = self.get(cid)
            kind, kind_rule, shown = str(rec["kind"]), str(rec["kind_rule"]), str(rec["template"])
        return Explanation(
            text=text,
            masked=masked,
            steps=[s.describe() for s in steps],
            template=tpl,
            cluster_id=cid,
            rule=rule,
            kind=kind,
            kind_rule=kind_rule,
            fingerprint=fp,
            frames=in_app_frames(stack) if isinstance(stack, str) else [],
            join=join,
            message_id=message_id,
            cluster_template=shown,
        )

    def _job_join_reason(self, d: pd.Series) -> str:
        """Which logged error a ``job_id`` join used, in words (the same choice as ``_join_dlq``)."""
        tel = (
            self.assign[self.assign["source"] != "dlq"].sort_values("ts", kind="stable").dropna(subset=["ts"])
        )
        picked = _job_join(d.to_frame().T.reset_index(drop=True), [0], tel)
        if 0 not in picked:
            return "its job id (or message id) was logged with an error in that cluster"
        row = tel.iloc[picked[0]]
        mid, job = d.get("message_id"), d.get("job_id")
        name = (
            f"its message id {mid}"
            if row["message_id"] is not None and str(row["message_id"]) == str(mid)
            else f"its job id {job}"
        )
        at = pd.Timestamp(row["ts"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        bound = "" if pd.isna(d.get("last_attempt")) else " before its last attempt"
        return (
            f"{name} was logged with an error in that cluster at {at}, the last error logged for it{bound} "
            f"({row['level']} line {str(row['text'])[:160]!r})"
        )

    def _match_template(self, tpl: str) -> tuple[str | None, str]:
        same = self.assign[self.assign["norm_template"] == tpl]
        if same.empty:
            return None, f"no cluster in this bundle has the template {tpl!r}"
        counts = same.groupby("cluster_id", observed=True).size().sort_values(ascending=False)
        cid = str(counts.index[0])
        rule = str(same[same["cluster_id"] == cid]["rule"].iloc[0])
        return cid, rule

    # --- output --------------------------------------------------------------------------------
    def redact(self) -> Clusters:
        """A copy whose examples and texts are masked (typed placeholders instead of values)."""
        table = self.table.copy()
        table["examples"] = [[mask_typed(e, self.masks)[0] for e in ex] for ex in table["examples"]]
        assign = self.assign.copy()
        assign["text"] = [mask_typed(t, self.masks)[0] for t in assign["text"]]
        return Clusters(
            table, assign, self.dlq, self.masks, self.rules, dict(self.key_template), redacted=True
        )

    def records(self) -> list[dict[str, Any]]:
        """The table as JSON-ready dicts (timestamps as ISO-8601 UTC strings)."""
        out: list[dict[str, Any]] = []
        for raw in self.table.to_dict(orient="records"):
            rec = {str(k): v for k, v in raw.items()}
            for k in ("first_seen", "last_seen"):
                v = rec.get(k)
                rec[k] = None if v is None or pd.isna(v) else pd.Timestamp(v).isoformat()
            rec["count"] = int(rec["count"])
            rec["n_dlq_messages"] = int(rec["n_dlq_messages"])
            rec["n_dlq_jobs"] = int(rec["n_dlq_jobs"])
            rec["n_invocations"] = int(rec["n_invocations"])
            rec["share"] = float(rec["share"])
            out.append(rec)
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps({"clusters": self.records(), "redacted": self.redacted}, **kwargs)


# --------------------------------------------------------------------------------------------
# cluster()
# --------------------------------------------------------------------------------------------
def cluster(
    ev: Evidence,
    *,
    rules: ClusterRules | str | Path | None = None,
    levels: Sequence[str] = ERROR_LEVELS,
    max_examples: int = 3,
    redact: bool = False,
    masks: tuple[Mask, ...] = MASKS,
) -> Clusters:
    """Cluster the errors of an evidence bundle (see the module docs for what and how).

    ``rules`` is a :class:`~edgeinvestigate.analysis.rules.ClusterRules` or the path of a rules file
    (TOML or JSON) that merges or splits clusters. ``redact=True`` masks the examples.
    """
    from edgeinvestigate.analysis.rules import ClusterRules

    if rules is not None and not isinstance(rules, ClusterRules):
        rules = ClusterRules.load(rules)
    rows = _error_rows(ev, levels)
    ctx = _invocation_context(ev)
    rows = rows.merge(ctx, on="invocation_id", how="left") if len(rows) else rows
    for col in ("script", "script_version", "outcome", "queue", "inv_job_type", "inv_job_id"):
        if col not in rows:
            rows[col] = None
    rows["job_type"] = rows["job_type"].where(rows["job_type"].notna(), rows["inv_job_type"])
    rows["job_id"] = rows["job_id"].where(rows["job_id"].notna(), rows["inv_job_id"])
    rows = rows.drop(columns=["inv_job_type", "inv_job_id"])

    grouping = group_texts(rows["text"], masks)
    key_template = {k: grouping.templates[grouping.key_template[i]] for i, k in enumerate(grouping.keys)}
    rows["norm_template"] = [grouping.templates[i] for i in grouping.labels]
    rows["key"] = [grouping.keys[i] for i in grouping.key_labels]

    # stack fingerprints (once per distinct stack)
    stacks = rows["stack"]
    fp_of = {s: stack_fingerprint(s) for s in pd.unique(stacks.dropna())}
    rows["fingerprint"] = [fp_of.get(s, "") if isinstance(s, str) else "" for s in stacks]
    _attach_unstacked(rows)
    pairs = list(zip(rows["norm_template"], rows["fingerprint"], strict=True))
    id_of = {p: cluster_id_for(*p) for p in set(pairs)}  # hash each (template, stack) once
    rows["cluster_id"] = [id_of[p] for p in pairs]
    rows["rule"] = [f"template {t!r}" + (f" + stack fingerprint {f}" if f else "") for t, f in pairs]
    rows["display"] = _display_templates(rows, masks)
    if rules is not None:
        rows = rules.apply(rows)

    dlq = _join_dlq(ev.dlq, rows)
    table = _cluster_table(rows, dlq, max_examples)
    if rows.empty:
        rows = rows.assign(template=pd.Series(dtype=object))
    else:
        tpl = dict(zip(table["cluster_id"], table["template"], strict=True))
        rows["template"] = rows["cluster_id"].map(tpl)
    assign = rows[
        [
            "source",
            "row",
            "invocation_id",
            "ts",
            "level",
            "job_id",
            "job_type",
            "message_id",
            "script",
            "script_version",
            "outcome",
            "queue",
            "text",
            "stack",
            "key",
            "norm_template",
            "fingerprint",
            "template",
            "cluster_id",
            "rule",
        ]
    ].reset_index(drop=True)
    result = Clusters(table, assign, dlq, masks, rules, key_template)
    return result.redact() if redact else result


def _attach_unstacked(rows: pd.DataFrame) -> None:
    """Rows without a stack join the most frequent stack cluster of the same template."""
    if rows.empty:
        return
    with_fp = rows[rows["fingerprint"] != ""]
    if with_fp.empty:
        return
    counts = with_fp.groupby(["norm_template", "fingerprint"]).size().reset_index(name="n")
    counts = counts.sort_values(["norm_template", "n", "fingerprint"], ascending=[True, False, True])
    best = counts.drop_duplicates("norm_template").set_index("norm_template")["fingerprint"]
    no_fp = rows["fingerprint"] == ""
    rows.loc[no_fp, "fingerprint"] = rows.loc[no_fp, "norm_template"].map(best).fillna("")


def _display_templates(rows: pd.DataFrame, masks: tuple[Mask, ...]) -> list[str]:
    """The readable template of each row's (template, fingerprint) group: the typed masking of its
    smallest raw text, with the slots the template step generalised shown as ``<*>``."""
    if rows.empty:
        return []
    reps = rows.groupby(["norm_template"], sort=True)["text"].min()
    shown = {str(t): display_template(str(t), mask_typed(str(r), masks)[0]) for t, r in reps.items()}
    return [shown[t] for t in rows["norm_template"]]


def _minutes(td: pd.Timedelta) -> str:
    return f"{int(td.total_seconds() // 60)} min"


def _uniq(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))})


def _cluster_table(rows: pd.DataFrame, dlq: pd.DataFrame, max_examples: int) -> pd.DataFrame:
    if rows.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
            table[c] = table[c].astype(np.int64)
        table["share"] = table["share"].astype(float)
        for c in ("first_seen", "last_seen"):
            table[c] = pd.Series(dtype="datetime64[ms, UTC]")
        return table
    telemetry = rows["source"] != "dlq"
    total = int(telemetry.sum())
    dlq_counts = (
        dlq.dropna(subset=["cluster_id"]).groupby("cluster_id", observed=True).size()
        if len(dlq) and "cluster_id" in dlq
        else pd.Series(dtype=np.int64)
    )
    dlq_jobs = (
        dlq.dropna(subset=["cluster_id", "job_id"])
        .astype({"job_id": object})
        .groupby("cluster_id", observed=True)["job_id"]
        .nunique()
        if len(dlq) and "cluster_id" in dlq
        else pd.Series(dtype=np.int64)
    )
    records = []
    for cid, g in rows.groupby("cluster_id", sort=False):
        tel = g[g["source"] != "dlq"]
        examples_src = g.sort_values(["ts", "text"], na_position="last")["text"]
        examples = list(dict.fromkeys(str(t) for t in examples_src))[:max_examples]
        sample = list(dict.fromkeys(str(t) for t in g["text"].head(200)))[:25]
        kind, kind_rule = triage.classify_many(sample)
        # an unclassified cluster is a limit hit when most of its rows come from invocations that hit
        # a limit (one warn line that happened to be logged by such an invocation does not make it one)
        if not kind_rule and g["outcome"].astype(object).isin(["exceededCpu", "exceededMemory"]).mean() > 0.5:
            kind, kind_rule = "permanent", "resource-limit"
        records.append(
            {
                "cluster_id": cid,
                "template": g["display"].iloc[0],
                "count": len(tel),
                "share": (len(tel) / total) if total else 0.0,
                "first_seen": g["ts"].min(),
                "last_seen": g["ts"].max(),
                "job_types": _uniq(g["job_type"]),
                "scripts": _uniq(g["script"]),
                "script_versions": _uniq(g["script_version"]),
                "outcomes": _uniq(g["outcome"]),
                "n_dlq_messages": int(dlq_counts.get(cid, 0)),
                "n_dlq_jobs": int(dlq_jobs.get(cid, 0)),
                "examples": [e[:500] for e in examples],
                "kind": kind,
                "kind_rule": kind_rule,
                "n_invocations": int(tel["invocation_id"].dropna().nunique()),
                "sources": _uniq(g["source"]),
                "fingerprint": str(g["fingerprint"].iloc[0]),
                "rule": str(g["rule"].iloc[0]),
            }
        )
    # clusters known only from DLQ joins are already in rows (dlq source); order: count, dlq, id
    table = pd.DataFrame.from_records(records, columns=list(CLUSTER_COLUMNS))
    table = table.sort_values(
        ["count", "n_dlq_messages", "cluster_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    table["first_seen"] = pd.to_datetime(table["first_seen"], utc=True)
    table["last_seen"] = pd.to_datetime(table["last_seen"], utc=True)
    return table


def _join_dlq(dlq: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The DLQ frame with ``cluster_id`` and ``cluster_join`` (see the module docs)."""
    if dlq is None or len(dlq) == 0:
        out = empty_frame("dlq") if dlq is None else dlq.copy()
        out["cluster_id"] = pd.Series(dtype=object)
        out["cluster_join"] = pd.Series(dtype=object)
        return out
    out = dlq.copy()
    n = len(out)
    cid = np.full(n, None, dtype=object)
    how = np.full(n, "none", dtype=object)
    # 1. the envelope's own error text
    own = rows[rows["source"] == "dlq"]
    if len(own):
        cid[own["row"].to_numpy()] = own["cluster_id"].to_numpy()
        how[own["row"].to_numpy()] = "envelope_error"
    tel = rows[rows["source"] != "dlq"]
    todo = np.flatnonzero(how == "none")
    if len(todo) and len(tel):
        # 2. job id or message id seen in an error row: the last one before it was dead-lettered
        latest = tel.sort_values("ts", kind="stable").dropna(subset=["ts"])
        picked = _job_join(out, todo, latest)
        if picked:
            tel_cids = latest["cluster_id"].to_numpy()
            for i, pos in picked.items():
                cid[i] = tel_cids[pos]
                how[i] = "job_id"
        # 3. nearest error of the same job type in time
        todo = np.flatnonzero(how == "none")
        typed = latest.dropna(subset=["job_type"])
        if len(todo) and len(typed):
            when = _dlq_time(out).iloc[todo]
            left = pd.DataFrame(
                {
                    "i": todo,
                    "job_type": _obj(out["job_type"]).iloc[todo].to_numpy(),
                    "ts": when.to_numpy(),
                }
            ).dropna()
            if len(left):
                left["ts"] = pd.to_datetime(left["ts"], utc=True).astype("datetime64[ns, UTC]")
                left["job_type"] = left["job_type"].astype(str)
                right_all = typed[["ts", "job_type", "cluster_id", "level"]].copy()
                right_all["ts"] = right_all["ts"].astype("datetime64[ns, UTC]")
                right_all["job_type"] = right_all["job_type"].astype(str)
                # failures (exceptions, error lines) first: a warn line of the same job type nearby
                # ("slow subrequest") is a worse guess than an error a few minutes away
                failing = right_all["level"].isin(FAILURE_LEVELS)
                for right in (right_all[failing], right_all):
                    if left.empty or right.empty:
                        continue
                    m = pd.merge_asof(
                        left.sort_values("ts"),
                        right[["ts", "job_type", "cluster_id"]].sort_values("ts"),
                        on="ts",
                        by="job_type",
                        direction="nearest",
                        tolerance=TYPE_TIME_WINDOW,
                    )
                    m = m.dropna(subset=["cluster_id"])
                    cid[m["i"].to_numpy()] = m["cluster_id"].to_numpy()
                    how[m["i"].to_numpy()] = "type_time"
                    left = left[~left["i"].isin(m["i"])]
    out["cluster_id"] = cid
    out["cluster_join"] = how
    return out


def _job_join(dlq: pd.DataFrame, todo: Iterable[int], tel: pd.DataFrame) -> dict[int, int]:
    """For the DLQ rows ``todo``: the position in ``tel`` (error rows sorted by time) of the error
    that dead-lettered the message: the last error row logged with the message's id (its own
    delivery attempts; a replay of the job gets a new id), else with its job id, no later than its
    ``last_attempt`` (plus :data:`DLQ_LOG_SKEW`) when the DLQ message records it. ``enqueued_at`` is
    no bound: a message moved by the runtime may keep the time it was first sent."""
    index: dict[tuple[str, str], np.ndarray] = {}
    ts = pd.DatetimeIndex(tel["ts"]).as_unit("ns").asi8
    for col in ("message_id", "job_id"):
        present = tel[col].notna().to_numpy()
        if not present.any():
            continue
        keys = pd.Series(np.flatnonzero(present), index=tel[col].astype(object)[present].astype(str))
        for key, rows in keys.groupby(level=0, sort=False):
            index[(col, str(key))] = rows.to_numpy()
    if not index:
        return {}
    job = _obj(dlq["job_id"]).to_numpy()
    mid = _obj(dlq["message_id"]).to_numpy()
    last = pd.DatetimeIndex(utc_series(dlq["last_attempt"])).as_unit("ns")
    bound = (last + DLQ_LOG_SKEW).asi8
    known = last.notna()
    out: dict[int, int] = {}
    for i in todo:
        pos: np.ndarray | None = None
        for col, key in (
            ("message_id", mid[i]),
            ("job_id", job[i]),
            ("job_id", mid[i]),
            ("message_id", job[i]),
        ):
            if key is not None and (col, str(key)) in index:
                pos = index[(col, str(key))]
                break
        if pos is None:
            continue
        if known[i]:
            early = pos[ts[pos] <= bound[i]]
            pos = early if len(early) else pos
        out[int(i)] = int(pos[-1])
    return out
