"""Memory between and within the steps of a large job: giving freed memory back to the system
(:func:`give_back_memory`), and the pool Arrow allocates from (:func:`system_pool`).

The system pool: a step that makes many short-lived Arrow arrays (a Logpush file parsed block by
block, the clustering of a busy day) allocates from the C heap (``malloc``) instead of pyarrow's
default pool (mimalloc). Parsing, each 1 MiB block makes a few MiB of temporary arrays next to the
batches it keeps: with mimalloc the process that keeps the batches of a 1M-record file spent
1.4-1.9 s in the kernel (fresh pages handed out and zeroed for the temporaries, given back and
faulted in again for the next block) against 0.35-0.4 s with the system pool, and the whole load
took about 10% less CPU; glibc's ``malloc`` reuses what the previous block freed (measured
2026-12-07). Clustering 10M events peaked at 3.65 GB instead of 3.92 GB, for the same reason.

:func:`system_pool` makes the system pool pyarrow's default inside a block (nested and concurrent
blocks share one switch; the pool before is put back when the last one ends). Arrays keep the pool
they were allocated from, so arrays made before or after, or by other threads meanwhile, stay valid.
When ``ARROW_DEFAULT_MEMORY_POOL`` is set the user chose a pool: it is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["give_back_memory", "system_pool"]


def give_back_memory() -> None:
    """Return the memory of what was freed to the system: Python's cycles, Arrow's pool, and the C
    heap (glibc keeps freed pages otherwise), so the next step (or process) has it."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): nothing to trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)


_lock = threading.Lock()
_depth = 0
_before: Any = None


@contextlib.contextmanager
def system_pool() -> Iterator[None]:
    """pyarrow's default pool is the system pool inside this block (see the module docs)."""
    global _depth, _before
    import pyarrow as pa

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield
        return
    with _lock:
        if _depth == 0:
            _before = pa.default_memory_pool()
            pa.set_memory_pool(pa.system_memory_pool())
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                pa.set_memory_pool(_before)
                _before = None
