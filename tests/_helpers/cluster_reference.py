"""A frozen copy of the clustering as it was before it was vectorised (main at d60722a): the reference
that ``tests/analysis/test_cluster_reference.py`` compares ``ei.cluster`` with, row for row. Only the
tests use it. It is not edited for speed or style; a deliberate change of what clustering finds
changes it too, in the same commit, and says so.

It copies the code that the fast path replaced (error rows and their invocation context, the
thrown/logged join, the DLQ joins, the cluster table, ``compute_clusters``, and the grouping kernel's
``group_texts`` and ``_keys``, and ``mask_keys``, its masking pass in DuckDB) and imports the rest
(the masks and their regular expressions, the template step, templates, triage rules, rules files) from
the package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis import triage
from edgeinvestigate.analysis._columns import as_object, dlq_time, json_decode, json_values, utc_series
from edgeinvestigate.analysis._masking import (
    MASKS,
    MAX_TEXT,
    PLACEHOLDER,
    Mask,
    _prepasses,
    _sql_literal,
    combined_pattern,
    mask_typed,
)
from edgeinvestigate.analysis._templates import (
    cluster_id_for,
    display_template,
    merge_templates,
    stack_fingerprint,
)
from edgeinvestigate.analysis.clustering._clusters import ASSIGN_COLUMNS, Clusters
from edgeinvestigate.analysis.clustering._grouping import (
    _ANY_PLACEHOLDER,
    _BARE,
    _DEDUP_SAMPLE,
    _PREMASKED,
    _SEP,
    EMPTY_TEXT,
    Grouping,
    bare_key,
)
from edgeinvestigate.analysis.clustering._stored import clusters_key
from edgeinvestigate.analysis.clustering._structured import structured_keys, structured_line
from edgeinvestigate.analysis.deploys import invocation_versions
from edgeinvestigate.models.frames import empty_frame

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

# --- _masking.py (mask_keys: the masking pass of the kernel, one DuckDB query) ---------------------


def _duckdb_keys(arr: pa.Array, masks: tuple[Mask, ...]) -> pa.Array:
    import duckdb

    expr = "t"
    for m in _prepasses(masks):
        replaced = f"regexp_replace({expr}, {_sql_literal(m.pattern)}, {_sql_literal(m.key)}, 'g')"
        expr = f"CASE WHEN contains({expr}, {_sql_literal(m.guard)}) THEN {replaced} ELSE {expr} END"
    expr = f"regexp_replace({expr}, {_sql_literal(combined_pattern(masks))}, '{PLACEHOLDER}', 'g')"
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET enable_progress_bar = false")  # it would print on stdout after ~2 s
    try:
        con.register("texts", pa.table({"t": arr}))
        result = con.sql(f"SELECT {expr} AS k FROM texts").to_arrow_table().column("k").combine_chunks()
    finally:
        con.close()
    return result.cast(pa.string())


def _arrow_keys(arr: pa.Array, masks: tuple[Mask, ...]) -> pa.Array:
    for m in _prepasses(masks):
        has = pc.match_substring(arr, m.guard)
        arr = pc.if_else(has, pc.replace_substring_regex(arr, m.pattern, m.key), arr)
    return pc.replace_substring_regex(arr, combined_pattern(masks), PLACEHOLDER)


def mask_keys(texts: pa.Array | pa.ChunkedArray, masks: tuple[Mask, ...] = MASKS) -> pa.Array:
    """Vectorised masking: every variable part of every text becomes ``<*>``.

    Texts are cut to :data:`MAX_TEXT` characters first. Nulls stay null. Large inputs run in DuckDB
    on two threads; small ones in pyarrow (same RE2 engine, no start-up cost).
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    if len(texts) == 0:
        return pa.array([], type=pa.string())
    longest = pc.max(pc.binary_length(texts)).as_py() or 0
    if longest > MAX_TEXT:  # bytes >= characters: only then can a text be too long
        texts = pc.utf8_slice_codeunits(texts, 0, MAX_TEXT)
    if len(texts) < 20_000:
        return _arrow_keys(texts, masks)
    return _duckdb_keys(texts, masks)


# --- _grouping.py (the kernel: group_texts and the keys it makes) -----------------------------


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
    *,
    premasked: Sequence[bool] | np.ndarray | None = None,
    partitions: Sequence[str | None] | None = None,
) -> Grouping:
    """Mask, deduplicate and template ``texts``; every text gets a template (null/empty ones too).

    This is the whole clustering of plain messages, vectorised: the regex pass runs once per
    distinct raw text (when there are many repeats) and the template step once per distinct masked
    string. ``premasked[i]`` says that ``texts[i]`` is a grouping key already (a structured line's
    cluster text, see :mod:`._structured`): it is not masked again, and the template step merges it
    only with premasked keys of the same ``partitions[i]`` (its event name: two events never become
    one template, however alike their messages). A text whose masked key is placeholders alone (a
    bare id, a number, a JSON value) gets the key :func:`bare_key`.
    """
    arr = _as_string_array(texts)
    if arr.null_count or (len(arr) and (pc.min(pc.binary_length(arr)).as_py() or 0) == 0):
        arr = pc.if_else(pc.or_kleene(pc.is_null(arr), pc.equal(arr, "")), EMPTY_TEXT, arr)
    if premasked is not None and len(arr):
        flags = pa.array(np.asarray(premasked, dtype=bool))
        parts = pa.array(
            ["" if p is None else str(p).replace(_SEP, "") for p in partitions]
            if partitions is not None
            else [""] * len(arr),
            pa.string(),
        )
        arr = pc.if_else(flags, pc.binary_join_element_wise(_PREMASKED, parts, _SEP, arr, ""), arr)
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
        raw_keys, key_parts = _keys(enc.dictionary, masks)
        kenc = pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)[enc.indices.to_numpy(zero_copy_only=False)]
    else:
        raw_keys, key_parts = _keys(arr, masks)
        kenc = pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)
    keys: list[str] = kenc.dictionary.to_pylist()
    partition = [""] * len(keys)
    if key_parts:  # entry -> partition of the premasked ones; the same key has the same partition
        entry_key = kenc.indices.to_numpy(zero_copy_only=False)
        for i, part in key_parts.items():
            partition[int(entry_key[i])] = "\x01" + part
    per_key = merge_templates(keys, partitions=partition)
    templates = sorted(set(per_key))
    index = {t: i for i, t in enumerate(templates)}
    key_template = np.array([index[t] for t in per_key], dtype=np.int64)
    labels = key_template[key_labels]
    return Grouping(labels, templates, keys, key_labels.astype(np.int64), key_template)


#: marks a text that is a grouping key already (never masked again); no log text starts with it.


def _keys(values: pa.Array, masks: tuple[Mask, ...]) -> tuple[pa.Array, dict[int, str]]:
    """The grouping key of each text: masked (premasked ones as they are), bare ones named; and the
    partition of each premasked entry (by position)."""
    pre = pc.starts_with(values, _PREMASKED)
    masked = mask_keys(values, masks)
    parts: dict[int, str] = {}
    if pc.any(pre).as_py():
        raw = values.to_pylist()
        out = masked.to_pylist()
        for i in np.flatnonzero(pre.to_numpy(zero_copy_only=False)):
            part, _, key = raw[i][len(_PREMASKED) :].partition(_SEP)
            out[int(i)] = key
            parts[int(i)] = part
        masked = pa.array(out, pa.string())
    stripped = pc.replace_substring_regex(masked, _ANY_PLACEHOLDER.pattern, "")
    bare = pc.invert(pc.match_substring_regex(stripped, _BARE.pattern))
    if not pc.any(bare).as_py():
        return masked, parts
    out = masked.to_pylist()
    raw = values.to_pylist()
    for i in np.flatnonzero(bare.to_numpy(zero_copy_only=False)):
        text = raw[i][len(_PREMASKED) :].partition(_SEP)[2] if raw[i].startswith(_PREMASKED) else raw[i]
        out[i] = bare_key(text, masks)
    return pa.array(out, pa.string()), parts


# --- _rows.py -------------------------------------------------------------------------------

#: error-row levels that are failures (exceptions, error lines); ``warn`` rows are clustered but are
#: not failures (see :mod:`edgeinvestigate.analysis.rca`)
FAILURE_LEVELS: Final = ("exception", "error")
#: log levels whose free text is clustered (structured lines with an ``error`` field always are)
ERROR_LEVELS: Final = ("error", "warn")


def structured_error(message: str | None, args: str | None) -> str | None:
    """The ``error`` field of a structured log line (its message if it is an object), else None."""
    for text in (message, args):
        if not text or '"error"' not in text:
            continue
        for obj in json_values(text):
            if isinstance(obj, str) and obj.lstrip().startswith("{"):
                try:
                    obj = json_decode(obj)
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


#: the columns of the error rows, in order
ROW_COLUMNS: Final = (
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
    "structured",
)


def error_rows(ev: Evidence, levels: Sequence[str]) -> pd.DataFrame:
    """One row per clustered error: source, row, invocation_id, ts, text, stack, job fields."""
    cols = list(ROW_COLUMNS)
    found = (_exception_rows(ev.exceptions), _log_rows(ev.logs, levels), _dlq_rows(ev.dlq))
    parts = [part for part in found if part is not None]
    if not parts:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out["row"] = out["row"].astype(np.int64)
        out["ts"] = pd.Series(dtype="datetime64[ms, UTC]")
        return out
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out[cols]


def _exception_rows(exc: pd.DataFrame) -> pd.DataFrame | None:
    """Every exception (``name: message``, with its stack)."""
    if not len(exc):
        return None
    return pd.DataFrame(
        {
            "source": "exception",
            "row": np.arange(len(exc)),
            "invocation_id": as_object(exc["invocation_id"]).to_numpy(),
            "ts": utc_series(exc["ts"]).to_numpy(),
            "level": "exception",
            "text": [
                _exception_text(a, b)
                for a, b in zip(as_object(exc["name"]), as_object(exc["message"]), strict=True)
            ],
            "stack": as_object(exc["stack"]).to_numpy(),
            "job_id": None,
            "job_type": None,
            "message_id": None,
            "structured": None,
        }
    )


def _log_rows(logs: pd.DataFrame, levels: Sequence[str]) -> pd.DataFrame | None:
    """Log lines of ``levels``, and any line whose structured JSON has an ``error`` field (that field
    is the text)."""
    if not len(logs):
        return None
    level = as_object(logs["level"]).fillna("").str.lower()
    message = as_object(logs["message"])
    args = as_object(logs["args"])
    maybe = (message.fillna("").str.contains('"error"', regex=False)) | (
        args.fillna("").str.contains('"error"', regex=False)
    )
    err_field = pd.Series([None] * len(logs), index=logs.index, dtype=object)
    if maybe.any():
        idx = np.flatnonzero(maybe.to_numpy())
        err_field.iloc[idx] = [
            structured_error(m, a) for m, a in zip(message.iloc[idx], args.iloc[idx], strict=True)
        ]
    take = (level.isin(list(levels)) | err_field.notna()).to_numpy()
    if not take.any():
        return None
    text = err_field.where(err_field.notna(), message)
    shapes = pd.Series([None] * len(logs), index=logs.index, dtype=object)
    json_like = (
        message.fillna("").str.lstrip().str[:1].isin(["{", "["])
        | args.fillna("").str.lstrip().str[:1].isin(["{", "["])
    ) & err_field.isna()
    idx = np.flatnonzero(json_like.to_numpy() & take)
    if len(idx):
        seen: dict[tuple[Any, Any], Any] = {}  # structured lines repeat: parse each distinct one once
        shapes.iloc[idx] = [
            seen[(m, a)] if (m, a) in seen else seen.setdefault((m, a), structured_line(m, a))
            for m, a in zip(message.iloc[idx], args.iloc[idx], strict=True)
        ]
    return pd.DataFrame(
        {
            "source": "log",
            "row": np.flatnonzero(take),
            "invocation_id": as_object(logs["invocation_id"]).to_numpy()[take],
            "ts": utc_series(logs["ts"]).to_numpy()[take],
            "level": level.to_numpy()[take],
            "text": text.to_numpy()[take],
            "stack": None,
            "job_id": as_object(logs["job_id"]).to_numpy()[take],
            "job_type": as_object(logs["job_type"]).to_numpy()[take],
            "message_id": as_object(logs["message_id"]).to_numpy()[take],
            "structured": shapes.to_numpy()[take],
        }
    )


def _dlq_rows(dlq: pd.DataFrame) -> pd.DataFrame | None:
    """The ``error`` text of DLQ messages sent as ``{original, error}`` envelopes."""
    if not len(dlq):
        return None
    err = as_object(dlq["error"])
    take = err.notna().to_numpy()
    if not take.any():
        return None
    return pd.DataFrame(
        {
            "source": "dlq",
            "row": np.flatnonzero(take),
            "invocation_id": None,
            "ts": dlq_time(dlq).to_numpy()[take],
            "level": "dlq",
            "text": err.to_numpy()[take],
            "stack": None,
            "job_id": as_object(dlq["job_id"]).to_numpy()[take],
            "job_type": as_object(dlq["job_type"]).to_numpy()[take],
            "message_id": as_object(dlq["message_id"]).to_numpy()[take],
            "structured": None,
        }
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as plain objects; all null when the frame predates it (bundles of older releases)."""
    if name in frame:
        return as_object(frame[name])
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def invocation_context(ev: Evidence) -> pd.DataFrame:
    """Per invocation: script, version, outcome, request and ray id, the first job type its logs
    name, and its job id when its logs name exactly one (a batch invocation's job-less lines belong
    to no single job).

    ``script_version`` is the invocation's, else the version its structured log lines name (a
    ``deploy``/``version`` field; see :mod:`edgeinvestigate.analysis.deploys`)."""
    inv = ev.invocations
    base = pd.DataFrame(
        {
            "invocation_id": as_object(inv["invocation_id"]),
            "script": as_object(inv["script"]),
            "script_version": invocation_versions(inv, ev.logs)["version"].to_numpy(),
            "outcome": as_object(inv["outcome"]),
            "queue": as_object(inv["queue"]),
            "request_id": _column(inv, "request_id"),
            "ray_id": _column(inv, "ray_id"),
        }
    ).drop_duplicates("invocation_id")
    logs = ev.logs
    if len(logs):
        lj = pd.DataFrame(
            {
                "invocation_id": as_object(logs["invocation_id"]),
                "inv_job_id": as_object(logs["job_id"]),
                "inv_job_type": as_object(logs["job_type"]),
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


# --- _join.py -------------------------------------------------------------------------------

#: the share of a logged template's rows that must pair with one exception cluster for it to join
JOIN_SHARE: Final = 0.5


def join_thrown_and_logged(rows: pd.DataFrame) -> dict[str, str]:
    """Join logged errors to the exception cluster their invocations threw (see the module docs).

    Rewrites ``norm_template`` and ``fingerprint`` of the joined rows in place, sets
    ``joined_from`` (the template they had, else None) and returns ``{old template: new template}``.
    """
    rows["joined_from"] = None
    if rows.empty:
        return {}
    source = rows["source"]
    exc = rows[(source == "exception") & rows["invocation_id"].notna()]
    logs = rows[(source == "log") & rows["invocation_id"].notna() & rows["text"].notna()]
    if exc.empty or logs.empty:
        return {}
    pairs = pd.DataFrame(
        {
            "invocation_id": logs["invocation_id"].astype(object).to_numpy(),
            "ltext": logs["text"].astype(str).to_numpy(),
            "l_t": logs["norm_template"].to_numpy(),
            "li": logs.index.to_numpy(),
        }
    ).merge(
        pd.DataFrame(
            {
                "invocation_id": exc["invocation_id"].astype(object).to_numpy(),
                "etext": exc["text"].astype(str).to_numpy(),
                "e_t": exc["norm_template"].to_numpy(),
                "e_fp": exc["fingerprint"].to_numpy(),
            }
        ),
        on="invocation_id",
    )
    if pairs.empty:
        return {}
    same = np.fromiter(
        (
            lt != et and (e == t or (len(t) >= 8 and e.endswith(": " + t)))
            for t, e, lt, et in zip(pairs["ltext"], pairs["etext"], pairs["l_t"], pairs["e_t"], strict=True)
        ),
        dtype=bool,
        count=len(pairs),
    )
    pairs = pairs[same]
    if pairs.empty:
        return {}
    n_rows = logs.groupby("norm_template").size()
    hits = (
        pairs.drop_duplicates(["li", "e_t", "e_fp"])
        .groupby(["l_t", "e_t", "e_fp"])
        .size()
        .reset_index(name="n")
        .sort_values(["l_t", "n", "e_t", "e_fp"], ascending=[True, False, True, True], kind="stable")
        .drop_duplicates("l_t")
    )
    joined: dict[str, str] = {}
    for l_t, e_t, e_fp, n in hits.itertuples(index=False):
        if n < JOIN_SHARE * int(n_rows.get(l_t, 0)) or l_t in joined.values():
            continue
        move = (rows["norm_template"] == l_t) & (rows["source"] != "exception")
        rows.loc[move, "norm_template"] = e_t
        rows.loc[move, "fingerprint"] = e_fp
        rows.loc[move, "joined_from"] = l_t
        joined[str(l_t)] = str(e_t)
    return joined


# --- _dlq_join.py ---------------------------------------------------------------------------

#: how far apart a DLQ message and an error of the same job type may be for a ``type_time`` join
TYPE_TIME_WINDOW: Final = pd.Timedelta(minutes=15)
#: how much later than a DLQ message's time (its last attempt, else its enqueue time) the error that
#: dead-lettered it may be logged (clocks and log timestamps of one event differ slightly)
DLQ_LOG_SKEW: Final = pd.Timedelta(seconds=60)


def join_dlq(dlq: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
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
    from_dlq = (rows["source"] == "dlq").to_numpy()
    if from_dlq.any():
        at = rows["row"].to_numpy()[from_dlq]
        cid[at] = rows["cluster_id"].to_numpy()[from_dlq]
        how[at] = "envelope_error"
    todo = np.flatnonzero(how == "none")
    if len(todo) and not from_dlq.all():
        # 2. job id or message id seen in an error row: the last one before it was dead-lettered
        # (only the columns the joins read, of the telemetry rows)
        tel = rows.loc[~from_dlq, ["ts", "level", "text", "job_id", "job_type", "message_id", "cluster_id"]]
        latest = tel.sort_values("ts", kind="stable").dropna(subset=["ts"])
        picked = job_join(out, todo, latest)
        if picked:
            tel_cids = latest["cluster_id"].to_numpy()
            for i, pos in picked.items():
                cid[i] = tel_cids[pos]
                how[i] = "job_id"
        # 3. nearest error of the same job type in time
        todo = np.flatnonzero(how == "none")
        typed = latest.dropna(subset=["job_type"])
        if len(todo) and len(typed):
            when = dlq_time(out).iloc[todo]
            left = pd.DataFrame(
                {
                    "i": todo,
                    "job_type": as_object(out["job_type"]).iloc[todo].to_numpy(),
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


def job_join(dlq: pd.DataFrame, todo: Iterable[int], tel: pd.DataFrame) -> dict[int, int]:
    """For the DLQ rows ``todo``: the position in ``tel`` (error rows sorted by time) of the error
    that dead-lettered the message: the last error row logged with the message's id (its own
    delivery attempts; a replay of the job gets a new id), else with its job id, no later than its
    ``last_attempt`` (plus :data:`DLQ_LOG_SKEW`) when the DLQ message records it. ``enqueued_at`` is
    no bound: a message moved by the runtime may keep the time it was first sent."""
    index: dict[tuple[str, str], np.ndarray] = {}
    ts = pd.DatetimeIndex(tel["ts"]).as_unit("ns").asi8
    job = as_object(dlq["job_id"]).to_numpy()
    mid = as_object(dlq["message_id"]).to_numpy()
    wanted = list({str(v) for v in (*job, *mid) if v is not None})  # only ids a DLQ message has
    for col in ("message_id", "job_id"):
        present = (tel[col].notna() & tel[col].astype(object).isin(wanted)).to_numpy()
        if not present.any():
            continue
        keys = pd.Series(np.flatnonzero(present), index=tel[col].astype(object)[present].astype(str))
        for key, rows in keys.groupby(level=0, sort=False):
            index[(col, str(key))] = rows.to_numpy()
    if not index:
        return {}
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


# --- _table.py ------------------------------------------------------------------------------

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
    "example_events",
)


def _uniq(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))})


#: the fields of one example event
EVENT_FIELDS: Final = ("ts", "source", "script", "invocation_id", "request_id", "ray_id", "text")


def _plain(value: Any) -> str | None:
    return (
        None
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
        else str(value)
    )


def example_events(g: pd.DataFrame, examples: list[str]) -> list[dict[str, str | None]]:
    """The event behind each example text: its first row with that text, one whose invocation has
    a request or ray id first (a DLQ error has none), as JSON-ready dicts of :data:`EVENT_FIELDS`."""
    if not examples:
        return []
    cand = g[g["text"].astype(str).isin(examples)]
    has_id = cand["request_id"].notna() | cand["ray_id"].notna()
    cand = cand.assign(_no_id=~has_id, _text=cand["text"].astype(str)).sort_values(
        ["_no_id", "ts"], kind="stable", na_position="last"
    )
    first = cand.drop_duplicates("_text").set_index("_text")
    out = []
    for text in examples:
        if text not in first.index:
            continue
        row = first.loc[text]
        ts = row["ts"]
        out.append(
            {
                "ts": None if pd.isna(ts) else pd.Timestamp(ts).isoformat(),
                "source": _plain(row["source"]),
                "script": _plain(row["script"]),
                "invocation_id": _plain(row["invocation_id"]),
                "request_id": _plain(row["request_id"]),
                "ray_id": _plain(row["ray_id"]),
                "text": text[:500],
            }
        )
    return out


def cluster_table(rows: pd.DataFrame, dlq: pd.DataFrame, max_examples: int) -> pd.DataFrame:
    if rows.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
            table[c] = table[c].astype(np.int64)
        table["share"] = table["share"].astype(float)
        for c in ("first_seen", "last_seen"):
            table[c] = pd.Series(dtype="datetime64[ns, UTC]")
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
        events = example_events(g, examples)
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
                "example_events": events,
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


# --- __init__.py -----------------------------------------------------------------------------


def compute_clusters(
    ev: Evidence,
    *,
    rules: ClusterRules | None,
    levels: Sequence[str],
    max_examples: int,
    masks: tuple[Mask, ...],
) -> Clusters:
    """The clustering itself, in memory (what :func:`cluster` does when nothing is stored)."""
    rows = error_rows(ev, levels)
    ctx = invocation_context(ev)
    rows = rows.merge(ctx, on="invocation_id", how="left") if len(rows) else rows
    for col in (
        "script",
        "script_version",
        "outcome",
        "queue",
        "request_id",
        "ray_id",
        "inv_job_type",
        "inv_job_id",
    ):
        if col not in rows:
            rows[col] = None
    rows["job_type"] = rows["job_type"].where(rows["job_type"].notna(), rows["inv_job_type"])
    rows["job_id"] = rows["job_id"].where(rows["job_id"].notna(), rows["inv_job_id"])
    rows = rows.drop(columns=["inv_job_type", "inv_job_id"])

    is_structured = rows["structured"].notna().to_numpy(dtype=bool)
    texts = rows["text"].astype(object)
    events = None
    if is_structured.any():  # structured lines are grouped by their meaning (see ._structured)
        texts = texts.copy()
        texts[is_structured] = structured_keys(list(rows["structured"][is_structured]), masks)
        events = [s.event or "" if s is not None else None for s in rows["structured"]]
    grouping = group_texts(texts, masks, premasked=is_structured, partitions=events)
    key_template = {k: grouping.templates[grouping.key_template[i]] for i, k in enumerate(grouping.keys)}
    rows["norm_template"] = [grouping.templates[i] for i in grouping.labels]
    rows["key"] = [grouping.keys[i] for i in grouping.key_labels]

    # stack fingerprints (once per distinct stack)
    stacks = rows["stack"]
    fp_of = {s: stack_fingerprint(s) for s in pd.unique(stacks.dropna())}
    rows["fingerprint"] = [fp_of.get(s, "") if isinstance(s, str) else "" for s in stacks]
    _attach_unstacked(rows)
    joined = join_thrown_and_logged(rows)
    key_template = {k: joined.get(t, t) for k, t in key_template.items()}
    pairs = list(zip(rows["norm_template"], rows["fingerprint"], strict=True))
    id_of = {p: cluster_id_for(*p) for p in set(pairs)}  # hash each (template, stack) once
    rows["cluster_id"] = [id_of[p] for p in pairs]
    rows["rule"] = [
        f"template {t!r}"
        + (f" + stack fingerprint {f}" if f else "")
        + (f" (logged as {j!r} by the invocations that threw it)" if isinstance(j, str) else "")
        for (t, f), j in zip(pairs, rows["joined_from"], strict=True)
    ]
    rows["display"] = _display_templates(rows, masks)
    if rules is not None:
        rows = rules.apply(rows)

    dlq = join_dlq(ev.dlq, rows)
    table = cluster_table(rows, dlq, max_examples)
    if rows.empty:
        rows = rows.assign(template=pd.Series(dtype=object))
    else:
        tpl = dict(zip(table["cluster_id"], table["template"], strict=True))
        rows["template"] = rows["cluster_id"].map(tpl)
    assign = rows[list(ASSIGN_COLUMNS)].reset_index(drop=True)
    assign["ts"] = pd.to_datetime(assign["ts"], utc=True).dt.as_unit("ns")  # as stored clusters read back
    key = clusters_key(rules, masks, levels, max_examples)
    return Clusters(table, assign, dlq, masks, rules, key_template, key=key)


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
    smallest raw text (a structured line: its typed cluster text; rows joined from a logged error:
    only when the template has no other rows), with the slots the template step generalised shown
    as ``<*>``."""
    if rows.empty:
        return []
    own = rows["joined_from"].isna()
    reps = (
        rows.assign(_joined=~own)
        .sort_values(["norm_template", "_joined", "text"], kind="stable")
        .drop_duplicates("norm_template")
    )
    shown = {}
    for t, text, shape in zip(reps["norm_template"], reps["text"], reps["structured"], strict=True):
        typed = shape.typed(masks) if shape is not None else mask_typed(str(text), masks)[0]
        shown[str(t)] = display_template(str(t), typed)
    return [shown[t] for t in rows["norm_template"]]
