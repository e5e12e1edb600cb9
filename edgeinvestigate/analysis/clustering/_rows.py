"""Error rows from the evidence frames: what is clustered, and the invocation context of each row.

One error row per exception, per ``error``/``warn`` log line (or log line whose structured JSON
carries an ``error`` field, which is used instead of the free text), and per DLQ ``error`` text.
A structured ``error``/``warn`` line without an ``error`` field keeps its text and gets its parts
(event name, message field, keys) in ``structured`` (:mod:`._structured`): it is clustered by them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pandas as pd

from edgeinvestigate.analysis._columns import as_object, dlq_time, json_decode, json_values, utc_series
from edgeinvestigate.analysis.clustering._structured import structured_line
from edgeinvestigate.analysis.deploys import invocation_versions

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "ERROR_LEVELS",
    "FAILURE_LEVELS",
    "ROW_COLUMNS",
    "error_rows",
    "invocation_context",
    "structured_error",
]

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
