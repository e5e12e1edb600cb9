"""The grouping kernel: texts -> templates (mask, deduplicate, template step, map back)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._masking import MASKS, Mask, mask_keys
from edgeinvestigate.analysis._templates import cluster_id_for, merge_templates

__all__ = ["EMPTY_TEXT", "Grouping", "group_texts"]

EMPTY_TEXT: Final = "(empty error message)"
_DEDUP_SAMPLE: Final = 10_000


@dataclass(frozen=True)
class Grouping:
    """The template of every text: ``labels[i]`` indexes ``templates`` (normalised, ``<*>``)."""

    labels: np.ndarray
    templates: list[str]
    keys: list[str]  # distinct masked strings
    key_labels: np.ndarray  # per text: index into keys
    key_template: np.ndarray  # per key: index into templates

    def ids(self, fingerprints: Sequence[str] | None = None) -> list[str]:
        """The stable id of every template (without fingerprints)."""
        return [cluster_id_for(t) for t in self.templates]


def _as_string_array(texts: pa.Array | pa.ChunkedArray | Sequence[str | None] | pd.Series) -> pa.Array:
    if isinstance(texts, pd.Series):
        texts = pa.array(texts.astype(object).where(texts.notna(), None), type=pa.string())
    elif not isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = pa.array(texts, type=pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    return texts


def group_texts(
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None] | pd.Series,
    masks: tuple[Mask, ...] = MASKS,
) -> Grouping:
    """Mask, deduplicate and template ``texts``; every text gets a template (null/empty ones too).

    This is the whole clustering of plain messages, vectorised: the regex pass runs once per
    distinct raw text (when there are many repeats) and the template step once per distinct masked
    string.
    """
    arr = _as_string_array(texts)
    if arr.null_count or (len(arr) and (pc.min(pc.binary_length(arr)).as_py() or 0) == 0):
        arr = pc.if_else(pc.or_kleene(pc.is_null(arr), pc.equal(arr, "")), EMPTY_TEXT, arr)
    n = len(arr)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Grouping(empty, [], [], empty, empty)
    if n > _DEDUP_SAMPLE:
        step = max(1, n // _DEDUP_SAMPLE)
        sample = arr.take(pa.array(np.arange(0, n, step)))
        dedup_first = len(pc.unique(sample)) < 0.5 * len(sample)
    else:
        dedup_first = False
    if dedup_first:
        enc = pc.dictionary_encode(arr)
        raw_keys = mask_keys(enc.dictionary, masks)
        kenc = pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)[enc.indices.to_numpy(zero_copy_only=False)]
    else:
        kenc = pc.dictionary_encode(mask_keys(arr, masks))
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)
    keys: list[str] = kenc.dictionary.to_pylist()
    per_key = merge_templates(keys)
    templates = sorted(set(per_key))
    index = {t: i for i, t in enumerate(templates)}
    key_template = np.array([index[t] for t in per_key], dtype=np.int64)
    labels = key_template[key_labels]
    return Grouping(labels, templates, keys, key_labels.astype(np.int64), key_template)
