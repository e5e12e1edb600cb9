"""The template step: merge masked messages that differ only in words the masks left alone.

Masking (:mod:`edgeinvestigate.analysis._masking`) turns ids, numbers, URLs... into ``<*>``. What is left
varies in plain words: a tenant slug, a job type, a colo name. This step works on the *distinct*
masked strings only (usually a few hundred, even for millions of messages), in the spirit of Drain's
fixed-depth token tree but without its dependence on arrival order:

1. split each masked string into whitespace tokens and group the strings by token count;
2. for every token position ``p``, bucket the strings of a group by all their tokens except ``p``;
   a bucket whose strings differ at ``p`` is one template with a variable word at ``p`` when
   * one of them already has ``<*>`` there (a masked value and plain words in the same slot), or
   * they show at least :data:`MIN_DISTINCT` different words there (two alternatives such as
     ``reset``/``refused`` or ``Bad Gateway``/``Gateway Timeout`` are different errors, not a
     variable: merging them is the classic over-grouping of log parsers);
3. repeat until nothing changes.

The result depends only on the *set* of masked strings, never on their order, so cluster ids (a hash
of the normalised template) are the same across runs, machines and orderings.

Stack traces add :func:`stack_fingerprint`: the in-app frames (function and file, without line and
column, without ``node_modules``/runtime frames), so a line-number drift after a deploy keeps the id.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from edgeinvestigate.analysis._masking import PLACEHOLDER

__all__ = [
    "MIN_DISTINCT",
    "cluster_id_for",
    "display_template",
    "merge_templates",
    "stack_fingerprint",
    "tokens",
]

#: a token slot needs this many different plain words (without a masked value) to become ``<*>``
MIN_DISTINCT: Final = 3
#: a group (same token count) with more templates than this skips the subsumption pass
MAX_SUBSUME: Final = 3000
#: strings longer than this many tokens are not merged (they are kept as they are)
MAX_TOKENS: Final = 400


def merge_templates(
    keys: Sequence[str], min_distinct: int = MIN_DISTINCT, *, partitions: Sequence[str] | None = None
) -> list[str]:
    """Template of every masked string in ``keys`` (same order, same length).

    Equal inputs get equal templates; the output is a function of ``set(keys)`` only (and of the
    partition of each key: keys of different ``partitions`` are never merged, e.g. the cluster texts
    of two structured events). The same key must have the same partition.
    """
    part_of = dict(zip(keys, partitions, strict=True)) if partitions is not None else {}
    distinct = sorted(set(keys))
    by_len: dict[tuple[str, int], list[tuple[str, ...]]] = defaultdict(list)
    for k in distinct:
        toks = tokens(k)
        by_len[(part_of.get(k, ""), len(toks))].append(toks)
    template_of: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
    for (part, n), group in by_len.items():
        if n == 0 or n > MAX_TOKENS or len(group) == 1:
            for toks in group:
                template_of[(part, toks)] = toks
            continue
        for toks, tpl in _merge_group(group, n, min_distinct).items():
            template_of[(part, toks)] = tpl
    out_by_key = {k: " ".join(template_of[(part_of.get(k, ""), tokens(k))]) for k in distinct}
    return [out_by_key[k] for k in keys]


#: placeholders of the grouping key other than ``<*>``: never generalised into ``<*>``
KEY_PLACEHOLDERS: Final = frozenset({"<ipv6>"})


def _collapse(chunk: str) -> str:
    if "<ipv6>" in chunk:
        return "<ipv6>"
    if PLACEHOLDER in chunk:
        return PLACEHOLDER
    return chunk


def tokens(key: str) -> tuple[str, ...]:
    """Tokens of a masked string: its whitespace-separated chunks, a chunk that holds a placeholder
    being that placeholder (``<ipv6>`` before ``<*>``).

    What sticks to a placeholder (``<*>)``, ``sha256=<*>``, ``40rimwD0Qk<*>`` when a mask took only
    part of a value) is part of the same slot, so a value masked in one message and partly masked
    or unmasked in another (``329)``) still has the same number of tokens, and the template step
    sees a slot that varies.
    """
    return tuple(_collapse(c) for c in key.split())


def _merge_group(
    group: list[tuple[str, ...]], n: int, min_distinct: int
) -> dict[tuple[str, ...], tuple[str, ...]]:
    # current template of each original string; merging rewrites the templates, never the keys
    current: dict[tuple[str, ...], tuple[str, ...]] = {t: t for t in group}
    changed = True
    while changed:
        changed = False
        templates = sorted(set(current.values()))
        for p in range(n):
            buckets: dict[tuple[str, ...], set[str]] = defaultdict(set)
            for t in templates:
                buckets[t[:p] + t[p + 1 :]].add(t[p])
            rewrite: dict[tuple[str, ...], tuple[str, ...]] = {}
            for rest, values in buckets.items():
                plain = {v for v in values if v != PLACEHOLDER and v not in KEY_PLACEHOLDERS}
                if not plain or (PLACEHOLDER not in values and len(plain) < min_distinct):
                    continue
                merged = (*rest[:p], PLACEHOLDER, *rest[p:])
                for v in plain:
                    rewrite[(*rest[:p], v, *rest[p:])] = merged
            if rewrite:
                changed = True
                for key, tpl in current.items():
                    if tpl in rewrite:
                        current[key] = rewrite[tpl]
                templates = sorted(set(current.values()))
    return _subsume(current)


def _generalises(g: tuple[str, ...], t: tuple[str, ...]) -> bool:
    return all(a == b or (a == PLACEHOLDER and b not in KEY_PLACEHOLDERS) for a, b in zip(g, t, strict=True))


def _subsume(current: dict[tuple[str, ...], tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """A template that is an instance of a more general one (``<*>`` where it has a word) joins it.

    This catches strings whose variable words changed in several slots at once (no bucket of
    step 2 can see them vary alone). The most specific generalisation wins (fewest ``<*>``, then the
    smallest), chains are followed, so the result still depends only on the set of strings.
    Skipped for groups of more than :data:`MAX_SUBSUME` templates (quadratic).
    """
    templates = sorted(set(current.values()))
    if len(templates) > MAX_SUBSUME:
        return current
    by_wild = sorted(templates, key=lambda t: (t.count(PLACEHOLDER), t))
    parent: dict[tuple[str, ...], tuple[str, ...]] = {}
    for t in templates:
        n = t.count(PLACEHOLDER)
        for g in by_wild:
            if g.count(PLACEHOLDER) > n and _generalises(g, t):
                parent[t] = g
                break
    if not parent:
        return current

    def root(t: tuple[str, ...]) -> tuple[str, ...]:
        while t in parent:
            t = parent[t]
        return t

    return {k: root(v) for k, v in current.items()}


_TYPED_PLACEHOLDER = re.compile(r"<[a-z0-9_]+>")


def display_template(template: str, typed_example: str) -> str:
    """The readable form of a template: the typed masking of one example (original spacing, typed
    placeholders), with the slots that the template step made variable shown as ``<*>``; falls
    back to ``template`` if the two do not align chunk for chunk (see :func:`tokens`)."""
    slots = template.split(" ")
    out: list[str] = []
    pos = 0
    i = 0
    for m in re.finditer(r"\S+", typed_example):
        part = m.group(0)
        if i >= len(slots):
            return template
        slot = slots[i]
        # a chunk that holds a placeholder already (typed, or ``<*>}`` of a structured line's keys)
        typed = _TYPED_PLACEHOLDER.search(part) is not None or PLACEHOLDER in part
        if slot == PLACEHOLDER:
            if not typed:
                part = PLACEHOLDER  # words the template step made variable
        elif slot in KEY_PLACEHOLDERS:
            pass
        elif slot != part:
            if not typed:
                return template
            part = slot  # a value the key keeps (an HTTP status): show it as it is
        out.append(typed_example[pos : m.start()])
        out.append(part)
        pos = m.end()
        i += 1
    if i != len(slots):
        return template
    return "".join(out).strip()


def cluster_id_for(template: str, fingerprint: str = "") -> str:
    """The stable id of a cluster: a hash of its normalised template (and stack fingerprint).

    ``template`` is the normalised template of the template step (``<*>`` slots, tokens joined by
    one space), never the readable one, so the id does not depend on which example was used to
    name the placeholders.
    """
    text = " ".join(template.split())
    if fingerprint:
        text += "\n@" + fingerprint
    return "c" + hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


# "    at fn (file:line:col)", "    at async fn (file:line:col)", "    at file:line:col"
_FRAME = re.compile(
    r"^\s*at\s+(?:async\s+)?(?:(?P<fn>[^\s(]+(?:\s\[as [^\]]+\])?)\s+\()?(?P<file>[^():\s]+?|<anonymous>)"
    r"(?::\d+)?(?::\d+)?\)?\s*$"
)
_NOT_IN_APP = ("node_modules/", "node:", "internal/", "<anonymous>", "native", "wasm://", "cloudflare:")


def _frames(stack: str) -> Iterable[tuple[str, str]]:
    for line in stack.splitlines():
        m = _FRAME.match(line)
        if not m:
            continue
        file = m.group("file") or ""
        if not file or any(marker in file for marker in _NOT_IN_APP):
            continue
        file = file.split("?", 1)[0].rsplit("/", 1)[-1]
        yield (m.group("fn") or "?"), file


def stack_fingerprint(stack: str | None, max_frames: int = 8) -> str:
    """A short hash of the in-app frames of a JavaScript stack (function + file, no line/col).

    Returns ``""`` when the stack has no in-app frames (or is empty).
    """
    if not stack:
        return ""
    frames = [f"{fn}@{file}" for fn, file in _frames(stack)][:max_frames]
    if not frames:
        return ""
    return hashlib.blake2b("\n".join(frames).encode("utf-8"), digest_size=4).hexdigest()


def in_app_frames(stack: str | None) -> list[str]:
    """The in-app frames that :func:`stack_fingerprint` hashes, for explanations."""
    if not stack:
        return []
    return [f"{fn} ({file})" for fn, file in _frames(stack)]
