"""The result of :func:`~edgeinvestigate.analysis.clustering.cluster`: :class:`Clusters` (the table,
the error rows, the joined DLQ) and :class:`Explanation` (why a message is in its cluster)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis import triage
from edgeinvestigate.analysis._masking import MASKS, PLACEHOLDER, Mask, mask_typed
from edgeinvestigate.analysis._templates import in_app_frames, stack_fingerprint, tokens
from edgeinvestigate.analysis.clustering._arrow import NAT, utc_column
from edgeinvestigate.analysis.clustering._dlq_join import TYPE_TIME_WINDOW, job_join
from edgeinvestigate.analysis.clustering._grouping import EMPTY_TEXT, text_key
from edgeinvestigate.analysis.clustering._rows import structured_error
from edgeinvestigate.analysis.clustering._stored_rows import StoredRows
from edgeinvestigate.analysis.clustering._structured import StructuredLine, structured_keys, structured_line
from edgeinvestigate.errors import ConfigError

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules

__all__ = ["ASSIGN_COLUMNS", "Clusters", "Explanation", "assign_frame"]

#: the columns of ``Clusters.assign``, in order
ASSIGN_COLUMNS: Final = (
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
    "request_id",
    "ray_id",
    "text",
    "stack",
    "key",
    "norm_template",
    "fingerprint",
    "template",
    "cluster_id",
    "rule",
)


def assign_frame(table: pa.Table, columns: tuple[str, ...] = ASSIGN_COLUMNS) -> pd.DataFrame:
    """``Clusters.assign`` (its ``columns``) from the error rows as an Arrow table, as computed or as
    stored: ``row`` int64, ``ts`` ``datetime64[ns, UTC]``, the others Python objects (``None`` for
    a missing value); a dictionary-encoded column's rows share one object per value."""
    data: dict[str, Any] = {}
    for c in columns:
        col = table.column(c)
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if c == "row":
            data[c] = col.to_numpy(zero_copy_only=False).astype(np.int64)
        elif c == "ts":
            ns = pc.cast(col, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            data[c] = utc_column(pc.fill_null(ns, NAT).to_numpy())
        elif pa.types.is_null(col.type):
            data[c] = np.full(len(col), None, dtype=object)
        elif pa.types.is_dictionary(col.type) or c in _SHARED:  # one object per distinct value
            enc = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
            values = np.asarray([*enc.dictionary.to_pylist(), None], dtype=object)
            data[c] = values[pc.fill_null(enc.indices, len(values) - 1).to_numpy(zero_copy_only=False)]
        else:
            data[c] = col.to_numpy(zero_copy_only=False)
    return pd.DataFrame(data, copy=False)


#: string columns of the error rows whose values repeat (an invocation's, a job's): made one Python
#: string per distinct value
_SHARED: Final = ("invocation_id", "job_id", "message_id", "request_id", "ray_id")


def _shape_of(text: str) -> StructuredLine | None:
    """The parts of a structured line clustered by its meaning (not one with an ``error`` field)."""
    if structured_error(text, None) is not None:
        return None  # clustered by its error field
    return structured_line(text, None)


def _structured_step(shape: StructuredLine) -> str:
    keys = ", ".join(shape.keys) or "none"
    return (
        f"structured line: event {shape.event!r} kept, "
        + ("message field templated (masked below), " if shape.message else "no message field, ")
        + f"values of the other keys masked ({keys})"
    )


def _minutes(td: pd.Timedelta) -> str:
    return f"{int(td.total_seconds() // 60)} min"


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
    ``text``, ``template``, ``cluster_id``, ``rule``, job and invocation fields). ``rows`` holds
    them: as computed, an Arrow table; as stored, still in the bundle (:class:`StoredRows`, of
    which :meth:`error_rows` and :meth:`error_table` read only the columns asked); either is made a
    pandas frame when ``assign`` is first used, and ``rows`` is then that frame.
    ``dlq``: the DLQ frame with ``cluster_id`` and ``cluster_join``.
    ``key``: the digest of the settings and code that made them; ``origin``: ``"stored"`` (read from
    the bundle) or ``"computed"``; ``note``: why they were computed although the bundle is on disk
    (other rules, a bundle without stored clusters), else ``""``.
    """

    table: pd.DataFrame
    rows: pd.DataFrame | pa.Table | StoredRows
    dlq: pd.DataFrame
    masks: tuple[Mask, ...] = MASKS
    rules: ClusterRules | None = None
    key_template: dict[str, str] = field(default_factory=dict)
    redacted: bool = False
    key: str = ""
    origin: str = "computed"
    note: str = ""

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"<Clusters {len(self.table)} clusters of {len(self.rows)} error rows; "
            f"{len(self.dlq)} DLQ messages>"
        )

    @property
    def assign(self) -> pd.DataFrame:
        """The error rows as a pandas frame (see the class docs), made once."""
        if not isinstance(self.rows, pd.DataFrame):
            self.rows = assign_frame(self.rows_table())
        return self.rows

    def rows_table(self) -> pa.Table:
        """The error rows as an Arrow table (what the bundle stores), without a pandas frame when
        they are one already."""
        if isinstance(self.rows, pa.Table):
            return self.rows
        if isinstance(self.rows, StoredRows):
            return self.rows.read()
        return pa.Table.from_pandas(self.rows, preserve_index=False)

    def error_rows(
        self, columns: tuple[str, ...], *, dlq: bool = True, table: pa.Table | None = None
    ) -> pd.DataFrame:
        """A pandas frame of the error rows with ``columns`` only (as in ``assign``), without the DLQ
        rows unless ``dlq``: what a caller reads of a large clustering, without all of ``assign``.
        ``table``: those rows as :meth:`error_table` gave them, when a caller has them already (stored
        rows are not read again)."""
        if not isinstance(self.rows, pd.DataFrame):
            return assign_frame(table if table is not None else self.error_table(columns, dlq=dlq), columns)
        frame = self.rows if dlq else self.rows[self.rows["source"] != "dlq"]
        return frame[list(columns)].copy()

    def error_table(self, columns: tuple[str, ...], *, dlq: bool = True) -> pa.Table:
        """The error rows' ``columns`` as an Arrow table (the rows of :meth:`error_rows`, in its order);
        only those columns are copied, and only when DLQ rows are left out."""
        wanted = list(dict.fromkeys([*columns, "source"]))
        if isinstance(self.rows, pa.Table):
            table = self.rows.select(wanted)
        elif isinstance(self.rows, StoredRows):  # only these columns are read
            table = self.rows.read(wanted)
        else:  # only these columns are made Arrow
            table = pa.Table.from_pandas(self.rows[wanted], preserve_index=False)
        if not dlq and table.num_rows:
            source = table.column("source").cast(pa.string())
            keep = pc.fill_null(pc.not_equal(source, "dlq"), True)
            if not pc.all(keep).as_py():
                table = table.filter(keep)
        return table.select(list(columns))

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
        """The masked key and normalised template a new text would get with these clusters (a
        structured log line without an ``error`` field: by its meaning, see ``_structured``)."""
        shape = _shape_of(text)
        key = structured_keys([shape], self.masks)[0] if shape else text_key(text or EMPTY_TEXT, self.masks)
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
        shape = _shape_of(text) if row is None or row["source"] == "log" else None
        masked, steps = mask_typed(shape.message or "", self.masks) if shape else mask_typed(text, self.masks)
        _key, tpl = self.template_of(text)
        if row is not None:
            tpl = str(row["norm_template"])
        described = [s.describe() for s in steps]
        if shape:
            described.insert(0, _structured_step(shape))
            masked = shape.typed(self.masks)
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
            steps=described,
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
        """Which logged error a ``job_id`` join used, in words (the same choice as ``join_dlq``)."""
        tel = (
            self.assign[self.assign["source"] != "dlq"].sort_values("ts", kind="stable").dropna(subset=["ts"])
        )
        picked = job_join(d.to_frame().T.reset_index(drop=True), [0], tel)
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
        table["example_events"] = pd.Series(
            [
                [{**e, "text": mask_typed(str(e["text"]), self.masks)[0]} for e in ex]
                for ex in table["example_events"]
            ],
            index=table.index,
            dtype=object,
        )
        assign = self.assign.copy()
        assign["text"] = [mask_typed(t, self.masks)[0] for t in assign["text"]]
        return Clusters(
            table,
            assign,
            self.dlq,
            self.masks,
            self.rules,
            dict(self.key_template),
            redacted=True,
            key=self.key,
            origin=self.origin,
            note=self.note,
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
