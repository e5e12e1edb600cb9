"""The grouping kernel: texts -> templates (mask, deduplicate, template step, map back)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._masking import MASKS, Mask, mask_keys, mask_typed
from edgeinvestigate.analysis._templates import cluster_id_for, merge_templates

__all__ = ["BARE_PREFIX", "EMPTY_TEXT", "Grouping", "bare_key", "group_texts", "is_bare", "text_key"]

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
    *,
    premasked: Sequence[bool] | np.ndarray | None = None,
    partitions: Sequence[str | None] | None = None,
) -> Grouping:
    """Mask, deduplicate and template ``texts``; every text gets a template (null/empty ones too).

    This is the whole clustering of plain messages, vectorised: the regex pass runs once per
    distinct raw text (when there are many repeats) and the template step once per distinct masked
    string. ``premasked[i]`` says that ``texts[i]`` is a grouping key already (a structured line's
    cluster text, see :mod:`._structured`): it is not masked again, and the template step merges it
    only with premasked keys of the same ``partitions[i]`` (its event name: two events never become
    one template, however alike their messages). A text whose masked key is placeholders alone (a
    bare id, a number, a JSON value) gets the key :func:`bare_key`.
    """
    arr = _as_string_array(texts)
    if arr.null_count or (len(arr) and (pc.min(pc.binary_length(arr)).as_py() or 0) == 0):
        arr = pc.if_else(pc.or_kleene(pc.is_null(arr), pc.equal(arr, "")), EMPTY_TEXT, arr)
    if premasked is not None and len(arr):
        flags = pa.array(np.asarray(premasked, dtype=bool))
        parts = pa.array(
            ["" if p is None else str(p).replace(_SEP, "") for p in partitions]
            if partitions is not None
            else [""] * len(arr),
            pa.string(),
        )
        arr = pc.if_else(flags, pc.binary_join_element_wise(_PREMASKED, parts, _SEP, arr, ""), arr)
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
        raw_keys, key_parts, kenc = _keys(enc.dictionary, masks)
        kenc = kenc if kenc is not None else pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)[enc.indices.to_numpy(zero_copy_only=False)]
    else:
        raw_keys, key_parts, kenc = _keys(arr, masks)
        kenc = kenc if kenc is not None else pc.dictionary_encode(raw_keys)
        key_labels = kenc.indices.to_numpy(zero_copy_only=False)
    keys: list[str] = kenc.dictionary.to_pylist()
    partition = [""] * len(keys)
    if key_parts:  # entry -> partition of the premasked ones; the same key has the same partition
        entry_key = kenc.indices.to_numpy(zero_copy_only=False)
        for i, part in key_parts.items():
            partition[int(entry_key[i])] = "\x01" + part
    per_key = merge_templates(keys, partitions=partition)
    templates = sorted(set(per_key))
    index = {t: i for i, t in enumerate(templates)}
    key_template = np.array([index[t] for t in per_key], dtype=np.int64)
    labels = key_template[key_labels]
    return Grouping(labels, templates, keys, key_labels.astype(np.int64), key_template)


#: marks a text that is a grouping key already (never masked again); no log text starts with it.
#: A premasked text is ``_PREMASKED + partition + _SEP + key``.
_PREMASKED: Final = "\x00\x01edgeinvestigate-key\x00"
_SEP: Final = "\x00"
#: the words of a bare key (see :func:`bare_key`)
BARE_PREFIX: Final = "(only a value)"
_BARE = re.compile(r"[A-Za-z0-9]")


def bare_key(text: str, masks: tuple[Mask, ...] = MASKS) -> str:
    """The key of a text that masking leaves as placeholders alone (``42``, ``'ok'``, a uuid, a JSON
    array): :data:`BARE_PREFIX` and its typed shape (``(only a value) <uuid>``), so such texts are
    named as what they are instead of a template of bare ``<*>`` that swallows them all."""
    shape = " ".join(mask_typed(text, masks)[0].split())
    return f"{BARE_PREFIX} {shape[:200]}"


def is_bare(key: str) -> bool:
    """Whether a key or template is placeholders alone (no letter or digit outside ``<...>``)."""
    return _BARE.search(_ANY_PLACEHOLDER.sub("", key)) is None


_ANY_PLACEHOLDER = re.compile(r"<[A-Za-z0-9_*]+>")


def _keys(
    values: pa.Array, masks: tuple[Mask, ...]
) -> tuple[pa.Array, dict[int, str], pa.DictionaryArray | None]:
    """The grouping key of each text: masked (premasked ones as they are), bare ones named; the
    partition of each premasked entry (by position); and the keys dictionary-encoded when that was
    done on the way (else ``None``)."""
    pre = pc.starts_with(values, _PREMASKED)
    masked = mask_keys(values, masks)
    parts: dict[int, str] = {}
    if pc.any(pre).as_py():  # only the premasked entries go through Python
        keys = []
        at = np.flatnonzero(pre.to_numpy(zero_copy_only=False))
        for i, raw in zip(at.tolist(), values.filter(pre).to_pylist(), strict=True):
            part, _, key = raw[len(_PREMASKED) :].partition(_SEP)
            keys.append(key)
            parts[i] = part
        masked = pc.replace_with_mask(masked, pre, pa.array(keys, pa.string()))
    # which keys are placeholders alone: decided once per distinct key
    enc = pc.dictionary_encode(masked)
    stripped = pc.replace_substring_regex(enc.dictionary, _ANY_PLACEHOLDER.pattern, "")
    bare_keys = pc.invert(pc.match_substring_regex(stripped, _BARE.pattern))
    if not pc.any(bare_keys).as_py():
        return masked, parts, enc
    bare = pc.fill_null(pc.take(bare_keys, enc.indices), False)
    named = [
        bare_key(raw[len(_PREMASKED) :].partition(_SEP)[2] if raw.startswith(_PREMASKED) else raw, masks)
        for raw in values.filter(bare).to_pylist()
    ]
    return pc.replace_with_mask(masked, bare, pa.array(named, pa.string())), parts, None


def text_key(text: str, masks: tuple[Mask, ...] = MASKS) -> str:
    """The grouping key one text gets in :func:`group_texts` (not premasked)."""
    key: str = _keys(pa.array([text or EMPTY_TEXT], pa.string()), masks)[0][0].as_py()
    return key
