"""User rules that merge or split clusters, kept in a small TOML or JSON file.

Automatic clustering is right most of the time; when it is not, the on-call engineer writes the fix
down once and every later run (and every teammate) gets the same grouping::

    # cluster-rules.toml
    [[split]]
    name = "acme-tenant"                  # shown in `clusters --explain` and in the rule column
    cluster = "c3f1a9b2c4d5"              # the cluster to split (or: template = "Upstream API <*> *")
    pattern = "tenant=t_1234"             # messages whose raw text matches this regex move out

    [[merge]]
    name = "partner-api-down"
    clusters = ["c1a2b3c4d5e6", "c9f8e7d6c5b4"]   # and/or templates = ["Upstream API <*> responded *"]
    into = "c1a2b3c4d5e6"                 # optional: keep this id (default: a new id from the name)

Splits run first (in file order), then merges (in file order), so a split part can be merged into
another cluster. ``template`` values are glob patterns (``*`` any text) on the readable template.
A rule that matches nothing is reported by :meth:`ClusterRules.unused` (it is not an error: the
same file is used on bundles that do not have every cluster). The JSON form is the same structure:
``{"split": [...], "merge": [...]}``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from edgeinvestigate.analysis._templates import cluster_id_for
from edgeinvestigate.errors import ConfigError

__all__ = ["ClusterRules", "MergeRule", "SplitRule"]

_HINT = "see the format in `python -c 'import edgeinvestigate.analysis.rules as m; help(m)'`"


class MergeRule(BaseModel):
    """Merge every cluster listed (by id or template glob) into one."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    clusters: list[str] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    into: str | None = None

    @model_validator(mode="after")
    def _something(self) -> MergeRule:
        if not self.clusters and not self.templates:
            raise ValueError("a merge rule needs `clusters` (ids) or `templates` (globs)")
        return self

    def target_id(self) -> str:
        return self.into or cluster_id_for(f"merge:{self.name}")


class SplitRule(BaseModel):
    """Move the messages of one cluster (by id or template glob) that match a regex to a new cluster."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    cluster: str | None = None
    template: str | None = None
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern {v!r} is not a valid regular expression: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _target(self) -> SplitRule:
        if not self.cluster and not self.template:
            raise ValueError("a split rule needs `cluster` (an id) or `template` (a glob)")
        return self


class ClusterRules(BaseModel):
    """A rules file: ``split`` then ``merge`` rules."""

    model_config = ConfigDict(extra="forbid")

    split: list[SplitRule] = Field(default_factory=list)
    merge: list[MergeRule] = Field(default_factory=list)
    source: str = "(inline)"
    _used: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def load(cls, path: str | Path) -> ClusterRules:
        """Read a ``.toml`` or ``.json`` rules file; errors name the file and the rule."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the cluster rules file {p}: {exc.strerror}", hint=_HINT) from exc
        data: Any
        try:
            data = json.loads(raw) if p.suffix.lower() == ".json" else tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {exc}",
                              hint=_HINT) from exc  # fmt: skip
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a table with `split` and/or `merge` lists", hint=_HINT)
        try:
            rules = cls.model_validate({**data, "source": str(p)})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = first["loc"]
            where = (
                f"{loc[0]}[{loc[1]}]"
                if len(loc) >= 2 and isinstance(loc[1], int)
                else ".".join(map(str, loc))
            )
            field_name = ".".join(map(str, loc[2:])) if len(loc) > 2 else ""
            raise ConfigError(
                f"{p}: rule {where}{(' field ' + field_name) if field_name else ''}: {first['msg']}",
                hint=_HINT,
            ) from exc
        return rules

    # --- applying ------------------------------------------------------------------------------
    def apply(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rewrite ``cluster_id``, ``display`` and ``rule`` of the error rows (see the module docs)."""
        if rows.empty:
            return rows
        rows = rows.copy()
        self._used = set()
        for i, s in enumerate(self.split):
            target = self._select(rows, [s.cluster] if s.cluster else [], [s.template] if s.template else [])
            rx = re.compile(s.pattern)
            hit = target & rows["text"].astype(str).map(lambda t, rx=rx: rx.search(t) is not None)
            if not hit.any():
                continue
            self._used.add(f"split[{i}]")
            for parent, idx in rows[hit].groupby("cluster_id").groups.items():
                new_id = cluster_id_for(f"split:{s.name}:{parent}")
                rows.loc[idx, "cluster_id"] = new_id
                rows.loc[idx, "display"] = rows.loc[idx, "display"].astype(str) + f" [{s.name}]"
                rows.loc[idx, "rule"] = (
                    f"split rule {s.name!r} ({self.source} split[{i}]): matches {s.pattern!r}"
                )
        for i, m in enumerate(self.merge):
            target = self._select(rows, m.clusters, m.templates)
            if not target.any():
                continue
            self._used.add(f"merge[{i}]")
            new_id = m.target_id()
            keep = rows.loc[rows["cluster_id"] == new_id, "display"]
            display = keep.iloc[0] if len(keep) else rows.loc[target, "display"].value_counts().index[0]
            rows.loc[target, "cluster_id"] = new_id
            rows.loc[target, "display"] = display
            rows.loc[target, "rule"] = f"merge rule {m.name!r} ({self.source} merge[{i}])"
        return rows

    def _select(self, rows: pd.DataFrame, ids: list[str], globs: list[str]) -> pd.Series:
        sel = rows["cluster_id"].isin(ids)
        for g in globs:
            rx = re.compile(fnmatch.translate(g))
            sel |= rows["display"].astype(str).map(lambda t, rx=rx: rx.match(t) is not None)
            sel |= rows["norm_template"].astype(str).map(lambda t, rx=rx: rx.match(t) is not None)
        return sel

    def unused(self) -> list[str]:
        """Rules that matched nothing in the last :meth:`apply` (``split[0]``, ``merge[1]``...)."""
        used = self._used
        names = [f"split[{i}]" for i in range(len(self.split))] + [
            f"merge[{i}]" for i in range(len(self.merge))
        ]
        return [n for n in names if n not in used]
