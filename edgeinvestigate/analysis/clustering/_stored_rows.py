"""The error rows of stored clusters, left in the bundle until a caller asks for some columns.

On a busy day the error rows are most of the clusters' memory (their texts, invocation, job and
request ids), and most readers need a few columns: the analysis reads ten of the twenty-two, without
the texts. :class:`StoredRows` stands for ``derived/cluster_rows.parquet`` in ``Clusters.rows`` and
reads only the columns asked (Parquet is columnar: the others are not read at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from edgeinvestigate.evidence._store import Derived

__all__ = ["StoredRows"]


@dataclass(frozen=True)
class StoredRows:
    """The frame ``view`` of the derived frames ``derived``, read a few columns at a time
    (``dictionary``: the columns read dictionary-encoded, as Parquet stores them)."""

    derived: Derived
    view: str
    dictionary: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.derived.rows(self.view)

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows' ``columns`` (default: all) as an Arrow table."""
        return self.derived.arrow(self.view, dictionary=self.dictionary, columns=columns)
