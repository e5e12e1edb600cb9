"""Redaction of personal data and credentials in report text.

Reports leave the on-call laptop: they are attached to tickets and postmortems. By default every
string in an executed notebook's outputs (and in ``findings.json``) goes through :func:`redact`:
emails, IPv4/IPv6 addresses, bearer/basic credentials and ``Authorization``-style headers, JWTs,
Cloudflare-style API tokens and ``token=...`` query or JSON fields are replaced with a marker such
as ``[email]``. ``--no-redact`` turns this off, except for one rule that always applies: the values
of secret-looking environment variables (``CLOUDFLARE_API_TOKEN`` and friends) are scrubbed from
every output, so a token in the environment can never end up in a report.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["Redactor", "env_secrets", "redact"]

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)"
)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# "Authorization: Bearer abc", "authorization": "Basic abc", X-Auth-Key: abc, cookie: a=b
_HEADER = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization|\bx-auth-(?:key|token|email)|\bcf-access-(?:token|client-secret)"
    r"|\bx-api-key|\bcookie|\bset-cookie)(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\"\r\n,;}]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
_KV_SECRET = re.compile(
    r"(?i)(?P<name>\b[\w-]*(?:token|secret|password|passwd|api[_-]?key|apikey|access[_-]?key)[\w-]*)"
    r"(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\s\"&,;}'<]{4,})"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
# Cloudflare API tokens: 40 characters of [A-Za-z0-9_-] mixing cases and digits (hex hashes do not).
_CF_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40}(?![A-Za-z0-9_-])")

_SECRET_ENV = re.compile(r"(?i)(token|secret|password|passwd|api_?key|credential)")


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables (8+ characters), longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def _is_cf_token(text: str) -> bool:
    return (
        any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
    )


# Addresses that identify no one: loopback and "any" (they show up in local and sandbox URLs).
_KEEP_IPS = frozenset({"127.0.0.1", "0.0.0.0", "::1", "::"})  # noqa: S104 - a list, not a bind


def _ipv4(match: re.Match[str]) -> str:
    return match.group(0) if match.group(0) in _KEEP_IPS else "[ip]"


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.count(":") < 2 or len(text) < 3 or text in _KEEP_IPS:
        return text
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    # "12:30:45" style clock times are not valid IPv6 (too few groups without "::"), "::1" is.
    return "[ip]"


class Redactor:
    """Applies the redaction rules to strings and to nested JSON-like values.

    ``pii=False`` keeps personal data (``--no-redact``) but still scrubs ``secrets``.
    ``credentials`` (default: same as ``pii``) masks credential patterns (auth headers, bearer/basic
    credentials, JWTs, ``token=...`` fields, Cloudflare-style tokens) whatever ``pii`` says: with
    ``pii=False, credentials=True`` emails and IPs stay and credentials go.
    """

    def __init__(
        self, *, pii: bool = True, secrets: Iterable[str] | None = None, credentials: bool | None = None
    ) -> None:
        self.pii = pii
        self.credentials = pii if credentials is None else credentials
        self.secrets = [s for s in (env_secrets() if secrets is None else secrets) if s]
        self.count = 0

    def __call__(self, text: str) -> str:
        return self.text(text)

    def _sub(self, pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], text: str) -> str:
        def counted(match: re.Match[str]) -> str:
            out = repl(match) if callable(repl) else match.expand(repl)
            if out != match.group(0):
                self.count += 1
            return out

        return pattern.sub(counted, text)

    def text(self, text: str) -> str:
        """Redact one string."""
        for secret in self.secrets:
            if secret in text:
                self.count += text.count(secret)
                text = text.replace(secret, "[secret]")
        if self.credentials:
            text = self._sub(_HEADER, lambda m: f"{m['name']}{m['sep']}[redacted]", text)
            text = self._sub(_BEARER, lambda m: f"{m['scheme']} [redacted]", text)
            text = self._sub(_JWT, "[token]", text)
            text = self._sub(_KV_SECRET, lambda m: f"{m['name']}{m['sep']}[redacted]", text)
        if not self.pii:
            return self._cf_tokens(text) if self.credentials else text
        text = self._sub(_EMAIL, "[email]", text)
        text = self._sub(_IPV4, _ipv4, text)
        if ":" in text:
            before = text
            text = _IPV6_CANDIDATE.sub(_ipv6, text)
            if text != before:
                self.count += 1
        return self._cf_tokens(text) if self.credentials else text

    def _cf_tokens(self, text: str) -> str:
        return self._sub(_CF_TOKEN, lambda m: "[token]" if _is_cf_token(m.group(0)) else m.group(0), text)

    def value(self, value: Any) -> Any:
        """Redact every string inside a nested structure of dicts, lists and strings."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        if isinstance(value, dict):
            if "bdata" in value and "dtype" in value:  # plotly's base64-packed numeric array
                return value
            return {k: self.value(v) for k, v in value.items()}
        return value


def redact(text: str, *, pii: bool = True) -> str:
    """Redact one string with the default rules (and the environment's secrets)."""
    return Redactor(pii=pii).text(text)
