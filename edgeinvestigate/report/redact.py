"""Redaction of personal data and credentials in report text.

Reports leave the on-call laptop: they are attached to tickets and postmortems. By default every
string in an executed notebook's outputs (and in ``findings.json``) goes through :func:`redact`:
emails, IPv4/IPv6 addresses, bearer/basic credentials and ``Authorization``-style headers, JWTs,
Cloudflare-style API tokens and ``token=...`` query or JSON fields are replaced with a marker such
as ``[email]``. ``--no-redact`` turns this off, except for one rule that always applies: the values
of secret-looking environment variables (``CLOUDFLARE_API_TOKEN`` and friends) are scrubbed from
every output, so a token in the environment can never end up in a report.

What a credential looks like is defined once, in :mod:`edgeinvestigate.models.credentials`, for
collect, clusters, replay and reports alike; this module adds the personal data (e-mail and IP
addresses) that only reports redact.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from edgeinvestigate.models.credentials import CredentialMasker, env_secrets

__all__ = ["Redactor", "env_secrets", "redact"]

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)"
)
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
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
        if self.credentials:
            masker = CredentialMasker(self.secrets)
            text = masker.text(text)
            self.count += masker.count
        else:
            for secret in self.secrets:
                if secret in text:
                    self.count += text.count(secret)
                    text = text.replace(secret, "[secret]")
        if not self.pii:
            return text
        text = self._sub(_EMAIL, "[email]", text)
        text = self._sub(_IPV4, _ipv4, text)
        if ":" in text:
            before = text
            text = _IPV6_CANDIDATE.sub(_ipv6, text)
            if text != before:
                self.count += 1
        return text

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
