"""What a credential looks like in text: one definition for everything that shows or stores text.

:func:`mask_credentials` replaces, in any string, the value of the API token in the environment
(``CLOUDFLARE_API_TOKEN`` and other secret-looking variables), ``Authorization``-style header values,
bearer/basic credentials, JWTs, ``token=...`` / ``"apiKey": "..."`` fields and 40-character
Cloudflare-style API tokens. The rules are the credential rules of the report redaction
(``edgeinvestigate.report.redact``), here so that every area may use them (models imports nothing
but the ground floor). It masks credentials only: e-mail and IP addresses are personal data, a
report's concern.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CREDENTIAL_PATTERNS", "CredentialMasker", "env_secrets", "mask_credentials"]

# "Authorization: Bearer abc", "authorization": "Basic abc", X-Auth-Key: abc, cookie: a=b
_HEADER = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization|\bx-auth-(?:key|token|email)|\bcf-access-(?:token|client-secret)"
    r"|\bx-api-key|\bcookie|\bset-cookie)(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\"\r\n,;}]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
_KV_SECRET = re.compile(
    r"(?i)(?P<name>\b[\w-]*(?:token|secret|password|passwd|api[_-]?key|apikey|access[_-]?key)[\w-]*)"
    r"(?P<sep>\"?\s*[:=]\s*\"?)(?!\[(?:secret|redacted|token)\])(?P<value>[^\s\"&,;}'<]{4,})"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
# Cloudflare API tokens: 40 characters of [A-Za-z0-9_-] mixing cases and digits (hex hashes do not).
_CF_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40}(?![A-Za-z0-9_-])")
_SECRET_ENV = re.compile(r"(?i)(token|secret|password|passwd|api_?key|credential)")

#: name -> pattern, for documentation and for other maskers that want the same definition
CREDENTIAL_PATTERNS: dict[str, re.Pattern[str]] = {
    "auth_header": _HEADER,
    "bearer_basic": _BEARER,
    "jwt": _JWT,
    "secret_field": _KV_SECRET,
    "cloudflare_token": _CF_TOKEN,
}


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables (8+ characters), longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def _is_cf_token(text: str) -> bool:
    return (
        any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
    )


class CredentialMasker:
    """Masks credentials in strings and nested JSON-like values; ``count`` is how many were masked.

    ``secrets``: exact values to scrub (default: :func:`env_secrets` of this process's environment).
    """

    def __init__(self, secrets: Iterable[str] | None = None) -> None:
        self.secrets = [s for s in (env_secrets() if secrets is None else secrets) if s]
        self.count = 0

    def __call__(self, text: str) -> str:
        return self.text(text)

    def _sub(self, pattern: re.Pattern[str], repl: Any, text: str) -> str:
        def counted(match: re.Match[str]) -> str:
            out = str(repl(match) if callable(repl) else match.expand(repl))
            if out != match.group(0):
                self.count += 1
            return out

        return pattern.sub(counted, text)

    def text(self, text: str) -> str:
        """One string with every credential replaced by ``[secret]``, ``[redacted]`` or ``[token]``."""
        for secret in self.secrets:
            if secret in text:
                self.count += text.count(secret)
                text = text.replace(secret, "[secret]")
        text = self._sub(_HEADER, lambda m: f"{m['name']}{m['sep']}[redacted]", text)
        text = self._sub(_BEARER, lambda m: f"{m['scheme']} [redacted]", text)
        text = self._sub(_JWT, "[token]", text)
        text = self._sub(_KV_SECRET, lambda m: f"{m['name']}{m['sep']}[redacted]", text)
        return self._sub(_CF_TOKEN, lambda m: "[token]" if _is_cf_token(m.group(0)) else m.group(0), text)

    def value(self, value: Any) -> Any:
        """Every string inside dicts, lists and tuples masked (keys are kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def mask_credentials(text: str, *, secrets: Iterable[str] | None = None) -> str:
    """``text`` with its credentials masked (see the module docstring)."""
    return CredentialMasker(secrets).text(text)
