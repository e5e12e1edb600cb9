"""Transient/permanent triage rules."""

from __future__ import annotations

import pytest

from edgeinvestigate.analysis import triage


@pytest.mark.parametrize(
    ("text", "kind", "rule"),
    [
        ("Mail provider rate limited request: 429 Too Many Requests", "transient", "http-429"),
        ("Upstream API responded 503 Service Unavailable", "transient", "http-5xx"),
        ("fetch to https://x.example.com timed out after 30000ms", "transient", "timeout"),
        ("TypeError: fetch failed", "transient", "network"),
        ("connect ECONNREFUSED 10.0.0.1:443", "transient", "network"),
        ("D1_ERROR: database is locked: SQLITE_BUSY", "transient", "retry-wording"),
        ("TypeError: Cannot read properties of undefined (reading 'x')", "permanent", "type-error"),
        ("Invalid DATA_SYNC payload: field since must be an ISO-8601 timestamp", "permanent", "validation"),
        ("Webhook endpoint returned 410 Gone", "permanent", "http-4xx"),
        ("R2 object /a/b not found", "permanent", "http-4xx"),
        ("something odd happened", "unknown", ""),
        ("", "unknown", ""),
    ],
)
def test_rules(text: str, kind: str, rule: str) -> None:
    assert triage.classify(text) == (kind, rule)


def test_majority_decides_and_every_rule_is_documented() -> None:
    kind, rule = triage.classify_many(["HTTP 503 from x", "HTTP 503 from y", "TypeError: boom"])
    assert (kind, rule) == ("transient", "http-5xx")
    assert triage.classify_many([]) == ("unknown", "")
    for r in triage.RULES:
        assert r.name in (triage.__doc__ or ""), f"rule {r.name} is not in the module docs"
        assert triage.rule_description(r.name).startswith(r.name)
