"""The memory pool Arrow allocates from while a Logpush file is parsed: the C heap (``malloc``).

A load builds its columns block by block: each 1 MiB block makes a few MiB of short-lived arrays
(Python lists converted, dictionaries encoded, taken, cast) next to the batches it keeps. With
pyarrow's default pool (mimalloc) the kernel's share of a load was large: the process that keeps
the batches of a 1M-record file spent 1.4-1.9 s in the kernel (page faults: fresh pages handed out
and zeroed for the temporaries, given back after they are freed and faulted in again for the next
block) against 0.35-0.4 s with the system pool, and the whole load (both processes) took about 10%
less CPU (5% for ten files), measured 2026-12-07. glibc's ``malloc`` reuses what the previous block
freed.

:func:`system_pool` makes the system pool pyarrow's default while a load parses (nested and
concurrent loads share one switch; the pool before is put back when the last one ends). Arrays keep
the pool they were allocated from, so arrays made before or after, or by other threads meanwhile,
stay valid. When ``ARROW_DEFAULT_MEMORY_POOL`` is set the user chose a pool: it is left alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

__all__ = ["system_pool"]

_lock = threading.Lock()
_depth = 0
_before: Any = None


@contextlib.contextmanager
def system_pool() -> Iterator[None]:
    """pyarrow's default pool is the system pool inside this block (see the module docstring)."""
    global _depth, _before
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
