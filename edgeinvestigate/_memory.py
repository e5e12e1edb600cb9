"""Giving freed memory back to the system between the steps of a large job."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys

__all__ = ["give_back_memory"]


def give_back_memory() -> None:
    """Return the memory of what was freed to the system: Python's cycles, Arrow's pool, and the C
    heap (glibc keeps freed pages otherwise), so the next step (or process) has it."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): nothing to trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)
