"""Deploy markers: which version each invocation ran, and when each version started.

A deploy marker is the first invocation of a new version of a script. The version of an
invocation comes from, in this order:

* ``script_version``: the invocation's ``script_version`` (Tail Worker TraceItems and Logpush carry
  it in production; local workerd and ``wrangler dev`` do not);
* ``log_field``: a version named in the invocation's structured log lines, under one of
  :data:`VERSION_KEYS` (``deploy``, ``version``, ``scriptVersion``, ``script_version``; the logging
  convention in :mod:`edgeinvestigate.models.frames`), the first one its lines name;

and a list of deployments given by the user (``ei.analyze(ev, deployments=[("v42",
"2026-11-27T14:05Z")])`` or ``edgeinvestigate analyze BUNDLE --deploy v42@2026-11-27T14:05Z``) adds
markers of source ``given``; a given version replaces the observed marker of the same version.

The version is read from the ``message`` and ``args`` columns that every loader keeps, so the
loaders need not know about it; only lines that name one of the keys are decoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError

__all__ = [
    "VERSION_KEYS",
    "VERSION_KEY_RE",
    "DeploySource",
    "Deployment",
    "invocation_versions",
    "log_versions",
    "parse_deployment",
    "parse_deployments",
]

#: structured log keys that name the deployed version (first non-null wins, in this order)
VERSION_KEYS: Final = ("deploy", "version", "scriptVersion", "script_version")
DeploySource = Literal["script_version", "log_field", "given"]
#: a user-given deployment: (version, time)
Deployment = tuple[str, pd.Timestamp]

#: a line that may name a version (a JSON key of :data:`VERSION_KEYS`), as an RE2/Python regex
VERSION_KEY_RE: Final = '"(?:' + "|".join(VERSION_KEYS) + r')"\s*:'
_HINT: Final = "write it as VERSION@TIME, e.g. --deploy v42@2026-11-27T14:05Z (time in ISO-8601 or epoch)"
_decoder: Final = msgspec.json.Decoder()


def parse_deployment(value: Any) -> Deployment:
    """One deployment from ``"VERSION@TIME"``, ``(version, time)`` or ``{"version", "at"}``."""
    version: Any
    when: Any
    if isinstance(value, str):
        version, sep, when = value.rpartition("@")
        if not sep:
            raise ConfigError(f"deployment {value!r} has no '@TIME'", hint=_HINT)
    elif isinstance(value, dict):
        version, when = value.get("version"), value.get("at", value.get("time"))
    elif isinstance(value, tuple | list) and len(value) == 2:
        version, when = value
    else:
        raise ConfigError(f"cannot read deployment {value!r}", hint=_HINT)
    version = str(version).strip() if version is not None else ""
    if not version:
        raise ConfigError(f"deployment {value!r} has no version", hint=_HINT)
    if when is None or (isinstance(when, str) and not when.strip()):
        raise ConfigError(f"deployment {value!r} has no time", hint=_HINT)
    try:
        at = parse_time(
            when if isinstance(when, str | datetime | pd.Timestamp) else str(when), name="deploy time"
        )
    except ConfigError as exc:
        raise ConfigError(f"cannot read the time of deployment {value!r}: {exc.message}", hint=_HINT) from exc
    assert at is not None
    return version, at


def parse_deployments(values: Iterable[Any] | None) -> list[Deployment]:
    """Deployments given by the user, sorted by time (see :func:`parse_deployment`)."""
    if values is None:
        return []
    if isinstance(values, str | dict):
        values = [values]
    out = [parse_deployment(v) for v in values]
    return sorted(out, key=lambda d: d[1])


def _version_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    for k in VERSION_KEYS:
        v = obj.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
    return None


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return _decoder.decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _line_version(message: Any, args: Any) -> str | None:
    """The version one console line names: its message as a JSON object, else the first object
    argument (or JSON-object string argument) of its raw arguments."""
    if isinstance(message, str) and message[:1] == "{":
        v = _version_of(_decode(message))
        if v is not None:
            return v
    decoded = _decode(args)
    items = decoded if isinstance(decoded, list) else [decoded]
    for a in items:
        if isinstance(a, dict):
            return _version_of(a)
        if isinstance(a, str) and a[:1] == "{":
            d = _decode(a)
            if isinstance(d, dict):
                return _version_of(d)
    return None


def log_versions(logs: pd.DataFrame, invocation_ids: Iterable[Any] | None = None) -> pd.DataFrame:
    """Per invocation, the first version its structured log lines name.

    Returns columns ``invocation_id`` and ``version`` (one row per invocation that names one).
    ``invocation_ids`` limits the search to those invocations.
    """
    empty = pd.DataFrame(
        {"invocation_id": pd.Series([], dtype=object), "version": pd.Series([], dtype=object)}
    )
    if invocation_ids is not None:  # cheap hash lookups first, the regex on what is left
        logs = logs[logs["invocation_id"].isin(list(invocation_ids)).fillna(False).to_numpy(dtype=bool)]
    if logs.empty:
        return empty
    msg = logs["message"]
    arr = pa.array(msg.astype(object).where(msg.notna(), None), type=pa.string(), from_pandas=True)
    hit = pc.fill_null(pc.match_substring_regex(arr, VERSION_KEY_RE), False).to_numpy(zero_copy_only=False)
    if not hit.any():
        return empty
    sub = logs.loc[hit, ["invocation_id", "message", "args"]]
    versions = [
        _line_version(m, a)
        for m, a in zip(sub["message"].astype(object), sub["args"].astype(object), strict=True)
    ]
    out = pd.DataFrame({"invocation_id": sub["invocation_id"].astype(object).to_numpy(), "version": versions})
    return out.dropna().drop_duplicates("invocation_id").reset_index(drop=True)


def invocation_versions(invocations: pd.DataFrame, logs: pd.DataFrame) -> pd.DataFrame:
    """Per invocation: ``invocation_id``, ``version`` and ``version_source``
    (``script_version`` | ``log_field`` | null), in the order of ``invocations``."""
    ids = invocations["invocation_id"].astype(object)
    sv = invocations["script_version"].astype(object)
    sv = sv.where(sv.notna(), None)
    out = pd.DataFrame({"invocation_id": ids.to_numpy(), "version": sv.to_numpy(), "version_source": None})
    out.loc[out["version"].notna(), "version_source"] = "script_version"
    missing = out["version"].isna().to_numpy()
    if missing.any() and len(logs):
        lv = log_versions(logs, out.loc[missing, "invocation_id"].dropna().unique())
        if len(lv):
            mapping = dict(zip(lv["invocation_id"], lv["version"], strict=True))
            found = out["invocation_id"].map(mapping)
            fill = missing & found.notna().to_numpy()
            out.loc[fill, "version"] = found[fill]
            out.loc[fill, "version_source"] = "log_field"
    return out
