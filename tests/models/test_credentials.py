"""One definition of what a credential looks like (models/credentials), used wherever text is shown."""

from __future__ import annotations

import pytest

from edgeinvestigate.models.credentials import CredentialMasker, env_secrets, mask_credentials

CF = "Zq3vT9xLm2Pw8RkY4nB6cD1fG5hJ7sA0eU-_qWtX"  # 40 characters, mixed case and digits


@pytest.mark.parametrize(
    ("text", "secret", "shown"),
    [
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678", "Authorization: [redacted]"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', "dXNlcjpwYXNz", '{"authorization": "[redacted]"}'),
        ("calling with bearer abcdefgh12345678 now", "abcdefgh12345678", "bearer [redacted] now"),
        ("GET /hook?token=s3cr3tvalue&x=1", "s3cr3tvalue", "token=[redacted]&x=1"),
        ('{"apiKey": "k-123456"}', "k-123456", '{"apiKey": "[redacted]"}'),
        ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "SflKxwRJSMeKKF2QT4", "jwt [token]"),
        (f"token {CF} leaked", CF, "token [token] leaked"),
        ("x-auth-key: 0123456789abcdef", "0123456789abcdef", "x-auth-key: [redacted]"),
    ],
)
def test_each_kind_of_credential_is_masked(text: str, secret: str, shown: str) -> None:
    masker = CredentialMasker(secrets=[])
    out = masker.text(text)
    assert secret not in out
    assert shown in out
    assert masker.count >= 1


def test_what_is_not_a_credential_stays() -> None:
    text = (
        "job 00000001d0165c2985833f5660dd0000 for user@example.com at 10.0.0.1: "
        "sha 3f786850e387550fdab836ed7e6dc881de23001b"
    )
    assert mask_credentials(text, secrets=[]) == text  # ids, hex hashes and personal data are not credentials


def test_the_environment_token_is_masked_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "plain-env-token-1234")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to mask safely
    assert "plain-env-token-1234" in env_secrets()
    assert "abc" not in env_secrets()
    masker = CredentialMasker()
    value = masker.value({"payload": ["x plain-env-token-1234 y", 3, ("plain-env-token-1234",)]})
    assert value == {"payload": ["x [secret] y", 3, ("[secret]",)]}
    assert masker.count == 2
