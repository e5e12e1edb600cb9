"""Credential masking without PII masking, and notebook parameters that would carry the API token."""

from __future__ import annotations

import pytest

from edgeinvestigate.errors import NotebookError
from edgeinvestigate.report.params import validate_parameters
from edgeinvestigate.report.redact import Redactor

TOKEN = "Zq7TfK2mWcX9rVb4Lp0sYh3NdJ8uGe6Aio1Btk5C"


def test_credentials_only_keeps_personal_data() -> None:
    r = Redactor(pii=False, credentials=True, secrets=["s3cr3t-value-123"])
    text = "from 203.0.113.9 bob@example.com Authorization: Bearer abcdefgh12345678 key s3cr3t-value-123"
    out = r.text(text)
    assert "203.0.113.9" in out
    assert "bob@example.com" in out
    assert "abcdefgh12345678" not in out
    assert "s3cr3t-value-123" not in out
    assert r.text(f"id {TOKEN} done") == "id [token] done"


def test_default_modes_are_unchanged() -> None:
    text = "Authorization: Bearer abcdefgh12345678 from bob@example.com"
    assert Redactor(pii=False, secrets=[]).text(text) == text  # report --no-redact keeps auth headers
    full = Redactor(secrets=[]).text(text)
    assert "abcdefgh12345678" not in full
    assert "bob@example.com" not in full


@pytest.mark.parametrize(
    "value", [f"INC-1 {TOKEN}", TOKEN, [f"a{TOKEN}b"]], ids=["inside", "whole", "list-item"]
)
def test_a_parameter_holding_the_token_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    with pytest.raises(NotebookError) as info:
        validate_parameters("incident-report", {"incident_id": value})
    assert "incident_id" in info.value.message
    assert TOKEN not in str(info.value)
    assert TOKEN[:12] not in str(info.value)


def test_other_values_and_short_placeholder_tokens_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    assert validate_parameters("incident-report", {"incident_id": "INC-123"}).incident_id == "INC-123"
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "x")  # too short to be a real token: no false refusals
    assert validate_parameters("incident-report", {"incident_id": "x-x"}).incident_id == "x-x"
