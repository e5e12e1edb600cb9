"""What :class:`~edgeinvestigate.evidence.bundle.Evidence` offers beyond its frames: storage order,
derived frames (stored with the bundle, computed elsewhere) and SQL (:mod:`._sql`).

A mixin, so that ``bundle.py`` keeps the frames, loading and the bundle's files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pandas as pd
import pyarrow as pa

from edgeinvestigate.evidence._frames import SORTED_FRAMES, frame_file, sort_in_place, storage_order
from edgeinvestigate.evidence._sql import connect, register_all
from edgeinvestigate.evidence._store import Derived

if TYPE_CHECKING:
    import duckdb

__all__ = ["EvidenceEngine"]

_FRAMES = ("invocations", "logs", "exceptions", "dlq")


class EvidenceEngine:
    """Storage order, derived frames and SQL for ``Evidence`` (see the module docs)."""

    if TYPE_CHECKING:  # provided by Evidence (not imported here: bundle.py imports this module)
        _derived: dict[str, Derived]

        def frame(self, name: str) -> pd.DataFrame: ...

    def copy_with(self, **changes: Any) -> Self:
        """``dataclasses.replace(self, **changes)`` that leaves the frames not changed as they are: a
        frame still in its Parquet file (an opened or spooled bundle's) is not read to be copied."""
        kept = {n: self.__dict__[f"_frame_{n}"] for n in _FRAMES if n not in changes}
        return dataclasses.replace(self, **kept, **changes)  # type: ignore[type-var]

    # --- storage order -------------------------------------------------------------------------
    def _unsorted(self) -> dict[str, pd.DataFrame]:
        """The frames whose order must be checked: all but those written in storage order by the
        spool (:mod:`._spool`) and not read since."""
        return {
            n: self.frame(n)
            for n in _FRAMES
            if not getattr(self.__dict__.get(f"_frame_{n}"), "in_storage_order", False)
        }

    def in_storage_order(self) -> Self:
        """This evidence with ``invocations``, ``logs`` and ``exceptions`` sorted by ``ts`` (stable;
        the order a saved bundle has); ``self`` when they are sorted already. Derived frames index
        rows by position: compute them on this order (:meth:`with_derived` checks)."""
        frames = self._unsorted()
        ordered = storage_order(frames, names=tuple(n for n in SORTED_FRAMES if n in frames))
        if ordered is None:
            return self
        return self.copy_with(**ordered)

    def sort_for_storage(self) -> None:
        """Put ``invocations``, ``logs`` and ``exceptions`` in storage order in place, one column at a
        time (each unsorted frame is rebuilt sorted while its columns are dropped, so at most one
        column is held twice: for the evidence a command has just loaded and owns; a frame object
        taken from it before is emptied; :meth:`in_storage_order` leaves ``self`` alone)."""
        if self._derived:
            raise ValueError("sort_for_storage() would move the rows that derived frames point at")
        for name, df in self._unsorted().items():
            ordered = sort_in_place(df)
            if ordered is not None:
                setattr(self, name, ordered)

    @property
    def bundle_path(self) -> Path | None:
        """The directory this evidence was opened from, while its frames are still that bundle's
        (``None`` for evidence loaded in memory, or a copy with other frames, like a time window)."""
        src: Path | None = self.__dict__.get("_bundle_dir")
        if src is None or any(frame_file(self, n) is None for n in _FRAMES):
            return None
        return src

    # --- derived frames ------------------------------------------------------------------------
    def with_derived(
        self,
        name: str,
        frames: Mapping[str, pd.DataFrame | pa.Table],
        *,
        key: str,
        info: Mapping[str, Any] | None = None,
    ) -> Self:
        """A copy that also holds the derived frames ``frames`` (view name -> frame) as set ``name``,
        computed by code and settings identified by ``key``; :meth:`save` writes them to
        ``derived/VIEW.parquet``. ``ev`` must be in storage order (``ev.in_storage_order()``): row
        positions in derived frames refer to the saved order. Evidence knows nothing of how they are
        computed; a copy made by ``dataclasses.replace`` (a time window, another DLQ) drops them."""
        own = self._unsorted()
        if storage_order(own, names=tuple(n for n in SORTED_FRAMES if n in own)) is not None:
            raise ValueError(
                "derived frames must be computed on evidence in storage order: use ev.in_storage_order()"
            )
        clash = set(frames) & set(_FRAMES)
        if clash:
            raise ValueError(f"derived frame names {sorted(clash)} are names of evidence frames")
        out = self.copy_with()
        out._derived = {
            **self._derived,
            name: Derived(name=name, key=key, frames=dict(frames), info=dict(info or {})),
        }
        return out

    def derived(self, name: str) -> Derived | None:
        """The derived frame set ``name`` this evidence holds (``None``: none stored, e.g. a bundle of
        an older release, or evidence loaded in memory)."""
        return self._derived.get(name)

    # --- SQL -----------------------------------------------------------------------------------
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection whose views are this evidence's frames (see :mod:`._sql`)."""
        con: duckdb.DuckDBPyConnection | None = self.__dict__.get("_duckdb")
        if con is None:
            con = connect()
            frames: dict[str, pd.DataFrame | pa.Table | Path] = {}
            for n in _FRAMES:
                frames[n] = frame_file(self, n) or self.frame(n)
            for d in self._derived.values():
                for view in d.frames:
                    frames[view] = d.file(view) or d.table_or_frame(view)
            register_all(con, frames)
            self.__dict__["_duckdb"] = con
        return con

    def sql(self, query: str, **frames: Any) -> Any:
        """Run SQL over the frames (views ``invocations``, ``logs``, ``exceptions``, ``dlq`` and the
        stored derived frames); keyword arguments add frames of your own as views. Returns a DuckDB
        relation (``duckdb.DuckDBPyRelation``): ``.df()`` for pandas, ``.arrow()``, ``.pl()``,
        ``.fetchall()``."""
        con = self.duckdb()
        if frames:
            register_all(con, {}, frames)
        return con.sql(query)

    def rel(self, name: str) -> Any:
        """One frame (or derived frame) as a DuckDB relation: ``ev.rel("logs").filter("level = 'error'")``."""
        return self.duckdb().view(name)
