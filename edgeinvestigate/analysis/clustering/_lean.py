"""The logs clustering reads, without the free text it never looks at.

Clustering looks at every log line's level, job and invocation, but at the text (``message``,
``args``) only of the lines of an error level and of those whose text may hold a structured error
field (``"error"`` in the message or the arguments: see :mod:`._rows`). On a busy day the other
lines' text is most of the bytes of the evidence. For evidence whose logs are still in the file the
spool wrote (:mod:`edgeinvestigate.evidence._spool`), :func:`lean_evidence` reads the logs with that
text left out (null), and the invocations with only the columns of an error row's context: the
clusters and their rows are the same (the tests compare), in a fraction of the memory.
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

#: the text columns that may hold a structured error field
TEXT: tuple[str, ...] = ("message", "args")
#: the columns left out (null) of the lines clustering does not read the text of
LEFT_OUT: tuple[str, ...] = (*TEXT, "message_id")
#: logs columns clustering never reads (null on every line)
UNUSED_LOGS: tuple[str, ...] = ("attempt",)
#: the invocations columns clustering reads (the context of an error row); the others are left out
CONTEXT: tuple[str, ...] = (
    "invocation_id", "ts", "script", "script_version", "queue", "outcome", "request_id", "ray_id",
)  # fmt: skip
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
    lean: dict[str, pd.DataFrame] = {"logs": lean_logs(value.path, levels)}
    inv = ev.__dict__.get("_frame_invocations")
    if isinstance(inv, StoredFrame) and inv.in_storage_order:
        table = pq.read_table(inv.path, columns=list(CONTEXT), pre_buffer=False)
        lean["invocations"] = conform(table, "invocations")
    pa.default_memory_pool().release_unused()  # what was read and left out, given back
    return ev.copy_with(**lean)


def _clustered(batch: pa.RecordBatch, levels: Sequence[str]) -> pa.Array:
    """Which lines of ``batch`` clustering may read the text of."""
    level = batch.column("level")
    wanted = [v for v in pc.unique(level).to_pylist() if v is not None and v.lower() in levels]
    keep = pc.is_in(level, value_set=pa.array(wanted, type=pa.string()))
    for col in TEXT:
        keep = pc.or_(keep, pc.match_substring(batch.column(col), ERROR_FIELD))
    return pc.fill_null(keep, False)


def lean_logs(path: Path, levels: Sequence[str] = ERROR_LEVELS) -> pd.DataFrame:
    """The logs frame of the Parquet file ``path`` with ``message``, ``args`` and ``message_id`` null
    on the lines clustering does not read the text of (neither of ``levels`` nor holding an error
    field), and ``attempt`` null on every line."""
    pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering holds whole column chunks
    batches = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        keep = _clustered(batch, levels)
        # a null index takes a null: only the kept texts are copied (if_else copies them all)
        mask = keep.to_numpy(zero_copy_only=False)
        at = pa.array(np.cumsum(mask) - 1, mask=~mask)
        cols = [
            batch.column(c).filter(keep).take(at)
            if c in LEFT_OUT
            else pa.nulls(len(batch), batch.schema.field(c).type)
            if c in UNUSED_LOGS
            else batch.column(c)
            for c in batch.schema.names
        ]
        batches.append(pa.RecordBatch.from_arrays(cols, schema=batch.schema))
        if len(batches) % 8 == 0:
            pa.default_memory_pool().release_unused()  # the full texts read so far
    return conform(pa.Table.from_batches(batches, schema=pf.schema_arrow), "logs")
