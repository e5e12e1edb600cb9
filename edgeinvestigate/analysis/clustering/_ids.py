"""Integer codes for invocation ids across frames: one pass, no Python string per row.

The canonical invocation id is 16 hex digits (xxh3-64 of the source record): such columns are read
straight from the Arrow buffers as uint64 numbers (a lookup per byte, vectorised), and the numbers
are factorised. Any other id (a source with its own ids) takes Arrow's hash of the strings.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["codes_of"]

#: the value of a lowercase hex digit; 255 for any other byte (upper case too: "AB" and "ab" are
#: different ids, so such a column takes the string path)
_HEX: Final = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
#: two hex digits (as one little-endian uint16 of their bytes) -> the byte they spell; 256 if either
#: is not a lowercase hex digit
_LO, _HI = np.arange(65536) & 0xFF, np.arange(65536) >> 8
#: ids decoded at a time
HEX_CHUNK: Final = 1 << 20
_PAIR: Final = np.where(
    (_HEX[_LO] != 255) & (_HEX[_HI] != 255), _HEX[_LO].astype(np.uint16) * 16 + _HEX[_HI], 256
).astype(np.uint16)


def _hex16(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint64 values, valid mask) when every non-null string is 16 lowercase hex digits, else None."""
    if arr.type != pa.string():
        return None
    n = len(arr)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if n == 0:
        return np.zeros(0, dtype=np.uint64), valid
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    lengths = np.diff(offsets)
    nulls = arr.null_count
    if nulls == 0:  # no masks to apply
        if not np.all(lengths == 16):
            return None
    elif not np.all(lengths[valid] == 16) or not np.all(lengths[~valid] == 0):
        return None
    if nulls == n:
        return np.zeros(n, dtype=np.uint64), valid
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    values = np.empty(n - nulls, dtype=np.uint64)
    for lo in range(0, len(values), HEX_CHUNK):  # a piece at a time: the lookups take 4x the ids
        piece = data[lo * 16 : (lo + HEX_CHUNK) * 16]
        packed = _PAIR[piece.view("<u2")]  # one byte per two digits, most significant first
        if packed.max() == 256:
            return None  # not lowercase hex
        values[lo : lo + HEX_CHUNK] = packed.astype(np.uint8).view(">u8")
    if nulls == 0:
        return values, valid
    out = np.zeros(n, dtype=np.uint64)
    out[valid] = values
    return out, valid


def codes_of(*arrays: pa.Array | pa.ChunkedArray) -> tuple[list[np.ndarray], int]:
    """One integer code per distinct string across ``arrays`` (``-1`` for null), and how many. A
    chunked array is read chunk by chunk (not joined first)."""
    pieces = [list(a.chunks) if isinstance(a, pa.ChunkedArray) else [a] for a in arrays]
    flat = [c for p in pieces for c in p]
    decoded = [_hex16(a) for a in flat]
    if all(d is not None for d in decoded):
        values = np.concatenate([d[0] for d in decoded if d is not None] or [np.zeros(0, np.uint64)])
        valid = np.concatenate([d[1] for d in decoded if d is not None] or [np.zeros(0, bool)])
        del decoded
        if valid.all():
            codes, uniques = pd.factorize(values)
        else:
            codes = np.full(len(values), -1, dtype=np.int64)
            codes[valid], uniques = pd.factorize(values[valid])
        codes = codes.astype(np.int64, copy=False)
        n = len(uniques)
    else:
        enc = pc.dictionary_encode(pa.chunked_array([a.cast(pa.string()) for a in flat], pa.string()))
        codes = np.concatenate(
            [pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False) for c in enc.chunks]
            or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        n = len(enc.chunk(0).dictionary) if enc.num_chunks else 0
    bounds = np.cumsum([sum(len(c) for c in p) for p in pieces])[:-1]
    return np.split(codes, bounds), n
