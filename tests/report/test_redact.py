"""Redaction of PII and credentials in report text."""

from __future__ import annotations

import pytest

from edgeinvestigate.report.redact import Redactor, env_secrets, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("send to bob.smith+tag@example.co.uk failed", "send to [email] failed"),
        ("client 203.0.113.7 timed out", "client [ip] timed out"),
        ("peer 2001:db8::8a2e:370:7334 reset", "peer [ip] reset"),
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: [redacted]"),
        ('{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}', '{"authorization": "[redacted]"}'),
        ("GET /hook?token=s3cr3tvalue&page=2", "GET /hook?token=[redacted]&page=2"),
        ("X-Auth-Key: 0123456789abcdef", "X-Auth-Key: [redacted]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r", "jwt [token]"),
        ("tok Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789_-Xy", "tok [token]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "at 2026-11-27T14:03:12.345Z job 7f9c0e0e-1b2a-4c3d-9e8f-001122334455 took 12:30:45",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 and sha256 " + "ab" * 32,
        "TypeError: Cannot read properties of undefined (reading 'name') at render (index.js:42:17)",
        "version 1.2.3 and ratio 0.25",
        "<script>alert(1)</script> <img src=x onerror=alert(1)>",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_environment_secrets_are_always_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "tok_live_1234567890")
    monkeypatch.setenv("SOME_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("HOME_DIR", "/root/not-a-secret")
    assert set(env_secrets()) >= {"tok_live_1234567890", "hunter2hunter2"}
    assert "/root/not-a-secret" not in env_secrets()
    keep_pii = Redactor(pii=False)
    assert keep_pii("mail bob@example.com with tok_live_1234567890") == "mail bob@example.com with [secret]"
    assert keep_pii.count == 1


def test_nested_values_and_plotly_binary_arrays() -> None:
    r = Redactor(secrets=[])
    packed = {"dtype": "f8", "bdata": "AAAAAAAA8D8AAAAAAAAAQAAAAAAAAAhAAbCdEfGhIjKlMnOpQrStUvWx"}
    value = {"data": [{"text": ["a@b.io", "ok"], "y": packed}], "n": 3}
    out = r.value(value)
    assert out["data"][0]["text"] == ["[email]", "ok"]
    assert out["data"][0]["y"] == packed
    assert out["n"] == 3


def test_loopback_addresses_are_kept_and_not_counted() -> None:
    r = Redactor(secrets=[])
    assert (
        r("sandbox at http://127.0.0.1:8787/client/v4 and [::1]")
        == "sandbox at http://127.0.0.1:8787/client/v4 and [::1]"
    )
    assert r.count == 0
    assert r("peer 10.1.2.3") == "peer [ip]"
    assert r.count == 1
