"""Masks: every kind of variable part, the vectorised pass agrees with the one-message explainer."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from edgeinvestigate.analysis._masking import MASKS, mask_keys, mask_typed
from edgeinvestigate.analysis._templates import tokens

CASES = [
    ("job 0f8fad5b-d9cb-469f-a165-70867728950e failed", "uuid"),
    ("trace 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 dropped", "traceparent"),
    ("cf-ray 8c1f2a3b4d5e6f70-SJC", "ray"),
    ("GET https://api.example.com/v1/items?id=42&x=y failed", "url"),
    ("mail to ana.smith12@example.co.uk bounced", "email"),
    ("at 2026-11-27T14:00:05.123Z", "datetime"),
    ("since Sat, 28 Nov 2026 06:19:00 GMT", "httpdate"),
    ("connect 10.0.12.7:5432 refused", "ipv4"),
    ("connect [2606:4700:a7cc:4a23::bdc2:a89b]:8443 refused", "ipv6"),
    ("getaddrinfo ENOTFOUND images.internal.example.com", "hostname"),
    ("open /srv/data/t_12/file.json failed", "path"),
    ("took 250ms", "duration"),
    ("took 1.5 seconds", "duration"),
    ("expired at 1795780800000", "epoch"),
    ("cursor dGhpcyBpcyBhIHRlc3QgYmxvYg== rejected", "base64"),
    ("job 01JD2Q0X3MZ4T8Y5W6V7R9S0KA lost", "ulid"),
    ("customer cus_3fa9b2c41d7e88 over quota", "id"),
    ("image 4000x3000 too big", "size"),
    ("ratio 0.975 too low", "float"),
    ("retry 12 of 4000", "int"),
    ("record deadbeef12 locked", "hex"),
    ("reading 'displayName' of undefined", "quoted"),
]


@pytest.mark.parametrize(("text", "kind"), CASES)
def test_each_mask_kind(text: str, kind: str) -> None:
    masked, steps = mask_typed(text)
    assert f"<{kind}>" in masked, (masked, steps)
    assert any(s.mask == kind for s in steps)


def test_masks_cover_sentry_list_and_more() -> None:
    names = {m.name for m in MASKS}
    sentry = {"email", "url", "hostname", "uuid", "hex", "datetime", "duration", "float", "int", "quoted"}
    assert sentry <= names
    assert {"ipv4", "ipv6", "traceparent", "ray", "base64", "epoch", "path"} <= names


def test_constants_stay() -> None:
    # an apostrophe inside a word is not a quote; booleans are left alone; in the grouping key an
    # HTTP status is kept (the template step decides), while the readable masking types it
    text = "can't reach upstream: HTTP 503 Service Unavailable, retry=true"
    masked, _ = mask_typed(text)
    assert masked == "can't reach upstream: HTTP <int> Service Unavailable, retry=true"
    assert mask_keys(pa.array([text])).to_pylist() == [text]


def test_vectorised_keys_align_with_typed_masking() -> None:
    texts = [c[0] for c in CASES] + ["ünïcödé Fehler bei 42 Einträgen für 名前 'x'", ""]
    keys = mask_keys(pa.array(texts)).to_pylist()
    for text, key in zip(texts, keys, strict=True):
        typed, _ = mask_typed(text)
        typed_as_key = tokens(re.sub(r"<(?!ipv6>)[a-z0-9_]+>", "<*>", typed))  # typed placeholders as <*>
        assert tokens(key) == typed_as_key, (text, key, typed)


def test_duckdb_and_arrow_paths_agree() -> None:
    texts = [c[0] for c in CASES] * 1000  # > 20,000 rows: DuckDB path
    big = mask_keys(pa.array(texts)).to_pylist()
    small = mask_keys(pa.array(texts[: len(CASES)])).to_pylist()
    assert big[: len(CASES)] == small
    assert len(big) == len(texts)


def test_nulls_and_huge_messages() -> None:
    huge = "Error: " + "x" * 500_000 + " id 12345"
    keys = mask_keys(pa.array([None, huge], type=pa.string())).to_pylist()
    assert keys[0] is None
    assert len(keys[1]) <= 2000  # cut before masking: a huge message is still one message
    masked, _ = mask_typed(huge)
    assert len(masked) <= 2000
