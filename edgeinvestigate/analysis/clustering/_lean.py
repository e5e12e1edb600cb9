"""The logs clustering reads, without the free text it never looks at.

Clustering looks at every log line's level, job and invocation, but at the text (``message``,
``args``) only of the lines of an error level and of those whose text may hold a structured error
field (``"error"`` in the message or the arguments: see :mod:`._rows`). On a busy day the other
lines' text is most of the bytes of the evidence. For evidence whose logs are still in the file the
spool wrote (:mod:`edgeinvestigate.evidence._spool`), :func:`lean_evidence` reads the logs with that
text left out (null): the clusters and their rows are the same (the tests compare), in a fraction of
the memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edgeinvestigate.analysis.clustering._rows import ERROR_LEVELS
from edgeinvestigate.evidence._frames import StoredFrame
from edgeinvestigate.models.frames import conform

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["lean_evidence", "lean_logs"]

#: the text columns left out of the lines clustering does not read
TEXT: tuple[str, ...] = ("message", "args")
#: what a line's text holds when it may carry a structured error field (see ``structured_error``)
ERROR_FIELD = '"error"'
#: rows read at a time
BATCH_ROWS = 128 * 1024


def lean_evidence(ev: Evidence, levels: Sequence[str] = ERROR_LEVELS) -> Evidence:
    """``ev`` with its logs read without the text of the lines clustering (with ``levels``) skips;
    ``ev`` itself unless its logs are a spooled file not read yet."""
    value = ev.__dict__.get("_frame_logs")
    if not (isinstance(value, StoredFrame) and value.in_storage_order):
        return ev
    return ev.copy_with(logs=lean_logs(value.path, levels))


def _clustered(batch: pa.RecordBatch, levels: Sequence[str]) -> pa.Array:
    """Which lines of ``batch`` clustering may read the text of."""
    level = batch.column("level")
    wanted = [v for v in pc.unique(level).to_pylist() if v is not None and v.lower() in levels]
    keep = pc.is_in(level, value_set=pa.array(wanted, type=pa.string()))
    for col in TEXT:
        keep = pc.or_(keep, pc.match_substring(batch.column(col), ERROR_FIELD))
    return pc.fill_null(keep, False)


def lean_logs(path: Path, levels: Sequence[str] = ERROR_LEVELS) -> pd.DataFrame:
    """The logs frame of the Parquet file ``path`` with ``message`` and ``args`` null on the lines
    clustering does not read the text of (neither of ``levels`` nor holding an error field)."""
    pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering holds whole column chunks
    batches = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        keep = _clustered(batch, levels)
        # a null index takes a null: only the kept texts are copied (if_else copies them all)
        mask = keep.to_numpy(zero_copy_only=False)
        at = pa.array(np.cumsum(mask) - 1, mask=~mask)
        cols = [
            batch.column(c).filter(keep).take(at) if c in TEXT else batch.column(c)
            for c in batch.schema.names
        ]
        batches.append(pa.RecordBatch.from_arrays(cols, schema=batch.schema))
        if len(batches) % 8 == 0:
            pa.default_memory_pool().release_unused()  # the full texts read so far
    logs = conform(pa.Table.from_batches(batches, schema=pf.schema_arrow), "logs")
    del batches
    pa.default_memory_pool().release_unused()  # the full texts read, given back to the system
    return logs
